//! systemd's notification protocol (sd_notify(3)): READY, STATUS, RELOADING, STOPPING,
//! WATCHDOG and EXTEND_TIMEOUT_USEC, sent in-process with the `sd-notify` crate.
//!
//! A missing `NOTIFY_SOCKET` is normal outside systemd: every call is then a no-op.
//! Send errors are logged once at debug level and otherwise ignored: a broken notify
//! socket must not stop ksqlDB.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use sd_notify::NotifyState;

use crate::progress::Progress;

/// How far each EXTEND_TIMEOUT_USEC pushes systemd's start/stop/reload timeout. We send
/// one at least this often while progress is made, so a stalled phase still times out.
pub const EXTEND_WINDOW: Duration = Duration::from_secs(90);
/// Minimum gap between two progress STATUS updates for downloads.
const TRANSFER_STATUS_EVERY: Duration = Duration::from_secs(1);

/// Sends notifications to the service manager, if there is one.
pub struct Notifier {
    enabled: bool,
    watchdog: Option<Duration>,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    status: String,
    last_transfer: Option<Instant>,
    /// True while systemd is timing a start, reload or stop of ours.
    in_transition: bool,
}

impl Notifier {
    /// From the environment systemd sets: `NOTIFY_SOCKET`, `WATCHDOG_USEC`, `WATCHDOG_PID`.
    pub fn from_env() -> Notifier {
        let enabled = std::env::var_os("NOTIFY_SOCKET").is_some_and(|s| !s.is_empty());
        Notifier {
            enabled,
            watchdog: watchdog_from_env(),
            inner: Mutex::new(Inner {
                in_transition: true,
                ..Inner::default()
            }),
        }
    }

    /// How often to send WATCHDOG=1: half of `WATCHDOG_USEC`, if the watchdog is on.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog.map(|d| d / 2)
    }

    fn send(&self, states: &[NotifyState]) {
        if !self.enabled {
            return;
        }
        if let Err(e) = sd_notify::notify(false, states) {
            tracing::debug!("sd_notify failed: {e}");
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock only means another thread panicked mid-update of a status
        // string; the data is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// STATUS=, only when it changed; with EXTEND_TIMEOUT_USEC while systemd is timing us.
    pub fn status(&self, status: &str) {
        let extend = {
            let mut inner = self.lock();
            if inner.status == status {
                return;
            }
            inner.status = status.to_string();
            inner.in_transition
        };
        tracing::debug!(status, "status");
        let status = NotifyState::Status(status);
        if extend {
            self.send(&[status, extend_state()]);
        } else {
            self.send(&[status]);
        }
    }

    /// EXTEND_TIMEOUT_USEC while a start, reload or stop makes progress.
    pub fn extend(&self) {
        if self.lock().in_transition {
            self.send(&[extend_state()]);
        }
    }

    /// EXTEND_TIMEOUT_USEC by `d` (stopping: the grace period plus a margin).
    pub fn extend_by(&self, d: Duration) {
        self.send(&[NotifyState::ExtendTimeoutUsec(usec_u32(d))]);
    }

    /// READY=1 with a status line: the service (or the reload) is done.
    pub fn ready(&self, status: &str) {
        let mut inner = self.lock();
        inner.in_transition = false;
        inner.status = status.to_string();
        drop(inner);
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// RELOADING=1 with MONOTONIC_USEC, as `Type=notify-reload` expects.
    pub fn reloading(&self) {
        self.lock().in_transition = true;
        match NotifyState::monotonic_usec_now() {
            Ok(now) => self.send(&[
                NotifyState::Reloading,
                now,
                NotifyState::Status("reloading"),
            ]),
            Err(e) => {
                tracing::debug!("CLOCK_MONOTONIC: {e}");
                self.send(&[NotifyState::Reloading, NotifyState::Status("reloading")]);
            }
        }
    }

    /// STOPPING=1.
    pub fn stopping(&self, status: &str) {
        let mut inner = self.lock();
        inner.in_transition = true;
        inner.status = status.to_string();
        drop(inner);
        self.send(&[NotifyState::Stopping, NotifyState::Status(status)]);
    }

    /// WATCHDOG=1: the agent's own event loop is alive (never a statement about
    /// ksqlDB's health: an MSK outage must not get the service killed).
    pub fn watchdog(&self) {
        self.send(&[NotifyState::Watchdog]);
    }
}

fn usec_u32(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

fn extend_state() -> NotifyState<'static> {
    NotifyState::ExtendTimeoutUsec(usec_u32(EXTEND_WINDOW))
}

/// `WATCHDOG_USEC`, if set and meant for us (`WATCHDOG_PID` absent or ours), as
/// sd_watchdog_enabled(3) reads it.
fn watchdog_from_env() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    if usec == 0 {
        return None;
    }
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
            return None;
        }
    }
    Some(Duration::from_micros(usec))
}

/// Human-readable transfer status: `downloading ksqlDB archive: 45% at 80.0 MB/s`.
pub fn transfer_status(name: &str, done: u64, total: Option<u64>, bytes_per_sec: f64) -> String {
    let rate = bytes_per_sec / 1_000_000.0;
    match total {
        Some(t) if t > 0 => {
            let pct = (done.saturating_mul(100) / t).min(100);
            format!("downloading {name}: {pct}% at {rate:.1} MB/s")
        }
        _ => format!(
            "downloading {name}: {:.1} MB at {rate:.1} MB/s",
            done as f64 / 1_000_000.0
        ),
    }
}

impl Progress for Notifier {
    fn phase(&self, status: &str) {
        self.status(status);
    }

    fn transfer(&self, name: &str, done: u64, total: Option<u64>, bytes_per_sec: f64) {
        {
            let mut inner = self.lock();
            let now = Instant::now();
            let finished = total.is_some_and(|t| done >= t);
            if !finished
                && inner
                    .last_transfer
                    .is_some_and(|t| now.duration_since(t) < TRANSFER_STATUS_EVERY)
            {
                return;
            }
            inner.last_transfer = Some(now);
        }
        self.status(&transfer_status(name, done, total, bytes_per_sec));
    }
}

/// When WATCHDOG=1 is next due: every [`Notifier::watchdog_interval`], from a timer
/// on the agent's event loop (and from its waits for ksqlDB to stop).
#[derive(Debug)]
pub struct Watchdog {
    interval: Option<Duration>,
    next: tokio::time::Instant,
}

impl Watchdog {
    pub fn new(notifier: &Notifier) -> Watchdog {
        Watchdog {
            interval: notifier.watchdog_interval(),
            next: tokio::time::Instant::now(),
        }
    }

    /// When the next ping is due; `None` without a watchdog.
    pub fn due(&self) -> Option<tokio::time::Instant> {
        self.interval.map(|_| self.next)
    }

    /// Ping if due.
    pub fn tick(&mut self, notifier: &Notifier) {
        let Some(interval) = self.interval else {
            return;
        };
        let now = tokio::time::Instant::now();
        if now >= self.next {
            notifier.watchdog();
            self.next = now + interval;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfer_lines() {
        assert_eq!(
            transfer_status("ksqlDB archive", 45, Some(100), 80_000_000.0),
            "downloading ksqlDB archive: 45% at 80.0 MB/s"
        );
        assert_eq!(
            transfer_status("jar", 2_500_000, None, 1_250_000.0),
            "downloading jar: 2.5 MB at 1.2 MB/s"
        );
    }

    #[test]
    fn big_durations_saturate() {
        assert_eq!(usec_u32(Duration::from_secs(90)), 90_000_000);
        assert_eq!(usec_u32(Duration::from_secs(1 << 40)), u32::MAX);
    }
}
