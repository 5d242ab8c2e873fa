package ksqlmsk.kafka;

import java.nio.file.Path;
import java.util.concurrent.ConcurrentHashMap;

/** One watcher per policy path, shared by the SASL server and the authorizer of a JVM. */
final class PolicyFiles {
  private static final ConcurrentHashMap<Path, Policy.File> FILES = new ConcurrentHashMap<>();

  private PolicyFiles() {}

  static Policy.File of(Path path) {
    return FILES.computeIfAbsent(path.toAbsolutePath(), Policy.File::new);
  }
}
