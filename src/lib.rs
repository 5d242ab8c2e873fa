//! ksql-msk: run ksqlDB against Amazon MSK with IAM authentication, as a systemd service.
//!
//! The folders follow the systems the agent drives (docs/ARCHITECTURE.md); each may use
//! the ones after it in this list, never one before it:
//!
//! - `cli`: the command line; `main` hands it the arguments.
//! - `service`: the agent's core: phases 1–5, supervising ksqlDB, systemd, status.
//! - `ksqldb`: ksqlDB's own files, options, health and logs (uses `release` and `msk`).
//! - `release`: fetching, verifying, unpacking and checking ksqlDB releases.
//! - `msk`: the MSK API, the AWS HTTP client, IMDS, the IAM policy.
//! - `config`: the config files and the typed settings.
//! - `host`: the state directory and its files, locks, journal, terminal, CA store.
//! - `exit` and `progress`: the error kinds with their exit codes, and the progress
//!   reports, which every layer uses.

pub mod cli;
pub mod config;
pub mod exit;
pub mod host;
pub mod ksqldb;
pub mod msk;
pub(crate) mod progress;
pub mod release;
pub(crate) mod service;
