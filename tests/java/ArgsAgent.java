// A java agent that records how the JVM loaded it: its argument string and the jar it
// came from, in `<last :-separated field of the argument>.loaded` (the exporter's
// `host:port:rules` argument names the rules file last). tests/it/metrics.rs builds it
// into a jar (Premain-Class: ArgsAgent) and serves it as the Prometheus exporter: the
// real exporter cannot be downloaded there.
import java.nio.file.Files;
import java.nio.file.Path;

public class ArgsAgent {
    public static void premain(String args) throws Exception {
        String jar = Path.of(ArgsAgent.class.getProtectionDomain().getCodeSource().getLocation().toURI()).toString();
        String rules = args.substring(args.lastIndexOf(':') + 1);
        Files.writeString(Path.of(rules + ".loaded"), "args=" + args + "\njar=" + jar + "\n");
    }
}
