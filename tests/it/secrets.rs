//! Secrets stay out of logs and STATUS, and the files holding them are private
//! (docs/RELIABILITY.md): AWS credentials from the environment, a session token and
//! static-credential JAAS options in `[properties]` go through install, dry run, run,
//! reload and stop; everything the agent said is grepped for them.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::support::fixture::{wait_for, Fixture};
use crate::support::Output;

const ACCESS_KEY_ID: &str = "AKIAENVTESTKEY000001";
const SECRET_KEY: &str = "envFakeSecretAccessKey/DoNotLeak00000000";
const SESSION_TOKEN: &str = "FwoGZXIvYXdzEDoNotLeakSessionToken0000000000000000000000000/Zz==";
const JAAS_KEY_ID: &str = "AKIAJAASTESTKEY00001";
const JAAS_SECRET: &str = "jaasSecret/DoNotLeak+000000000000000000000";
const JAAS_SECRET_2: &str = "jaasSecretRotated/DoNotLeak+0000000000000";
const JAAS_TOKEN: &str = "jaasSessionToken/DoNotLeak0000000000000000";

fn jaas(secret: &str) -> String {
    format!(
        "software.amazon.msk.auth.iam.IAMLoginModule required awsRoleArn=\\\"arn:aws:iam::123456789012:role/msk\\\" \
         awsRoleAccessKeyId=\\\"{JAAS_KEY_ID}\\\" awsRoleSecretAccessKey=\\\"{secret}\\\" \
         awsRoleSessionToken=\\\"{JAAS_TOKEN}\\\";"
    )
}

fn set_jaas(fx: &Fixture, secret: &str) {
    let path = fx.host.config_path();
    let text = std::fs::read_to_string(&path).unwrap();
    let text = match text.find("\n[properties]\n") {
        Some(i) => text[..i].to_string(),
        None => text,
    };
    std::fs::write(
        &path,
        format!(
            "{text}\n[properties]\n\"sasl.jaas.config\" = \"{}\"\n",
            jaas(secret)
        ),
    )
    .unwrap();
}

fn assert_clean(what: &str, text: &str) {
    for secret in [
        SECRET_KEY,
        SESSION_TOKEN,
        JAAS_SECRET,
        JAAS_SECRET_2,
        JAAS_TOKEN,
    ] {
        assert!(
            !text.contains(secret),
            "{what} leaks a secret ({secret}):\n{text}"
        );
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn secrets_never_reach_logs_or_status_and_their_files_are_private() {
    let mut fx = Fixture::uninstalled("", "17.0.15", "1.1.1");
    fx.host.env("AWS_SESSION_TOKEN", SESSION_TOKEN);
    assert!(fx.host.envs.iter().any(|(_, v)| v == SECRET_KEY));
    set_jaas(&fx, JAAS_SECRET);
    let mut captured: Vec<(String, String)> = Vec::new();
    let mut keep = |what: &str, out: &Output| {
        captured.push((format!("{what} stdout"), out.stdout.clone()));
        captured.push((format!("{what} stderr"), out.stderr.clone()));
    };

    let out = fx.host.run(&["install"]);
    assert_eq!(out.code, 0, "{out:?}");
    keep("install", &out);
    // The secret is where it is needed: in the live properties file.
    let props = fx.release.join("etc/ksqldb/ksql-server.properties");
    let text = std::fs::read_to_string(&props).unwrap();
    assert!(text.contains(JAAS_SECRET), "{text}");

    // A dry run shows the diff of a rotated secret without the secret.
    set_jaas(&fx, JAAS_SECRET_2);
    let out = fx.host.run(&["install", "--dry-run"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("awsRoleSecretAccessKey"), "{out:?}");
    keep("install --dry-run", &out);
    set_jaas(&fx, JAAS_SECRET);
    // `check` resolves and connects to every broker: loopback ones for it, so that the
    // test sends no DNS query off the host; the real-looking names come back after.
    let iam = "bootstrapBrokerStringSaslIam";
    let brokers = fx.cluster.brokers_field(iam).map(str::to_string);
    for args in [
        &["brokers"][..],
        &["check"],
        &["config", "get", "msk.region"],
    ] {
        let loopback = args == ["check"];
        if loopback {
            fx.msk
                .set_brokers(&fx.cluster.arn, iam, Some("127.0.0.1:9"));
        }
        let out = fx.host.run(args);
        keep(&args.join(" "), &out);
        if loopback {
            fx.msk.set_brokers(&fx.cluster.arn, iam, brokers.as_deref());
        }
    }

    // Run, reload with a rotated secret (a restart), stop: stderr, journal, STATUS.
    fx.mode("healthy_after_ms=100\n");
    let notify = fx.notify_socket();
    let journal = fx.journal_socket();
    let mut agent = fx.start();
    wait_for("READY=1", || notify.lines().iter().any(|l| l == "READY=1"));
    set_jaas(&fx, JAAS_SECRET_2);
    agent.signal(libc::SIGHUP);
    wait_for("the restart after the reload", || fx.pids().len() == 2);
    assert_eq!(agent.stop(), 0);
    let text = std::fs::read_to_string(&props).unwrap();
    assert!(text.contains(JAAS_SECRET_2), "{text}");
    captured.push(("run stderr".into(), agent.stderr()));
    captured.push((
        "STATUS and other notify messages".into(),
        notify.lines().join("\n"),
    ));
    let journal_text: Vec<String> = journal
        .raw()
        .iter()
        .map(|(_, m)| String::from_utf8_lossy(m).into_owned())
        .collect();
    assert!(
        journal_text.len() > 5,
        "the journal recorder got nothing: {journal_text:?}"
    );
    captured.push(("journal".into(), journal_text.join("\n")));
    for (what, text) in &captured {
        assert_clean(what, text);
    }
    let all: String = captured.iter().map(|(_, t)| t.as_str()).collect();
    // Not a secret, but nothing had a reason to print it either.
    assert!(!all.contains(ACCESS_KEY_ID), "{all}");

    // Modes and owner: the live file and the record of managed keys 0640, the state
    // directory 0750, all owned by the user the agent runs as.
    let uid = unsafe { libc::geteuid() };
    let state = fx.host.state_dir();
    assert_eq!(mode(&state), 0o750, "{}", state.display());
    for f in [
        props.clone(),
        fx.release
            .join("etc/ksqldb/ksql-server.properties.managed-keys"),
    ] {
        assert_eq!(mode(&f), 0o640, "{}", f.display());
    }
    for p in [&state, &props, &fx.release] {
        assert_eq!(std::fs::metadata(p).unwrap().uid(), uid, "{}", p.display());
    }
    // No other copy of the secret in the state directory is world-readable.
    let mut stack = vec![state.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let meta = std::fs::symlink_metadata(e.path()).unwrap();
            if meta.is_dir() {
                stack.push(e.path());
            } else if meta.is_file() {
                let bytes = std::fs::read(e.path()).unwrap_or_default();
                if String::from_utf8_lossy(&bytes).contains("DoNotLeak") {
                    assert_eq!(
                        meta.permissions().mode() & 0o007,
                        0,
                        "{} holds a secret and is world-readable",
                        e.path().display()
                    );
                }
            }
        }
    }
}

/// A state directory made world-readable by hand is warned about on the next run, not
/// chmodded: the agent never changes a directory it did not create (issue 12, item 5;
/// tests/it/planted.rs has the refusals).
#[test]
fn a_world_readable_state_dir_is_warned_about_not_chmodded() {
    let fx = Fixture::new("");
    let state = fx.host.state_dir();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = fx.host.run(&["install"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(mode(&state), 0o755);
    assert!(out.stderr.contains("chmod o-rwx"), "{out:?}");
}
