// Connects to JMX at service:jmx:rmi:///jndi/rmi://HOST:PORT/jmxrmi as jconsole does
// (registry first, then the connector the registry's stub names) and prints the remote
// JVM's pid: proof that one forwarded port and the stub's address are enough.
//
// Run: java tests/java/JmxClient.java HOST PORT
import java.lang.management.ManagementFactory;
import java.lang.management.RuntimeMXBean;
import javax.management.remote.JMXConnector;
import javax.management.remote.JMXConnectorFactory;
import javax.management.remote.JMXServiceURL;

public class JmxClient {
    public static void main(String[] args) throws Exception {
        JMXServiceURL url =
                new JMXServiceURL("service:jmx:rmi:///jndi/rmi://" + args[0] + ":" + args[1] + "/jmxrmi");
        try (JMXConnector c = JMXConnectorFactory.connect(url)) {
            RuntimeMXBean rt = ManagementFactory.newPlatformMXBeanProxy(
                    c.getMBeanServerConnection(), ManagementFactory.RUNTIME_MXBEAN_NAME, RuntimeMXBean.class);
            System.out.println("pid=" + rt.getPid());
        }
    }
}
