//! The agent's own log: journald when stderr is connected to the journal (what systemd
//! sets up for a service), else plain lines on stderr.

use tracing_journald::{Priority, PriorityMappings};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

use crate::cli::args::LogFormat;

/// Whether `format` sends the agent's log to the journal.
pub fn wants_journal(format: LogFormat) -> bool {
    match format {
        LogFormat::Journald => true,
        LogFormat::Stderr => false,
        LogFormat::Auto => crate::host::journal::stderr_is_journal(),
    }
}

/// Journal priorities of the agent's log levels. tracing-journald's default sends INFO
/// as NOTICE (5), so `journalctl -p notice` would show every routine line; here INFO
/// is informational (6) and what deserves a human's attention is sent at NOTICE on
/// purpose by [`crate::host::journal::Sink`] (e.g. HEALTHY, BROKERS_CHANGED).
pub fn priority_mappings() -> PriorityMappings {
    PriorityMappings {
        error: Priority::Error,
        warn: Priority::Warning,
        info: Priority::Informational,
        debug: Priority::Debug,
        trace: Priority::Debug,
    }
}

/// Set up the global subscriber. Returns true when logging to journald.
pub fn init(format: LogFormat) -> bool {
    let filter = EnvFilter::try_from_env("KSQL_MSK_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let want_journal = match format {
        LogFormat::Journald => true,
        LogFormat::Stderr => false,
        LogFormat::Auto => crate::host::journal::stderr_is_journal(),
    };
    if want_journal {
        if let Ok(layer) = tracing_journald::layer() {
            // No "F_" prefix on fields: operators filter on e.g. CLUSTER= directly.
            // Send errors are dropped by the layer itself (a journald that went away
            // mid-run loses lines, it cannot panic or stop the agent; SIGPIPE is
            // ignored under `run` and a datagram socket raises none anyway).
            let layer = layer
                .with_syslog_identifier("ksql-msk".to_string())
                .with_field_prefix(None)
                .with_priority_mappings(priority_mappings());
            let _ = tracing_subscriber::registry()
                .with(filter)
                .with(layer)
                .try_init();
            return true;
        }
    }
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .with_ansi(false)
        // Log lines are best-effort. With this on, a failed write is reported with
        // eprintln!, which panics when stderr itself is what failed (`2>/dev/full`).
        // tracing-subscriber 0.3.23 defaults to off (its docs still say on): pinned here.
        .log_internal_errors(false);
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .try_init();
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_priorities_follow_syslog_levels() {
        let m = priority_mappings();
        // The discriminants are the ASCII digits the layer writes as PRIORITY=.
        let got = [m.error, m.warn, m.info, m.debug, m.trace].map(|p| p as u8);
        assert_eq!(got, *b"34677");
    }
}
