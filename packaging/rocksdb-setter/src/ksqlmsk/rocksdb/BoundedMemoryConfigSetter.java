/*
 * ksql-msk: a RocksDB config setter that bounds the off-heap memory of every Kafka Streams
 * state store of the JVM by one budget (packaging/rocksdb-setter/README.md).
 * SPDX-License-Identifier: Apache-2.0
 */
package ksqlmsk.rocksdb;

import java.util.Map;
import org.apache.kafka.common.Configurable;
import org.apache.kafka.common.config.ConfigException;
import org.apache.kafka.streams.state.RocksDBConfigSetter;
import org.rocksdb.BlockBasedTableConfig;
import org.rocksdb.Cache;
import org.rocksdb.LRUCache;
import org.rocksdb.Options;
import org.rocksdb.RocksDB;
import org.rocksdb.TableFormatConfig;
import org.rocksdb.WriteBufferManager;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One LRU block cache shared by every RocksDB store of the JVM, with the memtables charged
 * against the same cache through one WriteBufferManager and the index and filter blocks kept
 * in it: block cache + memtables + index/filter blocks stay within
 * {@code ksql.msk.rocksdb.cache.bytes}.
 *
 * <p>ksqlDB instantiates the class named by {@code ksql.streams.rocksdb.config.setter} once and
 * calls {@link #configure} with all server properties; Kafka Streams then makes one instance
 * per store and calls {@link #setConfig} and {@link #close}. The cache and the manager are
 * therefore static: made once, never closed (they live as long as the JVM's stores).
 *
 * <p>Only RocksJava API that exists from rocksdbjni 5.18 to 8.x is used, and the class is
 * compiled for Java 8, so that every ksqlDB 0.x release can load it.
 */
public final class BoundedMemoryConfigSetter implements RocksDBConfigSetter, Configurable {
  public static final String CACHE_BYTES = "ksql.msk.rocksdb.cache.bytes";
  public static final String WRITE_BUFFER_RATIO = "ksql.msk.rocksdb.write.buffer.ratio";
  public static final String INDEX_FILTER_RATIO = "ksql.msk.rocksdb.index.filter.ratio";
  public static final String STRICT = "ksql.msk.rocksdb.strict";

  static final double DEFAULT_WRITE_BUFFER_RATIO = 0.5;
  static final double DEFAULT_INDEX_FILTER_RATIO = 0.1;

  private static final Logger LOG = LoggerFactory.getLogger(BoundedMemoryConfigSetter.class);

  private static final Object LOCK = new Object();
  // All three guarded by LOCK; set together, once.
  private static Settings settings;
  private static Cache cache;
  private static WriteBufferManager writeBufferManager;

  /** The parsed, validated keys. */
  static final class Settings {
    final long cacheBytes;
    final double writeBufferRatio;
    final double indexFilterRatio;
    final boolean strict;

    Settings(long cacheBytes, double writeBufferRatio, double indexFilterRatio, boolean strict) {
      this.cacheBytes = cacheBytes;
      this.writeBufferRatio = writeBufferRatio;
      this.indexFilterRatio = indexFilterRatio;
      this.strict = strict;
    }

    /** The memtables' share of the cache. */
    long memtableBytes() {
      return (long) (cacheBytes * writeBufferRatio);
    }

    static Settings from(Map<String, ?> configs) {
      if (configs == null || configs.get(CACHE_BYTES) == null) {
        throw new ConfigException(CACHE_BYTES, null,
            "required: the RocksDB memory budget in bytes (block cache and memtables of all stores)");
      }
      long cacheBytes = parseLong(CACHE_BYTES, configs.get(CACHE_BYTES));
      if (cacheBytes <= 0) {
        throw new ConfigException(CACHE_BYTES, configs.get(CACHE_BYTES), "must be > 0");
      }
      double writeBufferRatio =
          parseDouble(WRITE_BUFFER_RATIO, configs.get(WRITE_BUFFER_RATIO), DEFAULT_WRITE_BUFFER_RATIO);
      if (!(writeBufferRatio > 0.0 && writeBufferRatio <= 1.0)) {
        throw new ConfigException(WRITE_BUFFER_RATIO, configs.get(WRITE_BUFFER_RATIO), "must be in (0, 1]");
      }
      double indexFilterRatio =
          parseDouble(INDEX_FILTER_RATIO, configs.get(INDEX_FILTER_RATIO), DEFAULT_INDEX_FILTER_RATIO);
      if (!(indexFilterRatio >= 0.0 && indexFilterRatio < 1.0)) {
        throw new ConfigException(INDEX_FILTER_RATIO, configs.get(INDEX_FILTER_RATIO), "must be in [0, 1)");
      }
      boolean strict = parseBoolean(STRICT, configs.get(STRICT));
      Settings s = new Settings(cacheBytes, writeBufferRatio, indexFilterRatio, strict);
      // A WriteBufferManager of 0 bytes would not limit the memtables at all.
      if (s.memtableBytes() < 1) {
        throw new ConfigException(WRITE_BUFFER_RATIO, configs.get(WRITE_BUFFER_RATIO),
            "gives 0 bytes of memtables for " + CACHE_BYTES + "=" + cacheBytes);
      }
      return s;
    }

    @Override
    public boolean equals(Object o) {
      if (!(o instanceof Settings)) {
        return false;
      }
      Settings other = (Settings) o;
      return cacheBytes == other.cacheBytes
          && Double.compare(writeBufferRatio, other.writeBufferRatio) == 0
          && Double.compare(indexFilterRatio, other.indexFilterRatio) == 0
          && strict == other.strict;
    }

    @Override
    public int hashCode() {
      return Long.hashCode(cacheBytes) * 31 + Double.hashCode(writeBufferRatio);
    }

    @Override
    public String toString() {
      return CACHE_BYTES + "=" + cacheBytes + ", " + WRITE_BUFFER_RATIO + "=" + writeBufferRatio
          + ", " + INDEX_FILTER_RATIO + "=" + indexFilterRatio + ", " + STRICT + "=" + strict;
    }
  }

  private static long parseLong(String key, Object value) {
    if (value instanceof Long || value instanceof Integer || value instanceof Short
        || value instanceof Byte) {
      return ((Number) value).longValue();
    }
    if (value instanceof String) {
      try {
        return Long.parseLong(((String) value).trim());
      } catch (NumberFormatException e) {
        throw new ConfigException(key, value, "not a whole number of bytes");
      }
    }
    throw new ConfigException(key, value, "not a whole number of bytes");
  }

  private static double parseDouble(String key, Object value, double dflt) {
    if (value == null) {
      return dflt;
    }
    double d;
    if (value instanceof Number) {
      d = ((Number) value).doubleValue();
    } else if (value instanceof String) {
      try {
        d = Double.parseDouble(((String) value).trim());
      } catch (NumberFormatException e) {
        throw new ConfigException(key, value, "not a number");
      }
    } else {
      throw new ConfigException(key, value, "not a number");
    }
    if (Double.isNaN(d) || Double.isInfinite(d)) {
      throw new ConfigException(key, value, "not a finite number");
    }
    return d;
  }

  private static boolean parseBoolean(String key, Object value) {
    if (value == null) {
      return false;
    }
    if (value instanceof Boolean) {
      return (Boolean) value;
    }
    if (value instanceof String) {
      String s = ((String) value).trim();
      if (s.equalsIgnoreCase("true")) {
        return true;
      }
      if (s.equalsIgnoreCase("false")) {
        return false;
      }
    }
    throw new ConfigException(key, value, "must be true or false");
  }

  /** ksqlDB: all server properties, once, before any store opens. */
  @Override
  public void configure(Map<String, ?> configs) {
    configureShared(Settings.from(configs));
  }

  private static void configureShared(Settings wanted) {
    synchronized (LOCK) {
      if (settings != null) {
        if (!settings.equals(wanted)) {
          throw new IllegalStateException("the shared RocksDB cache is already configured with "
              + settings + "; cannot reconfigure it with " + wanted + " in the same JVM");
        }
        return;
      }
      RocksDB.loadLibrary();
      Cache newCache = new LRUCache(wanted.cacheBytes, -1, wanted.strict, wanted.indexFilterRatio);
      WriteBufferManager newManager = new WriteBufferManager(wanted.memtableBytes(), newCache);
      cache = newCache;
      writeBufferManager = newManager;
      settings = wanted;
      LOG.info("RocksDB memory bounded: one shared block cache of {} bytes, memtables up to {} bytes"
              + " of it, index and filter blocks cached with high priority ({})",
          wanted.cacheBytes, wanted.memtableBytes(), wanted);
    }
  }

  /** Kafka Streams: once per store, with the store's own Options. */
  @Override
  public void setConfig(String storeName, Options options, Map<String, Object> configs) {
    Cache sharedCache;
    WriteBufferManager sharedManager;
    synchronized (LOCK) {
      // A plain Kafka Streams application never calls configure(): its streams
      // configs carry the keys.
      if (settings == null) {
        configureShared(Settings.from(configs));
      }
      sharedCache = cache;
      sharedManager = writeBufferManager;
    }
    TableFormatConfig format = options.tableFormatConfig();
    BlockBasedTableConfig table =
        format instanceof BlockBasedTableConfig ? (BlockBasedTableConfig) format : new BlockBasedTableConfig();
    // The store's own default cache is left to Kafka Streams, which closes it with the
    // store; unused, it holds no memory.
    table.setBlockCache(sharedCache);
    table.setCacheIndexAndFilterBlocks(true);
    table.setCacheIndexAndFilterBlocksWithHighPriority(true);
    // The native table factory is made from the config when it is set: set it again.
    options.setTableFormatConfig(table);
    options.setWriteBufferManager(sharedManager);
  }

  /** The cache and the manager are shared by every store: nothing of this store to close. */
  @Override
  public void close(String storeName, Options options) {}
}
