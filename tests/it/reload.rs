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
        "error 64 unknown request \"rm -rf /\" (expected \"reload\" or \"restore\")\n"
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

/// `ksql-msk ARGS` killed after 40 s (today's client waited for ever on a silent peer).
fn run_bounded(fx: &Fixture, args: &[&str]) -> crate::support::Output {
    let mut child = fx
        .host
        .command(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > Duration::from_secs(40) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ksql-msk {args:?} still waits after 40 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    crate::support::Output::of(child.wait_with_output().unwrap())
}

/// A listener planted on the control socket in this test process (so, without
/// `MAINPID`, not running the agent's executable): it accepts one connection, records
/// what it is sent, answers `reply` if any, and holds the connection for 20 s.
fn plant(
    sock: &std::path::Path,
    reply: Option<&'static [u8]>,
) -> std::sync::mpsc::Receiver<Vec<u8>> {
    use std::io::{Read, Write};
    let listener = std::os::unix::net::UnixListener::bind(sock).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let Ok((mut stream, _)) = listener.accept() else {
            return;
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut got = Vec::new();
        let mut byte = [0u8; 1];
        while !got.ends_with(b"\n") && matches!(stream.read(&mut byte), Ok(1)) {
            got.push(byte[0]);
        }
        let _ = tx.send(got);
        if let Some(r) = reply {
            let _ = stream.write_all(r);
        }
        std::thread::sleep(Duration::from_secs(20));
    });
    rx
}

#[test]
fn a_planted_listener_that_never_answers_gets_one_line_and_75() {
    let mut fx = fixture();
    let sock = fx.host.dir.path().join("run/control.sock");
    let got = plant(&sock, None);
    // It passes as the agent (MAINPID names this process), then says nothing.
    fx.host.env("MAINPID", &std::process::id().to_string());
    let t = Instant::now();
    let out = run_bounded(&fx, &["reload"]);
    let took = t.elapsed();
    assert_eq!(out.code, 75, "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    assert!(
        out.stderr.contains("did not answer within 10s") && out.stderr.contains("control.sock"),
        "{out:?}"
    );
    assert!(took < Duration::from_secs(20), "{took:?}");
    assert_eq!(
        got.recv_timeout(Duration::from_secs(5)).unwrap(),
        b"reload\n"
    );
}

#[test]
fn a_listener_that_is_not_the_agent_is_refused_before_anything_is_sent() {
    // Same uid, but neither MAINPID nor the agent's executable.
    let fx = fixture();
    let sock = fx.host.dir.path().join("run/control.sock");
    let got = plant(&sock, Some(b"ok reloaded\n"));
    let out = run_bounded(&fx, &["reload"]);
    assert_eq!(out.code, 65, "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    assert!(
        out.stderr.contains("is not the ksql-msk agent")
            && out.stderr.contains("does not run this ksql-msk executable")
            && out.stderr.contains("nothing was sent"),
        "{out:?}"
    );
    assert_eq!(got.recv_timeout(Duration::from_secs(10)).unwrap(), b"");
}

#[test]
fn a_planted_listener_of_another_uid_is_refused_by_its_credentials() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    if !crate::support::is_root() {
        crate::support::skip("KSQL_MSK_TEST_ROOT", "a listener of another uid needs root");
        return;
    }
    let mut fx = fixture();
    let run = fx.host.dir.path().join("run");
    // The runtime directory stays root's (the expected uid: 0), open to the planter.
    for dir in [fx.host.dir.path(), run.as_path()] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let sock = run.join("control.sock");
    let addr = rustix::net::SocketAddrUnix::new(&sock).unwrap();
    // `sleep` as nobody holds a listening socket made (bound and listened) as nobody.
    let mut cmd = std::process::Command::new("sleep");
    cmd.arg("30").uid(65534).gid(65534);
    // SAFETY: system calls only (socket, bind, listen), in the child before exec.
    unsafe {
        cmd.pre_exec(move || {
            let fd = rustix::net::socket(
                rustix::net::AddressFamily::UNIX,
                rustix::net::SocketType::STREAM,
                None,
            )?;
            rustix::net::bind(&fd, &addr)?;
            rustix::net::listen(&fd, 8)?;
            // Kept open across exec.
            std::mem::forget(fd);
            Ok(())
        });
    }
    let mut planter = cmd.spawn().unwrap();
    wait_for("the planted socket", || sock.exists());
    // Even MAINPID naming it does not make another uid the service.
    fx.host.env("MAINPID", &planter.id().to_string());
    let out = run_bounded(&fx, &["reload"]);
    let _ = planter.kill();
    let _ = planter.wait();
    assert_eq!(out.code, 65, "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    assert!(
        out.stderr
            .contains("it runs as uid 65534, the service as uid 0"),
        "{out:?}"
    );
}

#[test]
fn what_the_agent_sends_is_shown_with_control_characters_escaped() {
    for (reply, code) in [
        (
            &b"accepted\nok \x1b]0;owned\x07 \xc2\x9b31m red \x1b[2J\n"[..],
            0,
        ),
        (&b"working\nerror 78 \x1b[31mbad\xc2\x85\n"[..], 78),
    ] {
        let mut fx = fixture();
        let sock = fx.host.dir.path().join("run/control.sock");
        let reply: &'static [u8] = Box::leak(reply.to_vec().into_boxed_slice());
        let _got = plant(&sock, Some(reply));
        fx.host.env("MAINPID", &std::process::id().to_string());
        let out = run_bounded(&fx, &["reload"]);
        assert_eq!(out.code, code, "{out:?}");
        let all = format!("{}{}", out.stdout, out.stderr);
        assert!(
            !all.chars().any(|c| c.is_control() && c != '\n'),
            "raw control characters reached the terminal: {all:?}"
        );
        if code == 0 {
            assert_eq!(
                out.stdout.trim(),
                "\\u{1b}]0;owned\\u{7} \\u{9b}31m red \\u{1b}[2J",
                "{out:?}"
            );
        } else {
            assert!(out.stderr.contains("\\u{1b}[31mbad\\u{85}"), "{out:?}");
        }
    }
}
