// Prints the JVM's file.encoding and sun.jnu.encoding, one `name=value` line each: what
// Java made of the locale in its environment (tests/it/child_env.rs runs it under the
// agent, from the stand-in release's start script).
//
// Run: java tests/java/Encoding.java   (single-file source launch, Java 11+)
public class Encoding {
    public static void main(String[] args) {
        for (String name : new String[] {"file.encoding", "sun.jnu.encoding"}) {
            System.out.println(name + "=" + System.getProperty(name));
        }
    }
}
