//! The signals the agent handles, registered once, before the long first install, so
//! that a stop request is honoured at any point.

use anyhow::Result;
use tokio::signal::unix::{Signal, SignalKind};

use crate::exit::{fail, ExitCode};

/// SIGTERM and SIGINT stop, SIGHUP reloads, SIGCHLD reaps.
pub struct Signals {
    pub term: Signal,
    pub int: Signal,
    pub hup: Signal,
    pub chld: Signal,
}

/// A signal stream the agent handles.
fn handle(kind: SignalKind, name: &str) -> Result<Signal> {
    tokio::signal::unix::signal(kind)
        .map_err(|e| fail(ExitCode::Software, format!("cannot handle {name}: {e}")))
}

impl Signals {
    pub fn new() -> Result<Signals> {
        Ok(Signals {
            term: handle(SignalKind::terminate(), "SIGTERM")?,
            int: handle(SignalKind::interrupt(), "SIGINT")?,
            hup: handle(SignalKind::hangup(), "SIGHUP")?,
            chld: handle(SignalKind::child(), "SIGCHLD")?,
        })
    }
}
