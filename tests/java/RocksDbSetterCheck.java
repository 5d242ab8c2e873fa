// Test harness of ksql-msk's RocksDB config setter (packaging/rocksdb-setter), run by
// tests/it/rocksdb_setter.rs as a single-file program:
//
//   java -cp <set 'streams'>:<ksql-msk-rocksdb.jar> RocksDbSetterCheck.java MODE STATE_DIR CACHE_BYTES
//
// MODE ksqldb: what ksqlDB does (RocksDBConfigSetterHandler): the class by name,
//   Utils.newInstance, configure(all server properties); first the bad values (each a
//   ConfigException naming the key), configure twice (same: fine; different: refused).
// MODE streams: a plain Kafka Streams application: configure() never runs, the keys are
//   streams configs.
// MODE strict: as streams, with ksql.msk.rocksdb.strict=true and index.filter.ratio 0.25.
// MODE none: no setter (Kafka Streams' defaults), to show what the checks tell apart.
// Then a TopologyTestDriver topology with three persistent RocksDB stores, fed more data
// than the memtables may hold, and Kafka Streams' own RocksDB metrics (KIP-607) per store,
// taken while the memtables are full:
//   STORE name block-cache-capacity=N block-cache-usage=N cur-size-all-mem-tables=N
//         size-all-mem-tables=N total-sst-files-size=N
// and what RocksDB itself logged it opened each store with (its LOG file):
//   LOG name capacity=N strict_capacity_limit=0|1 high_pri_pool_ratio=R
//       cache_index_and_filter_blocks=0|1 cache_index_and_filter_blocks_with_high_priority=0|1
// A failed check prints "FAIL <what>" and the exit status is 1; "RESULT ok" at the end.
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Random;
import java.util.TreeMap;
import org.apache.kafka.common.Configurable;
import org.apache.kafka.common.Metric;
import org.apache.kafka.common.MetricName;
import org.apache.kafka.common.config.ConfigException;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.StringSerializer;
import org.apache.kafka.common.utils.Utils;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.TestInputTopic;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.TopologyTestDriver;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.Stores;

public class RocksDbSetterCheck {
  static final String SETTER = "ksqlmsk.rocksdb.BoundedMemoryConfigSetter";
  static final String CACHE_BYTES = "ksql.msk.rocksdb.cache.bytes";
  static final String[] STORES = {"store-a", "store-b", "store-c"};
  static final int RECORDS = 24_000;
  static final int VALUE_BYTES = 2048;
  static int failures = 0;

  static void check(boolean ok, String what) {
    if (!ok) {
      failures++;
      System.out.println("FAIL " + what);
    }
  }

  static Map<String, Object> props(Object... kv) {
    Map<String, Object> m = new HashMap<>();
    for (int i = 0; i < kv.length; i += 2) {
      m.put((String) kv[i], kv[i + 1]);
    }
    return m;
  }

  static Configurable newSetter() throws Exception {
    return (Configurable) Utils.newInstance(Class.forName(SETTER));
  }

  /** configure(bad) must throw a ConfigException whose message names key and value. */
  static void expectBad(String key, Object value, Map<String, Object> configs) throws Exception {
    try {
      newSetter().configure(configs);
      check(false, "configure accepted " + key + "=" + value);
    } catch (ConfigException e) {
      String msg = String.valueOf(e.getMessage());
      System.out.println("BAD " + key + "=" + value + " -> " + msg);
      check(msg.contains(key), "the error for " + key + "=" + value + " does not name the key: " + msg);
      check(msg.contains(String.valueOf(value)),
          "the error for " + key + "=" + value + " does not name the value: " + msg);
    }
  }

  static void ksqldbChecks(long cacheBytes) throws Exception {
    String c = String.valueOf(cacheBytes);
    expectBad(CACHE_BYTES, null, props("ksql.service.id", "x"));
    for (Object v : new Object[] {"abc", "0", "-5", "", "1e9", 1.5, 99999999999999999999.0}) {
      expectBad(CACHE_BYTES, v, props(CACHE_BYTES, v));
    }
    String wb = "ksql.msk.rocksdb.write.buffer.ratio";
    for (Object v : new Object[] {"0", "1.5", "-0.1", "x", "NaN", "Infinity"}) {
      expectBad(wb, v, props(CACHE_BYTES, c, wb, v));
    }
    // 1 byte of cache: half of it is 0 bytes of memtables, which would be unbounded.
    expectBad(wb, "0.5", props(CACHE_BYTES, "1", wb, "0.5"));
    String ifr = "ksql.msk.rocksdb.index.filter.ratio";
    for (Object v : new Object[] {"1", "1.0", "-0.01", "half"}) {
      expectBad(ifr, v, props(CACHE_BYTES, c, ifr, v));
    }
    String strict = "ksql.msk.rocksdb.strict";
    for (Object v : new Object[] {"yes", "1", 1}) {
      expectBad(strict, v, props(CACHE_BYTES, c, strict, v));
    }

    // As ksqlDB: all server properties, as strings.
    Map<String, Object> server = props("ksql.service.id", "ksql-msk", "bootstrap.servers", "b:9098",
        "ksql.streams.rocksdb.config.setter", SETTER, CACHE_BYTES, c);
    newSetter().configure(server);
    // Again with the same values (numbers now): a no-op.
    newSetter().configure(props(CACHE_BYTES, cacheBytes, "ksql.msk.rocksdb.write.buffer.ratio", 0.5,
        "ksql.msk.rocksdb.index.filter.ratio", "0.1", "ksql.msk.rocksdb.strict", "false"));
    System.out.println("CONFIGURE-AGAIN same ok");
    long other = cacheBytes / 2;
    try {
      newSetter().configure(props(CACHE_BYTES, String.valueOf(other)));
      check(false, "configure with another " + CACHE_BYTES + " was accepted");
    } catch (IllegalStateException | ConfigException e) {
      String msg = String.valueOf(e.getMessage());
      System.out.println("CONFIGURE-AGAIN different -> " + e.getClass().getSimpleName() + ": " + msg);
      check(msg.contains(c) && msg.contains(String.valueOf(other)),
          "the reconfiguration error does not name both values: " + msg);
    }
  }

  /**
   * On the one input record: writes RECORDS values into each store and reads some back, all
   * in one process() call (TopologyTestDriver commits, and so flushes every store, after each
   * input record: the memtables fill only within a call), then takes the stores' RocksDB
   * metrics from the running task.
   */
  static final class FillStores implements Processor<String, byte[], Void, Void> {
    final List<KeyValueStore<String, byte[]>> stores = new ArrayList<>();
    ProcessorContext<Void, Void> context;

    @Override
    public void init(ProcessorContext<Void, Void> context) {
      this.context = context;
      for (String s : STORES) {
        stores.add(context.getStateStore(s));
      }
    }

    @Override
    public void process(Record<String, byte[]> record) {
      Random random = new Random(42);
      byte[] value = new byte[VALUE_BYTES];
      for (int i = 0; i < RECORDS; i++) {
        random.nextBytes(value); // incompressible
        for (KeyValueStore<String, byte[]> s : stores) {
          s.put(String.format("key-%08d", i), value.clone());
        }
      }
      // Reads: index, filter and data blocks of the flushed files into the block cache.
      for (KeyValueStore<String, byte[]> s : stores) {
        for (int i = 0; i < RECORDS; i += 7) {
          byte[] got = s.get(String.format("key-%08d", i));
          check(got != null && got.length == VALUE_BYTES, s.name() + " lost key-" + i);
        }
      }
      settle(context.metrics().metrics());
      snapshot(context.metrics().metrics());
      // TopologyTestDriver deletes the state directory on close: read the LOGs now.
      readLogs();
    }
  }

  /**
   * The setter as Kafka Streams runs it, with RocksDB's info log on (Kafka Streams sets it
   * to ERROR): the LOG then has the table options the setter gave each store.
   */
  public static final class WithInfoLog implements org.apache.kafka.streams.state.RocksDBConfigSetter {
    final org.apache.kafka.streams.state.RocksDBConfigSetter inner;

    public WithInfoLog() throws Exception {
      inner = (org.apache.kafka.streams.state.RocksDBConfigSetter) Utils.newInstance(Class.forName(SETTER));
    }

    @Override
    public void setConfig(String storeName, org.rocksdb.Options options, Map<String, Object> configs) {
      inner.setConfig(storeName, options, configs);
      options.setInfoLogLevel(org.rocksdb.InfoLogLevel.INFO_LEVEL);
    }

    @Override
    public void close(String storeName, org.rocksdb.Options options) {
      inner.close(storeName, options);
    }
  }

  static java.nio.file.Path stateRoot;
  static final String[] LOGGED = {"capacity", "strict_capacity_limit", "high_pri_pool_ratio",
      "cache_index_and_filter_blocks", "cache_index_and_filter_blocks_with_high_priority"};

  /**
   * Each store's RocksDB LOG: the first value of each LOGGED key in its dump of the table
   * options (`  key: value`, and `    key : value` under block_cache_options).
   */
  static void readLogs() {
    List<java.nio.file.Path> logs = new ArrayList<>();
    try (java.util.stream.Stream<java.nio.file.Path> all = java.nio.file.Files.walk(stateRoot)) {
      all.filter(f -> f.getFileName().toString().equals("LOG")).sorted().forEach(logs::add);
      for (java.nio.file.Path log : logs) {
        Map<String, String> facts = new TreeMap<>();
        for (String line : java.nio.file.Files.readAllLines(log, StandardCharsets.UTF_8)) {
          int colon = line.indexOf(':');
          if (colon < 0 || !line.startsWith(" ")) {
            continue; // a timestamped line, not a continuation of the options dump
          }
          String key = line.substring(0, colon).trim();
          for (String k : LOGGED) {
            if (k.equals(key)) {
              facts.putIfAbsent(key, line.substring(colon + 1).trim());
            }
          }
        }
        StringBuilder out = new StringBuilder("LOG " + log.getParent().getFileName());
        for (String k : LOGGED) {
          out.append(' ').append(k).append('=').append(facts.get(k));
        }
        System.out.println(out);
      }
    } catch (java.io.IOException e) {
      check(false, "reading the RocksDB LOG files under " + stateRoot + ": " + e);
    }
    check(logs.size() == STORES.length, "RocksDB LOG files: " + logs);
  }

  static final Map<String, Map<String, Long>> BY_STORE = new TreeMap<>();

  /**
   * Waits (at most 60 s) until no store has a flush pending or running. The memtable budget
   * is RocksDB's WriteBufferManager without stalls, as in Kafka Streams' and ksqlDB's own
   * bounded setters: writes go on while flushes catch up, so on a busy machine immutable
   * memtables may briefly exceed it. The bound checked is the one once flushes keep up.
   */
  static void settle(Map<MetricName, ? extends Metric> metrics) {
    long end = System.nanoTime() + 60_000_000_000L;
    long busy = -1;
    while (busy != 0 && System.nanoTime() < end) {
      busy = 0;
      for (Map.Entry<MetricName, ? extends Metric> e : metrics.entrySet()) {
        MetricName n = e.getKey();
        if (n.group().equals("stream-state-metrics") && n.tags().containsKey("rocksdb-state-id")
            && (n.name().equals("mem-table-flush-pending") || n.name().equals("num-running-flushes"))) {
          busy += Math.max(0, number(e.getValue().metricValue()));
        }
      }
      if (busy != 0) {
        try {
          Thread.sleep(100);
        } catch (InterruptedException ie) {
          Thread.currentThread().interrupt();
          return;
        }
      }
    }
    System.out.println("SETTLED " + (busy == 0));
  }

  static void snapshot(Map<MetricName, ? extends Metric> metrics) {
    for (Map.Entry<MetricName, ? extends Metric> e : metrics.entrySet()) {
      MetricName n = e.getKey();
      String store = n.tags().get("rocksdb-state-id");
      if (store == null || !n.group().equals("stream-state-metrics")) {
        continue;
      }
      BY_STORE.computeIfAbsent(store, k -> new TreeMap<>())
          .put(n.name(), number(e.getValue().metricValue()));
    }
  }

  static long number(Object v) {
    if (v instanceof BigInteger) {
      return ((BigInteger) v).longValue();
    }
    if (v instanceof Number) {
      return ((Number) v).longValue();
    }
    return -1;
  }

  public static void main(String[] args) throws Exception {
    org.apache.log4j.BasicConfigurator.configure();
    org.apache.log4j.Logger.getRootLogger().setLevel(org.apache.log4j.Level.WARN);
    org.apache.log4j.Logger.getLogger("ksqlmsk").setLevel(org.apache.log4j.Level.INFO);
    String mode = args[0];
    String stateDir = args[1];
    long cacheBytes = Long.parseLong(args[2]);
    stateRoot = java.nio.file.Paths.get(stateDir);

    Properties p = new Properties();
    p.put(StreamsConfig.APPLICATION_ID_CONFIG, "rocksdb-setter-check");
    p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, "127.0.0.1:9");
    p.put(StreamsConfig.STATE_DIR_CONFIG, stateDir);
    p.put(StreamsConfig.METRICS_RECORDING_LEVEL_CONFIG, "INFO");
    // No record cache in front of the stores: every put reaches RocksDB.
    p.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0);
    switch (mode) {
      case "ksqldb":
        ksqldbChecks(cacheBytes);
        p.put(StreamsConfig.ROCKSDB_CONFIG_SETTER_CLASS_CONFIG, Class.forName(SETTER));
        break;
      case "streams":
        p.put(StreamsConfig.ROCKSDB_CONFIG_SETTER_CLASS_CONFIG, WithInfoLog.class);
        p.put(CACHE_BYTES, String.valueOf(cacheBytes));
        break;
      case "strict":
        p.put(StreamsConfig.ROCKSDB_CONFIG_SETTER_CLASS_CONFIG, WithInfoLog.class);
        p.put(CACHE_BYTES, String.valueOf(cacheBytes));
        p.put("ksql.msk.rocksdb.strict", "true");
        p.put("ksql.msk.rocksdb.index.filter.ratio", "0.25");
        break;
      case "none":
        break;
      default:
        throw new IllegalArgumentException("mode " + mode);
    }

    Topology t = new Topology();
    t.addSource("in", Serdes.String().deserializer(), Serdes.ByteArray().deserializer(), "in");
    t.addProcessor("write", FillStores::new, "in");
    for (String s : STORES) {
      t.addStateStore(Stores.keyValueStoreBuilder(Stores.persistentKeyValueStore(s),
          Serdes.String(), Serdes.ByteArray()).withCachingDisabled().withLoggingDisabled(), "write");
    }
    try (TopologyTestDriver driver = new TopologyTestDriver(t, p)) {
      TestInputTopic<String, byte[]> in =
          driver.createInputTopic("in", new StringSerializer(), new ByteArraySerializer());
      in.pipeInput("fill", new byte[0]);
    }
    Map<String, Map<String, Long>> byStore = BY_STORE;
    String[] shown = {"block-cache-capacity", "block-cache-usage", "cur-size-all-mem-tables",
        "size-all-mem-tables", "total-sst-files-size"};
    long memtables = 0;
    for (Map.Entry<String, Map<String, Long>> e : byStore.entrySet()) {
      StringBuilder line = new StringBuilder("STORE " + e.getKey());
      for (String m : shown) {
        line.append(' ').append(m).append('=').append(e.getValue().get(m));
      }
      System.out.println(line);
      Long size = e.getValue().get("size-all-mem-tables");
      memtables += size == null ? 0 : size;
    }
    System.out.println("TOTAL size-all-mem-tables=" + memtables + " piped-bytes-per-store="
        + (long) RECORDS * VALUE_BYTES);
    check(byStore.keySet().equals(new java.util.TreeSet<>(java.util.Arrays.asList(STORES))),
        "the stores with RocksDB metrics are " + byStore.keySet());
    for (String s : STORES) {
      Map<String, Long> m = byStore.getOrDefault(s, new TreeMap<>());
      Long sst = m.get("total-sst-files-size");
      check(sst != null && sst > 0, s + ": nothing flushed to SST files (total-sst-files-size " + sst + ")");
      if (!mode.equals("none")) {
        Long cap = m.get("block-cache-capacity");
        Long usage = m.get("block-cache-usage");
        check(cap != null && cap == cacheBytes,
            s + ": block-cache-capacity " + cap + ", not the shared " + cacheBytes);
        check(usage != null && usage > 0 && usage <= cacheBytes,
            s + ": block-cache-usage " + usage + " not in (0, " + cacheBytes + "]");
      }
    }
    if (!mode.equals("none")) {
      check(memtables <= cacheBytes, "the memtables of all stores hold " + memtables + " bytes > " + cacheBytes);
    }
    if (failures > 0) {
      System.out.println("RESULT " + failures + " failed");
      System.exit(1);
    }
    System.out.println("RESULT ok");
  }
}
