//! The state of the reconfiguration jobs (`reconfigure`) that run in the background
//! while ksqlDB runs: which one runs, who waits for it, and their channels.

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::msk::discovery::{ClientCache, Discovered};
use crate::service::control::{Outcome, Responder};
use crate::service::pipeline::Prepared;

/// Why phases 1–5 run again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    Reload,
    BrokersChanged,
}

impl Why {
    pub(super) fn phase(self) -> &'static str {
        match self {
            Why::Reload => "reload",
            Why::BrokersChanged => "rediscover",
        }
    }
}

/// A run of phases 1–5 in the background.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Preparing {
    Idle,
    /// `again`: a reload was asked for while this one ran; run once more after it.
    Running {
        why: Why,
        again: bool,
    },
}

pub(super) type PrepareResult = (Why, Box<anyhow::Result<Prepared>>);

/// The reconfiguration jobs and their channels.
pub struct Reconfig {
    pub prepare_rx: mpsc::Receiver<PrepareResult>,
    pub(super) prepare_tx: mpsc::Sender<PrepareResult>,
    pub(super) preparing: Preparing,
    pub discover_rx: mpsc::Receiver<anyhow::Result<Discovered>>,
    pub(super) discover_tx: mpsc::Sender<anyhow::Result<Discovered>>,
    pub(super) discovering: bool,
    pub next_rediscover: Instant,
    /// When the rediscovery in flight began (wall clock, monotonic).
    pub(super) discover_began: (crate::service::status::Time, std::time::Instant),
    pub(super) clients: ClientCache,
    /// `ksql-msk reload` callers waiting for the prepare in flight (or the next).
    pub(super) waiting: Vec<Responder>,
    /// Callers of a reload that restarted ksqlDB: answered once the new one is healthy,
    /// or when it failed.
    pub(super) waiting_for_restart: Vec<Responder>,
}

impl Reconfig {
    pub fn new(next_rediscover: Instant) -> Reconfig {
        let (prepare_tx, prepare_rx) = mpsc::channel(2);
        let (discover_tx, discover_rx) = mpsc::channel(2);
        Reconfig {
            prepare_rx,
            prepare_tx,
            preparing: Preparing::Idle,
            discover_rx,
            discover_tx,
            discovering: false,
            next_rediscover,
            discover_began: (
                crate::service::status::Time::now(),
                std::time::Instant::now(),
            ),
            clients: ClientCache::default(),
            waiting: Vec::new(),
            waiting_for_restart: Vec::new(),
        }
    }

    /// Answer every caller waiting for a restarted ksqlDB.
    pub fn restart_outcome(&mut self, outcome: Outcome) {
        for r in self.waiting_for_restart.drain(..) {
            let _ = r.send(outcome.clone());
        }
    }

    /// Answer every caller, whatever it waits for (the agent stops).
    pub fn answer_all(&mut self, outcome: Outcome) {
        for r in self
            .waiting
            .drain(..)
            .chain(self.waiting_for_restart.drain(..))
        {
            let _ = r.send(outcome.clone());
        }
    }

    pub(super) fn answer_waiting(&mut self, outcome: Outcome) {
        for r in self.waiting.drain(..) {
            let _ = r.send(outcome.clone());
        }
    }

    /// A rediscovery may start: none runs, and no prepare (which discovers anyway).
    pub fn can_rediscover(&self) -> bool {
        !self.discovering && self.preparing == Preparing::Idle
    }
}
