//! Soak (docs/RELIABILITY.md): the supervisor restarts a ksqlDB stand-in that exits
//! right after it starts, `KSQL_MSK_SOAK_CYCLES` times (default 1000), with a 1 ms
//! backoff. The agent's open descriptors, threads and RSS must not grow, no exited
//! child may stay a zombie, and every exit must reach the journal.

use std::time::{Duration, Instant};

use crate::support::fixture::{alive, wait_for, Fixture};

const EXITED_ID: &str = "c2d9e6a1f4b3480d9e7c6b5a4f3e2d10";

#[derive(Debug, Clone, Copy)]
struct Usage {
    fds: usize,
    threads: usize,
    rss_kib: u64,
}

fn status_field(pid: u32, name: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
}

fn usage(pid: u32) -> Usage {
    Usage {
        fds: std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count(),
        threads: status_field(pid, "Threads:") as usize,
        rss_kib: status_field(pid, "VmRSS:"),
    }
}

/// Children of `pid` that exited and were not reaped.
fn zombies(pid: u32) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| {
                    let rest = s.rsplit_once(')')?.1.trim_start().to_string();
                    let mut it = rest.split(' ');
                    let state = it.next()?.to_string();
                    let ppid: u32 = it.next()?.parse().ok()?;
                    Some(ppid == pid && state == "Z")
                })
                .unwrap_or(false)
        })
        .count()
}

/// The fewest zombies over a few looks: one just-exited child may be caught before
/// the agent reaps it; a leak shows in every look.
fn settled_zombies(pid: u32) -> usize {
    (0..5)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(5));
            zombies(pid)
        })
        .min()
        .unwrap_or(0)
}

#[test]
fn a_thousand_crash_restart_cycles_leak_nothing() {
    let cycles: usize = std::env::var("KSQL_MSK_SOAK_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let warmup = 50.min(cycles / 4).max(1);
    let mut fx = Fixture::new(
        "restart_backoff = \"1ms\"\nrestart_backoff_max = \"1ms\"\n\
         restart_limit = 1000000\nrestart_window = \"1s\"\n",
    );
    fx.mode("exit_after_ms=1\nexit_code=3\n");
    let journal = fx.journal_socket();
    let mut agent = fx.start();
    let pid = agent.child.id();
    let started = Instant::now();
    let deadline = Duration::from_secs(30 + cycles as u64 / 4);
    let wait_cycles = |n: usize| {
        let t = Instant::now();
        while fx.pids().len() < n {
            assert!(
                t.elapsed() < deadline,
                "only {} of {n} starts; stderr:\n{}",
                fx.pids().len(),
                agent.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_cycles(warmup);
    let before = usage(pid);
    let zombies_before = settled_zombies(pid);
    wait_cycles(cycles);
    let after = usage(pid);
    let zombies_after = settled_zombies(pid);
    let elapsed = started.elapsed();
    assert_eq!(agent.stop(), 0, "{}", agent.stderr());
    let starts = fx.pids();
    for p in &starts {
        assert!(!alive(*p), "stand-in {p} outlived the agent");
    }
    // Every exit but possibly the last (the stop may have caught it running) is an
    // EXITED journal event.
    wait_for("the journal to drain", || {
        journal
            .entries()
            .iter()
            .filter(|e| e.get("MESSAGE_ID").map(String::as_str) == Some(EXITED_ID))
            .count()
            >= starts.len() - 1
    });
    let exited = journal
        .entries()
        .iter()
        .filter(|e| e.get("MESSAGE_ID").map(String::as_str) == Some(EXITED_ID))
        .count();
    eprintln!(
        "soak: {} crash/restart cycles in {:.1}s; after {warmup}: {before:?}, zombies \
         {zombies_before}; after {}: {after:?}, zombies {zombies_after}; {exited} EXITED \
         journal events",
        starts.len(),
        elapsed.as_secs_f64(),
        starts.len(),
    );
    assert!(
        after.fds <= before.fds + 2,
        "open descriptors grew: {before:?} -> {after:?}"
    );
    // Blocking-pool threads come and go with the load (tokio keeps an idle one for 10 s,
    // and a slow fsync under load needs more at once), so the count is bounded, not
    // compared: the main thread, 2 workers, the agent's cap on blocking threads
    // (src/cli/app.rs) and one transient helper thread. A leak passes that over 950 cycles.
    assert!(
        after.threads <= 1 + 2 + ksql_msk::cli::app::MAX_BLOCKING_THREADS + 1,
        "threads grew past the runtime's bound: {before:?} -> {after:?}"
    );
    assert!(
        after.rss_kib <= before.rss_kib + 4096,
        "RSS grew by more than 4 MiB: {before:?} -> {after:?}"
    );
    assert!(zombies_after <= 1, "{zombies_after} zombies");
    // At least one event per exit is what the wait above checked; each exit is also
    // reported once, for a child the stand-in recorded. Only the last one may be
    // missing from its record: the stop can catch it before it wrote its pid.
    let reported: Vec<i32> = journal
        .entries()
        .iter()
        .filter(|e| e.get("MESSAGE_ID").map(String::as_str) == Some(EXITED_ID))
        .filter_map(|e| e.get("PID")?.parse().ok())
        .collect();
    assert_eq!(reported.len(), exited, "EXITED events without a PID");
    let mut distinct = reported.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), exited, "an exit reported twice");
    let strangers: Vec<&i32> = reported.iter().filter(|p| !starts.contains(p)).collect();
    assert!(
        strangers.is_empty() || strangers == [reported.last().unwrap_or(&0)],
        "EXITED events for pids never started: {strangers:?} (last event: {:?})",
        reported.last()
    );
}
