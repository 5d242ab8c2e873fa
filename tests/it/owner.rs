//! Image baking: root runs `ksql-msk install` over a state directory that belongs to the
//! service user (the RPM's `%dir %attr(0750,ksql,ksql)`, systemd's `StateDirectory=`),
//! then the service runs `ksql-msk run` as that user. Whatever root made there must be
//! the service user's, with the modes the service itself gives (`UMask=0027`), whatever
//! root's umask was. Here `nobody` (65534) plays the service user.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use crate::run::{wait_for, Agent, Fixture, Recorder};
use crate::support::{paths_under, skip};

const SERVICE: u32 = 65534;

fn as_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    skip(
        "KSQL_MSK_REQUIRE_ROOT",
        "cannot hand the state directory to another user (not root)",
    );
    false
}

/// `cmd` with the process umask `mask`.
fn with_umask(mut cmd: Command, mask: libc::mode_t) -> Command {
    // SAFETY: umask(2) is async-signal-safe and cannot fail.
    unsafe {
        cmd.pre_exec(move || {
            libc::umask(mask);
            Ok(())
        });
    }
    cmd
}

/// `cmd` run as the service user, as the unit runs it (`User=`, `UMask=0027`).
fn as_service(cmd: Command) -> Command {
    let mut out = Command::new("setpriv");
    out.args([
        &format!("--reuid={SERVICE}"),
        &format!("--regid={SERVICE}"),
        "--clear-groups",
    ])
    .arg(cmd.get_program())
    .args(cmd.get_args())
    .env_clear();
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            out.env(k, v);
        }
    }
    with_umask(out, 0o027)
}

/// Nothing under the state directory is root's or writable by others, and everything
/// is its owner's to read and replace.
fn assert_all_the_services(state: &Path, when: &str) {
    let mut problems = Vec::new();
    for p in std::iter::once(state.to_path_buf()).chain(paths_under(state)) {
        let m = std::fs::symlink_metadata(&p).unwrap();
        if (m.uid(), m.gid()) != (SERVICE, SERVICE) {
            problems.push(format!("{}: owned by {}:{}", p.display(), m.uid(), m.gid()));
        }
        if m.file_type().is_symlink() {
            continue;
        }
        let mode = m.mode() & 0o7777;
        // The owner's to read (a directory's to list, enter and change), nobody else's
        // to change; a release is its group's to read too. Modes the agent sets
        // explicitly (0755 for releases/, 0600 for .lock) are the service's as well.
        let mut want = if m.is_dir() { 0o700 } else { 0o400 };
        // (The stand-in's own 0600 records of its starts are no release files.)
        let stand_in = p.to_string_lossy().contains("/fake-ksqldb.");
        if p.starts_with(state.join("releases")) && !stand_in {
            want |= if m.is_dir() { 0o050 } else { 0o040 };
        }
        if mode & want != want || mode & 0o022 != 0 {
            problems.push(format!("{}: mode {mode:04o}", p.display()));
        }
    }
    assert!(problems.is_empty(), "{when}:\n{}", problems.join("\n"));
}

/// The fixture's host, reachable by the service user, with its state directory made as
/// the package makes it: empty, the service user's, 0750.
fn baking_host(umask: libc::mode_t) -> Fixture {
    let fx = Fixture::uninstalled("", "17.0.15", "1.1.1");
    let root = fx.host.dir.path();
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
    let state = fx.host.state_dir();
    std::fs::create_dir(&state).unwrap();
    std::os::unix::fs::lchown(&state, Some(SERVICE), Some(SERVICE)).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o750)).unwrap();
    // The Prometheus exporter too, trusted on first use: root fetches it into
    // <state_dir>/exporter/ and records its hash in trust.toml.
    let jar = "/jmx_exporter/1.6.0/jmx_prometheus_javaagent-1.6.0.jar";
    let url = fx.art.put(jar, b"PK\x03\x04 stand-in exporter".to_vec());
    fx.art.put(
        &format!("{jar}.sha256"),
        format!(
            "{}  jmx_prometheus_javaagent-1.6.0.jar\n",
            crate::install::sha256_hex(b"PK\x03\x04 stand-in exporter")
        ),
    );
    let rules = root.join("rules.yml");
    std::fs::write(&rules, "rules:\n  - pattern: \".*\"\n").unwrap();
    fx.host.write_dropin(
        "60-metrics.toml",
        &format!(
            "[metrics]\nprometheus_port = {}\nexporter_url = \"{url}\"\nprometheus_rules = \"{}\"\n",
            crate::run::free_port(),
            rules.display()
        ),
    );
    let out = with_umask(fx.host.command(&["install"]), umask)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "root's install (umask {umask:03o}): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    fx
}

fn readies(notify: &Recorder) -> usize {
    notify.lines().iter().filter(|l| *l == "READY=1").count()
}

/// `ksql-msk run` as the service user, until it is ready (ksqlDB answers healthy).
fn serve(fx: &Fixture, notify: &Recorder) -> Agent {
    let before = readies(notify);
    let agent = Fixture::spawn_agent(as_service(fx.host.command(&["run"])));
    wait_for("READY=1", || {
        assert!(
            !agent.stderr().contains("error:"),
            "the service failed: {}",
            agent.stderr()
        );
        readies(notify) > before
    });
    agent
}

fn baked_then_served(umask: libc::mode_t) {
    let mut fx = baking_host(umask);
    let state = fx.host.state_dir();
    for made in [
        "exporter/jmx_prometheus_javaagent-1.6.0.jar",
        "trust.toml",
        "current",
    ] {
        assert!(
            std::fs::symlink_metadata(state.join(made)).is_ok(),
            "root's install made no {made}"
        );
    }
    assert_all_the_services(&state, &format!("after root's install (umask {umask:03o})"));

    // First boot: the service starts what root baked; ksqlDB reads its properties.
    let notify = fx.notify_socket();
    std::fs::set_permissions(&notify.path, std::fs::Permissions::from_mode(0o777)).unwrap();
    let mut agent = serve(&fx, &notify);
    assert_eq!(fx.pids().len(), 1, "{}", agent.stderr());
    assert_eq!(agent.stop(), 0, "{}", agent.stderr());

    // A warm start with a changed property: the service re-renders what root wrote.
    fx.host.write_dropin(
        "50-owner.toml",
        "[properties]\n\"ksql.owner.test\" = \"yes\"\n",
    );
    let mut agent = serve(&fx, &notify);
    assert_eq!(agent.stop(), 0, "{}", agent.stderr());
    let props = fx.release.join("etc/ksqldb/ksql-server.properties");
    assert!(
        std::fs::read_to_string(&props)
            .unwrap()
            .contains("ksql.owner.test=yes"),
        "not re-rendered"
    );

    // And `install` as the service user over what root made: warm, no error.
    let out = as_service(fx.host.command(&["install"])).output().unwrap();
    assert!(
        out.status.success(),
        "the service user's install: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_all_the_services(&state, "after the service's runs");
}

#[test]
fn root_baked_with_umask_077_is_the_services() {
    if as_root() {
        baked_then_served(0o077);
    }
}

#[test]
fn root_baked_with_umask_022_is_the_services() {
    if as_root() {
        baked_then_served(0o022);
    }
}

/// `ksql-msk metastore restore` by root while the service user runs the service: the
/// restore tool runs as that user (the agent starts it), so what root made for it
/// (restore/ and the copy in it) must be that user's to enter and read.
#[test]
fn root_restores_through_the_service_users_agent() {
    if !as_root() {
        return;
    }
    let mut fx = baking_host(0o077);
    let runtime = fx.host.dir.path().join("run");
    std::fs::create_dir(&runtime).unwrap();
    std::os::unix::fs::lchown(&runtime, Some(SERVICE), Some(SERVICE)).unwrap();
    fx.host
        .env("RUNTIME_DIRECTORY", &runtime.display().to_string());
    let notify = fx.notify_socket();
    std::fs::set_permissions(&notify.path, std::fs::Permissions::from_mode(0o777)).unwrap();
    let mut agent = serve(&fx, &notify);
    wait_for("the control socket", || {
        runtime.join("control.sock").exists()
    });
    let backup = fx.host.dir.path().join("backup");
    std::fs::write(&backup, "\"stream/S/create\":{\"statement\":\"CREATE STREAM S (A INT) WITH (KAFKA_TOPIC='s', VALUE_FORMAT='JSON');\"}\n").unwrap();
    let out = fx
        .host
        .run(&["metastore", "restore", &backup.display().to_string()]);
    assert_eq!(out.code, 0, "{out:?}\n{}", agent.stderr());
    let state = fx.host.state_dir();
    for made in ["restore", "restore/backup"] {
        let m = std::fs::symlink_metadata(state.join(made)).unwrap();
        assert_eq!((m.uid(), m.gid()), (SERVICE, SERVICE), "{made}");
    }
    wait_for("ksqlDB started again", || fx.pids().len() == 2);
    assert_eq!(agent.stop(), 0, "{}", agent.stderr());
    assert_all_the_services(&state, "after root's restore");
}
