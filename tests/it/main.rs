//! Integration tests: the real `ksql-msk` binary against the fakes in tests/testkit.

mod cli;
mod discovery;
mod install;
mod support;
