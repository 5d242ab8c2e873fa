//! `ksqldb.auth` (issue 15 item 3): with `basic` the stand-in ksqlDB enforces HTTP
//! basic authentication exactly as the agent configured it (properties, the JAAS file in
//! KSQL_OPTS, the password file it names), so a READY agent proves its probe
//! authenticates; `auth rotate` restarts ksqlDB with a new password; the password is in
//! no output; `none` on a non-loopback listener warns once and fails `check`.

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;

use ksql_msk_testkit::sts::FakeSts;

use crate::run::{wait_for, Fixture};

const AUTH_DROPIN: &str = "[ksqldb]\nauth = \"basic\"\n";

fn base64(bytes: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The HTTP status of `GET path` on the stand-in, with `user:password` if given.
fn status(port: u16, path: &str, auth: Option<(&str, &str)>) -> u16 {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let header = auth
        .map(|(u, p)| {
            format!(
                "Authorization: Basic {}\r\n",
                base64(format!("{u}:{p}").as_bytes())
            )
        })
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{header}Connection: close\r\n\r\n"
    )
    .expect("send");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn listener_port(fx: &Fixture) -> u16 {
    let text = std::fs::read_to_string(fx.host.config_path()).unwrap();
    let l = text
        .lines()
        .find(|l| l.starts_with("listeners = "))
        .expect("listeners line");
    l.rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('"')
        .parse()
        .unwrap()
}

fn password_file(fx: &Fixture) -> PathBuf {
    fx.host
        .config_path()
        .parent()
        .unwrap()
        .join("ksqldb.password")
}

/// The generated password, read as ksqlDB would: the file's `user: password,role` line.
fn password(fx: &Fixture) -> String {
    let text = std::fs::read_to_string(password_file(fx)).expect("password file");
    let line = text.lines().find(|l| !l.starts_with('#')).expect("entry");
    let (user, rest) = line.split_once(": ").expect("user: password");
    assert_eq!(user, "ksql", "{text}");
    let (password, role) = rest.split_once(',').expect("password,role");
    assert_eq!(role, "ksql-msk", "{text}");
    password.to_string()
}

/// `check` on loopback alone: STS faked, the brokers a local listener (kept open by the
/// caller).
fn loopback_check(fx: &mut Fixture, sts: &FakeSts) -> std::net::TcpListener {
    fx.host.env("AWS_ENDPOINT_URL_STS", &sts.url());
    let broker = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = broker.local_addr().unwrap().port();
    fx.msk.set_brokers(
        &fx.cluster.arn,
        "bootstrapBrokerStringSaslIam",
        Some(&format!("127.0.0.1:{port}")),
    );
    broker
}

fn basic_fixture() -> Fixture {
    let fx = Fixture::new("");
    fx.mode("healthy_after_ms=300\n");
    fx.host.write_dropin("50-auth.toml", AUTH_DROPIN);
    let runtime = fx.host.dir.path().join("run");
    std::fs::create_dir_all(&runtime).unwrap();
    fx
}

#[test]
fn basic_auth_refuses_anonymous_requests_and_the_probe_authenticates() {
    let mut fx = basic_fixture();
    let sts = FakeSts::start();
    let _broker = loopback_check(&mut fx, &sts);
    let notify = fx.notify_socket();
    let journal = fx.journal_socket();
    let port = listener_port(&fx);
    let mut agent = fx.start();
    wait_for("READY=1", || notify.lines().iter().any(|l| l == "READY=1"));

    let pw = password(&fx);
    assert_eq!(pw.len(), 64, "256 random bits, hex");
    let meta = std::fs::metadata(password_file(&fx)).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
    let config = std::fs::metadata(fx.host.config_path()).unwrap();
    assert_eq!(meta.gid(), config.gid(), "the config file's group (ksql)");

    // The stand-in enforces what the agent set up.
    for path in ["/healthcheck", "/info"] {
        assert_eq!(status(port, path, None), 401, "{path} without credentials");
        assert_eq!(status(port, path, Some(("ksql", "wrong"))), 401, "{path}");
        assert_eq!(status(port, path, Some(("ksql", &pw))), 200, "{path}");
    }
    let env = fx.child_env();
    let jaas = fx.host.state_dir().join("ksqldb-jaas.conf");
    assert_eq!(
        env.get("KSQL_OPTS").map(String::as_str),
        Some(format!("-Djava.security.auth.login.config={}", jaas.display()).as_str()),
        "{env:?}"
    );
    let jaas_text = std::fs::read_to_string(&jaas).unwrap();
    assert!(
        jaas_text.contains("org.eclipse.jetty.jaas.spi.PropertyFileLoginModule required"),
        "{jaas_text}"
    );
    let props =
        std::fs::read_to_string(fx.release.join("etc/ksqldb/ksql-server.properties")).unwrap();
    for line in [
        "authentication.method=BASIC",
        "authentication.realm=KsqlServer-Props",
        "authentication.roles=ksql-msk",
    ] {
        assert!(props.lines().any(|l| l == line), "{line}: {props}");
    }
    let prepared = journal
        .entries()
        .into_iter()
        .find(|e| {
            e.get("MESSAGE_ID").map(String::as_str) == Some("0e1b7c5a8f2d4c6b9a3e5d7f1c2b4a60")
        })
        .expect("PREPARED event");
    assert_eq!(prepared.get("REST_AUTH").map(String::as_str), Some("basic"));
    // No warning: the API is not open.
    assert!(
        !journal
            .entries()
            .iter()
            .any(|e| e.get("MESSAGE_ID").map(String::as_str) == Some(REST_API_OPEN)),
        "no open-API warning with basic"
    );

    // The password is in no output: not the journal, not the properties, not the JAAS
    // file, not `install --dry-run`, not `config get`, not `check`.
    let dry = fx.host.run(&["install", "--dry-run"]);
    assert_eq!(dry.code, 0, "{dry:?}");
    let get = fx.host.run(&["config", "get", "ksqldb.auth"]);
    assert_eq!(get.stdout.trim(), "basic", "{get:?}");
    let check = fx.host.run(&["check"]);
    assert!(
        check
            .stdout
            .lines()
            .any(|l| l.starts_with("✓ REST API: HTTP basic authentication, user ksql in ")),
        "{check:?}"
    );
    // `status` says basic and where the credential is, never the credential.
    let st = fx.host.run(&["status", "--json"]);
    assert_eq!(st.code, 0, "{st:?}");
    let doc: serde_json::Value = serde_json::from_str(&st.stdout).unwrap();
    assert_eq!(doc["auth"]["mode"], "basic", "{doc}");
    assert_eq!(
        doc["auth"]["password_file"],
        password_file(&fx).display().to_string()
    );
    assert_eq!(doc["auth"]["open_listeners"], serde_json::json!([]));
    let screen = fx.host.run(&["status"]);
    assert!(
        screen
            .stdout
            .contains("REST API:     basic authentication (credential in "),
        "{screen:?}"
    );
    // `ksql` (the stand-in CLI prints its arguments) logs in to this host's server with
    // the credential; a server the user names does not get it.
    // (As an operator: root is refused. Opening the host to `nobody` makes the password
    // file world-readable here; the agent has read it already.)
    let as_operator = |args: &[&str]| {
        let mut cmd = fx.host.command(args);
        crate::support::as_operator(fx.host.dir.path(), &mut cmd);
        crate::support::Output::of(cmd.output().expect("run ksql"))
    };
    let cli = as_operator(&["ksql"]);
    assert_eq!(cli.code, 0, "{cli:?}");
    let args: Vec<&str> = cli
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("arg="))
        .collect();
    assert_eq!(
        args,
        [
            format!("http://127.0.0.1:{port}").as_str(),
            "--user",
            "ksql",
            "--password",
            pw.as_str()
        ],
        "{cli:?}"
    );
    let elsewhere = as_operator(&["ksql", "http://10.0.0.9:8088"]);
    let args: Vec<&str> = elsewhere
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("arg="))
        .collect();
    assert_eq!(args, ["http://10.0.0.9:8088"], "{elsewhere:?}");
    let ensure = fx.host.run(&["auth", "ensure"]);
    assert_eq!(ensure.code, 0, "{ensure:?}");
    assert!(
        ensure.stdout.trim().ends_with("ksqldb.password: present"),
        "{ensure:?}"
    );
    agent.stop();
    let journal_text: String = journal
        .raw()
        .iter()
        .map(|(_, m)| String::from_utf8_lossy(m).into_owned())
        .collect();
    for (what, text) in [
        ("journal", journal_text.as_str()),
        ("stderr", &agent.stderr()),
        ("properties", &props),
        ("JAAS file", &jaas_text),
        (
            "install --dry-run",
            &format!("{}{}", dry.stdout, dry.stderr),
        ),
        ("check", &format!("{}{}", check.stdout, check.stderr)),
        (
            "status",
            &format!("{}{}{}", st.stdout, screen.stdout, screen.stderr),
        ),
        (
            "auth ensure",
            &format!("{}{}", ensure.stdout, ensure.stderr),
        ),
    ] {
        assert!(!text.contains(&pw), "the password is in the {what}");
    }
    assert_eq!(fx.pids().len(), 1, "ksqlDB started once");
}

#[test]
fn auth_rotate_restarts_ksqldb_and_the_old_password_stops_working() {
    let mut fx = basic_fixture();
    let runtime = fx.host.dir.path().join("run").display().to_string();
    fx.host.env("RUNTIME_DIRECTORY", &runtime);
    let port = listener_port(&fx);
    let mut agent = fx.start();
    wait_for("healthy", || agent.stderr().contains("is healthy"));
    wait_for("the control socket", || {
        fx.host.dir.path().join("run/control.sock").exists()
    });
    let old = password(&fx);
    assert_eq!(status(port, "/info", Some(("ksql", &old))), 200);

    let out = fx.host.run(&["auth", "rotate"]);
    assert_eq!(out.code, 0, "{out:?}");
    let pids = fx.pids();
    assert_eq!(pids.len(), 2, "ksqlDB restarted once");
    assert!(
        out.stdout.contains(&format!(
            "ksqldb.password: new credential written; reloaded: ksqlDB 0.28.2 is running (pid {})",
            pids[1]
        )),
        "{out:?}"
    );
    assert!(
        agent
            .stderr()
            .contains("restarting ksqlDB: REST API credential changed"),
        "{}",
        agent.stderr()
    );
    let new = password(&fx);
    assert_ne!(new, old);
    // `auth rotate` returned once the new ksqlDB was healthy: the probe used the new one.
    assert_eq!(status(port, "/info", Some(("ksql", &old))), 401);
    assert_eq!(status(port, "/info", Some(("ksql", &new))), 200);
    let meta = std::fs::metadata(password_file(&fx)).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
    for pw in [&old, &new] {
        assert!(!out.stdout.contains(pw.as_str()) && !out.stderr.contains(pw.as_str()));
        assert!(!agent.stderr().contains(pw.as_str()));
    }

    // Back to none by reload: ksqlDB restarts without authentication.
    std::fs::remove_file(
        fx.host
            .config_path()
            .with_file_name("ksql-msk.d")
            .join("50-auth.toml"),
    )
    .unwrap();
    let out = fx.host.run(&["reload"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        fx.pids().len(),
        3,
        "restarted without authentication: {out:?}"
    );
    assert_eq!(status(port, "/info", None), 200);
    assert!(!fx.host.state_dir().join("ksqldb-jaas.conf").exists());
    let rotate = fx.host.run(&["auth", "rotate"]);
    assert_eq!(rotate.code, 78, "{rotate:?}");
    agent.stop();
}

#[test]
fn a_password_file_that_cannot_be_read_stops_the_agent_with_78() {
    let fx = basic_fixture();
    std::fs::write(
        password_file(&fx),
        "ksql: MD5:164c88b302622e17050af52c89945d44,ksql-msk\n",
    )
    .unwrap();
    let out = fx.host.run(&["run"]);
    assert_eq!(out.code, 78, "{out:?}");
    assert!(out.stderr.contains("holds a hashed password"), "{out:?}");
    assert!(!out.stderr.contains("164c88b3"), "{out:?}");
    assert!(fx.pids().is_empty(), "ksqlDB never started");
}

const REST_API_OPEN: &str = "2aceeb103d17454f857cd6caabba41e1";

#[test]
fn no_auth_on_a_listener_that_is_not_loopback_warns_once_and_fails_check() {
    let mut fx = Fixture::new("");
    fx.mode("healthy_after_ms=300\n");
    let port = listener_port(&fx);
    // The stand-in binds the first listener only: nothing listens beyond loopback.
    fx.host.write_dropin(
        "50-listen.toml",
        &format!("[ksqldb]\nlisteners = \"http://127.0.0.1:{port}, http://10.255.0.1:{port}\"\n"),
    );
    let runtime = fx.host.dir.path().join("run");
    std::fs::create_dir_all(&runtime).unwrap();
    fx.host
        .env("RUNTIME_DIRECTORY", &runtime.display().to_string());
    let journal = fx.journal_socket();
    let mut agent = fx.start();
    wait_for("healthy", || {
        journal.entries().iter().any(|e| {
            e.get("MESSAGE_ID").map(String::as_str) == Some("a7c4e2f0b9d84c1e8f3a5b6c7d8e9f01")
        })
    });
    wait_for("the control socket", || {
        runtime.join("control.sock").exists()
    });
    // A reload is not a start: still one warning.
    let out = fx.host.run(&["reload"]);
    assert_eq!(out.code, 0, "{out:?}");
    let warnings: Vec<_> = journal
        .entries()
        .into_iter()
        .filter(|e| e.get("MESSAGE_ID").map(String::as_str) == Some(REST_API_OPEN))
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let w = &warnings[0];
    assert_eq!(w.get("PRIORITY").map(String::as_str), Some("4"));
    assert_eq!(
        w.get("LISTENERS").map(String::as_str),
        Some(format!("http://10.255.0.1:{port}").as_str())
    );
    let message = w.get("MESSAGE").cloned().unwrap_or_default();
    for fix in [
        "ksqldb.auth = \"basic\"",
        "ksqldb.listeners = \"http://127.0.0.1:8088\"",
        "security group",
    ] {
        assert!(message.contains(fix), "{fix}: {message}");
    }
    agent.stop();

    // `check` shows it as a failed item, with the fix, and fails.
    let sts = FakeSts::start();
    let _broker = loopback_check(&mut fx, &sts);
    let check = fx.host.run(&["check"]);
    assert_ne!(check.code, 0, "{check:?}");
    let line = check
        .stdout
        .lines()
        .find(|l| l.contains("REST API"))
        .unwrap_or_else(|| panic!("no REST API line: {check:?}"));
    assert!(
        line.starts_with("✗ REST API: ksqlDB's REST API on http://10.255.0.1:"),
        "{line}"
    );
    assert!(line.contains("set ksqldb.auth = \"basic\""), "{line}");
}
