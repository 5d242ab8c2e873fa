//! The health model of `ksql-msk run` (DESIGN.md phase 6): a ksqlDB that answers but
//! is unhealthy (an MSK outage) is never restarted and the watchdog keeps coming, from
//! the agent's own loop; a ksqlDB that stops answering (SIGSTOP) is restarted after
//! `agent.hang_timeout`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::run::{group_alive, statuses, wait_for, Fixture};

const UNHEALTHY_ID: &str = "3d5f7b9a1c2e4d6f8a0b2c4e6d8f0a13";
const HEALTHY_AGAIN_ID: &str = "4e6a8c0d2f1b4a3c9e5d7b1f3a5c7e24";
const HUNG_ID: &str = "5b7d9f1a3c4e4b6d8f0a2c4e6b8d0f35";

/// The longest gap between two WATCHDOG=1 messages received in `from..to`.
fn longest_watchdog_gap(msgs: &[(Instant, Vec<u8>)], from: Instant, to: Instant) -> Duration {
    let pings: Vec<Instant> = msgs
        .iter()
        .filter(|(t, m)| {
            *t >= from && *t <= to && m.split(|b| *b == b'\n').any(|l| l == b"WATCHDOG=1")
        })
        .map(|(t, _)| *t)
        .collect();
    let mut edges = vec![from];
    edges.extend(pings);
    edges.push(to);
    edges
        .windows(2)
        .map(|w| w[1].duration_since(w[0]))
        .max()
        .unwrap_or_default()
}

fn with_id<'a>(
    entries: &'a [HashMap<String, String>],
    id: &str,
) -> Vec<&'a HashMap<String, String>> {
    entries
        .iter()
        .filter(|e| e.get("MESSAGE_ID").map(String::as_str) == Some(id))
        .collect()
}

#[test]
fn an_outage_of_4_watchdog_intervals_keeps_ksqldb_and_the_watchdog() {
    let mut fx = Fixture::new("");
    fx.mode("healthy_after_ms=200\n");
    let notify = fx.notify_socket();
    let journal = fx.journal_socket();
    // WATCHDOG_USEC 400 ms: systemd would kill after 400 ms without a ping.
    fx.host.env("WATCHDOG_USEC", "400000");
    let mut agent = fx.start();
    wait_for("READY=1", || notify.lines().iter().any(|l| l == "READY=1"));
    let pid = fx.pids()[0];

    // The outage: ksqlDB answers {"isHealthy":false} with kafka and commandRunner failing.
    std::fs::write(fx.control("fake-ksqldb.unhealthy"), "kafka,commandRunner").unwrap();
    let outage = Instant::now();
    wait_for("a STATUS naming the failing checks", || {
        statuses(&notify.lines())
            .iter()
            .any(|s| s.contains("waiting for Kafka: kafka, commandRunner unhealthy for"))
    });
    // 4 × WATCHDOG_USEC and more of outage.
    std::thread::sleep(Duration::from_millis(2000));
    let end = Instant::now();
    let gap = longest_watchdog_gap(&notify.raw(), outage, end);
    eprintln!(
        "longest WATCHDOG=1 gap over a {:?} outage: {gap:?}",
        end - outage
    );
    assert!(
        gap < Duration::from_millis(400),
        "a WATCHDOG=1 gap of {gap:?} during the outage (WATCHDOG_USEC 400 ms)"
    );
    assert_eq!(fx.pids(), [pid], "ksqlDB restarted during the outage");
    assert!(group_alive(pid));
    let last = notify.last_status();
    assert!(
        last.starts_with(
            "ksqlDB 0.28.2 running, waiting for Kafka: kafka, commandRunner unhealthy for"
        ),
        "{last}"
    );
    assert!(
        !notify.lines().iter().any(|l| l == "STOPPING=1"),
        "the agent stopped during the outage"
    );
    let entries = journal.entries();
    let entered = with_id(&entries, UNHEALTHY_ID);
    assert_eq!(
        entered.len(),
        1,
        "one event on entering the condition: {entries:?}"
    );
    assert_eq!(entered[0]["PRIORITY"], "4");
    assert_eq!(entered[0]["CHECKS"], "kafka,commandRunner");
    assert_eq!(entered[0]["PID"], pid.to_string());

    // The outage ends: one event on leaving, with how long it lasted; running again.
    std::fs::remove_file(fx.control("fake-ksqldb.unhealthy")).unwrap();
    wait_for("running again", || {
        notify.last_status() == format!("ksqlDB 0.28.2 is running (pid {pid})")
    });
    wait_for("the leaving event", || {
        !with_id(&journal.entries(), HEALTHY_AGAIN_ID).is_empty()
    });
    let entries = journal.entries();
    let left = with_id(&entries, HEALTHY_AGAIN_ID);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["PRIORITY"], "5");
    let secs: f64 = left[0]["UNHEALTHY_SECONDS"].parse().unwrap();
    assert!(secs >= 2.0, "{secs}");
    assert_eq!(
        notify.lines().iter().filter(|l| *l == "READY=1").count(),
        1,
        "READY stays (sent once)"
    );
    assert_eq!(fx.pids(), [pid]);
    assert_eq!(agent.stop(), 0);
}

#[test]
fn a_ksqldb_that_stops_answering_is_restarted_after_hang_timeout() {
    let mut fx = Fixture::new("hang_timeout = \"1500ms\"\n");
    fx.mode("healthy_after_ms=200\n");
    let notify = fx.notify_socket();
    let journal = fx.journal_socket();
    fx.host.env("WATCHDOG_USEC", "400000");
    let mut agent = fx.start();
    wait_for("READY=1", || notify.lines().iter().any(|l| l == "READY=1"));
    let first = fx.pids()[0];

    // SIGSTOP: the process lives, the listener accepts, nothing answers.
    // SAFETY: kill(2) on the stand-in's pid.
    assert_eq!(unsafe { libc::kill(first, libc::SIGSTOP) }, 0);
    let stopped = Instant::now();
    // The restarted one is fine (the mode file is read at start).
    wait_for("a second start", || fx.pids().len() == 2);
    let took = stopped.elapsed();
    eprintln!("SIGSTOP → restart took {took:?} (hang_timeout 1.5 s)");
    assert!(
        took >= Duration::from_millis(1500),
        "restarted before hang_timeout: {took:?}"
    );
    wait_for("the stopped ksqlDB gone", || !group_alive(first));
    let gap = longest_watchdog_gap(&notify.raw(), stopped, Instant::now());
    assert!(
        gap < Duration::from_millis(400),
        "watchdog gap {gap:?} while ksqlDB hung"
    );
    let second = fx.pids()[1];
    wait_for("healthy again", || {
        statuses(&notify.lines())
            .iter()
            .any(|s| s.contains(&format!("is running (pid {second})")))
    });
    let entries = journal.entries();
    let hung = with_id(&entries, HUNG_ID);
    assert_eq!(hung.len(), 1, "{entries:?}");
    assert_eq!(hung[0]["PRIORITY"], "3");
    assert_eq!(hung[0]["PID"], first.to_string());
    assert!(
        hung[0]["MESSAGE"].contains("did not answer its health check for")
            && hung[0]["MESSAGE"].contains("agent.hang_timeout"),
        "{}",
        hung[0]["MESSAGE"]
    );
    assert_eq!(agent.stop(), 0);
}

#[test]
fn an_unhealthy_ksqldb_is_not_counted_as_a_failure() {
    // restart_limit 1: one counted failure more and the agent would give up (75).
    let mut fx = Fixture::new("restart_limit = 1\n");
    fx.mode("healthy_after_ms=200\n");
    let notify = fx.notify_socket();
    let mut agent = fx.start();
    wait_for("READY=1", || notify.lines().iter().any(|l| l == "READY=1"));
    for _ in 0..3 {
        std::fs::write(fx.control("fake-ksqldb.unhealthy"), "").unwrap();
        wait_for("unhealthy", || {
            notify
                .last_status()
                .contains("waiting for Kafka: kafka unhealthy for")
        });
        std::fs::remove_file(fx.control("fake-ksqldb.unhealthy")).unwrap();
        wait_for("healthy", || {
            notify.last_status().contains("is running (pid")
        });
    }
    assert_eq!(fx.pids().len(), 1);
    assert_eq!(agent.stop(), 0, "{}", agent.stderr());
}

#[test]
fn a_ksqldb_that_comes_up_unhealthy_is_ready_and_never_killed_for_it() {
    // An MSK outage at boot: the server comes up and answers, but Kafka fails. The unit
    // becomes active (READY, `systemctl start` returns) with a status that says so, and
    // start_timeout does not kill it: it answers, so it has started.
    let mut fx = Fixture::new("start_timeout = \"2s\"\n");
    fx.mode("healthy_after_ms=200\n");
    std::fs::write(fx.control("fake-ksqldb.unhealthy"), "kafka").unwrap();
    let notify = fx.notify_socket();
    let journal = fx.journal_socket();
    let mut agent = fx.start();
    wait_for("READY=1", || notify.lines().iter().any(|l| l == "READY=1"));
    let lines = notify.lines();
    let ready_at = lines.iter().position(|l| l == "READY=1").unwrap();
    assert!(
        lines[ready_at + 1]
            .starts_with("STATUS=ksqlDB 0.28.2 running, waiting for Kafka: kafka unhealthy for"),
        "{lines:?}"
    );
    let pid = fx.pids()[0];
    std::thread::sleep(Duration::from_secs(3)); // past start_timeout
    assert_eq!(fx.pids(), [pid], "{}", agent.stderr());
    let entries = journal.entries();
    assert_eq!(with_id(&entries, UNHEALTHY_ID).len(), 1, "{entries:?}");
    std::fs::remove_file(fx.control("fake-ksqldb.unhealthy")).unwrap();
    wait_for("healthy", || {
        !with_id(&journal.entries(), HEALTHY_AGAIN_ID).is_empty()
    });
    assert_eq!(agent.stop(), 0);
}

#[test]
fn a_ksqldb_that_stops_itself_before_ready_is_restarted_once_it_answered() {
    // It answered 503 while starting, then stopped answering: hung, before READY.
    let fx = Fixture::new("hang_timeout = \"1s\"\nstart_timeout = \"30s\"\n");
    fx.mode("healthy_after_ms=60000\nsigstop_after_ms=1200\n");
    let mut agent = fx.start();
    wait_for("a second start", || fx.pids().len() >= 2);
    let err = agent.stderr();
    assert!(
        err.contains("did not answer its health check for")
            && err.contains("killing and restarting it"),
        "{err}"
    );
    assert!(!group_alive(fx.pids()[0]));
    // Every start hangs the same way: by now the agent may have given up (75).
    let code = agent.stop();
    assert!(code == 0 || code == 75, "{code}");
}
