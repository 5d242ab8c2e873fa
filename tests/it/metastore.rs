//! ksqlDB's own state (issue 25): the command-topic backup is on by default in
//! `<state_dir>/metastore` and shows in `status`; a command runner ksqlDB reports
//! DEGRADED is its own condition, reported with the restore command and never
//! restarted for; a stuck one (ERROR, `/info` still RUNNING) is not called degraded.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::run::{statuses, wait_for, Fixture};

const DEGRADED_ID: &str = "f4dc9a51a9574146adc01feab0615b3f";
const PREFIX: &str = "backup__confluent-ksql-default__command_topic_";

fn with_id<'a>(
    entries: &'a [HashMap<String, String>],
    id: &str,
) -> Vec<&'a HashMap<String, String>> {
    entries
        .iter()
        .filter(|e| e.get("MESSAGE_ID").map(String::as_str) == Some(id))
        .collect()
}

fn status_json(fx: &Fixture) -> serde_json::Value {
    let out = fx.host.run(&["status", "--json"]);
    assert_eq!(out.code, 0, "{out:?}");
    serde_json::from_str(&out.stdout).unwrap()
}

#[test]
fn the_backup_is_on_by_default_and_shows_in_status() {
    let fx = Fixture::new("");
    let mut agent = fx.start();
    wait_for("healthy", || agent.stderr().contains("is healthy"));
    let dir = fx.host.state_dir().join("metastore");
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
    assert_eq!(mode & 0o7777, 0o700, "{mode:o}");
    let props =
        std::fs::read_to_string(fx.release.join("etc/ksqldb/ksql-server.properties")).unwrap();
    assert!(
        props.contains(&format!("ksql.metastore.backup.location={}", dir.display())),
        "{props}"
    );
    // The stand-in wrote its backup as ksqlDB does: one file, one line per command.
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(names[0].starts_with(PREFIX), "{names:?}");
    let bytes = std::fs::metadata(dir.join(&names[0])).unwrap().len();
    assert!(bytes > 0);

    let v = status_json(&fx);
    let b = &v["metastore_backup"];
    assert_eq!(b["latest_file"], names[0].as_str(), "{v:#}");
    assert_eq!(b["latest_bytes"], bytes);
    assert!(b["last_write"].is_string(), "{v:#}");
    assert_eq!(b["foreign_files"], 0);
    let human = fx.host.run(&["status"]);
    let line = human
        .stdout
        .lines()
        .find(|l| l.starts_with("metastore:"))
        .unwrap_or_else(|| panic!("{human:?}"))
        .to_string();
    assert!(
        line.contains(&format!("backup {bytes} bytes, last written")) && line.contains(&names[0]),
        "{line}"
    );

    // The memory budget: heap, RocksDB's share and the JVM's overhead within 75 % of
    // this host's memory; the heap on ksqlDB's command line is the planned one.
    let m = &v["memory"];
    let mib = |k: &str| m[k].as_u64().unwrap_or_else(|| panic!("{k}: {v:#}"));
    assert_eq!(mib("budget_percent"), 75);
    assert!(mib("budget_mib") <= mib("total_mib") * 3 / 4 + 1, "{m}");
    assert!(
        mib("heap_mib") + mib("rocksdb_mib") + mib("overhead_mib") <= mib("budget_mib")
            || mib("heap_mib") == 512,
        "{m}"
    );
    assert_eq!(m["rocksdb_bounded"], false);
    let env = std::fs::read_to_string(fx.control("fake-ksqldb.env")).unwrap();
    let heap = mib("heap_mib");
    assert!(
        env.contains(&format!("KSQL_HEAP_OPTS=-Xms{heap}m -Xmx{heap}m")),
        "{env}"
    );
    assert!(
        human
            .stdout
            .lines()
            .any(|l| l.starts_with("memory:") && l.contains("RocksDB")),
        "{human:?}"
    );

    // A file that is not ksqlDB's is pointed out (ksqlDB 0.23.1+ would take it for a
    // backup if the command topic went missing).
    std::fs::write(dir.join("notes.txt"), "x").unwrap();
    let human = fx.host.run(&["status"]);
    assert!(human.stdout.contains("1 other file(s) there"), "{human:?}");
    assert_eq!(agent.stop(), 0);

    // Started again: the same file is reopened, nothing new beside it.
    std::fs::remove_file(dir.join("notes.txt")).unwrap();
    let mut agent = fx.start();
    wait_for("healthy again", || agent.stderr().contains("is healthy"));
    let again: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(again, names);
    assert_eq!(agent.stop(), 0);
}

#[test]
fn a_degraded_command_runner_is_its_own_condition_and_never_restarted() {
    let mut fx = Fixture::new("");
    fx.mode("healthy_after_ms=200\ndegraded=incompatible\n");
    let notify = fx.notify_socket();
    let journal = fx.journal_socket();
    let mut agent = fx.start();
    wait_for("the degraded event", || {
        !with_id(&journal.entries(), DEGRADED_ID).is_empty()
    });
    let pid = fx.pids()[0];
    let entries = journal.entries();
    let e = with_id(&entries, DEGRADED_ID);
    assert_eq!(e.len(), 1, "{entries:?}");
    assert_eq!(e[0]["PRIORITY"], "3");
    assert_eq!(e[0]["PID"], pid.to_string());
    let backup = &e[0]["BACKUP"];
    assert!(backup.contains(PREFIX), "{:?}", e[0]);
    let msg = &e[0]["MESSAGE"];
    assert!(
        msg.contains("reports its command runner DEGRADED")
            && msg.contains("bin/ksql-restore-command-topic --config-file ")
            && msg.contains(&format!("--yes {backup}"))
            && msg.contains("not restarted for it"),
        "{msg}"
    );
    // Not the generic "answers but is not healthy" event.
    assert!(
        with_id(&entries, "3d5f7b9a1c2e4d6f8a0b2c4e6d8f0a13").is_empty(),
        "{entries:?}"
    );
    // STATUS follows the event: wait for it rather than read it at once.
    wait_for("the DEGRADED status line", || {
        notify
            .last_status()
            .starts_with("ksqlDB 0.28.2 running, command runner DEGRADED for")
    });
    let last = notify.last_status();
    assert!(!last.contains("waiting for Kafka"), "{last}");
    // status.json is written in the background: it follows STATUS shortly.
    wait_for("status --json: command_runner_degraded", || {
        status_json(&fx)["ksqldb"]["health"]["condition"] == "command_runner_degraded"
    });
    // Never restarted for it.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(fx.pids(), [pid]);
    assert_eq!(with_id(&journal.entries(), DEGRADED_ID).len(), 1);
    assert_eq!(agent.stop(), 0);
}

#[test]
fn a_stuck_command_runner_is_not_called_degraded() {
    let mut fx = Fixture::new("");
    fx.mode("healthy_after_ms=200\n");
    let notify = fx.notify_socket();
    let mut agent = fx.start();
    wait_for("READY=1", || notify.lines().iter().any(|l| l == "READY=1"));
    // commandRunner false, /info still RUNNING: ksqlDB's ERROR (a blocked command).
    std::fs::write(fx.control("fake-ksqldb.unhealthy"), "commandRunner").unwrap();
    wait_for("unhealthy", || {
        statuses(&notify.lines())
            .iter()
            .any(|s| s.contains("commandRunner unhealthy for"))
    });
    // status.json is written in the background: it follows STATUS shortly.
    wait_for("status --json: unhealthy", || {
        status_json(&fx)["ksqldb"]["health"]["condition"] == "unhealthy"
    });
    // Then it turns DEGRADED: the condition follows.
    std::fs::write(fx.control("fake-ksqldb.degraded"), "corrupted").unwrap();
    wait_for("degraded", || {
        statuses(&notify.lines())
            .iter()
            .any(|s| s.contains("command runner DEGRADED"))
    });
    // status.json is written in the background: it follows STATUS shortly.
    wait_for("status --json: command_runner_degraded", || {
        status_json(&fx)["ksqldb"]["health"]["condition"] == "command_runner_degraded"
    });
    assert_eq!(agent.stop(), 0);
}

#[test]
fn metastore_backup_copies_the_newest_checked_backup_and_refuses_garbage() {
    let fx = Fixture::new("");
    let out_dir = tempfile::tempdir().unwrap();
    let copy = out_dir.path().join("copy");
    let copy_arg = copy.display().to_string();
    // Nothing yet: 69, one line.
    let out = fx.host.run(&["metastore", "backup", &copy_arg]);
    assert_eq!(out.code, 69, "{out:?}");
    assert!(
        out.stderr
            .contains("no command-topic backup of service id default_"),
        "{out:?}"
    );
    let dir = fx.host.state_dir().join("metastore");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{PREFIX}1")), "\"a\":{}\n").unwrap();
    // The newest one, without the line ksqlDB is still writing.
    std::fs::write(
        dir.join(format!("{PREFIX}2")),
        "\"a\":{}\n\"b\":{\"x\":1}\n\"c\":{",
    )
    .unwrap();
    let out = fx.host.run(&["metastore", "backup", &copy_arg]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout.trim(), copy_arg);
    assert_eq!(
        std::fs::read_to_string(&copy).unwrap(),
        "\"a\":{}\n\"b\":{\"x\":1}\n"
    );
    let mode = std::fs::metadata(&copy).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o640, "{mode:o}");
    // Not a backup: 65 naming the file and line; the earlier copy stays.
    std::fs::write(dir.join(format!("{PREFIX}3")), "\"a\":{}\nhello world\n").unwrap();
    let out = fx.host.run(&["metastore", "backup", &copy_arg]);
    assert_eq!(out.code, 65, "{out:?}");
    assert!(
        out.stderr
            .contains(&format!("{PREFIX}3: line 2 is not a command-topic record")),
        "{out:?}"
    );
    assert_eq!(
        std::fs::read_to_string(&copy).unwrap(),
        "\"a\":{}\n\"b\":{\"x\":1}\n"
    );
    // A planted link as the newest backup is refused, not followed.
    std::fs::remove_file(dir.join(format!("{PREFIX}3"))).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", dir.join(format!("{PREFIX}4"))).unwrap();
    let out = fx.host.run(&["metastore", "backup", &copy_arg]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        std::fs::read_to_string(&copy).unwrap(),
        "\"a\":{}\n\"b\":{\"x\":1}\n"
    );
}

const RESTORE_ID: &str = "4cddff92dd2145deb4c2fb67fb6cd2af";
const RESTORE_FAILED_ID: &str = "e1f3e54e64444d709957a4555068dbbf";

/// A running agent with a control socket (as `RuntimeDirectory=` gives it), healthy.
fn serving(fx: &mut Fixture) -> crate::run::Agent {
    fx.mode("healthy_after_ms=200\n");
    let runtime = fx.host.dir.path().join("run");
    std::fs::create_dir_all(&runtime).unwrap();
    fx.host
        .env("RUNTIME_DIRECTORY", &runtime.display().to_string());
    let agent = fx.start();
    wait_for("the control socket", || {
        runtime.join("control.sock").exists()
    });
    wait_for("healthy", || {
        status_json(fx)["ksqldb"]["health"]["condition"] == "healthy"
    });
    agent
}

const RESTORED: &str = "\"stream/S/create\":{\"statement\":\"CREATE STREAM S (A INT) WITH (KAFKA_TOPIC='s', VALUE_FORMAT='JSON');\",\"streamsProperties\":{},\"originalProperties\":{},\"plan\":null}\n\"stream/T/create\":{\"statement\":\"CREATE STREAM T AS SELECT * FROM S;\"}\n";

/// A backup file of [`RESTORED`], in a directory of its own (kept while the guard lives).
fn restorable_backup() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backup");
    std::fs::write(&file, RESTORED).unwrap();
    (dir, file)
}

#[test]
fn metastore_restore_goes_through_the_running_service() {
    let mut fx = Fixture::new("");
    let journal = fx.journal_socket();
    let mut agent = serving(&mut fx);
    let first = fx.pids()[0];
    let state = fx.host.state_dir();
    let before: Vec<String> = std::fs::read_dir(state.join("metastore"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(before.len(), 1, "{before:?}");
    let (_dir, file) = restorable_backup();
    let out = fx
        .host
        .run(&["metastore", "restore", &file.display().to_string()]);
    assert_eq!(out.code, 0, "{}\n{}", out.stderr, agent.stderr());
    assert!(
        out.stdout.contains("ksqlDB's command topic restored")
            && out.stdout.contains("upgrades/restore-"),
        "{out:?}"
    );
    // The release's own tool, with the rendered properties, --yes and the checked copy.
    let args = std::fs::read_to_string(fx.control("fake-ksqldb.restore.args")).unwrap();
    let props = fx.release.join("etc/ksqldb/ksql-server.properties");
    let copy = state.join("restore/backup");
    assert_eq!(
        args,
        format!(
            "--config-file\n{}\n--yes\n{}\n",
            props.display(),
            copy.display()
        )
    );
    assert_eq!(std::fs::read_to_string(&copy).unwrap(), RESTORED);
    // ksqlDB's own environment (its heap, log4j, PATH), not the agent's.
    let env = std::fs::read_to_string(fx.control("fake-ksqldb.restore.env")).unwrap();
    assert!(env.contains("KSQL_HEAP_OPTS=-Xms64m -Xmx1g\n"), "{env}");
    assert!(env.contains("KSQL_LOG4J_OPTS="), "{env}");
    assert!(!env.contains("RUNTIME_DIRECTORY="), "{env}");
    // The "command topic" is the backup now; the old backup file was set aside.
    assert_eq!(
        std::fs::read_to_string(state.join("fake-ksqldb.commands")).unwrap(),
        RESTORED
    );
    let records: Vec<_> = std::fs::read_dir(state.join("upgrades"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(records.len(), 1, "{records:?}");
    assert!(records[0].join(&before[0]).is_file(), "{records:?}");
    // ksqlDB was stopped and started again, and wrote a new backup of the restored topic.
    wait_for("ksqlDB started again", || fx.pids().len() == 2);
    assert_ne!(fx.pids()[1], first);
    wait_for("the new backup", || {
        std::fs::read_dir(state.join("metastore"))
            .unwrap()
            .flatten()
            .any(|e| std::fs::read_to_string(e.path()).unwrap_or_default() == RESTORED)
    });
    // The transcript in the journal, as the tool's own entries.
    let transcript: Vec<String> = journal
        .entries()
        .iter()
        .filter(|e| {
            e.get("SYSLOG_IDENTIFIER").map(String::as_str) == Some("ksql-restore-command-topic")
        })
        .map(|e| e["MESSAGE"].clone())
        .collect();
    assert!(
        transcript.contains(&"Backup (2 records) loaded in memory in 3 ms.".to_string())
            && transcript.contains(&"Restore process completed in 5 ms.".to_string()),
        "{transcript:?}"
    );
    let events = with_id(&journal.entries(), RESTORE_ID)
        .iter()
        .map(|e| e["MESSAGE"].clone())
        .collect::<Vec<_>>();
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(events[0].contains("stopping ksqlDB"), "{events:?}");
    assert!(events[1].contains("restored"), "{events:?}");
    assert_eq!(agent.stop(), 0);
}

/// One `ksql-msk: error:` line and `code`, the message holding `says`.
fn refused(out: &crate::support::Output, code: i32, says: &str) {
    assert_eq!(out.code, code, "{out:?}");
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("ksql-msk: error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{out:?}");
    assert!(errors[0].contains(says), "{out:?}");
}

#[test]
fn metastore_restore_refuses_bad_inputs() {
    let fx = Fixture::new("");
    let dir = tempfile::tempdir().unwrap();
    let at = |name: &str| dir.path().join(name).display().to_string();
    let restore = |file: &str| fx.host.run(&["metastore", "restore", file]);
    std::fs::write(at("garbage"), "hello\nworld\n").unwrap();
    refused(
        &restore(&at("garbage")),
        65,
        "line 1 is not a command-topic record",
    );
    std::fs::write(at("empty"), "").unwrap();
    refused(
        &restore(&at("empty")),
        65,
        "empty: not a command-topic backup",
    );
    std::fs::write(at("torn"), "\"a\":{}\n\"b\":{}").unwrap();
    refused(&restore(&at("torn")), 65, "cut short");
    refused(&restore(&at("missing")), 65, "no such file");
    // A FIFO, /dev/zero, a huge sparse file: refused at once, never read for ever.
    let fifo = std::ffi::CString::new(at("fifo")).unwrap();
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let out = restore(&at("fifo"));
    assert!(out.code == 65, "{out:?}");
    refused(&restore("/dev/zero"), 65, "/dev/zero");
    let sparse = std::fs::File::create(at("sparse")).unwrap();
    sparse.set_len(1 << 40).unwrap();
    refused(&restore(&at("sparse")), 65, "larger than");
    // A good backup, but no service running: 69, and nothing was restored.
    std::fs::write(at("good"), RESTORED).unwrap();
    refused(&restore(&at("good")), 69, "the service is not running");
    assert!(!fx.control("fake-ksqldb.restore.args").exists());
    // Not root: 77 before anything else.
    if unsafe { libc::geteuid() } == 0 {
        use std::os::unix::process::CommandExt;
        let mut cmd = fx.host.command(&["metastore", "restore", &at("good")]);
        cmd.uid(65534);
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(77), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("must run as root"),
            "{out:?}"
        );
    }
    // What the service user could plant under the state directory is never followed
    // by root: a link as restore/, or as the lock (to a file elsewhere, or a FIFO).
    let state = fx.host.state_dir();
    let outside = tempfile::tempdir().unwrap();
    std::fs::remove_dir_all(state.join("restore")).ok();
    std::os::unix::fs::symlink(outside.path(), state.join("restore")).unwrap();
    let out = restore(&at("good"));
    assert!(out.code == 65, "{out:?}");
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    std::fs::remove_file(state.join("restore")).unwrap();
    std::fs::remove_file(state.join("restore.lock")).ok();
    std::os::unix::fs::symlink(outside.path().join("lock"), state.join("restore.lock")).unwrap();
    let out = restore(&at("good"));
    assert!(out.code == 65, "{out:?}");
    assert!(!outside.path().join("lock").exists());
    std::fs::remove_file(state.join("restore.lock")).unwrap();
    let fifo = std::ffi::CString::new(state.join("restore.lock").display().to_string()).unwrap();
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let out = restore(&at("good"));
    assert!(out.code == 65, "{out:?}");
    std::fs::remove_file(state.join("restore.lock")).unwrap();
    // Another restore holds the lock: 75.
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(fx.host.state_dir().join("restore.lock"))
        .unwrap();
    // SAFETY: flock on a descriptor we own.
    assert_eq!(
        unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) },
        0
    );
    refused(
        &restore(&at("good")),
        75,
        "another ksql-msk metastore restore is running",
    );
    drop(lock);
}

#[test]
fn a_failed_restore_says_why_and_starts_ksqldb_again() {
    let mut fx = Fixture::new("");
    let journal = fx.journal_socket();
    let mut agent = serving(&mut fx);
    std::fs::write(fx.control("fake-ksqldb.restore-fails"), "").unwrap();
    let (_dir, file) = restorable_backup();
    let out = fx
        .host
        .run(&["metastore", "restore", &file.display().to_string()]);
    refused(&out, 65, "Failed to initialize topic transactions");
    wait_for("the failure event", || {
        !with_id(&journal.entries(), RESTORE_FAILED_ID).is_empty()
    });
    wait_for("ksqlDB started again", || fx.pids().len() == 2);
    // The backup files stay where ksqlDB keeps them.
    assert!(!fx.host.state_dir().join("upgrades").exists());
    assert_eq!(agent.stop(), 0);
}

#[test]
fn a_stop_during_a_restore_stops_the_tool_and_the_service_without_starting_ksqldb() {
    let mut fx = Fixture::new("");
    let journal = fx.journal_socket();
    let mut agent = serving(&mut fx);
    std::fs::write(fx.control("fake-ksqldb.restore-hangs"), "").unwrap();
    let (_dir, file) = restorable_backup();
    let client = fx
        .host
        .command(&["metastore", "restore", &file.display().to_string()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The tool is running (it wrote its pid after "Restoring command topic ...").
    let pid_file = fx.control("fake-ksqldb.restore.pid");
    wait_for("the restore tool", || pid_file.exists());
    let tool: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let stopping = std::time::Instant::now();
    assert_eq!(agent.stop(), 0, "{}", agent.stderr());
    // Stopped at once (the tool takes SIGTERM), not after the tool's 120 s or the
    // unit's stop timeout.
    assert!(
        stopping.elapsed() < Duration::from_secs(20),
        "{:?}",
        stopping.elapsed()
    );
    // SAFETY: kill(2) with signal 0 only asks whether the process exists.
    assert_ne!(
        unsafe { libc::kill(tool, 0) },
        0,
        "the tool {tool} still runs"
    );
    let out = client.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{stderr}");
    assert!(
        stderr.contains("the service got SIGTERM and the restore tool was stopped"),
        "{stderr}"
    );
    let failed = with_id(&journal.entries(), RESTORE_FAILED_ID)
        .iter()
        .map(|e| e["MESSAGE"].clone())
        .collect::<Vec<_>>();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0].contains("the command topic may be partly restored: run the restore again"),
        "{failed:?}"
    );
    // ksqlDB was not started again on the way out.
    assert_eq!(fx.pids().len(), 1, "{:?}", fx.pids());
}
