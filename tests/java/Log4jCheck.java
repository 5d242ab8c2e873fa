// Configures real log4j 1.2 (whose PropertyConfigurator ksqlDB's releases use) from
// the file named first on the command line, exactly as ksqlDB's -Dlog4j.configuration
// does (PropertyConfigurator), then logs one event per level from each logger named
// after it, for the generated file's check (tests/it/log_levels.rs).
//
// Run: java -cp /usr/share/java/log4j-1.2.jar tests/java/Log4jCheck.java FILE LOGGER...
//
// Output: what the file's appenders print on stdout; log4j's own complaints about the
// file (log4j:WARN, log4j:ERROR) go to stderr.
import org.apache.log4j.Level;
import org.apache.log4j.Logger;
import org.apache.log4j.PropertyConfigurator;

public class Log4jCheck {
    public static void main(String[] args) {
        PropertyConfigurator.configure(args[0]);
        Level[] levels = {Level.TRACE, Level.DEBUG, Level.INFO, Level.WARN, Level.ERROR, Level.FATAL};
        for (int i = 1; i < args.length; i++) {
            Logger logger = Logger.getLogger(args[i]);
            for (Level level : levels) {
                logger.log(level, "event at " + level + " from " + args[i]);
            }
        }
    }
}
