//! Exit codes that scripts can rely on: usage errors are EX_USAGE (64) like the rest of
//! the agent's sysexits codes, and `config get` answers an unset key alike in every
//! section (its default, or an empty line; exit 0). Issue 13 item 5: the code holds
//! when stderr or stdout cannot be written (`/dev/full`) or the journal is gone, and
//! exit 101 (a panic) is never an outcome.

use std::fs::File;
use std::process::{Command, Stdio};
use std::time::Duration;

use ksql_msk_testkit::signing::TestKey;
use ksql_msk_testkit::tarball;

use crate::support::fixture::{wait_for, Fixture};
use crate::support::world::{Pins, World, NEW};
use crate::support::{Host, Output};

/// `/dev/full`: every write fails with ENOSPC.
fn full() -> File {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("open /dev/full")
}

fn output(mut cmd: Command) -> Output {
    let out = cmd.output().expect("run ksql-msk");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A loopback endpoint nothing listens on.
fn dead_endpoint() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    drop(l);
    format!("http://127.0.0.1:{port}")
}

#[test]
fn usage_errors_exit_64_help_and_version_0() {
    let host = Host::new();
    for args in [
        &["no-such-command"][..],
        &["--no-such-flag", "check"],
        &["config", "get"],
    ] {
        let out = host.run(args);
        assert_eq!(out.code, 64, "{args:?}: {out:?}");
        assert!(out.stderr.contains("Usage"), "{args:?}: {out:?}");
    }
    for args in [&["--help"][..], &["--version"], &["config", "--help"]] {
        let out = host.run(args);
        assert_eq!(out.code, 0, "{args:?}: {out:?}");
        assert!(!out.stdout.is_empty(), "{args:?}: {out:?}");
    }
}

#[test]
fn config_get_of_an_unset_key_is_the_same_in_every_section() {
    let host = Host::new();
    host.write_config("[msk]\ncluster_name = \"demo\"\n");
    let msk = host.run(&["config", "get", "msk.cluster_arn"]);
    let prop = host.run(&["config", "get", "properties.ksql.service.id"]);
    for out in [&msk, &prop] {
        assert_eq!(out.code, 0, "{out:?}");
        assert_eq!(out.stdout, "\n", "{out:?}");
    }
    host.write_config(
        "[msk]\ncluster_name = \"demo\"\n[properties]\n\"ksql.service.id\" = \"svc_\"\n",
    );
    let set = host.run(&["config", "get", "properties.ksql.service.id"]);
    assert_eq!((set.code, set.stdout.as_str()), (0, "svc_\n"), "{set:?}");
}

#[test]
fn a_config_error_is_78_also_when_stderr_cannot_be_written() {
    let host = Host::new();
    host.write_config("[msk]\ncluster_name = = \"demo\"\n");
    for args in [&["run"][..], &["install"], &["check"], &["brokers"]] {
        let mut cmd = host.command(args);
        cmd.stderr(full());
        let out = output(cmd);
        assert_eq!(out.code, 78, "{args:?} with 2>/dev/full: {out:?}");
        // The same error with a readable stderr: one line, so the test is not passing
        // for some other reason.
        let readable = host.run(args);
        assert_eq!(readable.code, 78, "{args:?}: {readable:?}");
        assert!(
            crate::support::error_line(&readable).contains("invalid TOML"),
            "{readable:?}"
        );
    }
}

#[test]
fn a_result_that_cannot_be_written_to_stdout_is_74_with_one_line() {
    let host = Host::new();
    host.write_config(&format!(
        "[msk]\ncluster_arn = \"arn:aws:kafka:eu-west-1:123456789012:cluster/demo/0a1b2c3d-4e5f-6789-abcd-ef0123456789-1\"\n\
         region = \"eu-west-1\"\nendpoint_url = \"{}\"\n",
        dead_endpoint()
    ));
    for args in [
        &["config", "get", "msk.region"][..],
        &["iam-policy"],
        &["iam-policy", "--explain"],
        &["--help"],
    ] {
        let readable = host.run(args);
        assert_eq!(readable.code, 0, "{args:?}: {readable:?}");
        assert!(!readable.stdout.is_empty(), "{args:?}: {readable:?}");
        let mut cmd = host.command(args);
        cmd.stdout(full());
        let out = output(cmd);
        assert_eq!(out.code, 74, "{args:?} with >/dev/full: {out:?}");
        assert!(!out.stderr.contains("panicked"), "{args:?}: {out:?}");
        if args[0] != "--help" {
            let errors: Vec<&str> = out
                .stderr
                .lines()
                .filter(|l| l.starts_with("ksql-msk: error: "))
                .collect();
            assert_eq!(
                errors,
                ["ksql-msk: error: writing to stdout: No space left on device (os error 28)"],
                "{args:?}: {out:?}"
            );
        }
    }
}

/// A child killed when the test ends early (ksqlDB dies with it: PR_SET_PDEATHSIG).
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `run` whose stderr is `/dev/full` and whose journal socket goes away mid-run (the
/// fake journal stops listening, then the entries of a reload have nowhere to go): it
/// still becomes ready, reloads, and stops with 0 on SIGTERM.
#[test]
fn run_survives_a_full_stderr_and_a_journal_that_went_away() {
    let mut fx = Fixture::new("");
    fx.mode("healthy_after_ms=100\n");
    let notify = fx.notify_socket();
    let journal = fx.journal_socket();
    let mut cmd = fx.host.command(&["run"]);
    cmd.stdout(Stdio::null()).stderr(full());
    let mut agent = Killed(cmd.spawn().expect("start ksql-msk run"));
    let agent = &mut agent.0;

    wait_for("READY=1", || notify.lines().iter().any(|l| l == "READY=1"));
    assert!(
        journal
            .entries()
            .iter()
            .any(|e| e.get("SYSLOG_IDENTIFIER").map(String::as_str) == Some("ksql-msk")),
        "the agent's events reached the journal while it listened"
    );
    let path = journal.path.clone();
    drop(journal);
    std::fs::remove_file(&path).expect("remove the journal socket");

    // A reload logs and sends journal events that now fail; ksqlDB's own lines too.
    // SAFETY: kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(agent.id() as i32, libc::SIGHUP) }, 0);
    wait_for("READY after reload", || {
        let l = notify.lines();
        let r = l.iter().rposition(|x| x == "RELOADING=1");
        r.is_some_and(|r| l[r..].iter().any(|x| x == "READY=1"))
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        agent.try_wait().expect("try_wait"),
        None,
        "the agent died without its journal"
    );

    // SAFETY: kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(agent.id() as i32, libc::SIGTERM) }, 0);
    wait_for("the agent to exit", || {
        matches!(agent.try_wait(), Ok(Some(_)))
    });
    let status = agent.wait().expect("wait");
    assert_eq!(status.code(), Some(0), "{status:?}");
}

/// A panic (a bug) exits 70 with one line, on the main thread and on the blocking
/// thread that unpacks the archive alike, never 101 with a backtrace. Needs the
/// failpoints build (`panic` action); skipped without it, like tests/it/crash.rs.
#[test]
fn a_panic_on_any_thread_exits_70_with_one_line() {
    let Some(bin) = crate::crash::failpoints_bin() else {
        return;
    };
    let w = World::new();
    let key = TestKey::generate("k <k@example.com>");
    w.publish(NEW, &tarball::ksqldb_tarball(NEW), &key);
    w.configure(NEW, &Pins::strict(&key.fingerprint()));
    for point in ["install.after_download", "unpack.mid_archive"] {
        let mut cmd = w.host.command_with(&bin, &["install"]);
        cmd.env("KSQL_MSK_FAILPOINTS", format!("{point}=panic"));
        let out = output(cmd);
        assert_eq!(out.code, 70, "{point}=panic: {out:?}");
        assert!(
            out.stderr.contains(&format!(
                "ksql-msk: error: internal error (a bug): failpoint {point}: injected panic at src/"
            )),
            "{point}: {out:?}"
        );
        assert!(!out.stderr.contains("panicked at"), "{point}: {out:?}");
    }
}
