//! Reconfiguration while ksqlDB runs: a reload (SIGHUP) runs phases 1–5 again, and
//! every `agent.rediscover_interval` discovery runs again; either restarts ksqlDB only
//! when what it would run changed. Both run as background tasks: the supervisor keeps
//! answering signals, probes and exits meanwhile.

use tokio::time::Instant;
use tracing::{error, info, warn};

use super::background::{Preparing, Why};
use super::launch::{env_changes, launch_spec, log_jvm, Launch};
use super::{Readiness, State, Supervisor};
use crate::exit::{exit_code_of, one_line};
use crate::host::journal::{message_id, priority};
use crate::ksqldb::java::{self, Jvm};
use crate::msk::discovery::Discovered;
use crate::service::control::{Outcome, Responder};
use crate::service::pipeline::{prepare, Prepared};

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
        let (prepared, jvm, launch) = match result.and_then(|p| {
            let jvm = java::jvm_for(&p.settings, &p.version())?;
            let launch = launch_spec(&p, &jvm)?;
            Ok((p, jvm, launch))
        }) {
            Ok(x) => x,
            Err(e) => return self.prepare_failed(why, again, &e),
        };
        self.status.prepared(&prepared);
        self.status.publish();
        let changes = self.what_changed(&prepared, &launch, &jvm);
        let restart = !changes.is_empty();
        // ksqlDB before 1.0 may change its command-topic formats in any minor version.
        let caveat = crate::ksqldb::metastore::version_change_note(
            &prepared.settings,
            &self.launch.version,
            &launch.version,
        );
        self.adopt(prepared, launch);
        let message = if restart {
            let caveat = caveat
                .map(|n| format!("; warning: {n}"))
                .unwrap_or_default();
            format!("restarting ksqlDB: {}{caveat}", changes.join("; "))
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

    /// Phases 1–5 failed again: ksqlDB keeps running as it was; the callers hear why.
    fn prepare_failed(&mut self, why: Why, again: bool, e: &anyhow::Error) {
        let code = exit_code_of(e).code();
        let msg = format!(
            "{} failed, ksqlDB keeps running as it was: {}",
            if why == Why::Reload {
                "reload"
            } else {
                "reconfiguring for new brokers"
            },
            one_line(e)
        );
        error!("{msg}");
        if !again {
            self.reconfig.answer_waiting(Outcome::Failed {
                code,
                message: msg.clone(),
            });
        }
        self.finish_reload(why, again, &msg);
    }

    /// What differs between what runs and `launch`, said for the journal: each is a
    /// reason to restart ksqlDB. Empty: nothing to restart for.
    fn what_changed(&self, prepared: &Prepared, launch: &Launch, jvm: &Jvm) -> Vec<String> {
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
            log_jvm(jvm);
        }
        if launch.auth != self.launch.auth {
            // Never the password itself.
            changes.push("REST API credential changed".to_string());
        }
        let brokers = prepared.discovered.brokers.as_set();
        if brokers != self.running_brokers {
            changes.push(format!("brokers now {}", prepared.discovered.brokers.raw));
        }
        changes
    }

    /// Take the new settings and launch spec as the ones to run.
    fn adopt(&mut self, prepared: Prepared, launch: Launch) {
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
        self.reconfig.discover_began = (
            crate::service::status::Time::now(),
            std::time::Instant::now(),
        );
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
                    .discovered(&found, crate::service::status::Span::since(at, began));
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
