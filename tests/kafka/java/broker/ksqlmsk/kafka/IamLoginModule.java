package ksqlmsk.kafka;

import java.security.Provider;
import java.security.Security;
import java.util.Map;
import javax.security.auth.Subject;
import javax.security.auth.callback.CallbackHandler;
import javax.security.auth.spi.LoginModule;
import javax.security.sasl.SaslServer;
import javax.security.sasl.SaslServerFactory;

/**
 * The JAAS login module named in the broker's sasl.jaas.config for AWS_MSK_IAM. Loading it
 * registers the SASL server factory, as Kafka's own PlainLoginModule does for PLAIN
 * (Kafka creates servers of other mechanisms through javax.security.sasl.Sasl).
 */
public final class IamLoginModule implements LoginModule {
  static {
    if (Security.getProvider("ksqlmsk AWS_MSK_IAM") == null) {
      Security.addProvider(new IamProvider());
    }
  }

  @Override
  public void initialize(Subject subject, CallbackHandler handler, Map<String, ?> shared, Map<String, ?> options) {}

  @Override
  public boolean login() {
    return true;
  }

  @Override
  public boolean logout() {
    return true;
  }

  @Override
  public boolean commit() {
    return true;
  }

  @Override
  public boolean abort() {
    return false;
  }

  static final class IamProvider extends Provider {
    private static final long serialVersionUID = 1L;

    IamProvider() {
      super("ksqlmsk AWS_MSK_IAM", "1.0", "Test-only SASL server for AWS_MSK_IAM");
      put("SaslServerFactory." + IamSaslServer.MECHANISM, Factory.class.getName());
    }
  }

  public static final class Factory implements SaslServerFactory {
    @Override
    public SaslServer createSaslServer(String mechanism, String protocol, String serverName, Map<String, ?> props,
        CallbackHandler cbh) {
      if (!IamSaslServer.MECHANISM.equals(mechanism)) {
        return null;
      }
      if (!(cbh instanceof IamServerCallbackHandler h)) {
        throw new IllegalArgumentException("AWS_MSK_IAM needs sasl.server.callback.handler.class="
            + IamServerCallbackHandler.class.getName() + ", got " + cbh);
      }
      return new IamSaslServer(h.options());
    }

    @Override
    public String[] getMechanismNames(Map<String, ?> props) {
      return new String[] {IamSaslServer.MECHANISM};
    }
  }
}
