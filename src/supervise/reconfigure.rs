//! Reconfiguration while ksqlDB runs: a reload (SIGHUP) runs phases 1–5 again, and
//! every `agent.rediscover_interval` discovery runs again; either restarts ksqlDB only
//! when what it would run changed. Both run as background tasks: the supervisor keeps
//! answering signals, probes and exits meanwhile.

use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{error, info, warn};

use super::launch::{env_changes, launch_spec, log_jvm};
use super::{Readiness, State, Supervisor};
use crate::control::{Outcome, Responder};
use crate::discovery::{ClientCache, Discovered};
use crate::exit::{exit_code_of, one_line};
use crate::java;
use crate::journal::{message_id, priority};
use crate::pipeline::{prepare, Prepared};

/// Why phases 1–5 run again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    Reload,
    BrokersChanged,
}

impl Why {
    fn phase(self) -> &'static str {
        match self {
            Why::Reload => "reload",
            Why::BrokersChanged => "rediscover",
        }
    }
}

/// A run of phases 1–5 in the background.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Preparing {
    Idle,
    /// `again`: a reload was asked for while this one ran; run once more after it.
    Running {
        why: Why,
        again: bool,
    },
}

type PrepareResult = (Why, Box<anyhow::Result<Prepared>>);

/// The reconfiguration jobs and their channels.
pub struct Reconfig {
    pub prepare_rx: mpsc::Receiver<PrepareResult>,
    prepare_tx: mpsc::Sender<PrepareResult>,
    preparing: Preparing,
    pub discover_rx: mpsc::Receiver<anyhow::Result<Discovered>>,
    discover_tx: mpsc::Sender<anyhow::Result<Discovered>>,
    discovering: bool,
    pub next_rediscover: Instant,
    /// When the rediscovery in flight began (wall clock, monotonic).
    discover_began: (crate::status::Time, std::time::Instant),
    clients: ClientCache,
    /// `ksql-msk reload` callers waiting for the prepare in flight (or the next).
    waiting: Vec<Responder>,
    /// Callers of a reload that restarted ksqlDB: answered once the new one is healthy,
    /// or when it failed.
    waiting_for_restart: Vec<Responder>,
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
            discover_began: (crate::status::Time::now(), std::time::Instant::now()),
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

    fn answer_waiting(&mut self, outcome: Outcome) {
        for r in self.waiting.drain(..) {
            let _ = r.send(outcome.clone());
        }
    }

    /// A rediscovery may start: none runs, and no prepare (which discovers anyway).
    pub fn can_rediscover(&self) -> bool {
        !self.discovering && self.preparing == Preparing::Idle
    }
}

impl Supervisor {
    /// `ksql-msk reload`: a reload whose outcome goes back to the caller.
    pub(super) fn reload_requested(&mut self, reply: Responder) {
        self.reconfig.waiting.push(reply);
        self.begin_prepare(Why::Reload);
    }

    pub(super) fn begin_prepare(&mut self, why: Why) {
        if why == Why::Reload {
            self.notifier.reloading();
            info!("reload requested: running phases 1–5 again");
        }
        if let Preparing::Running { again, .. } = &mut self.reconfig.preparing {
            *again = true;
            return;
        }
        self.reconfig.preparing = Preparing::Running { why, again: false };
        let path = self.config_path.clone();
        let notifier = self.notifier.clone();
        let tx = self.reconfig.prepare_tx.clone();
        tokio::spawn(async move {
            let result = prepare(&path, notifier.as_ref()).await;
            let _ = tx.send((why, Box::new(result))).await;
        });
    }

    pub(super) async fn on_prepared(&mut self, why: Why, result: anyhow::Result<Prepared>) {
        let again = matches!(
            self.reconfig.preparing,
            Preparing::Running { again: true, .. }
        );
        self.reconfig.preparing = Preparing::Idle;
        let outcome = match result.and_then(|p| {
            let jvm = java::jvm_for(&p.settings, &p.version())?;
            let launch = launch_spec(&p, &jvm)?;
            Ok((p, jvm, launch))
        }) {
            Ok(x) => x,
            Err(e) => {
                let code = exit_code_of(&e).code();
                let msg = format!(
                    "{} failed, ksqlDB keeps running as it was: {}",
                    if why == Why::Reload {
                        "reload"
                    } else {
                        "reconfiguring for new brokers"
                    },
                    one_line(&e)
                );
                error!("{msg}");
                if !again {
                    self.reconfig.answer_waiting(Outcome::Failed {
                        code,
                        message: msg.clone(),
                    });
                }
                self.finish_reload(why, again, &msg);
                return;
            }
        };
        let (prepared, jvm, launch) = outcome;
        self.status.prepared(&prepared);
        self.status.publish();
        let mut changes = Vec::new();
        if launch.release_dir != self.launch.release_dir {
            changes.push(format!(
                "release {} → {}",
                self.launch.version, launch.version
            ));
        }
        if launch.properties != self.launch.properties {
            changes.push(format!("{} changed", prepared.properties_path().display()));
        }
        if launch.log4j != self.launch.log4j {
            let path = prepared
                .log4j
                .as_ref()
                .map(|c| c.path.display().to_string());
            changes.push(format!(
                "{} changed",
                path.as_deref().unwrap_or("the log4j configuration")
            ));
        }
        if launch.env != self.launch.env || launch.args != self.launch.args {
            // Names and redacted values only: `[ksqldb.env]` and the passed-through
            // AWS variables may hold secrets.
            let what = env_changes(&self.launch.env, &launch.env);
            changes.push(if what.is_empty() {
                "JVM environment changed".to_string()
            } else {
                format!("JVM environment changed: {}", what.join(", "))
            });
            log_jvm(&jvm);
        }
        if launch.auth != self.launch.auth {
            // Never the password itself.
            changes.push("REST API credential changed".to_string());
        }
        let brokers = prepared.discovered.brokers.as_set();
        if brokers != self.running_brokers {
            changes.push(format!("brokers now {}", prepared.discovered.brokers.raw));
        }
        let restart = !changes.is_empty();
        if launch.release_dir != self.launch.release_dir {
            // Another version: its failures are its own (an upgrade's trial counts
            // them against agent.restart_limit from zero).
            self.restarts = super::policy::RestartPolicy::new(super::policy::Limits::of(
                &prepared.settings.agent,
            ));
        }
        let interval_changed = prepared.settings.agent.rediscover_interval
            != self.prepared.settings.agent.rediscover_interval;
        self.prepared = prepared;
        self.launch = launch;
        if interval_changed {
            self.reconfig.next_rediscover =
                Instant::now() + self.prepared.settings.agent.rediscover_interval;
        }
        let message = if restart {
            format!("restarting ksqlDB: {}", changes.join("; "))
        } else {
            "nothing changed; ksqlDB keeps running".to_string()
        };
        // Logged once, by the event (journal or stderr alike).
        self.event(
            message_id::RELOADED,
            priority::INFO,
            &message,
            &[
                ("PHASE", why.phase().into()),
                ("RESTART", if restart { "yes" } else { "no" }.into()),
                ("VERSION", self.launch.version.clone()),
                ("BROKERS", self.prepared.discovered.brokers.raw.clone()),
            ],
        )
        .await;
        if !again {
            if restart {
                let waiting = std::mem::take(&mut self.reconfig.waiting);
                self.reconfig.waiting_for_restart.extend(waiting);
            } else {
                self.reconfig.answer_waiting(Outcome::Done(message.clone()));
            }
        }
        if restart {
            self.restart_for_new_spec().await;
            if why == Why::Reload && self.readiness == Readiness::Sent {
                self.readiness = Readiness::AfterRestart;
            }
        }
        self.finish_reload(why, again, &message);
    }

    /// Running/WaitingHealthy → Starting with the new spec. Backing off: the next
    /// start uses it anyway.
    async fn restart_for_new_spec(&mut self) {
        if self.state.ksqldb().is_none() {
            return;
        }
        if let Some(child) = self.state.take_ksqldb(State::Starting) {
            self.stop_child(&child).await;
        }
    }

    fn finish_reload(&mut self, why: Why, again: bool, status: &str) {
        if again {
            self.begin_prepare(Why::Reload);
            return;
        }
        if why == Why::Reload {
            if self.readiness == Readiness::Sent {
                self.notifier.ready(status);
            } else {
                // Before the first READY, or until the restarted ksqlDB is healthy.
                self.notifier.status(status);
            }
        }
    }

    pub(super) fn begin_rediscover(&mut self) {
        let settings = self.prepared.settings.clone();
        let clients = self.reconfig.clients.clone();
        let tx = self.reconfig.discover_tx.clone();
        self.reconfig.discovering = true;
        self.reconfig.discover_began = (crate::status::Time::now(), std::time::Instant::now());
        tokio::spawn(async move {
            let _ = tx.send(clients.discover(&settings).await).await;
        });
    }

    pub(super) async fn on_discovered(&mut self, result: anyhow::Result<Discovered>) {
        self.reconfig.discovering = false;
        let interval = self.prepared.settings.agent.rediscover_interval;
        self.reconfig.next_rediscover = Instant::now() + interval;
        match result {
            Err(e) => warn!(
                "rediscovering brokers failed, keeping the current ones; retrying in {}: {}",
                humantime::format_duration(interval),
                one_line(&e)
            ),
            Ok(found) => {
                let (at, began) = self.reconfig.discover_began;
                self.status
                    .discovered(&found, crate::status::Span::since(at, began));
                self.status.publish();
                if found.brokers.as_set() == self.running_brokers {
                    tracing::debug!("brokers unchanged");
                    return;
                }
                self.event(
                    message_id::BROKERS_CHANGED,
                    priority::NOTICE,
                    &format!(
                        "the cluster's bootstrap brokers changed: {} → {}",
                        self.prepared.discovered.brokers.raw, found.brokers.raw
                    ),
                    &[("BROKERS", found.brokers.raw.clone())],
                )
                .await;
                self.begin_prepare(Why::BrokersChanged);
            }
        }
    }
}
