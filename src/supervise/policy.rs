//! The supervisor's decisions, as pure functions of what it observed: when to restart
//! ksqlDB and when to give up, and what a health probe's answer means. No process, no
//! clock of their own: the state machine passes `now` in, the tests pass any instant.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::AgentSettings;
use crate::health::Health;

/// What to do after ksqlDB failed (exited, never became healthy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Start it again after `delay`; this was failure `count` within the window.
    Restart { delay: Duration, count: usize },
    /// More than `agent.restart_limit` failures within `agent.restart_window`.
    GiveUp { count: usize },
}

/// The `agent.restart_*` settings the policy applies (read again on every decision: a
/// reload may change them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub backoff: Duration,
    pub backoff_max: Duration,
    pub limit: u32,
    pub window: Duration,
}

impl Limits {
    pub fn of(agent: &AgentSettings) -> Limits {
        Limits {
            backoff: agent.restart_backoff,
            backoff_max: agent.restart_backoff_max,
            limit: agent.restart_limit,
            window: agent.restart_window,
        }
    }
}

/// Exponential backoff between restarts, and a limit on failures within a window.
#[derive(Debug)]
pub struct RestartPolicy {
    failures: VecDeque<Instant>,
    backoff: Duration,
}

impl RestartPolicy {
    pub fn new(limits: Limits) -> RestartPolicy {
        RestartPolicy {
            failures: VecDeque::new(),
            backoff: limits.backoff,
        }
    }

    /// Count a failure at `now`.
    pub fn failed(&mut self, agent: Limits, now: Instant) -> AfterFailure {
        self.failures.push_back(now);
        while self
            .failures
            .front()
            .is_some_and(|t| now.duration_since(*t) > agent.window)
        {
            self.failures.pop_front();
        }
        let count = self.failures.len();
        if count > agent.limit as usize {
            return AfterFailure::GiveUp { count };
        }
        let delay = self.backoff;
        self.backoff = (self.backoff * 2).min(agent.backoff_max);
        AfterFailure::Restart { delay, count }
    }

    /// ksqlDB has been healthy since `since`: once that lasted `restart_backoff_max`,
    /// the next failure starts the backoff from the beginning again.
    pub fn healthy_since(&mut self, agent: Limits, since: Instant, now: Instant) {
        if now.duration_since(since) >= agent.backoff_max {
            self.backoff = agent.backoff;
        }
    }
}

/// Where ksqlDB stands when a probe's answer arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Started, never healthy yet.
    Waiting,
    /// Healthy at least once since the start; `healthy`: the last verdict.
    Running { healthy: bool },
}

/// What a probe's answer means for the supervisor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The first healthy answer since the start: READY.
    Ready,
    /// Not healthy yet; keep waiting (bounded by `agent.start_timeout`).
    StillStarting { why: String },
    /// Healthy, as before.
    StillHealthy,
    /// Healthy again after being unhealthy.
    Recovered,
    /// Was healthy, is not now.
    BecameUnhealthy { why: String },
    /// Still not healthy.
    StillUnhealthy { why: String },
}

/// The health decision table.
pub fn judge(phase: Phase, health: &Health) -> Verdict {
    match (phase, health) {
        (Phase::Waiting, Health::Healthy) => Verdict::Ready,
        (Phase::Waiting, Health::NotReady(why)) => Verdict::StillStarting { why: why.clone() },
        (Phase::Running { healthy: true }, Health::Healthy) => Verdict::StillHealthy,
        (Phase::Running { healthy: false }, Health::Healthy) => Verdict::Recovered,
        (Phase::Running { healthy: true }, Health::NotReady(why)) => {
            Verdict::BecameUnhealthy { why: why.clone() }
        }
        (Phase::Running { healthy: false }, Health::NotReady(why)) => {
            Verdict::StillUnhealthy { why: why.clone() }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent() -> Limits {
        Limits {
            backoff: secs(2),
            backoff_max: secs(10),
            limit: 3,
            window: secs(60),
        }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn backoff_doubles_to_its_cap_then_gives_up_past_the_limit() {
        let a = agent();
        let t0 = Instant::now();
        let mut p = RestartPolicy::new(a);
        let got: Vec<AfterFailure> = (0..4).map(|i| p.failed(a, t0 + secs(i))).collect();
        assert_eq!(
            got,
            [
                AfterFailure::Restart {
                    delay: secs(2),
                    count: 1
                },
                AfterFailure::Restart {
                    delay: secs(4),
                    count: 2
                },
                AfterFailure::Restart {
                    delay: secs(8),
                    count: 3
                },
                AfterFailure::GiveUp { count: 4 },
            ]
        );
    }

    #[test]
    fn failures_older_than_the_window_do_not_count() {
        let a = agent();
        let t0 = Instant::now();
        let mut p = RestartPolicy::new(a);
        for i in 0..3 {
            p.failed(a, t0 + secs(i));
        }
        // 61 s after the first three: they left the 60 s window.
        assert_eq!(
            p.failed(a, t0 + secs(63)),
            AfterFailure::Restart {
                delay: secs(10),
                count: 1
            }
        );
    }

    #[test]
    fn a_long_healthy_run_resets_the_backoff() {
        let a = Limits {
            limit: 10,
            ..agent()
        };
        let t0 = Instant::now();
        let mut p = RestartPolicy::new(a);
        p.failed(a, t0);
        p.failed(a, t0 + secs(1));
        p.healthy_since(a, t0 + secs(5), t0 + secs(9));
        assert_eq!(
            p.failed(a, t0 + secs(10)),
            AfterFailure::Restart {
                delay: secs(8),
                count: 3
            },
            "healthy for 4 s < restart_backoff_max: no reset"
        );
        p.healthy_since(a, t0 + secs(20), t0 + secs(30));
        assert_eq!(
            p.failed(a, t0 + secs(31)),
            AfterFailure::Restart {
                delay: secs(2),
                count: 4
            },
            "healthy for 10 s = restart_backoff_max: the delay starts over, the count does not"
        );
    }

    #[test]
    fn health_decision_table() {
        let ok = Health::Healthy;
        let bad = Health::NotReady("ksqlDB reports unhealthy: kafka".into());
        let why = "ksqlDB reports unhealthy: kafka".to_string();
        assert_eq!(judge(Phase::Waiting, &ok), Verdict::Ready);
        assert_eq!(
            judge(Phase::Waiting, &bad),
            Verdict::StillStarting { why: why.clone() }
        );
        assert_eq!(
            judge(Phase::Running { healthy: true }, &ok),
            Verdict::StillHealthy
        );
        assert_eq!(
            judge(Phase::Running { healthy: false }, &ok),
            Verdict::Recovered
        );
        assert_eq!(
            judge(Phase::Running { healthy: true }, &bad),
            Verdict::BecameUnhealthy { why: why.clone() }
        );
        assert_eq!(
            judge(Phase::Running { healthy: false }, &bad),
            Verdict::StillUnhealthy { why }
        );
    }
}
