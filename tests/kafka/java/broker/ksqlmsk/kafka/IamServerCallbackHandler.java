package ksqlmsk.kafka;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import javax.security.auth.callback.Callback;
import javax.security.auth.callback.UnsupportedCallbackException;
import javax.security.auth.login.AppConfigurationEntry;
import org.apache.kafka.common.security.auth.AuthenticateCallbackHandler;

/**
 * Carries the JAAS options of the AWS_MSK_IAM listener to the SASL server:
 * listener.name.sasl_ssl.aws_msk_iam.sasl.jaas.config=ksqlmsk.kafka.IamLoginModule required
 * host="..." region="..." clusterArn="..." credentialsFile="..." policyFile="...";
 */
public final class IamServerCallbackHandler implements AuthenticateCallbackHandler {
  record Options(String host, String region, String clusterArn, Path credentialsFile, Policy.File policy) {}

  private Options options;

  @Override
  public void configure(Map<String, ?> configs, String mechanism, List<AppConfigurationEntry> entries) {
    if (entries.size() != 1) {
      throw new IllegalArgumentException("AWS_MSK_IAM: one JAAS entry expected, got " + entries.size());
    }
    Map<String, ?> o = entries.get(0).getOptions();
    String host = required(o, "host");
    String region = required(o, "region");
    String clusterArn = required(o, "clusterArn");
    Path credentials = Path.of(required(o, "credentialsFile"));
    options = new Options(host, region, clusterArn, credentials, PolicyFiles.of(Path.of(required(o, "policyFile"))));
  }

  private static String required(Map<String, ?> o, String key) {
    Object v = o.get(key);
    if (v == null || v.toString().isEmpty()) {
      throw new IllegalArgumentException("AWS_MSK_IAM: the JAAS option " + key + " is missing");
    }
    return v.toString();
  }

  Options options() {
    return options;
  }

  @Override
  public void handle(Callback[] callbacks) throws UnsupportedCallbackException {
    throw new UnsupportedCallbackException(callbacks[0]);
  }

  @Override
  public void close() {}
}
