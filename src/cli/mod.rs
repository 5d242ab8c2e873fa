//! The command line: the arguments (`args`), what each command does (`app`), the
//! preflight checklist (`check`), the `ksql` wrapper, and the agent's own log setup.

pub mod app;
pub mod args;
pub(crate) mod check;
pub(crate) mod ksql_cli;
pub(crate) mod logging;
