//! The agent's own output on stdout and stderr, and the panic hook.
//!
//! `println!` and `eprintln!` panic when their stream cannot be written (`>/dev/full`,
//! a closed pipe while SIGPIPE is ignored), and a panic exits 101, which systemd's
//! `RestartPreventExitStatus=` does not know: a config error would be restarted for
//! ever. Here a command's result on stdout that cannot be written is EX_IOERR (74),
//! and notes, warnings and the final error line on stderr are best-effort.

use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::exit::{fail, ExitCode};

/// Write to stdout and flush; a failure is EX_IOERR. Use through [`outln!`](crate::outln).
pub fn stdout(args: fmt::Arguments<'_>) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(args)
        .and_then(|()| out.flush())
        .map_err(|e| fail(ExitCode::Io, format!("writing to stdout: {e}")))
}

/// Write to stderr if it can be written; nothing else to do when it cannot. Use
/// through [`errln!`](crate::errln).
pub fn stderr(args: fmt::Arguments<'_>) {
    let _ = std::io::stderr().lock().write_fmt(args);
}

/// `println!` that returns `Err` (exit 74) instead of panicking.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::host::output::stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` that returns `Err` (exit 74) instead of panicking.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::host::output::stdout(format_args!($($arg)*))
    };
}

/// `eprintln!` that never panics: a line nobody can read is dropped.
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::host::output::stderr(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// A panic anywhere (the main thread, a tokio worker, a helper thread) writes one
/// best-effort line and exits EX_SOFTWARE (70), never 101.
///
/// Also on tokio workers, which would otherwise catch a task's panic and let the agent
/// run on without that task (a log forwarder, the signal or watchdog loop) while it
/// still tells systemd it is ready: a panic is a bug, the agent's state after it is
/// unknown, and a clean restart by systemd (70 is not in `RestartPreventExitStatus=`;
/// ksqlDB dies with the agent through `PR_SET_PDEATHSIG`) is the one safe answer.
/// The line goes to stderr with an sd-daemon(3) `<3>` prefix when stderr is the
/// journal, so that it is recorded at priority err.
pub fn install_panic_hook() {
    static PANICKING: AtomicBool = AtomicBool::new(false);
    std::panic::set_hook(Box::new(|info| {
        // A second panic while the first one exits: let the first one finish.
        if PANICKING.swap(true, Ordering::SeqCst) {
            loop {
                std::thread::park();
            }
        }
        let payload = info.payload();
        let what = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(no message)");
        let what = what.replace('\n', " ");
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let prefix = if crate::host::journal::stderr_is_journal() {
            "<3>"
        } else {
            ""
        };
        stderr(format_args!(
            "{prefix}ksql-msk: error: internal error (a bug): {what}{at}; exiting {}\n",
            ExitCode::Software.code()
        ));
        std::process::exit(ExitCode::Software.code());
    }));
}
