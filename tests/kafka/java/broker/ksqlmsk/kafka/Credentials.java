package ksqlmsk.kafka;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Instant;

/**
 * The credentials the broker knows, as the test wrote them: what the fake IMDS hands out
 * (tests/testkit/src/imds.rs), so the broker can check a signature the way AWS checks it
 * against IAM's copy of the secret. JSON: {"Credentials":[{"AccessKeyId", "SecretAccessKey",
 * "Token" (optional: without it no session token may be sent), "Expiration" (optional,
 * ISO-8601), "Principal" (the IAM identity ARN the principal is named after)}]}. Read on
 * every authentication, so a test can rotate them while the brokers run.
 */
final class Credentials {
  record Entry(String accessKeyId, String secret, String token, Instant expiration, String principal) {}

  private static final ObjectMapper MAPPER = new ObjectMapper();

  static Entry lookup(Path file, String accessKeyId) throws IOException {
    JsonNode root = MAPPER.readTree(Policy.readSmallFile(file));
    for (JsonNode c : root.path("Credentials")) {
      if (accessKeyId.equals(c.path("AccessKeyId").asText(null))) {
        String exp = c.path("Expiration").asText(null);
        return new Entry(
            accessKeyId,
            c.path("SecretAccessKey").asText(""),
            c.path("Token").asText(null),
            exp == null ? null : Instant.parse(exp),
            c.path("Principal").asText("arn:aws:iam::123456789012:user/unnamed"));
      }
    }
    return null;
  }
}
