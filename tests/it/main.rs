//! Integration tests: the real `ksql-msk` binary against the fakes in tests/testkit.

mod check;
mod cli;
mod discovery;
mod install;
mod properties;
mod run;
mod support;
