//! Integration tests: the real `ksql-msk` binary against the fakes in tests/testkit.

mod archive_links;
mod bad_luck;
mod check;
mod check_more;
mod cli;
mod config_input;
mod crash;
mod discovery;
mod exit_codes;
mod health_model;
mod hostile;
mod iam_policy;
mod install;
mod msk_5xx;
mod no_ca;
mod no_panic;
mod planted;
mod properties;
mod redaction;
mod run;
mod secrets;
mod signature_reasons;
mod soak;
mod support;
mod url_credentials;
mod warm_start;
