//! `ksql-msk run`: supervision of a ksqlDB stand-in (`fake-ksqldb`) under a fake
//! systemd notify socket and a fake journal socket.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ksql_msk_testkit::msk::DESCRIBE_CLUSTER_V2;
use ksql_msk_testkit::standins;

// The fixture these tests share with check.rs, secrets.rs, soak.rs and others lives in
// support/fixture.rs; `crate::run::Fixture` and friends keep working.
pub use crate::support::fixture::*;

#[test]
fn starts_when_healthy_logs_to_journal_and_stops_cleanly() {
    let mut fx = Fixture::new("");
    // Healthy after 1.5 s: the probes at 0.5 s and 1 s see 503 even on a slow machine.
    fx.mode("healthy_after_ms=1500\ngrandchild=1\nlog_error=1\n");
    let notify = fx.notify_socket();
    let journal = fx.journal_socket();
    let mut agent = fx.start();

    wait_for("READY=1", || notify.lines().iter().any(|l| l == "READY=1"));
    let lines = notify.lines();
    let ready_at = lines.iter().position(|l| l == "READY=1").unwrap();
    let before = statuses(&lines[..ready_at]);
    let find = |needle: &str| {
        before
            .iter()
            .position(|s| s.contains(needle))
            .unwrap_or_else(|| panic!("no STATUS with {needle:?} before READY in {before:?}"))
    };
    let order = [
        find("loading configuration"),
        find("discovering"),
        find("starting ksqlDB 0.28.2"),
        find("still starting (503)"),
    ];
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{before:?}");
    assert!(
        lines[..ready_at]
            .iter()
            .any(|l| l.starts_with("EXTEND_TIMEOUT_USEC=")),
        "{lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l == "WATCHDOG=1"),
        "no watchdog asked"
    );

    // The child: its own process group, a clean explicit environment.
    let pids = fx.pids();
    assert_eq!(pids.len(), 1);
    let pid = pids[0];
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let pgrp: i32 = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split(' ')
        .nth(3)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(pgrp, pid, "ksqlDB leads its own process group");
    let env = fx.child_env();
    let keys = fx.child_env_names();
    assert_eq!(
        keys,
        [
            // From the agent's environment (support::Host's), for the IAM module.
            "AWS_ACCESS_KEY_ID",
            "AWS_CONFIG_FILE",
            "AWS_EC2_METADATA_DISABLED",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SHARED_CREDENTIALS_FILE",
            "JAVA_HOME",
            "KSQL_HEAP_OPTS",
            "KSQL_JVM_PERFORMANCE_OPTS",
            "KSQL_LOG4J_OPTS",
            // No locale in the agent's environment: C.UTF-8.
            "LANG",
            "LOG_DIR",
            "PATH"
        ],
        "{env:?}"
    );
    assert_eq!(
        env["JAVA_HOME"],
        fx.host.dir.path().join("jdk").display().to_string()
    );
    let log_dir = fx.host.state_dir().join("logs");
    assert_eq!(env["LOG_DIR"], log_dir.display().to_string());
    assert_eq!(env["LANG"], "C.UTF-8");
    assert!(log_dir.is_dir());
    let heap: Vec<&str> = env["KSQL_HEAP_OPTS"].split(' ').collect();
    assert!(
        heap[0].starts_with("-Xms") && heap[1].starts_with("-Xmx"),
        "{heap:?}"
    );
    assert_eq!(heap[0][4..], heap[1][4..]);
    assert!(env["KSQL_JVM_PERFORMANCE_OPTS"].contains("-XX:+UseG1GC"));
    assert!(env["KSQL_LOG4J_OPTS"].ends_with("etc/ksqldb/ksql-msk-log4j.properties"));
    let args = std::fs::read_to_string(fx.control("fake-ksqldb.args")).unwrap();
    assert_eq!(
        args.trim(),
        fx.release
            .canonicalize()
            .unwrap()
            .join("etc/ksqldb/ksql-server.properties")
            .display()
            .to_string()
    );
    let grandchild: i32 = std::fs::read_to_string(fx.control("fake-ksqldb.grandchild"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(alive(grandchild));

    // Journal: ksqlDB's lines under their own identifier, priorities from log4j levels,
    // the stack trace in the entry of the line that started it.
    wait_for("ksqlDB's lines in the journal", || {
        journal
            .entries()
            .iter()
            .any(|e| e["MESSAGE"].contains("Server up and running"))
    });
    let entries = journal.entries();
    let ksql: Vec<&HashMap<String, String>> = entries
        .iter()
        .filter(|e| e["SYSLOG_IDENTIFIER"] == "ksqldb")
        .collect();
    let by_text = |t: &str| {
        ksql.iter()
            .find(|e| e["MESSAGE"].contains(t))
            .unwrap_or_else(|| panic!("no ksqldb entry with {t:?}: {ksql:?}"))
    };
    assert_eq!(by_text("KsqlServerMain starting")["PRIORITY"], "6");
    assert_eq!(by_text("isn't a known config")["PRIORITY"], "4");
    // The release's root level is INFO: log4j drops the stand-in's DEBUG line (the
    // log_levels tests set it).
    assert!(!ksql.iter().any(|e| e["MESSAGE"].contains("debug detail")));
    // The generated pattern has no date: the journal stamps the entry.
    assert!(
        by_text("KsqlServerMain starting")["MESSAGE"].starts_with("INFO KsqlServerMain starting"),
        "{ksql:?}"
    );
    let err = by_text("Could not reach the command topic");
    assert_eq!(err["PRIORITY"], "3");
    assert!(err["MESSAGE"].contains("\n\tat io.confluent.ksql.rest.server.KsqlRestApplication"));
    assert!(err["MESSAGE"].contains("\nCaused by: org.apache.kafka"));
    assert!(
        err["MESSAGE"].ends_with("\t... 4 more"),
        "{:?}",
        err["MESSAGE"]
    );
    assert_eq!(err["SYSLOG_PID"], pid.to_string());
    let jvm = by_text("OpenJDK 64-Bit Server VM warning");
    assert_eq!(jvm["PRIORITY"], "4");
    assert_eq!(jvm["KSQLDB_STREAM"], "stderr");
    let started = entries
        .iter()
        .find(|e| {
            e.get("MESSAGE_ID").map(String::as_str) == Some("5f3a9c1e7b2d4e8fa6c0b1d2e3f40512")
        })
        .expect("STARTED event");
    assert_eq!(started["SYSLOG_IDENTIFIER"], "ksql-msk");
    assert_eq!(started["PID"], pid.to_string());
    assert_eq!(started["VERSION"], VERSION);
    let prepared = entries
        .iter()
        .find(|e| {
            e.get("MESSAGE_ID").map(String::as_str) == Some("0e1b7c5a8f2d4c6b9a3e5d7f1c2b4a60")
        })
        .expect("PREPARED event");
    assert_eq!(
        prepared["BROKERS"],
        fx.cluster
            .brokers_field("bootstrapBrokerStringSaslIam")
            .unwrap()
    );

    // Stop: STOPPING=1, the whole group gone, exit 0.
    assert_eq!(agent.stop(), 0, "{}", agent.stderr());
    assert!(notify.lines().iter().any(|l| l == "STOPPING=1"));
    assert!(!group_alive(pid), "process group {pid} survived");
    assert!(!alive(pid) && !alive(grandchild));
    wait_for("shutdown line", || {
        journal
            .entries()
            .iter()
            .any(|e| e["MESSAGE"].contains("ksqlDB shutting down"))
    });
    let exited = journal
        .entries()
        .into_iter()
        .find(|e| {
            e.get("MESSAGE_ID").map(String::as_str) == Some("c2d9e6a1f4b3480d9e7c6b5a4f3e2d10")
        })
        .expect("EXITED event");
    assert_eq!(exited["EXIT_CODE"], "exited");
    assert_eq!(exited["EXIT_STATUS"], "143");
}

#[test]
fn crash_is_restarted_and_the_watchdog_comes_from_the_agent_loop() {
    let mut fx = Fixture::new("");
    fx.mode("healthy_after_ms=300\n");
    let notify = fx.notify_socket();
    fx.host.env("WATCHDOG_USEC", "400000");
    let mut agent = fx.start();
    wait_for("READY=1", || notify.lines().iter().any(|l| l == "READY=1"));
    wait_for("WATCHDOG=1", || {
        notify.lines().iter().any(|l| l == "WATCHDOG=1")
    });
    // WATCHDOG=1 proves the agent's loop is alive, from its start: also before READY.
    let lines = notify.lines();
    let ready_at = lines.iter().position(|l| l == "READY=1").unwrap();
    assert!(
        lines[..ready_at].iter().any(|l| l == "WATCHDOG=1"),
        "no watchdog while waiting for health: {lines:?}"
    );
    let first = fx.pids()[0];

    // Crash: restarted after the backoff, becomes healthy again.
    let crashed_at = Instant::now();
    std::fs::write(fx.control("fake-ksqldb.crash"), "").unwrap();
    wait_for("a second start", || fx.pids().len() == 2);
    let restarted_after = crashed_at.elapsed();
    eprintln!("crash → restart took {restarted_after:?} (restart_backoff 100ms)");
    assert!(!group_alive(first));
    let second = fx.pids()[1];
    wait_for("healthy again", || {
        statuses(&notify.lines())
            .iter()
            .any(|s| s.contains(&format!("is running (pid {second})")))
    });
    assert_eq!(
        notify.lines().iter().filter(|l| *l == "READY=1").count(),
        1,
        "READY is sent once"
    );
    let err = agent.stderr();
    assert!(err.contains("ksqlDB exited with exit code 1"), "{err}");
    assert!(err.contains("restarting in 100ms"), "{err}");
    assert_eq!(agent.stop(), 0);
    assert!(!group_alive(fx.pids()[1]));
}

#[test]
fn watchdog_is_fed_while_the_agent_restarts_ksqldb() {
    // A backoff longer than the watchdog interval: systemd must not kill the agent
    // while it waits to restart a crashed ksqlDB.
    let mut fx = Fixture::new("restart_backoff = \"1500ms\"\nrestart_backoff_max = \"1500ms\"\n");
    fx.mode("healthy_after_ms=200\n");
    let notify = fx.notify_socket();
    fx.host.env("WATCHDOG_USEC", "400000");
    let mut agent = fx.start();
    wait_for("READY=1", || notify.lines().iter().any(|l| l == "READY=1"));
    let crashed_at = notify.lines().len();
    std::fs::write(fx.control("fake-ksqldb.crash"), "").unwrap();
    wait_for("a second start", || fx.pids().len() == 2);
    let during: Vec<String> = notify.lines()[crashed_at..].to_vec();
    let pings = during.iter().filter(|l| *l == "WATCHDOG=1").count();
    // 1.5 s of backoff at a 200 ms interval: several pings, none missed for long.
    assert!(pings >= 3, "watchdog pings during the restart: {during:?}");
    assert_eq!(agent.stop(), 0);
}

#[test]
fn too_many_failures_exit_75() {
    let fx = Fixture::new("");
    fx.mode("exit_after_ms=100\nexit_code=3\n");
    let mut agent = fx.start();
    assert_eq!(agent.wait(), 75, "{}", agent.stderr());
    // restart_limit = 3: the fourth failure within the window gives up.
    assert_eq!(fx.pids().len(), 4, "{}", agent.stderr());
    let err = agent.stderr();
    assert!(err.contains("4 failures within 1m"), "{err}");
    assert!(
        err.contains("restarting in 100ms")
            && err.contains("restarting in 200ms")
            && err.contains("restarting in 400ms"),
        "{err}"
    );
    for pid in fx.pids() {
        assert!(!group_alive(pid));
    }
}

#[test]
fn never_healthy_child_is_killed_and_counted() {
    let fx = Fixture::new("start_timeout = \"1s\"\nrestart_limit = 1\n");
    fx.mode("never_healthy=1\n");
    let mut agent = fx.start();
    assert_eq!(agent.wait(), 75, "{}", agent.stderr());
    let err = agent.stderr();
    assert_eq!(fx.pids().len(), 2, "{err}");
    assert!(err.contains("did not become healthy within 1s"), "{err}");
    assert!(err.contains("ksqlDB never became healthy"), "{err}");
    for pid in fx.pids() {
        assert!(!group_alive(pid));
    }
}

#[test]
fn child_ignoring_sigterm_is_killed_after_stop_timeout() {
    let fx = Fixture::new("stop_timeout = \"1s\"\n");
    fx.mode("healthy_after_ms=100\nignore_term=1\ngrandchild=1\n");
    let mut agent = fx.start();
    wait_for("healthy", || agent.stderr().contains("is healthy"));
    let pid = fx.pids()[0];
    let grandchild: i32 = std::fs::read_to_string(fx.control("fake-ksqldb.grandchild"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let t = Instant::now();
    assert_eq!(agent.stop(), 0, "{}", agent.stderr());
    assert!(t.elapsed() >= Duration::from_millis(900));
    let err = agent.stderr();
    assert!(err.contains("did not stop within 1s"), "{err}");
    assert!(err.contains("signal SIGKILL"), "{err}");
    assert!(!group_alive(pid));
    assert!(!alive(grandchild));
}

#[test]
fn sighup_reloads_and_restarts_only_on_change() {
    let mut fx = Fixture::new("");
    fx.mode("healthy_after_ms=100\n");
    let notify = fx.notify_socket();
    let mut agent = fx.start();
    wait_for("READY=1", || notify.lines().iter().any(|l| l == "READY=1"));

    // Nothing changed: RELOADING, MONOTONIC_USEC, READY; same child.
    agent.signal(libc::SIGHUP);
    wait_for("reload done", || agent.stderr().contains("nothing changed"));
    wait_for("READY after reload", || {
        let l = notify.lines();
        let r = l.iter().position(|x| x == "RELOADING=1");
        r.is_some_and(|r| l[r..].iter().any(|x| x == "READY=1"))
    });
    let l = notify.lines();
    let r = l.iter().position(|x| x == "RELOADING=1").unwrap();
    assert!(
        l[r + 1].starts_with("MONOTONIC_USEC=") && l[r + 1][15..].parse::<u64>().is_ok(),
        "{l:?}"
    );
    assert_eq!(fx.pids().len(), 1);

    // The effective properties changed: restart.
    let props = fx.release.join("etc/ksqldb/ksql-server.properties");
    let mut text = std::fs::read_to_string(&props).unwrap();
    text.push_str("ksql.service.id=changed_\n");
    std::fs::write(&props, text).unwrap();
    agent.signal(libc::SIGHUP);
    wait_for("restart", || fx.pids().len() == 2);
    let err = agent.stderr();
    assert!(
        err.contains("restarting ksqlDB:") && err.contains("ksql-server.properties changed"),
        "{err}"
    );
    assert!(!group_alive(fx.pids()[0]));
    // The reload ends (READY=1) only once the restarted ksqlDB is healthy.
    let new_pid = fx.pids()[1];
    let reload_ready = || {
        let l = notify.lines();
        let r = l.iter().rposition(|x| x == "RELOADING=1").unwrap();
        l[r..]
            .iter()
            .position(|x| x == "READY=1")
            .map(|i| (l[r + i + 1].clone(), l[r..r + i].to_vec()))
    };
    wait_for("READY after the restarting reload", || {
        reload_ready().is_some()
    });
    let (status, before) = reload_ready().unwrap();
    assert!(
        status.starts_with("STATUS=ksqlDB ")
            && status.ends_with(&format!("is running (pid {new_pid})")),
        "{status}"
    );
    assert!(
        before
            .iter()
            .any(|x| x.starts_with("STATUS=restarting ksqlDB:")),
        "{before:?}"
    );

    // A broken config: the child keeps running, the error is logged.
    std::fs::write(fx.host.config_path(), "[msk\n").unwrap();
    let readies = notify.lines().iter().filter(|l| *l == "READY=1").count();
    agent.signal(libc::SIGHUP);
    wait_for("reload failure", || {
        agent.stderr().contains("reload failed")
    });
    wait_for("READY after failed reload", || {
        notify.lines().iter().filter(|l| *l == "READY=1").count() > readies
    });
    assert!(
        agent.stderr().contains("invalid TOML"),
        "{}",
        agent.stderr()
    );
    assert_eq!(fx.pids().len(), 2);
    assert!(alive(fx.pids()[1]));
    assert_eq!(agent.stop(), 0);
}

#[test]
fn rediscovery_restarts_on_broker_change_and_survives_api_errors() {
    let fx = Fixture::new("rediscover_interval = \"300ms\"\n");
    fx.mode("healthy_after_ms=100\n");
    let mut agent = fx.start();
    wait_for("healthy", || agent.stderr().contains("is healthy"));
    // Throttling: the child stays, the error is logged, the agent retries.
    fx.msk.fail_next(
        DESCRIBE_CLUSTER_V2,
        2,
        429,
        "TooManyRequestsException",
        "Rate exceeded",
    );
    wait_for("rediscovery failure logged", || {
        agent.stderr().contains("rediscovering brokers failed")
    });
    assert_eq!(fx.pids().len(), 1);
    // Same brokers in another order: no restart.
    let field = "bootstrapBrokerStringSaslIam";
    let old = fx.cluster.brokers_field(field).unwrap().to_string();
    let mut parts: Vec<&str> = old.split(',').collect();
    parts.reverse();
    fx.msk
        .set_brokers(&fx.cluster.arn, field, Some(&parts.join(",")));
    std::thread::sleep(Duration::from_millis(900));
    assert_eq!(fx.pids().len(), 1, "{}", agent.stderr());
    // A new broker set: restart.
    let new = old.replace("b-3.", "b-4.");
    fx.msk.set_brokers(&fx.cluster.arn, field, Some(&new));
    wait_for("restart on broker change", || fx.pids().len() == 2);
    let err = agent.stderr();
    assert!(err.contains("bootstrap brokers changed"), "{err}");
    assert!(err.contains("brokers now"), "{err}");
    assert_eq!(agent.stop(), 0);
    assert!(!group_alive(fx.pids()[0]) && !group_alive(fx.pids()[1]));
}

#[test]
fn first_start_installs_the_release() {
    let mut fx = Fixture::uninstalled("", "17.0.15", "1.1.1");
    let notify = fx.notify_socket();
    assert!(!fx.host.state_dir().join("current").exists());
    let mut agent = fx.start();
    wait_for("READY=1", || notify.lines().iter().any(|l| l == "READY=1"));
    let current = std::fs::canonicalize(fx.host.state_dir().join("current")).unwrap();
    assert_eq!(current, fx.release.canonicalize().unwrap());
    assert!(fx
        .release
        .join("share/java/ksqldb/aws-msk-iam-auth-1.1.1-all.jar")
        .exists());
    let err = agent.stderr();
    assert!(err.contains("now points to releases/0.28.2"), "{err}");
    assert_eq!(
        fx.art.requests_for(&standins::archive_path(VERSION)).len(),
        1
    );
    assert_eq!(agent.stop(), 0);
}

#[test]
fn iam_jar_needing_newer_java_is_refused() {
    let fx = Fixture::with("", "11.0.21", "2.3.5");
    let out = fx.host.run(&["run"]);
    assert_eq!(out.code, 78, "{out:?}");
    assert!(
        out.stderr.contains("aws-msk-iam-auth 2.3.5 needs Java 17")
            && out.stderr.contains("Java 11 (11.0.21)"),
        "{out:?}"
    );
    assert!(fx.pids().is_empty());
}

#[test]
fn sigterm_while_backing_off_exits_0() {
    let fx = Fixture::new("restart_backoff = \"30s\"\nrestart_backoff_max = \"30s\"\n");
    fx.mode("exit_after_ms=50\n");
    let mut agent = fx.start();
    wait_for("backing off", || {
        agent.stderr().contains("restarting in 30s")
    });
    assert_eq!(agent.stop(), 0, "{}", agent.stderr());
    assert_eq!(fx.pids().len(), 1);
}

#[test]
fn orphans_that_left_the_group_are_adopted_and_killed() {
    let fx = Fixture::new("stop_timeout = \"1s\"\n");
    fx.mode("healthy_after_ms=100\nescapee=1\n");
    let mut agent = fx.start();
    wait_for("healthy", || agent.stderr().contains("is healthy"));
    let escapee = read_pid(&fx.control("fake-ksqldb.escapee"));
    assert!(alive(escapee));
    // Adopted by the agent (a child subreaper), not by init.
    assert_eq!(ppid_of(escapee), Some(agent.child.id()));
    assert_eq!(agent.stop(), 0, "{}", agent.stderr());
    assert!(
        !alive(escapee),
        "escaped helper {escapee} survived the stop"
    );
}

/// The pid and parent pid of a process, from /proc.
fn ppid_of(pid: i32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.split(' ').nth(2)?.parse().ok()
}

#[test]
fn children_the_agent_did_not_start_survive_a_crash_and_the_stop() {
    let fx = Fixture::new("stop_timeout = \"1s\"\n");
    fx.mode("healthy_after_ms=100\nescapee=1\n");
    let dir = fx.host.dir.path();
    // Two processes the agent's parent leaves behind before exec'ing it: a plain one,
    // and a session leader of its own (`setsid`, as a daemonizing helper would be).
    let mut agent = fx.start_behind(&format!(
        "sleep 300 & echo $! > '{d}/bystander.pid'\nsetsid sleep 300 & echo $! > '{d}/leader.pid'",
        d = dir.display()
    ));
    wait_for("healthy", || agent.stderr().contains("is healthy"));
    let bystanders = [
        read_pid(&dir.join("bystander.pid")),
        read_pid(&dir.join("leader.pid")),
    ];
    for pid in bystanders {
        assert_eq!(
            ppid_of(pid),
            Some(agent.child.id()),
            "{pid} is the agent's child"
        );
    }
    let escapee = read_pid(&fx.control("fake-ksqldb.escapee"));
    assert!(alive(escapee));

    // ksqlDB crashes: its escaped helper is killed with it, the bystanders are not.
    std::fs::write(fx.control("fake-ksqldb.crash"), "").unwrap();
    wait_for("a second start", || fx.pids().len() == 2);
    wait_for("the first ksqlDB's escapee killed", || !alive(escapee));
    for pid in bystanders {
        assert!(
            alive(pid),
            "the agent killed {pid}, which it never started, after a crash"
        );
    }
    wait_for("healthy again", || {
        agent.stderr().matches("is healthy").count() >= 2
    });
    let second_escapee = read_pid(&fx.control("fake-ksqldb.escapee"));
    assert_ne!(second_escapee, escapee);

    // The stop: ksqlDB and its escapee go, the bystanders stay.
    assert_eq!(agent.stop(), 0, "{}", agent.stderr());
    assert!(!alive(second_escapee));
    for pid in bystanders {
        assert!(
            alive(pid),
            "the agent's stop killed {pid}, which it never started"
        );
        // SAFETY: kill(2) on the test's own leftover sleep.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

fn read_pid(path: &std::path::Path) -> i32 {
    std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}
