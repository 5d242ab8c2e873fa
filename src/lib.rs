//! ksql-msk: run ksqlDB against Amazon MSK with IAM authentication, as a systemd service.
//!
//! One module per concern; `app` routes the command line to them.

pub mod app;
pub mod cli;
pub mod config;
pub mod discovery;
pub mod exit;
pub mod fsutil;
pub mod iam_policy;
pub mod imds;
pub mod layout;
pub mod logging;
pub mod progress;
pub mod properties;
