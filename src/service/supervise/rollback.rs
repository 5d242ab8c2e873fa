//! The automatic rollback of a failed upgrade (src/service/upgrade.rs has the record and the
//! rules). A ksqlDB of another version than the record's `good` one is on trial until it
//! becomes ready; if it fails the trial, the supervisor writes the failure into the
//! record first and then runs phases 1 and 3–5 again without discovery
//! ([`prepare_local`]): they read the record, install (switch `current` back to) the
//! release it names, and render its properties. A crash at any point leaves `current`
//! at the old or the new release, and the record saying what the next start runs.

use tracing::{info, warn};

use super::launch::{launch_spec, log_jvm};
use super::policy::{Limits, RestartPolicy};
use super::{State, Supervisor};
use crate::exit::{one_line, ExitCode};
use crate::host::journal::{message_id, priority};
use crate::ksqldb::java;
use crate::service::control::Outcome;
use crate::service::pipeline::prepare_local;
use crate::service::upgrade;

impl Supervisor {
    /// The version the ksqlDB being started is on trial against, if it is an upgrade.
    pub(super) fn trial(&self) -> Option<String> {
        if self.prepared.upgrade.held_back.is_some() {
            return None;
        }
        upgrade::trial_against(&self.prepared.upgrade.record, &self.launch.version)
    }

    /// `version` became ready: it is the good version from now on (recorded).
    pub(super) fn note_good(&mut self, version: &str) {
        let record = &mut self.prepared.upgrade.record;
        if record.good.as_deref() == Some(version) {
            return;
        }
        if let Some(from) = record.good.replace(version.to_string()) {
            info!("the upgrade from ksqlDB {from} to {version} is done: {version} is ready");
        }
        let record = record.clone();
        if let Err(e) = upgrade::save(&self.prepared.settings.agent.state_dir, &record) {
            warn!(
                "cannot record ksqlDB {version} as the good version: {}",
                one_line(&e)
            );
        }
    }

    /// The ksqlDB on trial failed (`reason`): record it, switch back to `back_to`, start
    /// that. What cannot be done ends the agent with 75, as too many failures always
    /// did: the record makes the next start run `back_to`.
    pub(super) async fn roll_back(
        &mut self,
        back_to: String,
        reason: String,
    ) -> anyhow::Result<()> {
        let failed = upgrade::Failed {
            version: self.prepared.upgrade.configured.clone(),
            reason,
            back_to: back_to.clone(),
        };
        let state_dir = self.prepared.settings.agent.state_dir.clone();
        let mut record = self.prepared.upgrade.record.clone();
        record.failed = Some(failed.clone());
        let v = &failed.version;
        let why = &failed.reason;
        if let Err(e) = upgrade::save(&state_dir, &record) {
            return self
                .cannot_roll_back(&failed, &format!("cannot record it: {}", one_line(&e)))
                .await;
        }
        self.notifier.status(&format!(
            "the upgrade to ksqlDB {v} failed: {why}; rolling back to {back_to}"
        ));
        let prepared = prepare_local(
            &self.config_path,
            self.prepared.discovered.clone(),
            self.prepared.timings.discovery,
            self.notifier.as_ref(),
        )
        .await
        .and_then(|p| {
            let jvm = java::jvm_for(&p.settings, &p.version())?;
            let launch = launch_spec(&p, &jvm)?;
            Ok((p, jvm, launch))
        });
        let (prepared, jvm, launch) = match prepared {
            Ok(x) if x.0.upgrade.held_back.is_some() => x,
            Ok(_) => {
                return self
                    .cannot_roll_back(&failed, &format!("{back_to} is no longer installed"))
                    .await
            }
            Err(e) => return self.cannot_roll_back(&failed, &one_line(&e)).await,
        };
        log_jvm(&jvm);
        self.prepared = prepared;
        self.launch = launch;
        self.restarts = RestartPolicy::new(Limits::of(&self.prepared.settings.agent));
        let msg = format!(
            "the upgrade to ksqlDB {v} failed: {why}; rolled back to {back_to}, which starts now (it is not tried again until ksqldb.version changes)"
        );
        self.event(
            message_id::UPGRADE_FAILED,
            priority::ERR,
            &msg,
            &[
                ("VERSION", v.clone()),
                ("BACK_TO", back_to.clone()),
                ("REASON", why.clone()),
            ],
        )
        .await;
        self.reconfig.restart_outcome(Outcome::Failed {
            code: ExitCode::Unavailable.code(),
            message: msg,
        });
        self.state = State::Starting;
        Ok(())
    }

    async fn cannot_roll_back(
        &mut self,
        failed: &upgrade::Failed,
        why: &str,
    ) -> anyhow::Result<()> {
        let msg = format!(
            "the upgrade to ksqlDB {} failed ({}) and rolling back to {} failed: {why}; exiting so that systemd's restart policy takes over",
            failed.version, failed.reason, failed.back_to
        );
        // The state file says gave up too, as for any other give-up.
        self.give_up(why, msg).await
    }
}
