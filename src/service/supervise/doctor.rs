//! The Kafka doctor in phase 6 (DESIGN.md): while ksqlDB says Kafka is unhealthy for
//! longer than [`GRACE`], or after it exited before it was ever healthy, the agent asks
//! the brokers itself ([`crate::kafka::diagnose`], the probes of `ksql-msk check`) and
//! shows the first failing finding in STATUS, the journal (`KAFKA_DIAGNOSIS`),
//! `status --json` (`kafka.diagnosis`) and the metrics textfile, until ksqlDB is
//! healthy again. At most once a minute, then less often (doubling up to
//! [`MAX_INTERVAL`]) while the condition lasts; never while ksqlDB is healthy.
//!
//! Here: when it runs. `kafka_wait`: what the supervisor does with it.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::kafka::Diagnosis;

/// How long ksqlDB may say Kafka is unhealthy before the doctor is asked: a broker
/// restart in MSK maintenance passes within it.
const GRACE: Duration = Duration::from_secs(10);
/// The shortest gap between two runs.
const MIN_INTERVAL: Duration = Duration::from_secs(60);
/// The longest gap while the condition lasts.
const MAX_INTERVAL: Duration = Duration::from_secs(600);

/// When the doctor runs next, and the run in flight.
#[derive(Default)]
pub(super) struct Doctor {
    /// When the next run is due; `None`: not needed (ksqlDB is healthy).
    pub(super) next_run: Option<Instant>,
    /// The gap after the next run.
    interval: Duration,
    last_run: Option<Instant>,
    /// The run in flight (or waiting for `next_run`), as a task so that other events
    /// never cancel it.
    pub(super) task: Option<JoinHandle<Diagnosis>>,
}

impl Doctor {
    /// The condition that calls for the doctor holds since `since` (nothing changes
    /// when a run is already due).
    pub(super) fn needed(&mut self, since: Instant) {
        if self.next_run.is_some() {
            return;
        }
        let mut at = since + GRACE;
        if let Some(last) = self.last_run {
            at = at.max(last + MIN_INTERVAL);
        }
        self.next_run = Some(at);
        self.interval = MIN_INTERVAL;
    }

    /// ksqlDB is healthy (or gone for good): no more runs; one in flight is dropped.
    pub(super) fn not_needed(&mut self) {
        self.next_run = None;
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    /// A run ended at `now`: the next one after the interval, which doubles.
    pub(super) fn ran(&mut self, now: Instant) {
        self.task = None;
        self.last_run = Some(now);
        if self.next_run.is_some() {
            self.next_run = Some(now + self.interval);
            self.interval = (self.interval * 2).min(MAX_INTERVAL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_after_the_grace_then_at_most_once_a_minute_with_backoff() {
        let t0 = Instant::now();
        let mut d = Doctor::default();
        assert_eq!(d.next_run, None);
        d.needed(t0);
        assert_eq!(d.next_run, Some(t0 + GRACE));
        // Already due: a later call changes nothing.
        d.needed(t0 + Duration::from_secs(5));
        assert_eq!(d.next_run, Some(t0 + GRACE));
        let mut now = t0 + GRACE;
        let mut gaps = Vec::new();
        for i in 0..6 {
            d.ran(now);
            let next = d.next_run.unwrap();
            gaps.push((next - now).as_secs());
            if i < 5 {
                now = next;
            }
        }
        assert_eq!(gaps, [60, 120, 240, 480, 600, 600]);
        // Healthy, then waiting again at once: still a minute after the last run.
        d.not_needed();
        assert_eq!(d.next_run, None);
        d.needed(now + Duration::from_secs(1));
        assert_eq!(d.next_run, Some(now + MIN_INTERVAL));
        // A run that ends after the doctor was no longer needed schedules nothing.
        d.not_needed();
        d.ran(now + Duration::from_secs(2));
        assert_eq!(d.next_run, None);
    }
}
