//! The supervisor's decisions, as pure functions of what it observed: when to restart
//! ksqlDB and when to give up, and what a health probe's answer means. No process, no
//! clock of their own: the state machine passes `now` in, the tests pass any instant.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::AgentSettings;
use crate::ksqldb::health::Health;

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
    /// Started, never healthy yet (bounded by `agent.start_timeout`).
    Waiting,
    /// Healthy at least once since the start; `unhealthy_since`: when it last began
    /// answering that it is not healthy, if it still does.
    Running { unhealthy_since: Option<Instant> },
}

/// What the supervisor knows besides the answer.
#[derive(Debug, Clone, Copy)]
pub struct Seen {
    pub phase: Phase,
    /// When ksqlDB last answered anything (healthy or not) since its start.
    pub last_answer: Option<Instant>,
    pub now: Instant,
    pub hang_timeout: Duration,
}

/// What a probe's answer means for the supervisor. Three conditions get three answers:
/// an exit is restarted (not decided here), a hang is killed and restarted, an
/// unhealthy answer is only reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The first healthy answer since the start: READY.
    Ready,
    /// The first health report since the start says unhealthy (`isHealthy: false`: an
    /// outage at boot). The server is up, so this is READY too, in the unhealthy
    /// condition: never killed for it, `start_timeout` no longer applies.
    ReadyButUnhealthy { failing: Vec<String>, why: String },
    /// Not healthy yet; keep waiting.
    StillStarting { why: String },
    /// Healthy, as before.
    StillHealthy,
    /// Healthy again after answering unhealthy for `after`.
    Recovered { after: Duration },
    /// Answers, but not healthy: entering the condition. Never a restart.
    BecameUnhealthy { failing: Vec<String>, why: String },
    /// Still answering unhealthy, for `lasted`.
    StillUnhealthy {
        failing: Vec<String>,
        why: String,
        lasted: Duration,
    },
    /// No answer for `silent`, less than `agent.hang_timeout` yet.
    NotAnswering { why: String, silent: Duration },
    /// It answered before and has given no answer at all for `silent` >=
    /// `agent.hang_timeout`: kill and restart it.
    Hung { why: String, silent: Duration },
}

/// The health decision table.
pub fn judge(seen: Seen, health: &Health) -> Verdict {
    let why = health.reason();
    match (seen.phase, health) {
        (phase, Health::NoAnswer(_)) => match seen.last_answer {
            Some(t) if seen.now.duration_since(t) >= seen.hang_timeout => Verdict::Hung {
                why,
                silent: seen.now.duration_since(t),
            },
            // Before its first answer the JVM is still coming up: start_timeout bounds it.
            _ if phase == Phase::Waiting => Verdict::StillStarting { why },
            last => Verdict::NotAnswering {
                why,
                silent: last.map_or(Duration::ZERO, |t| seen.now.duration_since(t)),
            },
        },
        (Phase::Waiting, Health::Healthy) => Verdict::Ready,
        (Phase::Waiting, Health::Unhealthy { failing, .. }) => Verdict::ReadyButUnhealthy {
            failing: failing.clone(),
            why,
        },
        (Phase::Waiting, _) => Verdict::StillStarting { why },
        (Phase::Running { unhealthy_since }, Health::Healthy) => match unhealthy_since {
            None => Verdict::StillHealthy,
            Some(t) => Verdict::Recovered {
                after: seen.now.duration_since(t),
            },
        },
        (Phase::Running { unhealthy_since }, answered) => {
            let failing = match answered {
                Health::Unhealthy { failing, .. } => failing.clone(),
                _ => Vec::new(),
            };
            match unhealthy_since {
                None => Verdict::BecameUnhealthy { failing, why },
                Some(t) => Verdict::StillUnhealthy {
                    failing,
                    why,
                    lasted: seen.now.duration_since(t),
                },
            }
        }
    }
}

/// A duration as STATUS shows it: `37s`, `4m12s`, `2h5m`.
pub fn short(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
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

    fn seen(phase: Phase, last_answer: Option<u64>, now: u64) -> (Seen, Instant) {
        let t0 = Instant::now();
        (
            Seen {
                phase,
                last_answer: last_answer.map(|s| t0 + secs(s)),
                now: t0 + secs(now),
                hang_timeout: secs(120),
            },
            t0,
        )
    }

    #[test]
    fn waiting_for_the_first_healthy_answer() {
        let (s, _) = seen(Phase::Waiting, None, 5);
        assert_eq!(judge(s, &Health::Healthy), Verdict::Ready);
        // Up, answering its health report, but Kafka fails: started, unhealthy.
        let kafka = Health::Unhealthy {
            failing: vec!["kafka".into()],
            why: None,
        };
        assert_eq!(
            judge(s, &kafka),
            Verdict::ReadyButUnhealthy {
                failing: vec!["kafka".into()],
                why: "ksqlDB reports unhealthy: kafka".into()
            }
        );
        let starting = Health::NotReady("ksqlDB is still starting (503)".into());
        assert_eq!(
            judge(s, &starting),
            Verdict::StillStarting {
                why: "ksqlDB is still starting (503)".into()
            }
        );
        // Never answered: not a hang however long (start_timeout bounds it).
        let (s, _) = seen(Phase::Waiting, None, 3600);
        let refused = Health::NoAnswer("ksqlDB is not listening".into());
        assert!(matches!(judge(s, &refused), Verdict::StillStarting { .. }));
        // Answered 503, then nothing for hang_timeout: hung even before READY.
        let (s, _) = seen(Phase::Waiting, Some(10), 130);
        assert_eq!(
            judge(s, &refused),
            Verdict::Hung {
                why: "ksqlDB is not listening".into(),
                silent: secs(120)
            }
        );
    }

    #[test]
    fn an_unhealthy_answer_is_reported_never_a_restart() {
        let kafka = Health::Unhealthy {
            failing: vec!["kafka".into(), "commandRunner".into()],
            why: None,
        };
        let healthy = Phase::Running {
            unhealthy_since: None,
        };
        let (s, t0) = seen(healthy, Some(99), 100);
        assert_eq!(
            judge(s, &kafka),
            Verdict::BecameUnhealthy {
                failing: vec!["kafka".into(), "commandRunner".into()],
                why: "ksqlDB reports unhealthy: kafka, commandRunner".into()
            }
        );
        // Hours of it: still only reported.
        let s = Seen {
            phase: Phase::Running {
                unhealthy_since: Some(t0 + secs(100)),
            },
            last_answer: Some(t0 + secs(7299)),
            now: t0 + secs(7300),
            hang_timeout: secs(120),
        };
        assert_eq!(
            judge(s, &kafka),
            Verdict::StillUnhealthy {
                failing: vec!["kafka".into(), "commandRunner".into()],
                why: "ksqlDB reports unhealthy: kafka, commandRunner".into(),
                lasted: secs(7200)
            }
        );
        assert_eq!(
            judge(s, &Health::Healthy),
            Verdict::Recovered { after: secs(7200) }
        );
        // A 503 after READY is an answer too: unhealthy, with no checks named.
        let (s, _) = seen(healthy, Some(99), 100);
        let busy = Health::NotReady("ksqlDB is still starting (503)".into());
        assert!(matches!(
            judge(s, &busy),
            Verdict::BecameUnhealthy { failing, .. } if failing.is_empty()
        ));
        assert_eq!(judge(s, &Health::Healthy), Verdict::StillHealthy);
    }

    #[test]
    fn no_answer_is_a_hang_only_after_hang_timeout() {
        let timeout = Health::NoAnswer("health check timed out".into());
        let running = Phase::Running {
            unhealthy_since: None,
        };
        let (s, _) = seen(running, Some(100), 219);
        assert_eq!(
            judge(s, &timeout),
            Verdict::NotAnswering {
                why: "health check timed out".into(),
                silent: secs(119)
            }
        );
        let (s, _) = seen(running, Some(100), 220);
        assert_eq!(
            judge(s, &timeout),
            Verdict::Hung {
                why: "health check timed out".into(),
                silent: secs(120)
            }
        );
        // Unhealthy, then silent: the silence decides.
        let (mut s, t0) = seen(running, Some(100), 230);
        s.phase = Phase::Running {
            unhealthy_since: Some(t0 + secs(50)),
        };
        assert!(matches!(judge(s, &timeout), Verdict::Hung { .. }));
    }

    #[test]
    fn short_durations() {
        assert_eq!(short(secs(37)), "37s");
        assert_eq!(short(secs(252)), "4m12s");
        assert_eq!(short(secs(7500)), "2h05m");
    }
}
