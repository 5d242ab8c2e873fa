//! ksqlDB itself: its properties file, log4j, Java and JMX options, the Prometheus
//! exporter, REST authentication, the health probe and its log lines.

pub(crate) mod auth;
pub(crate) mod child_log;
pub(crate) mod exporter;
pub(crate) mod health;
pub(crate) mod java;
pub(crate) mod jmx;
pub(crate) mod log4j;
pub mod memory;
pub mod metastore;
pub mod properties;
