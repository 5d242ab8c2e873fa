//! Named failure points for crash-consistency tests, compiled only with the
//! `failpoints` cargo feature (the shipped binary has none: [`hit`] is an empty inline
//! function there).
//!
//! `KSQL_MSK_FAILPOINTS=name=action[;name=action...]` arms points, where action is
//! `kill` (SIGKILL this process: a crash, no cleanup, no destructors), `error` (the
//! step fails with an ordinary error, as a full disk would), `panic` (a bug: the panic
//! hook's exit 70) or `kill@N` / `error@N` / `panic@N` (act on the N-th hit, 1-based;
//! for points inside loops). Every hit of an armed point
//! is announced on stderr first, so a test can tell that the point was reached.

/// Every failure point of the agent, in the order an install meets them. The tests
/// iterate over this list, so a point added in code without being listed here (or
/// listed without existing) fails them.
pub const POINTS: &[&str] = &[
    "install.after_download",
    "unpack.mid_archive",
    "install.before_manifest",
    "install.before_staging_rename",
    "install.after_staging_rename",
    "upgrade.before_backup_copy",
    "upgrade.mid_backup_copy",
    "install.before_current_swap",
    "install.after_current_swap",
    "fsutil.mid_write",
    "properties.before_write",
    "properties.mid_write",
    "properties.after_write",
];

/// The failure point of the status recorder's background writes (status.json, the
/// metrics textfile). Not in [`POINTS`]: an install does not meet it, and a test that
/// arms `fsutil.mid_write` must not have it taken by a status write that happens to
/// come first.
pub const STATUS_POINT: &str = "status.mid_write";

#[cfg(feature = "failpoints")]
mod armed {
    use std::collections::HashMap;
    use std::sync::atomic::AtomicU64;
    use std::sync::{Mutex, OnceLock};

    pub struct Arm {
        pub kill: bool,
        pub panic: bool,
        pub nth: u64,
        pub hits: AtomicU64,
    }

    pub fn table() -> &'static HashMap<String, Arm> {
        static TABLE: OnceLock<HashMap<String, Arm>> = OnceLock::new();
        TABLE.get_or_init(|| {
            let spec = std::env::var("KSQL_MSK_FAILPOINTS").unwrap_or_default();
            spec.split(';')
                .filter_map(|item| {
                    let (name, action) = item.trim().split_once('=')?;
                    let (what, nth) = match action.split_once('@') {
                        Some((w, n)) => (w, n.parse().unwrap_or(1)),
                        None => (action, 1),
                    };
                    Some((
                        name.to_string(),
                        Arm {
                            kill: what == "kill",
                            panic: what == "panic",
                            nth,
                            hits: AtomicU64::new(0),
                        },
                    ))
                })
                .collect()
        })
    }

    pub static STDERR: Mutex<()> = Mutex::new(());
}

/// Pass the failure point `name`: with the feature and the point armed, crash or
/// return an error here. `name` must be listed in [`POINTS`] (or be [`STATUS_POINT`]).
#[cfg(feature = "failpoints")]
pub fn hit(name: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::sync::atomic::Ordering;
    debug_assert!(
        POINTS.contains(&name) || name == STATUS_POINT,
        "unlisted failure point {name}"
    );
    let Some(arm) = armed::table().get(name) else {
        return Ok(());
    };
    let n = arm.hits.fetch_add(1, Ordering::SeqCst) + 1;
    if n != arm.nth {
        return Ok(());
    }
    {
        let _g = armed::STDERR.lock();
        let _ = writeln!(std::io::stderr(), "ksql-msk: failpoint {name} hit");
    }
    if arm.kill {
        // SAFETY: plain syscalls; SIGKILL cannot be caught, nothing runs after it.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    }
    if arm.panic {
        panic!("failpoint {name}: injected panic");
    }
    Err(anyhow::anyhow!("failpoint {name}: injected failure"))
}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit(_name: &str) -> anyhow::Result<()> {
    Ok(())
}
