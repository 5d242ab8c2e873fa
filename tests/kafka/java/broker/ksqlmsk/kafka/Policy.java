package ksqlmsk.kafka;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Objects;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * An identity policy in IAM's JSON shape, evaluated the way IAM does for one principal:
 * an explicit Deny wins, then any Allow, else the implicit deny. Only what the test world
 * needs: Effect, Action and Resource (a string or a list), Sid and Version; any other key
 * (Condition, NotAction, Principal, ...) makes the file invalid, and an invalid or missing
 * file denies everything (logged once per change). Action names match case-insensitively,
 * resources case-sensitively, both with IAM's wildcards '*' and '?'. See
 * https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html
 *
 * The file is re-read when it changes (inode, size or mtime), so a test can replace it
 * (atomically) while the brokers run.
 */
final class Policy {
  enum Decision { ALLOW, EXPLICIT_DENY, IMPLICIT_DENY }

  private static final Logger LOG = LoggerFactory.getLogger("ksqlmsk.MskIam");
  private static final ObjectMapper MAPPER = new ObjectMapper();

  private record Statement(boolean allow, List<String> actions, List<String> resources) {}

  private final List<Statement> statements;

  private Policy(List<Statement> statements) {
    this.statements = statements;
  }

  Decision decide(String action, String resource) {
    boolean allowed = false;
    for (Statement s : statements) {
      boolean actionMatches = s.actions.stream().anyMatch(p -> glob(p.toLowerCase(Locale.ROOT), action.toLowerCase(Locale.ROOT)));
      boolean resourceMatches = s.resources.stream().anyMatch(p -> glob(p, resource));
      if (actionMatches && resourceMatches) {
        if (!s.allow) {
          return Decision.EXPLICIT_DENY;
        }
        allowed = true;
      }
    }
    return allowed ? Decision.ALLOW : Decision.IMPLICIT_DENY;
  }

  /** IAM's wildcard match: '*' any run of characters (also none), '?' exactly one. */
  static boolean glob(String pattern, String text) {
    int p = 0, t = 0, star = -1, mark = 0;
    while (t < text.length()) {
      if (p < pattern.length() && (pattern.charAt(p) == '?' || pattern.charAt(p) == text.charAt(t))) {
        p++;
        t++;
      } else if (p < pattern.length() && pattern.charAt(p) == '*') {
        star = p++;
        mark = t;
      } else if (star >= 0) {
        p = star + 1;
        t = ++mark;
      } else {
        return false;
      }
    }
    while (p < pattern.length() && pattern.charAt(p) == '*') {
      p++;
    }
    return p == pattern.length();
  }

  static Policy parse(byte[] json) throws IOException {
    JsonNode root = MAPPER.readTree(json);
    if (root == null || !root.isObject()) {
      throw new IOException("the policy is not a JSON object");
    }
    List<Statement> out = new ArrayList<>();
    var fields = root.fieldNames();
    while (fields.hasNext()) {
      String f = fields.next();
      if (!f.equals("Version") && !f.equals("Statement") && !f.equals("Id")) {
        throw new IOException("unsupported policy key " + f);
      }
    }
    JsonNode st = root.get("Statement");
    if (st == null) {
      throw new IOException("the policy has no Statement");
    }
    for (JsonNode s : st.isArray() ? st : List.of(st)) {
      var keys = s.fieldNames();
      while (keys.hasNext()) {
        String k = keys.next();
        if (!List.of("Sid", "Effect", "Action", "Resource").contains(k)) {
          throw new IOException("unsupported statement key " + k + " (the test broker knows Sid, Effect, Action, Resource)");
        }
      }
      String effect = s.path("Effect").asText("");
      if (!effect.equals("Allow") && !effect.equals("Deny")) {
        throw new IOException("Effect must be Allow or Deny, not '" + effect + "'");
      }
      out.add(new Statement(effect.equals("Allow"), strings(s, "Action"), strings(s, "Resource")));
    }
    return new Policy(out);
  }

  private static List<String> strings(JsonNode s, String key) throws IOException {
    JsonNode n = s.get(key);
    List<String> out = new ArrayList<>();
    if (n != null && n.isTextual()) {
      out.add(n.asText());
    } else if (n != null && n.isArray()) {
      for (JsonNode e : n) {
        if (!e.isTextual()) {
          throw new IOException(key + " holds a non-string");
        }
        out.add(e.asText());
      }
    } else {
      throw new IOException("a statement without " + key);
    }
    return out;
  }

  /** A regular file of at most 1 MiB (no FIFO can hang a broker thread), not following a link. */
  static byte[] readSmallFile(Path path) throws IOException {
    BasicFileAttributes a = Files.readAttributes(path, BasicFileAttributes.class, java.nio.file.LinkOption.NOFOLLOW_LINKS);
    if (!a.isRegularFile() || a.size() > 1 << 20) {
      throw new IOException(path + " is not a regular file of at most 1 MiB");
    }
    return Files.readAllBytes(path);
  }

  /** The policy file, re-read when it changes. */
  static final class File {
    private final Path path;
    private Object seen;
    private Policy policy;

    File(Path path) {
      this.path = path;
    }

    Path path() {
      return path;
    }

    /** The current policy, or null when the file is missing or invalid (deny everything). */
    synchronized Policy current() {
      Object key;
      try {
        BasicFileAttributes a = Files.readAttributes(path, BasicFileAttributes.class);
        key = List.of(Objects.toString(a.fileKey()), a.size(), a.lastModifiedTime().toMillis(), a.lastModifiedTime().toString());
      } catch (IOException e) {
        key = "missing";
      }
      if (key.equals(seen)) {
        return policy;
      }
      seen = key;
      try {
        policy = parse(readSmallFile(path));
        LOG.info("MSK-IAM POLICY loaded {} ({} statements)", path, policy.statements.size());
      } catch (IOException e) {
        policy = null;
        LOG.error("MSK-IAM POLICY invalid {}: {}; denying everything until it is fixed", path, e.getMessage());
      }
      return policy;
    }

    Decision decide(String action, String resource) {
      Policy p = current();
      return p == null ? Decision.IMPLICIT_DENY : p.decide(action, resource);
    }
  }
}
