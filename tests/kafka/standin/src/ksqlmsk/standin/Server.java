package ksqlmsk.standin;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.Reader;
import java.lang.management.ManagementFactory;
import java.net.InetSocketAddress;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import javax.management.ObjectName;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.DescribeTopicsOptions;
import org.apache.kafka.clients.admin.ListTopicsOptions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A Kafka-client-shaped stand-in for ksqlDB's server, for ksql-msk's tests. It is NOT
 * ksqlDB: it runs no queries and parses no KSQL beyond {@code SHOW [ALL] TOPICS;}. What it
 * does is what the agent can see of ksqlDB's dealings with Kafka, in ksqlDB's order
 * (ksqlDB 0.28/0.29 sources: KsqlServerMain, KsqlRestApplication, KafkaClusterUtil,
 * KsqlInternalTopicUtils, ProcessingLogServerUtils, HealthCheckAgent, HealthCheckResource,
 * CommandRunner, ListTopicsExecutor, ServerState):
 *
 * <ol>
 *   <li>reads the properties file it is given with {@link Properties#load}, and builds a
 *       Kafka admin client from every key the admin client knows (then the
 *       {@code ksql.streams.}-prefixed ones over them), so the SASL lines the agent rendered
 *       and the IAM jar on the classpath are what authenticate;
 *   <li>asks the cluster for its id ({@code describeCluster}, 30 s); on failure logs
 *       "Failed to start KSQL" with the client's exception and exits with status 255, as
 *       ksqlDB does before it binds any listener;
 *   <li>binds {@code listeners}, answering 503 ({@code error_code} 50302) while it starts;
 *   <li>ensures the command topic {@code _confluent-ksql-<ksql.service.id>_command_topic}:
 *       1 partition, {@code ksql.internal.topic.replicas}, {@code min.insync.replicas} from
 *       {@code ksql.internal.topic.min.insync.replicas}, {@code retention.ms=-1},
 *       {@code cleanup.policy=delete}, {@code unclean.leader.election.enable=false}; an
 *       existing one must have 1 partition and at least that RF; any failure is fatal
 *       (exit 255), as in ksqlDB;
 *   <li>configures the RocksDB config setter {@code ksql.streams.rocksdb.config.setter} names,
 *       as ksqlDB's RocksDBConfigSetterHandler does at the start of its initialisation: the
 *       class loaded from the classpath (not found: fatal) and, when it is a Kafka
 *       {@code Configurable}, one instance given every property ({@code configure}); a
 *       failure is fatal, as in ksqlDB;
 *   <li>creates the processing log topic when {@code ksql.logging.processing.topic.auto.create}
 *       is true ({@code ksql.logging.processing.topic.name}, else
 *       {@code <service.id>ksql_processing_log}; partitions and RF from
 *       {@code ksql.logging.processing.topic.partitions/replication.factor});
 *   <li>starts a command runner: a consumer assigned to the command topic polling every 5 s;
 *       after an empty poll it checks the topic still exists (admin call);
 *   <li>READY. {@code GET /healthcheck} runs ksqlDB's checks synchronously, cached for
 *       {@code ksql.healthcheck.interval.ms} (5 s): {@code kafka} is a {@code describeTopics}
 *       of the command topic with a 30 s timeout (an unknown topic counts as healthy, as in
 *       ksqlDB), {@code commandRunner} is false when the runner has not polled for 15 s,
 *       {@code metastore} is true once ready. {@code GET /info} answers
 *       {@code KsqlServerInfo} with {@code serverStatus}; {@code POST /ksql} answers
 *       {@code SHOW TOPICS;} (internal topics hidden) and {@code SHOW ALL TOPICS;} from the
 *       broker's topic list.
 * </ol>
 *
 * <p>Logging goes through slf4j to log4j 1 (reload4j), configured by the
 * {@code -Dlog4j.configuration} the start script passes (the agent's generated file).
 * HTTP basic authentication is not implemented: the Kafka scenarios do not use it.
 */
public final class Server {
  private static final Logger LOG = LoggerFactory.getLogger(Server.class);

  static final String COMMAND_TOPIC_PREFIX = "_confluent-ksql-";
  static final long DESCRIBE_CLUSTER_TIMEOUT_S = 30;
  static final int DESCRIBE_TOPICS_TIMEOUT_MS = 30_000;
  static final Duration POLL = Duration.ofSeconds(5);

  private final Properties props;
  private final String serviceId;
  private final String commandTopic;
  private final Admin admin;
  private final long healthCacheMs;
  private volatile boolean ready;
  private volatile String clusterId = "";
  private final AtomicLong lastPoll = new AtomicLong(0);
  private final Object healthLock = new Object();
  private String cachedHealth;
  private long cachedAt;

  Server(final Properties props) {
    this.props = props;
    this.serviceId = props.getProperty("ksql.service.id", "default_");
    this.commandTopic = COMMAND_TOPIC_PREFIX + serviceId + "_command_topic";
    this.admin = Admin.create(clientConfig(props, AdminClientConfig.configNames()));
    this.healthCacheMs = Long.parseLong(props.getProperty("ksql.healthcheck.interval.ms", "5000"));
  }

  /**
   * ksqlDB's RocksDBConfigSetterHandler.maybeConfigureRocksDBConfigSetter (ksql#3167): the
   * setter class from {@code ksql.streams.rocksdb.config.setter}; a {@code Configurable} one
   * gets {@code configure(originals)} once, before Kafka Streams makes its own instances.
   */
  void configureRocksDbConfigSetter() throws Exception {
    final String name = props.getProperty("ksql.streams.rocksdb.config.setter", "").trim();
    if (name.isEmpty()) {
      return;
    }
    final Class<?> clazz = Class.forName(name);
    if (!org.apache.kafka.common.Configurable.class.isAssignableFrom(clazz)) {
      LOG.info("RocksDB config setter {} is not Configurable", name);
      return;
    }
    final Map<String, Object> originals = new HashMap<>();
    for (final String key : props.stringPropertyNames()) {
      originals.put(key, props.getProperty(key));
    }
    ((org.apache.kafka.common.Configurable) clazz.getDeclaredConstructor().newInstance())
        .configure(originals);
    LOG.info("Configured RocksDB config setter {}", name);
  }

  /** The keys of {@code props} a Kafka client of {@code known} keys takes, as ksqlDB passes them. */
  static Map<String, Object> clientConfig(final Properties props, final Set<String> known) {
    final Map<String, Object> config = new HashMap<>();
    for (final String key : props.stringPropertyNames()) {
      if (known.contains(key)) {
        config.put(key, props.getProperty(key));
      }
    }
    for (final String key : props.stringPropertyNames()) {
      final String bare = key.startsWith("ksql.streams.") ? key.substring(13) : null;
      if (bare != null && known.contains(bare)) {
        config.put(bare, props.getProperty(key));
      }
    }
    return config;
  }

  public static void main(final String[] args) {
    try {
      if (args.length < 1) {
        System.err.println("USAGE: ksql-server-start <ksql-server.properties>");
        System.exit(1);
      }
      final Properties props = new Properties();
      try (Reader r = Files.newBufferedReader(Paths.get(args[0]), StandardCharsets.ISO_8859_1)) {
        props.load(r);
      }
      LOG.info("Starting server (ksql-msk's Kafka-client-shaped stand-in, not ksqlDB) with {}",
          args[0]);
      new Server(props).run();
    } catch (final Throwable e) {
      LOG.error("Failed to start KSQL", e);
      System.exit(-1);
    }
  }

  void run() throws Exception {
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      LOG.info("Server shutting down");
      admin.close(Duration.ofSeconds(2));
    }));
    try {
      clusterId = admin.describeCluster().clusterId()
          .get(DESCRIBE_CLUSTER_TIMEOUT_S, TimeUnit.SECONDS);
    } catch (final Exception e) {
      throw new RuntimeException("Failed to get Kafka cluster information", e);
    }
    LOG.info("Kafka cluster {} reached", clusterId);
    registerMetrics();
    final HttpServer http = bind(props.getProperty("listeners", "http://0.0.0.0:8088"));
    http.start();
    LOG.info("ksqlDB API server listening on {}", props.getProperty("listeners"));
    try {
      configureRocksDbConfigSetter();
      ensureCommandTopic();
      maybeCreateProcessingLogTopic();
    } catch (final Exception e) {
      LOG.error("Unhandled exception in server startup", e);
      throw e;
    }
    final Thread runner = new Thread(this::commandRunner, "CommandRunner");
    runner.setDaemon(true);
    runner.start();
    ready = true;
    LOG.info("Server up and running");
    Thread.currentThread().join();
  }

  private void ensureCommandTopic() throws Exception {
    final short rf = Short.parseShort(props.getProperty("ksql.internal.topic.replicas", "1"));
    final String minIsr = props.getProperty("ksql.internal.topic.min.insync.replicas", "1");
    final Set<String> names = admin.listTopics(new ListTopicsOptions().listInternal(true))
        .names().get();
    if (names.contains(commandTopic)) {
      final TopicDescription d = admin.describeTopics(Collections.singleton(commandTopic))
          .allTopicNames().get().get(commandTopic);
      if (d.partitions().size() != 1) {
        throw new IllegalStateException("Invalid partition count on topic '" + commandTopic
            + "'. Expected: 1, but was: " + d.partitions().size());
      }
      final int actualRf = d.partitions().get(0).replicas().size();
      if (actualRf < rf) {
        throw new IllegalStateException("Invalid replication factor on topic '" + commandTopic
            + "'. Expected: " + rf + ", but was: " + actualRf);
      }
      LOG.info("Command topic {} exists (replication factor {})", commandTopic, actualRf);
      return;
    }
    if (rf < 2) {
      LOG.warn("Creating topic {} with replication factor of {} which is less than 2. "
          + "This is not advisable in a production environment. ", commandTopic, rf);
    }
    final Map<String, String> config = new TreeMap<>();
    config.put("retention.ms", "-1");
    config.put("cleanup.policy", "delete");
    config.put("unclean.leader.election.enable", "false");
    config.put("min.insync.replicas", minIsr);
    final NewTopic topic = new NewTopic(commandTopic, 1, rf).configs(config);
    try {
      admin.createTopics(Collections.singleton(topic)).all().get();
      LOG.info("Created command topic {} (replication factor {}, min.insync.replicas {})",
          commandTopic, rf, minIsr);
    } catch (final ExecutionException e) {
      if (!(e.getCause() instanceof TopicExistsException)) {
        throw e;
      }
    }
  }

  private void maybeCreateProcessingLogTopic() throws Exception {
    if (!Boolean.parseBoolean(props.getProperty("ksql.logging.processing.topic.auto.create",
        "false"))) {
      return;
    }
    String name = props.getProperty("ksql.logging.processing.topic.name", "");
    if (name.isEmpty()) {
      name = serviceId + "ksql_processing_log";
    }
    final int partitions = Integer.parseInt(
        props.getProperty("ksql.logging.processing.topic.partitions", "1"));
    final short rf = Short.parseShort(
        props.getProperty("ksql.logging.processing.topic.replication.factor", "1"));
    try {
      admin.createTopics(Collections.singleton(new NewTopic(name, partitions, rf))).all().get();
      LOG.info("Created processing log topic {} (replication factor {})", name, rf);
    } catch (final ExecutionException e) {
      if (!(e.getCause() instanceof TopicExistsException)) {
        throw e;
      }
      LOG.info("Log topic {} already exists", name);
    }
  }

  /** ksqlDB's CommandRunner loop, without commands: poll, and check the topic is there. */
  private void commandRunner() {
    final Map<String, Object> config = clientConfig(props, ConsumerConfig.configNames());
    config.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    config.put(ConsumerConfig.CLIENT_ID_CONFIG, "_confluent-ksql-" + serviceId + "command-runner");
    try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(
        config, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
      final TopicPartition tp = new TopicPartition(commandTopic, 0);
      consumer.assign(Collections.singleton(tp));
      consumer.seekToBeginning(Collections.singleton(tp));
      while (true) {
        lastPoll.set(System.currentTimeMillis());
        try {
          if (consumer.poll(POLL).isEmpty()) {
            admin.listTopics().names().get(); // ksqlDB's commandTopicExists check
          }
        } catch (final Exception e) {
          LOG.warn("Command runner: {}", e.toString());
        }
      }
    }
  }

  private HttpServer bind(final String listeners) throws IOException {
    final URI uri = URI.create(listeners.split(",")[0].trim());
    final HttpServer http = HttpServer.create(new InetSocketAddress(uri.getHost(), uri.getPort()),
        64);
    http.setExecutor(Executors.newFixedThreadPool(8, r -> {
      final Thread t = new Thread(r, "http");
      t.setDaemon(true);
      return t;
    }));
    http.createContext("/", this::serve);
    return http;
  }

  private void serve(final HttpExchange ex) throws IOException {
    try {
      final String path = ex.getRequestURI().getPath();
      if (!ready) {
        send(ex, 503, "{\"@type\":\"generic_error\",\"error_code\":50302,"
            + "\"message\":\"KSQL is not yet ready to serve requests.\"}");
        return;
      }
      if (path.equals("/healthcheck")) {
        send(ex, 200, health());
      } else if (path.equals("/info")) {
        send(ex, 200, "{\"KsqlServerInfo\":{\"version\":\"" + json(version())
            + "\",\"kafkaClusterId\":\"" + json(clusterId) + "\",\"ksqlServiceId\":\""
            + json(serviceId) + "\",\"serverStatus\":\"RUNNING\"}}");
      } else if (path.equals("/ksql") && ex.getRequestMethod().equals("POST")) {
        ksql(ex);
      } else {
        send(ex, 404, "{\"@type\":\"generic_error\",\"error_code\":40400,"
            + "\"message\":\"Not found\"}");
      }
    } catch (final Exception e) {
      LOG.error("Request failed", e);
      try {
        send(ex, 500, "{\"@type\":\"generic_error\",\"error_code\":50000,\"message\":\""
            + json(e.toString()) + "\"}");
      } catch (final IOException gone) {
        // The client went away (a probe that timed out): nothing to answer.
      }
    } finally {
      ex.close();
    }
  }

  /** ksqlDB's release version: the release directory's name, as the agent installs it. */
  private String version() {
    final String home = System.getProperty("ksql.server.install.dir", "");
    final Path name = Paths.get(home).getFileName();
    return name == null ? "0.0.0" : name.toString();
  }

  private String health() {
    synchronized (healthLock) {
      final long now = System.currentTimeMillis();
      if (cachedHealth == null || now - cachedAt >= healthCacheMs) {
        final boolean kafka = kafkaCheck();
        final boolean runner = now - lastPoll.get() < POLL.toMillis() * 3;
        cachedHealth = "{\"isHealthy\":" + (kafka && runner) + ",\"details\":{"
            + "\"metastore\":{\"isHealthy\":true},"
            + "\"kafka\":{\"isHealthy\":" + kafka + "},"
            + "\"commandRunner\":{\"isHealthy\":" + runner + "}}"
            + (SERVER_STATE_FROM.compareTo(versionKey(version())) <= 0
                ? ",\"serverState\":\"READY\"" : "")
            + "}";
        cachedAt = System.currentTimeMillis();
      }
      return cachedHealth;
    }
  }

  /** ksqlDB 0.29 added {@code serverState} to the health check's answer. */
  static final String SERVER_STATE_FROM = versionKey("0.29.0");

  /** A version as a string that sorts numerically (0.29.0 -> 00000.00029.00000). */
  static String versionKey(final String version) {
    final StringBuilder b = new StringBuilder();
    for (final String part : version.split("[.-]")) {
      if (!part.matches("[0-9]+")) {
        break;
      }
      b.append(String.format("%05d.", Integer.parseInt(part)));
    }
    return b.toString();
  }

  private boolean kafkaCheck() {
    try {
      LOG.info("Checking ksql's ability to contact broker");
      admin.describeTopics(Collections.singletonList(commandTopic),
          new DescribeTopicsOptions().timeoutMs(DESCRIBE_TOPICS_TIMEOUT_MS)).allTopicNames().get();
      return true;
    } catch (final Exception e) {
      LOG.error("Error describing command topic during health check", e);
      Throwable t = e;
      while (t != null) {
        if (t instanceof UnknownTopicOrPartitionException) {
          return true;
        }
        t = t.getCause();
      }
      return false;
    }
  }

  private void ksql(final HttpExchange ex) throws Exception {
    final String body;
    try (InputStream in = ex.getRequestBody()) {
      body = new String(in.readNBytes(1 << 20), StandardCharsets.UTF_8);
    }
    final String stmt = Json.stringField(body, "ksql");
    final String norm = stmt == null ? "" : stmt.trim().replaceAll("\\s+", " ").toUpperCase();
    final boolean all = norm.matches("(SHOW|LIST) ALL TOPICS;?");
    if (!all && !norm.matches("(SHOW|LIST) TOPICS;?")) {
      send(ex, 400, "{\"@type\":\"statement_error\",\"error_code\":40001,\"message\":"
          + "\"ksql-msk's stand-in only answers SHOW TOPICS; and SHOW ALL TOPICS;\","
          + "\"statementText\":\"" + json(stmt == null ? "" : stmt) + "\",\"entities\":[]}");
      return;
    }
    final Set<String> names = admin.listTopics().names().get(30, TimeUnit.SECONDS);
    final List<String> shown = new ArrayList<>();
    for (final String n : names) {
      if (all || !(n.startsWith(COMMAND_TOPIC_PREFIX) || n.equals(processingLogTopic()))) {
        shown.add(n);
      }
    }
    final Map<String, TopicDescription> described = new TreeMap<>(
        admin.describeTopics(shown).allTopicNames().get(30, TimeUnit.SECONDS));
    final StringBuilder topics = new StringBuilder();
    for (final TopicDescription d : described.values()) {
      if (topics.length() > 0) {
        topics.append(',');
      }
      topics.append("{\"name\":\"").append(json(d.name())).append("\",\"replicaInfo\":[");
      for (int i = 0; i < d.partitions().size(); i++) {
        topics.append(i == 0 ? "" : ",").append(d.partitions().get(i).replicas().size());
      }
      topics.append("]}");
    }
    send(ex, 200, "[{\"@type\":\"kafka_topics\",\"statementText\":\"" + json(stmt)
        + "\",\"topics\":[" + topics + "],\"warnings\":[]}]");
  }

  private String processingLogTopic() {
    final String name = props.getProperty("ksql.logging.processing.topic.name", "");
    return name.isEmpty() ? serviceId + "ksql_processing_log" : name;
  }

  /**
   * A gauge under ksqlDB's engine MBean name, so the shipped exporter rules have one
   * ksqlDB-named bean to match beside the clients' own (kafka.consumer:...).
   */
  private void registerMetrics() {
    try {
      ManagementFactory.getPlatformMBeanServer().registerMBean(new EngineStats(this),
          new ObjectName("io.confluent.ksql.metrics:type=_confluent-ksql-engine-query-stats,"
              + "ksql_service_id=" + ObjectName.quote(serviceId).replace("\"", "")));
    } catch (final Exception e) {
      LOG.warn("Could not register the engine MBean: {}", e.toString());
    }
  }

  /** The engine gauges the stand-in can answer truthfully. */
  public interface EngineStatsMBean {
    double getNum_active_queries();

    double getLiveness_indicator();
  }

  static final class EngineStats implements EngineStatsMBean {
    private final Server server;

    EngineStats(final Server server) {
      this.server = server;
    }

    @Override
    public double getNum_active_queries() {
      return 0;
    }

    @Override
    public double getLiveness_indicator() {
      return server.ready ? 1 : 0;
    }
  }

  static void send(final HttpExchange ex, final int status, final String body) throws IOException {
    final byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
    ex.getResponseHeaders().set("Content-Type", "application/json");
    ex.sendResponseHeaders(status, bytes.length);
    try (OutputStream out = ex.getResponseBody()) {
      out.write(bytes);
    }
  }

  static String json(final String s) {
    final StringBuilder b = new StringBuilder();
    for (final char c : s.toCharArray()) {
      if (c == '"' || c == '\\') {
        b.append('\\').append(c);
      } else if (c < 0x20) {
        b.append(String.format("\\u%04x", (int) c));
      } else {
        b.append(c);
      }
    }
    return b.toString();
  }

  /** Just enough JSON reading for {@code {"ksql": "..."}}. */
  static final class Json {
    static String stringField(final String text, final String field) {
      final int k = text.indexOf("\"" + field + "\"");
      if (k < 0) {
        return null;
      }
      int i = text.indexOf(':', k) + 1;
      while (i < text.length() && Character.isWhitespace(text.charAt(i))) {
        i++;
      }
      if (i >= text.length() || text.charAt(i) != '"') {
        return null;
      }
      final StringBuilder out = new StringBuilder();
      for (i++; i < text.length(); i++) {
        final char c = text.charAt(i);
        if (c == '"') {
          return out.toString();
        }
        if (c == '\\' && i + 1 < text.length()) {
          final char n = text.charAt(++i);
          switch (n) {
            case 'n': out.append('\n'); break;
            case 't': out.append('\t'); break;
            case 'r': out.append('\r'); break;
            case 'u':
              out.append((char) Integer.parseInt(text.substring(i + 1, i + 5), 16));
              i += 4;
              break;
            default: out.append(n);
          }
        } else {
          out.append(c);
        }
      }
      return null;
    }
  }

}
