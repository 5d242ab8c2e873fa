package ksqlmsk.kafka;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.time.Duration;
import java.time.Instant;
import java.time.LocalDateTime;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.HexFormat;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.UUID;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;
import javax.security.sasl.SaslException;
import javax.security.sasl.SaslServer;
import org.apache.kafka.common.errors.SaslAuthenticationException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The broker side of SASL mechanism AWS_MSK_IAM, checking what the real aws-msk-iam-auth
 * client sends. The payload format is aws-msk-iam-auth's (github.com/aws/aws-msk-iam-auth,
 * src/main/java/software/amazon/msk/auth/iam/internals/AWS4SignedPayloadGenerator.java and
 * AuthenticationRequestParams.java; the server's answer: AuthenticationResponse.java): one
 * JSON object with "version" 2020_10_22, "host", "user-agent", "action"
 * kafka-cluster:Connect and the query parameters of a SigV4-presigned
 * "GET https://<host>/?Action=kafka-cluster%3AConnect" for service kafka-cluster (lower-cased:
 * x-amz-algorithm, -credential, -date, -expires, -signedheaders, -signature,
 * -security-token). The signature is recomputed with the secret the test gave the broker
 * (Credentials), as in AWS's "Authenticating requests: using query parameters"
 * (https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html): canonical
 * request over method, path "/", the sorted canonical query without the signature, the host
 * header, and the SHA-256 of the empty payload.
 *
 * Then, like MSK, kafka-cluster:Connect on the cluster ARN is authorized from the policy.
 * Every refusal is logged "MSK-IAM AUTH-FAIL ..." (or "MSK-IAM DENY action=kafka-cluster:Connect
 * ...") with the reason; the client only gets "Access denied".
 */
final class IamSaslServer implements SaslServer {
  static final String MECHANISM = "AWS_MSK_IAM";
  private static final Logger LOG = LoggerFactory.getLogger("ksqlmsk.MskIam");
  private static final ObjectMapper MAPPER = new ObjectMapper();
  private static final Duration SKEW = Duration.ofMinutes(5);
  private static final String EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
  private static final Set<String> KEYS = Set.of("version", "host", "user-agent", "action", "x-amz-algorithm",
      "x-amz-credential", "x-amz-date", "x-amz-expires", "x-amz-signedheaders", "x-amz-signature",
      "x-amz-security-token");

  private final IamServerCallbackHandler.Options options;
  private String authorizationId;
  private Instant expiry;
  private boolean complete;

  IamSaslServer(IamServerCallbackHandler.Options options) {
    this.options = options;
  }

  @Override
  public String getMechanismName() {
    return MECHANISM;
  }

  /** Refused: logged with the reason, the client told "Access denied". */
  private static final class Refused extends Exception {
    private static final long serialVersionUID = 1L;

    Refused(String why) {
      super(why);
    }
  }

  @Override
  public byte[] evaluateResponse(byte[] response) throws SaslException {
    if (complete) {
      throw new IllegalStateException("AWS_MSK_IAM: authentication already complete");
    }
    String requestId = UUID.randomUUID().toString();
    try {
      authorizationId = verify(response);
    } catch (Refused e) {
      LOG.info("MSK-IAM AUTH-FAIL request-id={} reason={}", requestId, e.getMessage());
      throw new SaslAuthenticationException("[" + requestId + "]: Access denied");
    } catch (ConnectDenied e) {
      LOG.info("MSK-IAM DENY principal=User:{} action=kafka-cluster:Connect resource={} decision={} request-id={}",
          e.principal, options.clusterArn(), e.decision, requestId);
      throw new SaslAuthenticationException("[" + requestId + "]: Access denied");
    }
    complete = true;
    LOG.info("MSK-IAM AUTH-OK principal=User:{} request-id={}", authorizationId, requestId);
    return ("{\"version\":\"2020_10_22\",\"request-id\":\"" + requestId + "\"}").getBytes(StandardCharsets.UTF_8);
  }

  private static final class ConnectDenied extends Exception {
    private static final long serialVersionUID = 1L;
    final String principal;
    final Policy.Decision decision;

    ConnectDenied(String principal, Policy.Decision decision) {
      this.principal = principal;
      this.decision = decision;
    }
  }

  private String verify(byte[] response) throws Refused, ConnectDenied {
    JsonNode p;
    try {
      p = MAPPER.readTree(response);
    } catch (Exception e) {
      throw new Refused("the payload is not JSON: " + e.getMessage());
    }
    if (p == null || !p.isObject()) {
      throw new Refused("the payload is not a JSON object");
    }
    Map<String, String> f = new TreeMap<>();
    var names = p.fieldNames();
    while (names.hasNext()) {
      String k = names.next();
      if (!KEYS.contains(k)) {
        throw new Refused("unexpected payload key " + k);
      }
      if (!p.get(k).isTextual()) {
        throw new Refused("payload key " + k + " is not a string");
      }
      f.put(k, p.get(k).asText());
    }
    for (String k : KEYS) {
      if (!k.equals("x-amz-security-token") && (f.get(k) == null || f.get(k).isEmpty())) {
        throw new Refused("payload key " + k + " is missing");
      }
    }
    expect(f, "version", "2020_10_22");
    expect(f, "action", "kafka-cluster:Connect");
    expect(f, "x-amz-algorithm", "AWS4-HMAC-SHA256");
    expect(f, "x-amz-signedheaders", "host");
    expect(f, "host", options.host());

    String[] scope = f.get("x-amz-credential").split("/", -1);
    if (scope.length != 5) {
      throw new Refused("x-amz-credential is not KEY/DATE/REGION/SERVICE/aws4_request: " + f.get("x-amz-credential"));
    }
    String accessKeyId = scope[0];
    if (!scope[2].equals(options.region())) {
      throw new Refused("the credential scope's region is " + scope[2] + ", the cluster's is " + options.region());
    }
    if (!scope[3].equals("kafka-cluster") || !scope[4].equals("aws4_request")) {
      throw new Refused("the credential scope is for " + scope[3] + "/" + scope[4] + ", not kafka-cluster/aws4_request");
    }
    Instant signedAt;
    try {
      signedAt = LocalDateTime.parse(f.get("x-amz-date").replace("Z", ""), DateTimeFormatter.ofPattern("yyyyMMdd'T'HHmmss"))
          .toInstant(ZoneOffset.UTC);
    } catch (Exception e) {
      throw new Refused("x-amz-date is not yyyyMMddTHHmmssZ: " + f.get("x-amz-date"));
    }
    if (!f.get("x-amz-date").endsWith("Z") || !f.get("x-amz-date").startsWith(scope[1])) {
      throw new Refused("x-amz-date " + f.get("x-amz-date") + " does not match the credential scope's date " + scope[1]);
    }
    long expires;
    try {
      expires = Long.parseLong(f.get("x-amz-expires"));
    } catch (NumberFormatException e) {
      throw new Refused("x-amz-expires is not a number: " + f.get("x-amz-expires"));
    }
    if (expires < 1 || expires > 900) {
      throw new Refused("x-amz-expires " + expires + " is outside 1..900 seconds");
    }
    Instant now = Instant.now();
    if (signedAt.isAfter(now.plus(SKEW))) {
      throw new Refused("signed in the future: " + signedAt);
    }
    expiry = signedAt.plusSeconds(expires);
    if (now.isAfter(expiry)) {
      throw new Refused("the signature expired at " + expiry);
    }

    Credentials.Entry cred;
    try {
      cred = Credentials.lookup(options.credentialsFile(), accessKeyId);
    } catch (Exception e) {
      throw new Refused("cannot read the credentials file " + options.credentialsFile() + ": " + e);
    }
    if (cred == null) {
      throw new Refused("unknown access key " + accessKeyId);
    }
    if (cred.expiration() != null && now.isAfter(cred.expiration())) {
      throw new Refused("the credentials of " + accessKeyId + " expired at " + cred.expiration());
    }
    String token = f.get("x-amz-security-token");
    if (cred.token() != null && !cred.token().equals(token)) {
      throw new Refused(token == null ? "no session token for the temporary key " + accessKeyId
          : "the session token does not belong to " + accessKeyId);
    }
    if (cred.token() == null && token != null) {
      throw new Refused("a session token sent with the long-term key " + accessKeyId);
    }

    // The canonical query: every parameter of the presigned request but the signature, by
    // name, names and values URI-encoded (RFC 3986 unreserved characters kept).
    TreeMap<String, String> query = new TreeMap<>();
    query.put("Action", "kafka-cluster:Connect");
    query.put("X-Amz-Algorithm", f.get("x-amz-algorithm"));
    query.put("X-Amz-Credential", f.get("x-amz-credential"));
    query.put("X-Amz-Date", f.get("x-amz-date"));
    query.put("X-Amz-Expires", f.get("x-amz-expires"));
    query.put("X-Amz-SignedHeaders", f.get("x-amz-signedheaders"));
    if (token != null) {
      query.put("X-Amz-Security-Token", token);
    }
    StringBuilder canonicalQuery = new StringBuilder();
    TreeMap<String, String> encoded = new TreeMap<>();
    query.forEach((k, v) -> encoded.put(uriEncode(k), uriEncode(v)));
    encoded.forEach((k, v) -> canonicalQuery.append(canonicalQuery.length() == 0 ? "" : "&").append(k).append('=').append(v));
    String canonicalRequest = "GET\n/\n" + canonicalQuery + "\nhost:" + f.get("host") + "\n\nhost\n" + EMPTY_SHA256;
    String credentialScope = scope[1] + "/" + scope[2] + "/" + scope[3] + "/" + scope[4];
    String stringToSign = "AWS4-HMAC-SHA256\n" + f.get("x-amz-date") + "\n" + credentialScope + "\n" + hex(sha256(canonicalRequest));
    byte[] key = hmac(("AWS4" + cred.secret()).getBytes(StandardCharsets.UTF_8), scope[1]);
    key = hmac(key, scope[2]);
    key = hmac(key, scope[3]);
    key = hmac(key, "aws4_request");
    String expected = hex(hmac(key, stringToSign));
    if (!MessageDigest.isEqual(expected.getBytes(StandardCharsets.US_ASCII),
        f.get("x-amz-signature").getBytes(StandardCharsets.US_ASCII))) {
      throw new Refused("the signature does not match (access key " + accessKeyId + "; wrong secret, or a payload signed for another host/region)");
    }

    Policy.Decision d = options.policy().decide("kafka-cluster:Connect", options.clusterArn());
    if (d != Policy.Decision.ALLOW) {
      throw new ConnectDenied(cred.principal(), d);
    }
    return cred.principal();
  }

  private static void expect(Map<String, String> f, String key, String value) throws Refused {
    if (!value.equals(f.get(key))) {
      throw new Refused("payload key " + key + " is '" + f.get(key) + "', expected '" + value + "'");
    }
  }

  static String uriEncode(String s) {
    StringBuilder out = new StringBuilder();
    for (byte b : s.getBytes(StandardCharsets.UTF_8)) {
      char c = (char) (b & 0xff);
      if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' || c == '~') {
        out.append(c);
      } else {
        out.append('%').append(String.format("%02X", b & 0xff));
      }
    }
    return out.toString();
  }

  private static byte[] sha256(String s) {
    try {
      return MessageDigest.getInstance("SHA-256").digest(s.getBytes(StandardCharsets.UTF_8));
    } catch (Exception e) {
      throw new IllegalStateException(e);
    }
  }

  private static byte[] hmac(byte[] key, String data) {
    try {
      Mac mac = Mac.getInstance("HmacSHA256");
      mac.init(new SecretKeySpec(key, "HmacSHA256"));
      return mac.doFinal(data.getBytes(StandardCharsets.UTF_8));
    } catch (Exception e) {
      throw new IllegalStateException(e);
    }
  }

  private static String hex(byte[] b) {
    return HexFormat.of().formatHex(b);
  }

  @Override
  public boolean isComplete() {
    return complete;
  }

  @Override
  public String getAuthorizationID() {
    if (!complete) {
      throw new IllegalStateException("AWS_MSK_IAM: authentication not complete");
    }
    return authorizationId;
  }

  @Override
  public byte[] unwrap(byte[] incoming, int offset, int len) {
    throw new IllegalStateException("AWS_MSK_IAM has no security layer");
  }

  @Override
  public byte[] wrap(byte[] outgoing, int offset, int len) {
    throw new IllegalStateException("AWS_MSK_IAM has no security layer");
  }

  @Override
  public Object getNegotiatedProperty(String name) {
    if (!complete) {
      throw new IllegalStateException("AWS_MSK_IAM: authentication not complete");
    }
    // Kafka ends the session (re-authentication, KIP-368) when the signature expires.
    if ("CREDENTIAL.LIFETIME.MS".equals(name)) {
      return expiry.toEpochMilli();
    }
    return null;
  }

  @Override
  public void dispose() {}
}
