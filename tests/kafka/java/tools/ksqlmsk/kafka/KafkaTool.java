package ksqlmsk.kafka;

import java.io.FileReader;
import java.io.Reader;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.ListTopicsOptions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.AuthenticationException;
import org.apache.kafka.common.errors.AuthorizationException;
import org.apache.kafka.common.errors.TimeoutException;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Kafka's own clients, driven from the tests (tests/testkit/src/kafka.rs): the admin client
 * to check topics independently of anything under test, and the real IAM client when the
 * classpath holds an aws-msk-iam-auth set and the properties name it.
 *
 *   KafkaTool CLIENT_PROPERTIES create-topic NAME PARTITIONS RF [KEY=VALUE ...]
 *   KafkaTool CLIENT_PROPERTIES describe-topic NAME     one JSON line
 *   KafkaTool CLIENT_PROPERTIES list-topics             JSON array
 *   KafkaTool CLIENT_PROPERTIES describe-cluster        one JSON line
 *   KafkaTool CLIENT_PROPERTIES produce TOPIC VALUE
 *
 * Exit 0 ok; 2 authentication failed; 3 not authorized; 4 timed out; 1 anything else,
 * with one line "KafkaTool ERROR <exception class>: <message>" on stderr.
 */
public final class KafkaTool {
  private static final long WAIT_S = 60;

  public static void main(String[] args) {
    try {
      System.exit(run(args));
    } catch (Throwable t) {
      Throwable c = t;
      while ((c instanceof ExecutionException || c.getClass() == RuntimeException.class
          || c instanceof org.apache.kafka.common.KafkaException && c.getCause() != null
          && !(c instanceof AuthenticationException) && !(c instanceof AuthorizationException))
          && c.getCause() != null) {
        c = c.getCause();
      }
      System.err.println("KafkaTool ERROR " + c.getClass().getName() + ": " + c.getMessage());
      int code = c instanceof AuthenticationException ? 2 : c instanceof AuthorizationException ? 3
          : c instanceof TimeoutException || c instanceof java.util.concurrent.TimeoutException ? 4 : 1;
      System.exit(code);
    }
  }

  private static int run(String[] args) throws Exception {
    if (args.length < 2) {
      System.err.println("usage: KafkaTool CLIENT_PROPERTIES COMMAND ARGS...");
      return 64;
    }
    Properties props = new Properties();
    try (Reader r = new FileReader(args[0], java.nio.charset.StandardCharsets.UTF_8)) {
      props.load(r);
    }
    props.putIfAbsent("default.api.timeout.ms", "30000");
    props.putIfAbsent("request.timeout.ms", "15000");
    String cmd = args[1];
    if (cmd.equals("produce")) {
      props.put("key.serializer", StringSerializer.class.getName());
      props.put("value.serializer", StringSerializer.class.getName());
      props.putIfAbsent("max.block.ms", "30000");
      props.putIfAbsent("delivery.timeout.ms", "30000");
      try (KafkaProducer<String, String> p = new KafkaProducer<>(props)) {
        var md = p.send(new ProducerRecord<>(args[2], args[3])).get(WAIT_S, TimeUnit.SECONDS);
        System.out.println("{\"partition\":" + md.partition() + ",\"offset\":" + md.offset() + "}");
      }
      return 0;
    }
    try (Admin admin = Admin.create(props)) {
      switch (cmd) {
        case "create-topic": {
          NewTopic t = new NewTopic(args[2], Integer.parseInt(args[3]), Short.parseShort(args[4]));
          Map<String, String> configs = new java.util.HashMap<>();
          for (int i = 5; i < args.length; i++) {
            String[] kv = args[i].split("=", 2);
            configs.put(kv[0], kv[1]);
          }
          t.configs(configs);
          admin.createTopics(List.of(t)).all().get(WAIT_S, TimeUnit.SECONDS);
          System.out.println("{\"created\":" + json(args[2]) + "}");
          return 0;
        }
        case "describe-topic": {
          String name = args[2];
          TopicDescription d = admin.describeTopics(List.of(name)).allTopicNames().get(WAIT_S, TimeUnit.SECONDS).get(name);
          ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, name);
          Config c = admin.describeConfigs(List.of(res)).all().get(WAIT_S, TimeUnit.SECONDS).get(res);
          var minIsr = c.get("min.insync.replicas");
          List<String> replicas = new ArrayList<>();
          List<String> isr = new ArrayList<>();
          for (TopicPartitionInfo p : d.partitions()) {
            replicas.add(ids(p.replicas()));
            isr.add(ids(p.isr()));
          }
          System.out.println("{\"name\":" + json(name) + ",\"partitions\":" + d.partitions().size()
              + ",\"replication_factor\":" + d.partitions().get(0).replicas().size()
              + ",\"min_insync_replicas\":" + (minIsr == null ? "null" : json(minIsr.value()))
              + ",\"min_insync_replicas_source\":" + (minIsr == null ? "null" : json(minIsr.source().name()))
              + ",\"replicas\":" + replicas + ",\"isr\":" + isr + "}");
          return 0;
        }
        case "list-topics": {
          Set<String> names = admin.listTopics(new ListTopicsOptions().listInternal(true)).names().get(WAIT_S, TimeUnit.SECONDS);
          System.out.println(names.stream().sorted().map(KafkaTool::json).collect(Collectors.joining(",", "[", "]")));
          return 0;
        }
        case "describe-cluster": {
          DescribeClusterResult r = admin.describeCluster();
          Collection<Node> nodes = r.nodes().get(WAIT_S, TimeUnit.SECONDS);
          System.out.println("{\"cluster_id\":" + json(r.clusterId().get(WAIT_S, TimeUnit.SECONDS)) + ",\"brokers\":"
              + ids(new ArrayList<>(nodes)) + "}");
          return 0;
        }
        default:
          System.err.println("KafkaTool: unknown command " + cmd);
          return 64;
      }
    }
  }

  private static String ids(List<Node> nodes) {
    return nodes.stream().map(n -> Integer.toString(n.id())).sorted().collect(Collectors.joining(",", "[", "]"));
  }

  private static String json(String s) {
    StringBuilder b = new StringBuilder("\"");
    for (char c : s.toCharArray()) {
      if (c == '"' || c == '\\') {
        b.append('\\').append(c);
      } else if (c < 0x20) {
        b.append(String.format("\\u%04x", (int) c));
      } else {
        b.append(c);
      }
    }
    return b.append('"').toString();
  }
}
