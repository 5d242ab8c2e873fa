//! ksql-msk: run ksqlDB against Amazon MSK with IAM authentication, as a systemd service.
//!
//! One module per concern; `app` routes the command line to them.

pub mod app;
pub mod check;
pub mod child_log;
pub mod cli;
pub mod config;
pub mod discovery;
pub mod exit;
pub mod failpoint;
pub mod fetch;
pub mod fsutil;
pub mod health;
pub mod iam_policy;
pub mod imds;
pub mod java;
pub mod journal;
pub mod layout;
pub mod lock;
pub mod logging;
pub mod manifest;
pub mod notify;
pub mod pipeline;
pub mod progress;
pub mod properties;
pub mod run;
pub mod supervise;
pub mod unpack;
pub mod verify;
