//! Progress of long phases, reported to whoever watches: the log always, and under
//! `ksql-msk run` also systemd's STATUS= line (and EXTEND_TIMEOUT_USEC while bytes flow).

/// A sink for progress reports. Implementations must be cheap: downloads call
/// `transfer` often (callers rate-limit log lines, not these calls).
pub trait Progress: Send + Sync {
    /// A phase starts: "discovering brokers", "verifying ksqlDB 0.29.0", ...
    fn phase(&self, status: &str);
    /// Bytes moved for one download.
    fn transfer(&self, name: &str, done: u64, total: Option<u64>, bytes_per_sec: f64);
}

/// Reports nowhere (command-line use: the log lines suffice).
pub struct Quiet;

impl Progress for Quiet {
    fn phase(&self, _status: &str) {}
    fn transfer(&self, _name: &str, _done: u64, _total: Option<u64>, _bytes_per_sec: f64) {}
}
