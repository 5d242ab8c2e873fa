//! `ksql` (a link to the agent) and `ksql-msk ksql`: the active release's `bin/ksql`
//! (the testkit's stand-in, which prints its pid, arguments and environment) started in
//! place of the agent, with the server's Java and GC fix, this host's URL unless one is
//! given, nothing of the server's heap or log directory; one line and 69 when nothing is
//! installed, 65 for a `current` planted outside releases/, 77 for a user who may not
//! read the config.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::support::fixture::*;
use crate::support::{bin, error_line, Output};

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
    let (out, pid) = run(fx.host.command(&["ksql"]));
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
    assert!(!s.env["PATH"].is_empty());
    // LOG_DIR: a private directory of this user, not the state directory.
    let log_dir = Path::new(&s.env["LOG_DIR"]);
    // SAFETY: geteuid cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        log_dir,
        std::env::temp_dir().join(format!("ksql-msk-{euid}"))
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
    let (out, pid) = run(fx.host.command_with(&link, &args));
    assert_eq!(out.code, 0, "{out:?}");
    let s = parse(&out.stdout);
    assert_eq!(s.pid, pid);
    assert_eq!(s.args, args);
    // ... and an option the agent also has is the CLI's too.
    let (out, _) = run(fx
        .host
        .command_with(&link, &["--config", "x", "-e", "SHOW STREAMS;"]));
    assert_eq!(
        parse(&out.stdout).args,
        ["--config", "x", "-e", "SHOW STREAMS;", &url]
    );
    // Help needs no server.
    for help in [["--help"], ["--version"]] {
        let (out, _) = run(fx.host.command_with(&link, &help));
        assert_eq!(parse(&out.stdout).args, help);
    }
    let (out, _) = run(fx.host.command(&["ksql", "--help"]));
    assert_eq!(parse(&out.stdout).args, ["--help"], "{out:?}");
    // The CLI's exit code is the command's.
    let mut cmd = fx.host.command_with(&link, &[]);
    cmd.env("KSQL_STANDIN_EXIT", "3");
    assert_eq!(run(cmd).0.code, 3);
}

#[test]
fn on_java_11_the_cli_keeps_the_releases_own_gc_options_and_a_session_dir_holds_the_log() {
    let mut fx = Fixture::with("", "11.0.21", "1.1.1");
    let runtime = fx.host.dir.path().join("run-user");
    std::fs::create_dir(&runtime).unwrap();
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
    fx.host
        .env("XDG_RUNTIME_DIR", &runtime.display().to_string())
        .env("KSQL_JVM_PERFORMANCE_OPTS", "-XX:+UseParallelGC");
    let (out, _) = run(fx.host.command(&["ksql"]));
    assert_eq!(out.code, 0, "{out:?}");
    let s = parse(&out.stdout);
    assert_eq!(
        s.env["KSQL_JVM_PERFORMANCE_OPTS"], "-XX:+UseParallelGC",
        "no G1 override needed on Java 11: the user's own options stay"
    );
    assert_eq!(
        s.env["LOG_DIR"],
        runtime.join("ksql-msk").display().to_string()
    );
}

#[test]
fn without_a_release_one_line_and_69() {
    let fx = Fixture::uninstalled("", "17.0.15", "1.1.1");
    let out = fx.host.run(&["ksql"]);
    assert_eq!(out.code, 69, "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    let line = error_line(&out);
    assert!(
        line.contains("no ksqlDB release is installed yet") && line.contains("current"),
        "{line}"
    );
    let link = ksql_link(&fx);
    let out = run(fx.host.command_with(&link, &["--help"])).0;
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
    let out = fx.host.run(&["ksql"]);
    assert_eq!(out.code, 65, "{out:?}");
    assert!(!out.stdout.contains("PLANTED"), "{out:?}");
    assert!(error_line(&out).contains("not into releases/"), "{out:?}");

    // A release directory swapped for a link to a copy: refused too.
    std::fs::remove_file(&current).unwrap();
    std::os::unix::fs::symlink("releases/0.28.2", &current).unwrap();
    let release = fx.host.state_dir().join("releases/0.28.2");
    std::fs::rename(&release, fx.host.dir.path().join("moved")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &release).unwrap();
    let out = fx.host.run(&["ksql"]);
    assert_eq!(out.code, 65, "{out:?}");
    assert!(!out.stdout.contains("PLANTED"), "{out:?}");
    assert!(error_line(&out).contains("is a symlink"), "{out:?}");
}

#[test]
fn a_user_who_may_not_read_the_config_is_told_which_group_to_join() {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
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

#[test]
fn root_runs_the_cli_as_the_owner_of_the_release_not_as_root() {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        crate::support::skip("KSQL_MSK_TEST_ROOT", "switching to another user needs root");
        return;
    }
    let mut fx = Fixture::new("");
    fx.host.env("XDG_RUNTIME_DIR", "");
    // The release as the service leaves it: its user's (here nobody's); the way to it open.
    let state = fx.host.state_dir();
    for dir in [fx.host.dir.path(), &state, &state.join("releases")] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::os::unix::fs::lchown(&fx.release, Some(65534), Some(65534)).unwrap();
    let log_dir = std::env::temp_dir().join("ksql-msk-65534");
    let _ = std::fs::remove_dir(&log_dir);
    let (out, _) = run(fx.host.command(&["ksql"]));
    assert_eq!(out.code, 0, "{out:?}");
    let s = parse(&out.stdout);
    assert_eq!(s.uid, 65534, "the CLI runs as the release's owner");
    assert_eq!(s.env["LOG_DIR"], log_dir.display().to_string());
    let meta = std::fs::symlink_metadata(&log_dir).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!((meta.uid(), meta.mode() & 0o777), (65534, 0o700));
    // A release of root's own (a root-run install): root runs it as root.
    std::os::unix::fs::lchown(&fx.release, Some(0), Some(0)).unwrap();
    let (out, _) = run(fx.host.command(&["ksql"]));
    assert_eq!(parse(&out.stdout).uid, 0, "{out:?}");
}
