//! Paths inside a ksqlDB release directory (`<state_dir>/releases/<version>/`), shared
//! by unpack, configure and supervise.

/// The live properties file that ksqlDB reads.
pub const PROPERTIES: &str = "etc/ksqldb/ksql-server.properties";
/// The release's own properties file as it came in the archive, kept at unpack time so
/// that rendering always starts from it (removing an override removes it from the file).
pub const PRISTINE_PROPERTIES: &str = "etc/ksqldb/ksql-server.properties.dist";
/// Where every jar on ksqlDB's classpath lives; the IAM auth jar goes here too.
pub const JAR_DIR: &str = "share/java/ksqldb";
/// The release's own log4j 1 configuration (console only), as it came in the archive.
pub const LOG4J: &str = "etc/ksqldb/log4j.properties";
/// The log4j configuration ksqlDB runs with, generated from [`LOG4J`] on every run:
/// `[ksqldb] log_level` and `[ksqldb.loggers]` applied, log4j's timestamp dropped.
pub const LOG4J_GENERATED: &str = "etc/ksqldb/ksql-msk-log4j.properties";
/// The keys of the managed set last written, one per line, beside the live file: tells
/// a key we wrote (and may drop) from one added by hand (kept, reported).
pub const MANAGED_KEYS: &str = "etc/ksqldb/ksql-server.properties.managed-keys";
/// The server start script.
pub const SERVER_START: &str = "bin/ksql-server-start";
/// ksqlDB's command-topic restore tool (`KsqlRestoreCommandTopic`).
pub const RESTORE_TOOL: &str = "bin/ksql-restore-command-topic";
/// What install verified about this release (archive sha256, signer, jar sha256).
pub const MANIFEST: &str = ".ksql-msk-manifest.toml";
