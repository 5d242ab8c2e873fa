//! ksql-msk: run ksqlDB against Amazon MSK with IAM authentication, as a systemd service.
//!
//! One module per concern; `app` routes the command line to them.

pub mod app;
pub(crate) mod auth;
pub(crate) mod aws_http;
pub(crate) mod check;
pub(crate) mod child_log;
pub mod cli;
pub mod config;
pub(crate) mod control;
pub mod discovery;
pub mod exit;
pub(crate) mod exporter;
pub mod failpoint;
pub(crate) mod fetch;
pub(crate) mod fsutil;
pub(crate) mod health;
pub(crate) mod iam_policy;
pub(crate) mod imds;
pub(crate) mod java;
pub(crate) mod jmx;
pub(crate) mod journal;
pub(crate) mod ksql_cli;
pub mod layout;
pub(crate) mod lock;
pub(crate) mod log4j;
pub(crate) mod logging;
pub(crate) mod manifest;
pub mod metastore;
pub(crate) mod notify;
pub mod output;
pub(crate) mod pipeline;
pub(crate) mod progress;
pub mod properties;
pub(crate) mod release;
pub mod rollback;
pub(crate) mod run;
pub(crate) mod status;
pub(crate) mod supervise;
pub mod unpack;
pub mod upgrade;
pub(crate) mod verify;
