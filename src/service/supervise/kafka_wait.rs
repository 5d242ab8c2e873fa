//! What the supervisor does with the Kafka doctor (`doctor`: when it runs): start its
//! run when due, and put its first failing finding into the state file, the journal
//! (`KAFKA_DIAGNOSIS`, when new) and STATUS; drop it once ksqlDB is healthy.

use tokio::time::{sleep_until, Instant};
use tracing::info;

use super::{policy, State, Supervisor};
use crate::host::journal::{message_id, priority};
use crate::kafka::Diagnosis;
use crate::service::status::Condition;

impl Supervisor {
    /// Spawn the doctor's run (it waits until due) when one is due and none is in
    /// flight.
    pub(super) fn start_doctor(&mut self) {
        let Some(at) = self.doctor.next_run else {
            return;
        };
        if self.doctor.task.is_none() {
            let settings = self.prepared.settings.clone();
            let discovered = &self.prepared.discovered;
            let Ok(cluster) = crate::config::ClusterArn::parse(&discovered.cluster_arn) else {
                // Discovery checked it; without a cluster ARN there is nothing to name.
                self.doctor.not_needed();
                return;
            };
            let brokers = discovered.brokers.addrs.clone();
            self.doctor.task = Some(tokio::spawn(async move {
                sleep_until(at).await;
                crate::kafka::diagnose(&settings, &cluster, &brokers).await
            }));
        }
    }

    /// The agent stops: no more runs.
    pub(super) fn doctor_stop(&mut self) {
        self.doctor.not_needed();
    }

    /// After each probe: the doctor is needed while ksqlDB (running) says Kafka is
    /// unhealthy; it stops, and its finding goes, once ksqlDB is healthy.
    pub(super) fn doctor_after_probe(&mut self) {
        match self.state {
            State::Running {
                unhealthy_since: Some(since),
                ..
            } if self.status.condition() == Condition::WaitingForKafka => self.doctor.needed(since),
            State::Running { .. } if self.status.condition() == Condition::Healthy => {
                self.doctor.not_needed();
                if self.status.clear_diagnosis() {
                    self.status.publish();
                }
            }
            // Not answering for a while (perhaps Kafka too), or other checks failing:
            // as it was until ksqlDB is healthy again.
            _ => {}
        }
    }

    /// ksqlDB exited before it was ever healthy (a Kafka error at start, among others):
    /// the doctor is asked, bounded as always.
    pub(super) fn doctor_after_early_exit(&mut self) {
        self.doctor.needed(Instant::now());
    }

    /// A run ended: its finding ([`Diagnosis::cause`]) into the state, the journal (when it is
    /// new) and STATUS.
    pub(super) async fn on_diagnosed(&mut self, diagnosis: Diagnosis) {
        self.doctor.ran(Instant::now());
        let failing = diagnosis.cause();
        let before = self.status.diagnosis().and_then(|d| d.first_seen);
        self.status.doctor_ran(failing);
        self.status.publish();
        let (Some(f), Some(d)) = (failing, self.status.diagnosis().cloned()) else {
            info!(
                "the Kafka doctor found nothing wrong ({} checks passed) while ksqlDB waits for Kafka",
                diagnosis.findings.len()
            );
            return;
        };
        if before != d.first_seen {
            let opt = |v: &Option<String>| v.clone().unwrap_or_default();
            self.event(
                message_id::KAFKA_DIAGNOSIS,
                priority::WARNING,
                &format!("ksqlDB waits for Kafka: {}", f.line()),
                &[
                    ("STEP", d.step.clone()),
                    ("ACTION", opt(&d.action)),
                    ("RESOURCE", opt(&d.resource)),
                    ("SID", opt(&d.sid)),
                    ("BROKER", opt(&d.broker)),
                ],
            )
            .await;
        }
        let version = self.launch.version.clone();
        if let Some(line) = self.waiting_line(&version) {
            self.notifier.status(&line);
        }
    }

    /// `line`, then the doctor's finding while there is one (ksqlDB restarting or
    /// starting again after it exited for want of Kafka).
    pub(super) fn with_diagnosis(&self, line: String) -> String {
        match self.status.diagnosis() {
            Some(d) => format!("{line}; waiting for Kafka: {}", d.summary),
            None => line,
        }
    }

    /// STATUS with the doctor's finding:
    /// `ksqlDB 0.29.0 running, waiting for Kafka: IAM denies kafka-cluster:Connect on
    /// cluster/demo/… for arn:aws:sts::…:assumed-role/ksql-msk/i-… (for 1m 10s)`.
    pub(super) fn waiting_line(&self, version: &str) -> Option<String> {
        let d = self.status.diagnosis()?;
        Some(match self.state {
            State::Running {
                unhealthy_since: Some(since),
                ..
            } => format!(
                "ksqlDB {version} running, waiting for Kafka: {} (for {})",
                d.summary,
                policy::short(since.elapsed())
            ),
            _ => format!("ksqlDB {version} waiting for Kafka: {}", d.summary),
        })
    }
}
