package ksqlmsk.kafka;

import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Starts one test broker (KRaft, combined broker and controller): formats its log dir on
 * the first start (Kafka's StorageTool, as `kafka-storage.sh format`), then runs kafka.Kafka.
 * Arguments: server.properties cluster-id. The system property ksqlmsk.parent.pid names the
 * test process: when it is gone (killed before it could stop the broker) the broker removes
 * the directory ksqlmsk.cleanup.dir names (the cluster's temp dir) and halts, so neither a
 * JVM nor its files outlive their test.
 */
public final class BrokerMain {
  /** Best effort: the test's cluster directory (the other brokers may race to remove it). */
  private static void removeTree(String dir) {
    if (dir == null || !dir.contains("ksql-msk-kafka-")) {
      return;
    }
    try (var paths = Files.walk(Path.of(dir))) {
      paths.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
    } catch (Exception e) {
      // Gone already, or being removed by another broker.
    }
  }

  public static void main(String[] args) throws Exception {
    if (args.length != 2) {
      System.err.println("usage: BrokerMain SERVER_PROPERTIES CLUSTER_ID");
      System.exit(64);
    }
    String parent = System.getProperty("ksqlmsk.parent.pid");
    if (parent != null) {
      long pid = Long.parseLong(parent);
      Thread t = new Thread(() -> {
        while (true) {
          if (ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false) == false) {
            System.err.println("BrokerMain: the test process " + pid + " is gone; halting");
            removeTree(System.getProperty("ksqlmsk.cleanup.dir"));
            Runtime.getRuntime().halt(70);
          }
          try {
            Thread.sleep(1000);
          } catch (InterruptedException e) {
            return;
          }
        }
      }, "parent-watch");
      t.setDaemon(true);
      t.start();
    }
    Path props = Path.of(args[0]);
    Path marker = props.resolveSibling("formatted");
    if (!Files.exists(marker)) {
      int rc = kafka.tools.StorageTool.execute(
          new String[] {"format", "-t", args[1], "-c", props.toString(), "--ignore-formatted"}, System.out);
      if (rc != 0) {
        System.err.println("BrokerMain: formatting failed: " + rc);
        System.exit(rc);
      }
      Files.writeString(marker, args[1]);
    }
    kafka.Kafka.main(new String[] {props.toString()});
  }
}
