// Loads each file named on the command line through java.util.Properties, exactly as
// ksqlDB loads ksql-server.properties (FileInputStream, so ISO-8859-1), and prints what
// Java read, for the Rust parser's cross-check (tests/it/properties.rs).
//
// Run: java tests/java/PropsDump.java FILE...   (single-file source launch, Java 11+)
//
// Output per file: "== <index>", then one "key=value" line per property sorted, every
// char outside '!'..'~' and every backslash or '=' written as a backslash, 'u' and four
// lower-case hex digits, so the output is ASCII and unambiguous. A file that
// Properties.load refuses prints "!error".
import java.io.FileInputStream;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Properties;

public class PropsDump {
    public static void main(String[] args) throws Exception {
        for (int i = 0; i < args.length; i++) {
            System.out.println("== " + i);
            Properties props = new Properties();
            try (InputStream in = new FileInputStream(args[i])) {
                props.load(in);
            } catch (IllegalArgumentException e) {
                System.out.println("!error");
                continue;
            }
            List<String> lines = new ArrayList<>();
            for (String key : props.stringPropertyNames()) {
                lines.add(escape(key) + "=" + escape(props.getProperty(key)));
            }
            Collections.sort(lines);
            for (String line : lines) {
                System.out.println(line);
            }
        }
    }

    static String escape(String s) {
        StringBuilder out = new StringBuilder();
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c >= '!' && c <= '~' && c != '\\' && c != '=') {
                out.append(c);
            } else {
                out.append(String.format("\\u%04x", (int) c));
            }
        }
        return out.toString();
    }
}
