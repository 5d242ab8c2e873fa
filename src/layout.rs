//! Paths inside a ksqlDB release directory (`<state_dir>/releases/<version>/`), shared
//! by unpack, configure and supervise.

/// The live properties file that ksqlDB reads.
pub const PROPERTIES: &str = "etc/ksqldb/ksql-server.properties";
/// The release's own properties file as it came in the archive, kept at unpack time so
/// that rendering always starts from it (removing an override removes it from the file).
pub const PRISTINE_PROPERTIES: &str = "etc/ksqldb/ksql-server.properties.dist";
/// Where every jar on ksqlDB's classpath lives; the IAM auth jar goes here too.
pub const JAR_DIR: &str = "share/java/ksqldb";
/// The server start script.
pub const SERVER_START: &str = "bin/ksql-server-start";
/// What install verified about this release (archive sha256, signer, jar sha256).
pub const MANIFEST: &str = ".ksql-msk-manifest.toml";
