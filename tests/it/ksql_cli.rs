//! `ksql` (a link to the agent) and `ksql-msk ksql`: the active release's `bin/ksql`
//! (the testkit's stand-in, which prints its pid, arguments and environment) started in
//! place of the agent, with the server's Java and GC fix, this host's URL unless one is
//! given, nothing of the server's heap or log directory, and of the caller's environment
//! only terminal, locale and time zone; one line and 69 when nothing is installed, 65 for
//! a `current` planted outside releases/, 77 for a user who may not read the config and
//! for root (refused before anything of the release runs).
//!
//! The tests run `ksql` as an operator: as root they switch to `nobody` (65534) with the
//! fixture opened to it; otherwise they run as themselves.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::support::fixture::*;
use crate::support::{as_operator, bin, error_line, is_root, Output};

/// What the stand-in CLI printed.
struct Started {
    pid: u32,
    uid: u32,
    args: Vec<String>,
    env: HashMap<String, String>,
}

fn parse(stdout: &str) -> Started {
    let mut lines = stdout.lines();
    let pid = lines
        .next()
        .and_then(|l| l.strip_prefix("ksql-cli-standin pid="))
        .unwrap_or_else(|| panic!("the stand-in CLI did not run:\n{stdout}"))
        .parse()
        .expect("pid");
    let mut args = Vec::new();
    let mut env = HashMap::new();
    let mut uid = u32::MAX;
    for l in lines {
        if let Some(u) = l.strip_prefix("uid=") {
            uid = u.parse().expect("uid");
        } else if let Some(a) = l.strip_prefix("arg=") {
            args.push(a.to_string());
        } else if let Some((k, v)) = l.strip_prefix("env=").and_then(|e| e.split_once('=')) {
            env.insert(k.to_string(), v.to_string());
        }
    }
    Started {
        pid,
        uid,
        args,
        env,
    }
}

/// `ksql-msk ARGS` as the operator.
fn operator_command(fx: &Fixture, args: &[&str]) -> (Command, u32) {
    let mut cmd = fx.host.command(args);
    let uid = as_operator(fx.host.dir.path(), &mut cmd);
    (cmd, uid)
}

/// Run `cmd`, returning what it printed and the pid it was started with.
fn run(mut cmd: Command) -> (Output, u32) {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let out = child.wait_with_output().expect("wait");
    let out = Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    (out, pid)
}

/// `ksql` as /usr/bin/ksql is: a link named ksql to the agent.
fn ksql_link(fx: &Fixture) -> std::path::PathBuf {
    let link = fx.host.dir.path().join("usr-bin/ksql");
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    if !link.exists() {
        std::os::unix::fs::symlink(bin(), &link).unwrap();
    }
    link
}

fn listener(fx: &Fixture) -> String {
    let text = std::fs::read_to_string(fx.host.config_path()).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("listeners = "))
        .expect("listeners in the test config");
    line.trim_start_matches("listeners = ")
        .trim_matches('"')
        .to_string()
}

#[test]
fn ksql_execs_the_releases_cli_with_the_servers_java_and_this_hosts_url() {
    let mut fx = Fixture::new("");
    fx.host
        .env("TERM", "xterm-256color")
        .env("XDG_RUNTIME_DIR", "");
    let url = listener(&fx);
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    // `ksql-msk ksql`, no arguments: the URL of this host's listener.
    let (cmd, uid) = operator_command(&fx, &["ksql"]);
    let (out, pid) = run(cmd);
    assert_eq!(out.code, 0, "{out:?}");
    let s = parse(&out.stdout);
    assert_eq!(
        s.pid, pid,
        "exec'd in place of the agent, nothing left in between"
    );
    assert_eq!(s.args, [url.as_str()]);
    let jdk = fx.host.dir.path().join("jdk");
    assert_eq!(s.env["JAVA_HOME"], jdk.display().to_string());
    let perf = &s.env["KSQL_JVM_PERFORMANCE_OPTS"];
    assert!(perf.contains("-XX:+UseG1GC"), "{perf}");
    assert!(!perf.contains("ConcMarkSweep"), "{perf}");
    assert!(!s.env.contains_key("KSQL_HEAP_OPTS"), "{:?}", s.env);
    assert!(
        !s.env.contains_key("KSQL_LOG4J_OPTS"),
        "bin/ksql picks its own"
    );
    assert!(
        !s.env.keys().any(|k| k.starts_with("KSQL_MSK_")),
        "{:?}",
        s.env
    );
    assert_eq!(s.env["TERM"], "xterm-256color", "the user's terminal");
    assert_eq!(s.env["LANG"], "C.UTF-8");
    assert_eq!(
        s.env["PATH"], "/usr/local/bin:/usr/bin:/bin",
        "not the caller's"
    );
    assert_eq!(s.uid, uid);
    // LOG_DIR: a private directory of this user, not the state directory.
    let log_dir = Path::new(&s.env["LOG_DIR"]);
    assert_eq!(
        log_dir,
        std::env::temp_dir().join(format!("ksql-msk-{uid}"))
    );
    let meta = std::fs::symlink_metadata(log_dir).unwrap();
    assert!(meta.is_dir());
    assert_eq!(meta.permissions().mode() & 0o077, 0);
    assert!(!log_dir.starts_with(fx.host.state_dir()));

    // /usr/bin/ksql: every argument is the CLI's; an explicit URL wins, the others pass
    // through in order.
    let link = ksql_link(&fx);
    let args = [
        "--execute",
        "SHOW TOPICS;",
        "--output",
        "JSON",
        "HTTPS://other:9443",
    ];
    let mut cmd = fx.host.command_with(&link, &args);
    as_operator(fx.host.dir.path(), &mut cmd);
    let (out, pid) = run(cmd);
    assert_eq!(out.code, 0, "{out:?}");
    let s = parse(&out.stdout);
    assert_eq!(s.pid, pid);
    assert_eq!(s.args, args);
    // ... and an option the agent also has is the CLI's too.
    let mut cmd = fx
        .host
        .command_with(&link, &["--config", "x", "-e", "SHOW STREAMS;"]);
    as_operator(fx.host.dir.path(), &mut cmd);
    let (out, _) = run(cmd);
    assert_eq!(
        parse(&out.stdout).args,
        ["--config", "x", "-e", "SHOW STREAMS;", &url]
    );
    // Help needs no server.
    for help in [["--help"], ["--version"]] {
        let mut cmd = fx.host.command_with(&link, &help);
        as_operator(fx.host.dir.path(), &mut cmd);
        let (out, _) = run(cmd);
        assert_eq!(parse(&out.stdout).args, help);
    }
    let (out, _) = run(operator_command(&fx, &["ksql", "--help"]).0);
    assert_eq!(parse(&out.stdout).args, ["--help"], "{out:?}");
    // The CLI's exit code is the command's.
    let mut cmd = fx.host.command_with(&link, &["--standin-exit=3"]);
    as_operator(fx.host.dir.path(), &mut cmd);
    assert_eq!(run(cmd).0.code, 3);
}

#[test]
fn on_java_11_the_cli_keeps_the_releases_own_gc_options_and_a_session_dir_holds_the_log() {
    let mut fx = Fixture::with("", "11.0.21", "1.1.1");
    let runtime = fx.host.dir.path().join("run-user");
    std::fs::create_dir(&runtime).unwrap();
    fx.host
        .env("XDG_RUNTIME_DIR", &runtime.display().to_string())
        .env("KSQL_JVM_PERFORMANCE_OPTS", "-XX:+UseParallelGC");
    let (cmd, uid) = operator_command(&fx, &["ksql"]);
    std::os::unix::fs::chown(&runtime, Some(uid), None).unwrap();
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
    let (out, _) = run(cmd);
    assert_eq!(out.code, 0, "{out:?}");
    let s = parse(&out.stdout);
    assert!(
        !s.env.contains_key("KSQL_JVM_PERFORMANCE_OPTS"),
        "no G1 override needed on Java 11, and the caller's JVM options are not passed: {:?}",
        s.env
    );
    assert_eq!(
        s.env["LOG_DIR"],
        runtime.join("ksql-msk").display().to_string()
    );
}

#[test]
fn without_a_release_one_line_and_69() {
    let fx = Fixture::uninstalled("", "17.0.15", "1.1.1");
    let (out, _) = run(operator_command(&fx, &["ksql"]).0);
    assert_eq!(out.code, 69, "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    let line = error_line(&out);
    assert!(
        line.contains("no ksqlDB release is installed yet") && line.contains("current"),
        "{line}"
    );
    let link = ksql_link(&fx);
    let mut cmd = fx.host.command_with(&link, &["--help"]);
    as_operator(fx.host.dir.path(), &mut cmd);
    let out = run(cmd).0;
    assert_eq!(out.code, 69, "{out:?}");
}

#[test]
fn a_current_link_planted_outside_releases_is_refused_and_nothing_runs() {
    let fx = Fixture::new("");
    let elsewhere = fx.host.dir.path().join("elsewhere");
    write_exec(
        &elsewhere.join("bin/ksql"),
        "#!/bin/sh\necho PLANTED-CLI-RAN\n",
    );
    let current = fx.host.state_dir().join("current");
    std::fs::remove_file(&current).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &current).unwrap();
    let (out, _) = run(operator_command(&fx, &["ksql"]).0);
    assert_eq!(out.code, 65, "{out:?}");
    assert!(!out.stdout.contains("PLANTED"), "{out:?}");
    assert!(error_line(&out).contains("not into releases/"), "{out:?}");

    // A release directory swapped for a link to a copy: refused too.
    std::fs::remove_file(&current).unwrap();
    std::os::unix::fs::symlink("releases/0.28.2", &current).unwrap();
    let release = fx.host.state_dir().join("releases/0.28.2");
    std::fs::rename(&release, fx.host.dir.path().join("moved")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &release).unwrap();
    let (out, _) = run(operator_command(&fx, &["ksql"]).0);
    assert_eq!(out.code, 65, "{out:?}");
    assert!(!out.stdout.contains("PLANTED"), "{out:?}");
    assert!(error_line(&out).contains("is a symlink"), "{out:?}");
}

#[test]
fn a_user_who_may_not_read_the_config_is_told_which_group_to_join() {
    if !is_root() {
        crate::support::skip("KSQL_MSK_TEST_ROOT", "switching to another user needs root");
        return;
    }
    let fx = Fixture::new("");
    // The config readable by root and its group (root) only, the way to it open.
    for dir in [fx.host.dir.path(), &fx.host.dir.path().join("etc")] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(
        fx.host.config_path(),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    let mut cmd = fx.host.command(&["ksql"]);
    cmd.uid(65534).gid(65534);
    cmd.env("XDG_RUNTIME_DIR", "");
    let (out, _) = run(cmd);
    assert_eq!(out.code, 77, "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    let line = error_line(&out);
    let config = fx.host.config_path();
    assert!(
        line.contains(&format!("permission denied: {}", config.display()))
            && line.contains("members of group root")
            && line.contains("sudo usermod -aG root "),
        "{line}"
    );
    assert!(!out.stdout.contains("ksql-cli-standin"), "{out:?}");
}

/// A `bin/ksql` as the service user could plant it: records that it ran and tries to
/// push a command into the input of the terminal it was started on (`TIOCSTI`), which a
/// root shell would run once the CLI exits.
const INJECTING_CLI: &str = "#!/bin/sh\n\
touch \"$(dirname \"$0\")/../planted-cli-ran\"\n\
perl -e 'ioctl(STDIN, 0x5412, $_) for split //, \"echo INJECTED-AS-ROOT\\n\"' 2>/dev/null\n\
exit 0\n";

#[test]
fn root_is_refused_before_anything_of_the_release_runs() {
    if !is_root() {
        crate::support::skip("KSQL_MSK_TEST_ROOT", "the refusal is root's");
        return;
    }
    let mut fx = Fixture::new("");
    fx.host.env("XDG_RUNTIME_DIR", "");
    write_exec(&fx.release.join("bin/ksql"), INJECTING_CLI);
    let ran = fx.release.join("planted-cli-ran");
    let link = ksql_link(&fx);
    for cmd in [
        fx.host.command(&["ksql"]),
        fx.host.command_with(&link, &["--help"]),
    ] {
        let (out, _) = run(cmd);
        assert_eq!(out.code, 77, "{out:?}");
        assert!(out.stdout.is_empty(), "{out:?}");
        assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
        let line = error_line(&out);
        assert!(
            line.contains("ksql does not run as root")
                && line.contains("member of group ksql")
                && line.contains("runuser -u ksql --pty -- ksql"),
            "{line}"
        );
        assert!(!ran.exists(), "the release's bin/ksql ran as root");
    }
}

/// Root at a terminal: `ksql` started in a session whose controlling terminal is a pty
/// the test made (root's login), the release's `bin/ksql` trying `TIOCSTI` on it.
/// Nothing may reach the terminal's input (what root's shell would read next).
#[test]
fn no_keystrokes_reach_roots_terminal() {
    if !is_root() {
        crate::support::skip("KSQL_MSK_TEST_ROOT", "the terminal is root's");
        return;
    }
    let mut fx = Fixture::new("");
    fx.host.env("XDG_RUNTIME_DIR", "");
    write_exec(&fx.release.join("bin/ksql"), INJECTING_CLI);
    let pty =
        rustix::pty::openpt(rustix::pty::OpenptFlags::RDWR | rustix::pty::OpenptFlags::NOCTTY)
            .expect("openpt");
    rustix::pty::grantpt(&pty).unwrap();
    rustix::pty::unlockpt(&pty).unwrap();
    let name = rustix::pty::ptsname(&pty, Vec::new()).unwrap();
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(name.to_str().unwrap())
        .unwrap();
    let mut cmd = fx.host.command(&["ksql"]);
    cmd.stdin(tty.try_clone().unwrap())
        .stdout(tty.try_clone().unwrap())
        .stderr(tty.try_clone().unwrap());
    // SAFETY: setsid and ioctl(TIOCSCTTY) only, in the child before exec.
    unsafe {
        cmd.pre_exec(|| {
            rustix::process::setsid()?;
            rustix::process::ioctl_tiocsctty(rustix::stdio::stdin())?;
            Ok(())
        });
    }
    let status = cmd.status().unwrap();
    // What root's shell would read next: the terminal's pending input, non-blocking.
    let mut termios = rustix::termios::tcgetattr(&tty).unwrap();
    termios.local_modes -= rustix::termios::LocalModes::ICANON;
    termios.special_codes[rustix::termios::SpecialCodeIndex::VMIN] = 0;
    termios.special_codes[rustix::termios::SpecialCodeIndex::VTIME] = 0;
    rustix::termios::tcsetattr(&tty, rustix::termios::OptionalActions::Now, &termios).unwrap();
    let mut pending = vec![0u8; 4096];
    let n = rustix::io::read(&tty, &mut pending).unwrap();
    let pending = String::from_utf8_lossy(&pending[..n]);
    assert!(
        !pending.contains("INJECTED"),
        "typed into root's terminal: {pending:?}"
    );
    assert_eq!(status.code(), Some(77));
    assert!(!fx.release.join("planted-cli-ran").exists());
}

/// The caller's environment holds credentials: none of them reaches the release's CLI
/// (the service user's code), only terminal, locale and time zone do.
#[test]
fn the_callers_secrets_never_reach_the_cli() {
    let mut fx = Fixture::new("");
    fx.host
        .env("XDG_RUNTIME_DIR", "")
        .env("TERM", "xterm")
        .env("TZ", "UTC")
        .env("AWS_SESSION_TOKEN", "MARKER-SECRET-session-token")
        .env("GITHUB_TOKEN", "MARKER-SECRET-gh")
        .env("DB_PASSWORD", "MARKER-SECRET-db")
        .env("HTTPS_PROXY", "http://u:MARKER-SECRET-proxy@127.0.0.1:3128")
        .env("KSQL_OPTS", "-Dssl.password=MARKER-SECRET-opts")
        .env("SSH_AUTH_SOCK", "/tmp/MARKER-SECRET-agent.sock")
        .env("LD_PRELOAD", "/tmp/MARKER-SECRET.so");
    let (cmd, _) = operator_command(&fx, &["ksql"]);
    let (out, _) = run(cmd);
    assert_eq!(out.code, 0, "{out:?}");
    let s = parse(&out.stdout);
    // The host's AWS keys (support::Host sets them) and every marker stay out.
    assert!(!out.stdout.contains("MARKER-SECRET"), "{}", out.stdout);
    assert!(!out.stdout.contains("DoNotLeak"), "{}", out.stdout);
    assert!(!s.env.keys().any(|k| k.starts_with("AWS_")), "{:?}", s.env);
    let mut names: Vec<&str> = s.env.keys().map(String::as_str).collect();
    names.sort();
    // What the stand-in's shell adds itself (PWD, SHLVL, _) aside.
    names.retain(|k| !["PWD", "SHLVL", "_", "OLDPWD"].contains(k));
    assert_eq!(
        names,
        [
            "JAVA_HOME",
            "KSQL_JVM_PERFORMANCE_OPTS",
            "LANG",
            "LOG_DIR",
            "PATH",
            "TERM",
            "TZ"
        ],
        "{:?}",
        s.env
    );
}
