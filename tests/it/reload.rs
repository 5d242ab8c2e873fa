//! `ksql-msk reload` (what the unit's ExecReload= runs): it returns when the reload is
//! done, with the agent's one-line result, and fails with the agent's reason and exit
//! code when the reload failed, while ksqlDB keeps running.

use std::time::{Duration, Instant};

use crate::run::{alive, wait_for, Agent, Fixture};

/// A fixture whose agent has a runtime directory (as `RuntimeDirectory=` gives it).
fn fixture() -> Fixture {
    let mut fx = Fixture::new("");
    fx.mode("healthy_after_ms=300\n");
    let runtime = fx.host.dir.path().join("run");
    std::fs::create_dir_all(&runtime).unwrap();
    let runtime = runtime.display().to_string();
    fx.host.env("RUNTIME_DIRECTORY", &runtime);
    fx
}

fn started(fx: &Fixture) -> Agent {
    let agent = fx.start();
    wait_for("healthy", || agent.stderr().contains("is healthy"));
    wait_for("the control socket", || {
        fx.host.dir.path().join("run/control.sock").exists()
    });
    agent
}

#[test]
fn a_reload_reports_nothing_changed_a_restart_and_a_failure() {
    let fx = fixture();
    let mut agent = started(&fx);
    let first = fx.pids()[0];

    let out = fx.host.run(&["reload"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout.trim(), "nothing changed; ksqlDB keeps running");
    assert_eq!(fx.pids(), [first]);
    // The agent's log says it once (it used to say it twice in stderr mode).
    wait_for("the reload's log line", || {
        agent
            .stderr()
            .contains("nothing changed; ksqlDB keeps running")
    });
    assert_eq!(
        agent
            .stderr()
            .matches("nothing changed; ksqlDB keeps running")
            .count(),
        1,
        "{}",
        agent.stderr()
    );

    // A change that restarts ksqlDB: reload returns only once the new one is healthy.
    fx.host.write_dropin(
        "60-threads.toml",
        "[properties]\n\"ksql.streams.num.stream.threads\" = 2\n",
    );
    let t = Instant::now();
    let out = fx.host.run(&["reload"]);
    let took = t.elapsed();
    assert_eq!(out.code, 0, "{out:?}");
    let pids = fx.pids();
    assert_eq!(pids.len(), 2, "{out:?}");
    assert!(
        out.stdout.trim() == format!("reloaded: ksqlDB 0.28.2 is running (pid {})", pids[1]),
        "{out:?}"
    );
    // The stand-in takes 300 ms to become healthy: the reload waited for it.
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(!alive(first));

    // A broken drop-in: the reload fails with the agent's reason and exit 78; ksqlDB
    // keeps its pid.
    fx.host
        .write_dropin("90-broken.toml", "[msk]\nconnectivity = \"sideways\"\n");
    let out = fx.host.run(&["reload"]);
    assert_eq!(out.code, 78, "{out:?}");
    let line = out.stderr.trim();
    assert!(
        line.starts_with("ksql-msk: error: reload failed, ksqlDB keeps running as it was: ")
            && line.contains("90-broken.toml")
            && line.contains("msk.connectivity"),
        "{line}"
    );
    assert_eq!(line.lines().count(), 1, "{line}");
    assert_eq!(fx.pids().len(), 2);
    assert!(alive(pids[1]));
    assert_eq!(agent.stop(), 0, "{}", agent.stderr());
}

#[test]
fn a_reload_whose_restarted_ksqldb_fails_says_so() {
    let fx = fixture();
    let mut agent = started(&fx);
    // The next start exits at once.
    fx.mode("exit_after_ms=50\nexit_code=3\n");
    fx.host.write_dropin(
        "60-threads.toml",
        "[properties]\n\"ksql.streams.num.stream.threads\" = 2\n",
    );
    let out = fx.host.run(&["reload"]);
    assert_eq!(out.code, 69, "{out:?}");
    assert!(
        out.stderr.contains(
            "the reload restarted ksqlDB 0.28.2 and it failed: ksqlDB exited with exit code 3"
        ),
        "{out:?}"
    );
    // It keeps restarting the failing ksqlDB (and may have given up, 75, by now).
    let code = agent.stop();
    assert!(code == 0 || code == 75, "{code}: {}", agent.stderr());
}

#[test]
fn reload_without_a_running_agent_is_a_clear_error() {
    let fx = fixture();
    let out = fx.host.run(&["reload"]);
    assert_eq!(out.code, 69, "{out:?}");
    let line = out.stderr.trim();
    assert!(
        line.starts_with("ksql-msk: error: no ksql-msk agent is listening on ")
            && line.contains("run/control.sock")
            && line.ends_with("(is the service running?)"),
        "{line}"
    );
}

#[test]
fn garbage_and_silent_clients_on_the_control_socket_do_not_disturb_the_agent() {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    let fx = fixture();
    let mut agent = started(&fx);
    let sock = fx.host.dir.path().join("run/control.sock");
    // A client that connects and says nothing holds no lock on reloads.
    let _silent = UnixStream::connect(&sock).unwrap();
    // A request that is not `reload` gets one error line and the connection closed.
    let mut wrong = UnixStream::connect(&sock).unwrap();
    wrong.write_all(b"rm -rf /\n").unwrap();
    let mut answer = String::new();
    wrong.read_to_string(&mut answer).unwrap();
    assert_eq!(
        answer,
        "error 64 unknown request \"rm -rf /\" (expected \"reload\")\n"
    );
    // Binary and over-long (past the 256-byte cap): the agent answers and closes with
    // the rest unread, so the client may see a reset instead of the line; the agent
    // itself must not care.
    let mut garbage = UnixStream::connect(&sock).unwrap();
    let mut junk = vec![0xffu8; 4096];
    junk.push(b'\n');
    let _ = garbage.write_all(&junk);
    let mut raw = Vec::new();
    match garbage.read_to_end(&mut raw) {
        Ok(_) => assert!(raw.starts_with(b"error 64 "), "{raw:?}"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
    // The agent still reloads and supervises the same ksqlDB.
    let out = fx.host.run(&["reload"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout.trim(), "nothing changed; ksqlDB keeps running");
    assert_eq!(fx.pids().len(), 1);
    assert_eq!(agent.stop(), 0, "{}", agent.stderr());
}
