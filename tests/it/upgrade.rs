//! Upgrades that roll back by themselves, and `ksql-msk rollback [--clear]`
//! (src/service/upgrade.rs, src/service/supervise/rollback.rs, src/service/rollback.rs): a new version served by
//! the fake artifact server, configured by a drop-in and reloaded, is downloaded while
//! the old ksqlDB keeps serving; one that never becomes healthy, or crash-loops, is
//! rolled back to the release before it and not tried again until the configured
//! version changes.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::run::{alive, statuses, wait_for, Agent, Fixture, Recorder};

const UPGRADE_FAILED_ID: &str = "95899accd7cd4517aad44858abde5d0f";
const HELD_BACK_ID: &str = "1a23bdd11eb54e579f26f97c116ee830";

/// A fixture whose agent has a runtime directory (the control socket), a notify and a
/// journal socket, with `agent` lines over the test defaults.
fn fixture(agent: &str) -> (Fixture, Recorder, Recorder) {
    let mut fx = Fixture::new(agent);
    fx.mode("healthy_after_ms=300\n");
    let runtime = fx.host.dir.path().join("run");
    std::fs::create_dir_all(&runtime).unwrap();
    let runtime = runtime.display().to_string();
    fx.host.env("RUNTIME_DIRECTORY", &runtime);
    let notify = fx.notify_socket();
    let journal = fx.journal_socket();
    (fx, notify, journal)
}

fn started(fx: &Fixture) -> Agent {
    let agent = fx.start();
    wait_for("the control socket", || {
        fx.host.dir.path().join("run/control.sock").exists()
    });
    wait_for("healthy", || {
        health(&health_url(fx))
            .is_some_and(|(code, body)| code == 200 && body.contains("\"isHealthy\":true"))
    });
    agent
}

fn health_url(fx: &Fixture) -> String {
    fx.host
        .run(&["config", "get", "agent.health_url"])
        .stdout
        .trim()
        .to_string()
}

/// One GET of `url` (http://127.0.0.1:PORT/path): status and body, `None` without an answer.
fn health(url: &str) -> Option<(u16, String)> {
    let rest = url.strip_prefix("http://")?;
    let (addr, path) = rest.split_once('/')?;
    let mut s =
        std::net::TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_millis(300))
            .ok()?;
    s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    write!(
        s,
        "GET /{path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let code = text.split(' ').nth(1)?.parse().ok()?;
    Some((
        code,
        text.split("\r\n\r\n").nth(1).unwrap_or("").to_string(),
    ))
}

fn pids_of(fx: &Fixture, version: &str) -> Vec<i32> {
    std::fs::read_to_string(release(fx, version).join("fake-ksqldb.pids"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn release(fx: &Fixture, version: &str) -> PathBuf {
    fx.host.state_dir().join("releases").join(version)
}

fn current(fx: &Fixture) -> PathBuf {
    std::fs::read_link(fx.host.state_dir().join("current")).unwrap()
}

fn configure(fx: &Fixture, version: &str) {
    fx.host.write_dropin(
        "50-version.toml",
        &format!("[ksqldb]\nversion = \"{version}\"\n"),
    );
}

fn with_id(journal: &Recorder, id: &str) -> Vec<HashMap<String, String>> {
    journal
        .entries()
        .into_iter()
        .filter(|e| e.get("MESSAGE_ID").map(String::as_str) == Some(id))
        .collect()
}

/// `ksql-msk status --json`.
fn status_json(fx: &Fixture) -> Value {
    let out = fx.host.run(&["status", "--json"]);
    assert_eq!(out.code, 0, "{out:?}");
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
}

fn record(fx: &Fixture) -> String {
    std::fs::read_to_string(fx.host.state_dir().join("upgrade.toml")).unwrap_or_default()
}

#[test]
fn an_upgrade_restarts_ksqldb_once_keeps_the_old_release_and_measures_the_downtime() {
    let (fx, notify, journal) = fixture("");
    let mut agent = started(&fx);
    let old = fx.pids()[0];
    fx.publish_version("0.29.0", &[]);
    configure(&fx, "0.29.0");

    // Probe every 100 ms from here on, as a client would.
    let url = health_url(&fx);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let prober = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let ok =
                    health(&url).is_some_and(|(c, b)| c == 200 && b.contains("\"isHealthy\":true"));
                seen.push((Instant::now(), ok));
                std::thread::sleep(Duration::from_millis(100));
            }
            seen
        })
    };
    let out = fx.host.run(&["reload"]);
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = prober.join().unwrap();
    assert_eq!(out.code, 0, "{out:?}");
    let new = pids_of(&fx, "0.29.0");
    assert_eq!(new.len(), 1, "{out:?}");
    assert_eq!(
        out.stdout.trim(),
        format!("reloaded: ksqlDB 0.29.0 is running (pid {})", new[0])
    );
    assert!(!alive(old) && alive(new[0]));
    assert_eq!(current(&fx), PathBuf::from("releases/0.29.0"));
    assert!(
        release(&fx, "0.28.2").join(".ksql-msk-manifest").exists()
            || release(&fx, "0.28.2").is_dir()
    );
    assert!(record(&fx).contains("good = \"0.29.0\""), "{}", record(&fx));
    // The reload's event warns of ksqlDB's caveat before 1.0 and names the kept backup.
    let reloaded = with_id(&journal, "7a9c1e3f5b7d4f0a8c2e4b6d8f0a1c34");
    assert!(
        reloaded.iter().any(|e| e["MESSAGE"]
            .contains("warning: ksqlDB 0.28.2 -> 0.29.0 changes the minor version before 1.0")
            && e["MESSAGE"].contains(
                "upgrades/0.28.2-to-0.29.0/backup__confluent-ksql-default__command_topic_"
            )),
        "{reloaded:?}"
    );
    let (_, body) = health(&health_url(&fx).replace("/healthcheck", "/info")).unwrap();
    assert!(body.contains("\"version\":\"0.29.0\""), "{body}");

    // Downtime: first failed probe to the first healthy one after it.
    let first_down = seen
        .iter()
        .position(|(_, ok)| !ok)
        .expect("no failed probe: no restart?");
    let back = seen[first_down..]
        .iter()
        .position(|(_, ok)| *ok)
        .expect("never healthy again")
        + first_down;
    let downtime = seen[back].0 - seen[first_down].0;
    let downs = seen.iter().filter(|(_, ok)| !ok).count();
    eprintln!(
        "upgrade downtime (first failed to first healthy probe, 100 ms probes): {downtime:?}; {downs} failed probes of {}",
        seen.len()
    );
    assert!(
        seen[..first_down].iter().all(|(_, ok)| *ok) && seen[back..].iter().all(|(_, ok)| *ok),
        "one outage only: {seen:?}"
    );
    assert!(downtime < Duration::from_secs(3), "{downtime:?}");
    assert!(statuses(&notify.lines())
        .iter()
        .any(|s| s.contains("0.29.0 is running")));
    assert_eq!(agent.stop(), 0, "{}", agent.stderr());
}

#[test]
fn an_upgrade_that_never_becomes_healthy_is_rolled_back_and_held_back_until_the_version_changes() {
    let (mut fx, notify, journal) = fixture("start_timeout = \"2s\"\n");
    let mut agent = started(&fx);
    fx.publish_version("0.29.0", &[("fake-ksqldb.mode", "never_healthy=1\n")]);
    configure(&fx, "0.29.0");
    let t = Instant::now();
    let out = fx.host.run(&["reload"]);
    let took = t.elapsed();
    assert_eq!(out.code, 69, "{out:?}");
    assert!(
        out.stderr.contains(
            "the upgrade to ksqlDB 0.29.0 failed: never healthy in 2s; rolled back to 0.28.2"
        ),
        "{out:?}"
    );
    assert!(took < Duration::from_secs(8), "{took:?}");
    let want = "ksqlDB 0.28.2 running; upgrade to 0.29.0 failed: never healthy in 2s, rolled back";
    wait_for("the rolled-back STATUS", || notify.last_status() == want);
    assert_eq!(current(&fx), PathBuf::from("releases/0.28.2"));
    assert_eq!(pids_of(&fx, "0.29.0").len(), 1);
    assert_eq!(fx.pids().len(), 2, "0.28.2 started again");
    let ev = with_id(&journal, UPGRADE_FAILED_ID);
    assert_eq!(ev.len(), 1, "{:?}", journal.entries());
    assert_eq!(ev[0]["VERSION"], "0.29.0");
    assert_eq!(ev[0]["BACK_TO"], "0.28.2");
    assert_eq!(ev[0]["REASON"], "never healthy in 2s");
    assert_eq!(ev[0]["PRIORITY"], "3");
    // `status` shows it, in the JSON and on its screen.
    let st = status_json(&fx);
    assert_eq!(st["upgrade"]["failed"]["version"], "0.29.0", "{st}");
    assert_eq!(st["upgrade"]["failed"]["reason"], "never healthy in 2s");
    assert_eq!(st["upgrade"]["failed"]["rolled_back_to"], "0.28.2");
    assert_eq!(st["upgrade"]["rolled_back_by_hand"], Value::Null);
    assert_eq!(st["release"]["version"], "0.28.2");
    let screen = fx.host.run(&["status"]);
    assert!(
        screen
            .stdout
            .contains("upgrade:      to 0.29.0 failed: never healthy in 2s, rolled back to 0.28.2"),
        "{screen:?}"
    );
    // The configured version is still the failed one.
    assert_eq!(
        fx.host
            .run(&["config", "get", "ksqldb.version"])
            .stdout
            .trim(),
        "0.29.0"
    );
    // A reload with nothing changed does not try it again.
    let out = fx.host.run(&["reload"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout.trim(), "nothing changed; ksqlDB keeps running");
    assert_eq!(agent.stop(), 0, "{}", agent.stderr());

    // After a restart of the agent: the previous release, said so; 0.29.0 not retried.
    drop((notify, journal));
    for sock in ["notify.sock", "journal.sock"] {
        let _ = std::fs::remove_file(fx.host.dir.path().join(sock));
    }
    let notify = fx.notify_socket();
    let journal = fx.journal_socket();
    let mut agent = fx.start();
    wait_for("READY=1", || notify.lines().iter().any(|l| l == "READY=1"));
    assert_eq!(pids_of(&fx, "0.29.0").len(), 1, "0.29.0 was retried");
    assert_eq!(fx.pids().len(), 3);
    let held = with_id(&journal, HELD_BACK_ID);
    assert_eq!(held.len(), 1, "{:?}", journal.entries());
    assert_eq!(held[0]["VERSION"], "0.29.0");
    assert_eq!(held[0]["BACK_TO"], "0.28.2");
    assert!(notify.last_status() == want, "{:?}", notify.lines());

    // Another configured version clears it: upgraded, the failure forgotten.
    fx.publish_version("0.29.1", &[]);
    configure(&fx, "0.29.1");
    let out = fx.host.run(&["reload"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("ksqlDB 0.29.1 is running"), "{out:?}");
    assert_eq!(current(&fx), PathBuf::from("releases/0.29.1"));
    let rec = record(&fx);
    assert!(
        rec.contains("good = \"0.29.1\"") && !rec.contains("failed ="),
        "{rec}"
    );
    let st = status_json(&fx);
    assert_eq!(st["upgrade"]["failed"], Value::Null, "{st}");
    assert_eq!(st["upgrade"]["last_good"], "0.29.1");
    assert_eq!(agent.stop(), 0, "{}", agent.stderr());
}

#[test]
fn a_crash_looping_upgrade_is_rolled_back_after_restart_limit() {
    let (fx, notify, journal) = fixture("");
    let mut agent = started(&fx);
    fx.publish_version(
        "0.29.0",
        &[("fake-ksqldb.mode", "exit_after_ms=50\nexit_code=3\n")],
    );
    configure(&fx, "0.29.0");
    let out = fx.host.run(&["reload"]);
    assert_eq!(out.code, 69, "{out:?}");
    let want = "ksqlDB 0.28.2 running; upgrade to 0.29.0 failed: failed 4 times within 1m (ksqlDB exited with exit code 3), rolled back";
    wait_for("the rolled-back STATUS", || notify.last_status() == want);
    // restart_limit = 3: the fourth failure rolls back (instead of exit 75).
    assert_eq!(pids_of(&fx, "0.29.0").len(), 4);
    assert_eq!(current(&fx), PathBuf::from("releases/0.28.2"));
    assert_eq!(with_id(&journal, UPGRADE_FAILED_ID).len(), 1);
    assert!(
        agent.child.try_wait().unwrap().is_none(),
        "the agent exited"
    );
    assert_eq!(agent.stop(), 0, "{}", agent.stderr());
}

#[test]
fn a_new_version_waiting_for_kafka_is_not_a_failed_upgrade() {
    let (fx, _notify, journal) = fixture("start_timeout = \"1s\"\n");
    let mut agent = started(&fx);
    // Answers {"isHealthy":false} (kafka) from its first answer on.
    fx.publish_version("0.29.0", &[("fake-ksqldb.unhealthy", "kafka")]);
    configure(&fx, "0.29.0");
    let out = fx.host.run(&["reload"]);
    assert_eq!(out.code, 0, "{out:?}");
    // Three times start_timeout: still the new version, same pid, nothing rolled back.
    std::thread::sleep(Duration::from_secs(3));
    let new = pids_of(&fx, "0.29.0");
    assert_eq!(new.len(), 1);
    assert!(alive(new[0]));
    assert_eq!(current(&fx), PathBuf::from("releases/0.29.0"));
    assert!(with_id(&journal, UPGRADE_FAILED_ID).is_empty());
    assert!(record(&fx).contains("good = \"0.29.0\""), "{}", record(&fx));
    assert_eq!(agent.stop(), 0, "{}", agent.stderr());
}

#[test]
fn rollback_by_hand_and_clear_go_through_the_running_service() {
    let (fx, _notify, _journal) = fixture("");
    let mut agent = started(&fx);
    fx.publish_version("0.29.0", &[]);
    configure(&fx, "0.29.0");
    assert_eq!(fx.host.run(&["reload"]).code, 0);
    let dropin = fx
        .host
        .config_path()
        .parent()
        .unwrap()
        .join("ksql-msk.d/90-rollback.toml");

    let out = fx.host.run(&["rollback"]);
    assert_eq!(out.code, 0, "{out:?}");
    let back = fx.pids();
    assert_eq!(back.len(), 2);
    assert_eq!(
        out.stdout.trim(),
        format!(
            "rolled back from ksqlDB 0.29.0 to 0.28.2 ({} written); reloaded: ksqlDB 0.28.2 is running (pid {})",
            dropin.display(),
            back[1]
        )
    );
    assert_eq!(current(&fx), PathBuf::from("releases/0.28.2"));
    assert!(std::fs::read_to_string(&dropin)
        .unwrap()
        .contains("version = \"0.28.2\""));
    // Read by the service like the config files: 0640 with the main config's group,
    // whatever this root-run command's umask.
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let meta = std::fs::metadata(&dropin).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
        let config = std::fs::metadata(fx.host.config_path()).unwrap();
        assert_eq!(meta.gid(), config.gid());
    }
    assert_eq!(
        fx.host
            .run(&["config", "get", "ksqldb.version"])
            .stdout
            .trim(),
        "0.28.2"
    );
    let st = status_json(&fx);
    assert_eq!(
        st["upgrade"]["rolled_back_by_hand"],
        dropin.display().to_string(),
        "{st}"
    );
    assert_eq!(st["release"]["version"], "0.28.2");
    // Once is enough: a second rollback says what to do instead.
    let out = fx.host.run(&["rollback"]);
    assert_eq!(out.code, 69, "{out:?}");
    assert!(
        out.stderr.contains("already rolled back to ksqlDB 0.28.2")
            && out.stderr.contains("--clear"),
        "{out:?}"
    );
    // A restart keeps it.
    assert_eq!(agent.stop(), 0, "{}", agent.stderr());
    let mut agent = started(&fx);
    assert_eq!(fx.pids().len(), 3);
    assert_eq!(current(&fx), PathBuf::from("releases/0.28.2"));

    let out = fx.host.run(&["rollback", "--clear"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .starts_with("back to the configured ksqlDB 0.29.0"),
        "{out:?}"
    );
    assert!(!dropin.exists());
    assert_eq!(current(&fx), PathBuf::from("releases/0.29.0"));
    assert_eq!(
        status_json(&fx)["upgrade"]["rolled_back_by_hand"],
        Value::Null
    );
    assert_eq!(pids_of(&fx, "0.29.0").len(), 2);
    assert_eq!(
        fx.host
            .run(&["config", "get", "ksqldb.version"])
            .stdout
            .trim(),
        "0.29.0"
    );
    let out = fx.host.run(&["rollback", "--clear"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("nothing to clear"), "{out:?}");
    assert_eq!(agent.stop(), 0, "{}", agent.stderr());
}

#[test]
fn rollback_errors_no_previous_release_a_tampered_one_and_no_service() {
    let (fx, _notify, _journal) = fixture("");
    let dropin = fx
        .host
        .config_path()
        .parent()
        .unwrap()
        .join("ksql-msk.d/90-rollback.toml");
    // Only the active release is installed.
    let out = fx.host.run(&["rollback"]);
    assert_eq!(out.code, 69, "{out:?}");
    assert!(
        out.stderr
            .trim()
            .starts_with("ksql-msk: error: no previous release to roll back to: "),
        "{out:?}"
    );
    assert!(out.stderr.contains("holds only ksqlDB 0.28.2"), "{out:?}");
    assert_eq!(out.stderr.trim().lines().count(), 1);
    assert!(!dropin.exists());

    // 0.29.0 installed over it (0.28.2 kept); the previous release tampered with: 65,
    // nothing written.
    fx.publish_version("0.29.0", &[]);
    configure(&fx, "0.29.0");
    assert_eq!(fx.host.run(&["install"]).code, 0);
    let script = release(&fx, "0.28.2").join("share/java/ksqldb");
    let victim = std::fs::read_dir(&script)
        .unwrap()
        .flatten()
        .find(|e| e.path().is_file())
        .map(|e| e.path());
    let victim = victim.unwrap_or_else(|| release(&fx, "0.28.2").join("bin/ksql-server-start"));
    let bytes = std::fs::read(&victim).unwrap();
    let mut flipped = bytes.clone();
    flipped[0] ^= 1;
    std::fs::write(&victim, &flipped).unwrap();
    let out = fx.host.run(&["rollback"]);
    assert_eq!(out.code, 65, "{out:?}");
    assert!(
        out.stderr
            .contains("the previous release, ksqlDB 0.28.2, fails verification"),
        "{out:?}"
    );
    assert!(!dropin.exists());
    std::fs::write(&victim, &bytes).unwrap();

    // The service is not running: the drop-in is written, exit 75 says it waits for the
    // next start.
    let out = fx.host.run(&["rollback"]);
    assert_eq!(out.code, 75, "{out:?}");
    assert!(out.stderr.contains("90-rollback.toml written: ksqlDB 0.28.2 runs when the service next starts; the service is not running"), "{out:?}");
    assert!(dropin.exists());
    assert_eq!(
        fx.host
            .run(&["config", "get", "ksqldb.version"])
            .stdout
            .trim(),
        "0.28.2"
    );
    let out = fx.host.run(&["rollback", "--clear"]);
    assert_eq!(out.code, 75, "{out:?}");
    assert!(!dropin.exists());
}

#[test]
fn a_garbage_upgrade_record_is_ignored_never_a_panic_or_a_hang() {
    let (fx, _notify, _journal) = fixture("");
    let rec = fx.host.state_dir().join("upgrade.toml");
    for garbage in [
        &b"\xff\xfe not utf-8"[..],
        b"failed = \"0.29.0\"\n",
        b"good = \"../../../etc\"\n",
        b"[[[",
    ] {
        std::fs::write(&rec, garbage).unwrap();
        let out = fx.host.run(&["install"]);
        assert_eq!(out.code, 0, "{garbage:?}: {out:?}");
        assert!(
            out.stderr.contains("not an upgrade record, ignored"),
            "{out:?}"
        );
    }
    // A FIFO: opening it for reading would block; it is garbage at once.
    std::fs::remove_file(&rec).unwrap();
    let c = std::ffi::CString::new(rec.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let t = Instant::now();
    let out = fx.host.run(&["install"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(t.elapsed() < Duration::from_secs(20));
    // A record naming a version that is not installed holds nothing back.
    std::fs::remove_file(&rec).unwrap();
    std::fs::write(
        &rec,
        "good = \"0.20.0\"\nfailed = \"0.28.2\"\nreason = \"x\"\nback_to = \"0.20.0\"\n",
    )
    .unwrap();
    let mut agent = started(&fx);
    assert_eq!(fx.pids().len(), 1, "0.28.2 runs");
    assert!(
        agent
            .stderr()
            .contains("is no longer installed as verified: trying 0.28.2 again"),
        "{}",
        agent.stderr()
    );
    assert_eq!(agent.stop(), 0, "{}", agent.stderr());
}

/// Crash consistency of the rollback: the failpoints build is killed (or failed) while
/// it records the failed upgrade (`fsutil.mid_write`) and while it switches `current`
/// back (`install.before_current_swap`). After each, `current` is the old or the new
/// release, the record is the old or the new one, and a normal start runs the old
/// release, the failed upgrade recorded.
#[test]
fn a_rollback_killed_or_failed_at_each_step_ends_on_the_old_release() {
    let Some(bin) = crate::crash::failpoints_bin() else {
        return;
    };
    let (fx, _notify, _journal) = fixture("start_timeout = \"1s\"\n");
    let mut agent = started(&fx);
    assert_eq!(agent.stop(), 0, "{}", agent.stderr());
    fx.publish_version("0.29.0", &[("fake-ksqldb.mode", "never_healthy=1\n")]);
    configure(&fx, "0.29.0");
    let rec = fx.host.state_dir().join("upgrade.toml");
    for point in ["fsutil.mid_write", "install.before_current_swap"] {
        for action in ["kill", "error"] {
            let what = format!("{point}={action}");
            // Before the upgrade: 0.28.2 was good, 0.29.0 installed and active.
            std::fs::write(&rec, "good = \"0.28.2\"\n").unwrap();
            assert_eq!(fx.host.run(&["install"]).code, 0, "{what}");
            assert_eq!(current(&fx), PathBuf::from("releases/0.29.0"));
            let mut cmd = fx.host.command_with(&bin, &["run"]);
            cmd.env("KSQL_MSK_FAILPOINTS", &what)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped());
            let child = cmd.spawn().unwrap();
            let out = child.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                stderr.contains(&format!("failpoint {point} hit")),
                "{what}: {stderr}"
            );
            use std::os::unix::process::ExitStatusExt;
            match action {
                "kill" => assert_eq!(out.status.signal(), Some(9), "{what}: {stderr}"),
                _ => {
                    assert_eq!(out.status.code(), Some(75), "{what}: {stderr}");
                    // Rolling back failed: the state file says the agent gave up.
                    let state = fx.host.state_dir().join("status.json");
                    let doc = std::fs::read_to_string(&state).unwrap_or_default();
                    assert!(doc.contains("\"gave_up\""), "{what}: {doc}");
                }
            }
            // Old or new, each whole; the record parses and still knows the good one.
            let now = current(&fx);
            assert!(
                now == std::path::Path::new("releases/0.28.2")
                    || now == std::path::Path::new("releases/0.29.0"),
                "{what}: {now:?}"
            );
            let text = std::fs::read_to_string(&rec).unwrap();
            assert!(text.contains("good = \"0.28.2\""), "{what}: {text}");
            let ok = fx.host.run(&["verify"]);
            assert_eq!(ok.code, 0, "{what}: {ok:?}");
            // A normal start ends on 0.28.2 with the failure recorded.
            let mut agent = fx.start();
            wait_for("0.28.2 healthy", || {
                health(&health_url(&fx).replace("/healthcheck", "/info"))
                    .is_some_and(|(c, b)| c == 200 && b.contains("\"version\":\"0.28.2\""))
            });
            assert_eq!(current(&fx), PathBuf::from("releases/0.28.2"), "{what}");
            let text = std::fs::read_to_string(&rec).unwrap();
            assert!(text.contains("failed = \"0.29.0\""), "{what}: {text}");
            assert_eq!(agent.stop(), 0, "{what}: {}", agent.stderr());
            eprintln!("{what}: killed/failed with current → {}", now.display());
        }
    }
}

#[test]
fn a_rollback_that_ends_with_a_degraded_command_runner_says_so_and_keeps_both_backups() {
    const DEGRADED_ID: &str = "f4dc9a51a9574146adc01feab0615b3f";
    let (fx, notify, journal) = fixture("start_timeout = \"2s\"\n");
    let mut agent = started(&fx);
    let backup = |fx: &Fixture| -> Vec<String> {
        std::fs::read_dir(fx.host.state_dir().join("metastore"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    let live = backup(&fx);
    assert_eq!(live.len(), 1, "{live:?}");
    fx.publish_version("0.29.0", &[("fake-ksqldb.mode", "never_healthy=1\n")]);
    configure(&fx, "0.29.0");
    let mut reload = fx.host.command(&["reload"]).spawn().unwrap();
    // Once 0.29.0 runs, the old release will meet what "it wrote": degraded.
    wait_for("0.29.0 started", || pids_of(&fx, "0.29.0").len() == 1);
    std::fs::write(
        release(&fx, "0.28.2").join("fake-ksqldb.degraded"),
        "incompatible",
    )
    .unwrap();
    let _ = reload.wait();
    wait_for("the degraded event", || {
        !with_id(&journal, DEGRADED_ID).is_empty()
    });
    let ev = with_id(&journal, DEGRADED_ID);
    assert_eq!(ev.len(), 1, "{:?}", journal.entries());
    assert_eq!(ev[0]["VERSION"], "0.28.2");
    assert!(
        ev[0]["MESSAGE"].contains("DEGRADED after the rollback from 0.29.0"),
        "{:?}",
        ev[0]
    );
    // STATUS follows the event: wait for it rather than read it at once.
    wait_for("the DEGRADED status line", || {
        notify.last_status().contains("command runner DEGRADED")
    });
    let last = notify.last_status();
    assert!(!last.contains("waiting for Kafka"), "{last}");
    // status.json is written in the background: it follows STATUS shortly.
    wait_for("status --json: command_runner_degraded", || {
        status_json(&fx)["ksqldb"]["health"]["condition"] == "command_runner_degraded"
    });
    // Both switches kept the backup as it was: there and back.
    for record in ["0.28.2-to-0.29.0", "0.29.0-to-0.28.2"] {
        let copy = fx
            .host
            .state_dir()
            .join("upgrades")
            .join(record)
            .join(&live[0]);
        assert!(copy.is_file(), "{} missing", copy.display());
    }
    // The backup directory holds only ksqlDB's file, the same one across the switches.
    assert_eq!(backup(&fx), live);
    // Not restarted for it.
    let pids = fx.pids().len();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(fx.pids().len(), pids);
    assert_eq!(agent.stop(), 0);
}

/// `sudo ksql-msk install` of a version held back by a failed-upgrade record: the old
/// release stays active, and the command says so with 69 instead of exiting 0 (an
/// image-baking script would read 0 as the configured version installed).
#[test]
fn install_of_a_held_back_version_exits_69_with_one_line() {
    let (fx, _notify, _journal) = fixture("");
    fx.publish_version("0.29.0", &[]);
    configure(&fx, "0.29.0");
    std::fs::write(
        fx.host.state_dir().join("upgrade.toml"),
        "good = \"0.28.2\"\nfailed = \"0.29.0\"\nreason = \"never healthy in 5m\"\nback_to = \"0.28.2\"\n",
    )
    .unwrap();
    let out = fx.host.run(&["install"]);
    assert_eq!(out.code, 69, "{out:?}");
    let line = crate::support::error_line(&out);
    assert!(
        line.contains("ksqlDB 0.29.0 is held back: its upgrade failed (never healthy in 5m)")
            && line.contains("0.28.2 stays active"),
        "{out:?}"
    );
    assert_eq!(
        std::fs::read_link(fx.host.state_dir().join("current")).unwrap(),
        std::path::Path::new("releases/0.28.2")
    );
    // Another version configured: installed, 0.
    configure(&fx, "0.28.2");
    assert_eq!(fx.host.run(&["install"]).code, 0);
}
