// Writes its pid to the file named by its argument once main runs (by then the JVM's JMX
// agent, started by -Dcom.sun.management.jmxremote.* options, is listening), then waits
// to be killed. tests/it/metrics.rs starts it from the stand-in release's start script
// with the KSQL_JMX_OPTS and KSQL_OPTS the agent computed, as ksql-run-class would.
//
// Run: java $KSQL_JMX_OPTS $KSQL_OPTS tests/java/JmxWait.java PIDFILE
import java.nio.file.Files;
import java.nio.file.Path;

public class JmxWait {
    public static void main(String[] args) throws Exception {
        Path out = Path.of(args[0]);
        Path tmp = Path.of(args[0] + ".tmp");
        Files.writeString(tmp, ProcessHandle.current().pid() + "\n");
        Files.move(tmp, out, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
        Thread.sleep(Long.MAX_VALUE);
    }
}
