//! A host with no CA certificates (an empty system trust store; simulated with
//! `SSL_CERT_FILE` and `SSL_CERT_DIR`, which rustls-native-certs reads instead of the
//! system's): what needs TLS fails with one line naming the problem and a sysexits code,
//! what does not need TLS still works, and nothing panics (exit 101).

use ksql_msk_testkit::hostile::{TestCa, TlsFront};
use ksql_msk_testkit::signing::TestKey;
use ksql_msk_testkit::standins::Standins;
use ksql_msk_testkit::sts::FakeSts;
use ksql_msk_testkit::tarball;

use crate::support::world::{archive_path, assert_refused, Pins, World, NEW};
use crate::support::{error_line, Host, Output};

/// Point the host's trust store at `file` (empty unless written) and an empty directory.
fn trust_only(host: &mut Host, pem: Option<&std::path::Path>) {
    let dir = host.dir.path().join("no-ca");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bundle.pem");
    match pem {
        Some(p) => std::fs::copy(p, &file).map(drop).unwrap(),
        None => std::fs::write(&file, "").unwrap(),
    }
    host.env("SSL_CERT_FILE", &file.display().to_string());
    host.env("SSL_CERT_DIR", &dir.join("empty").display().to_string());
}

/// The shared world, configured for the stand-ins; `msk_endpoint` replaces the fake
/// MSK's plain-http URL.
fn world(msk_endpoint: impl FnOnce(&Standins) -> Option<String>) -> World {
    let w = World::bare();
    let mut parts = w.config("0.28.2", "1.1.1");
    parts
        .msk
        .push_str("cluster_wait = \"3s\"\napi_max_attempts = 1\n");
    if let Some(url) = msk_endpoint(&w) {
        parts.msk = parts.msk.replace(&w.msk.url(), &url);
    }
    w.host.write_config(&parts.toml("", ""));
    w
}

fn iam_brokers(world: &Standins) -> String {
    let (_, list) = world
        .cluster
        .brokers
        .iter()
        .find(|(k, _)| k == "bootstrapBrokerStringSaslIam")
        .expect("the fake's IAM brokers");
    list.clone()
}

fn no_panic(out: &Output) {
    assert_ne!(out.code, 101, "{out:?}");
    assert!(!out.stderr.contains("panicked"), "{out:?}");
}

#[test]
fn brokers_over_plain_http_need_no_ca() {
    let mut w = world(|_| None);
    trust_only(&mut w.host, None);
    let out = w.host.run(&["brokers"]);
    no_panic(&out);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains(&iam_brokers(&w)), "{out:?}");
}

#[test]
fn an_https_endpoint_without_ca_is_one_line_and_69() {
    // Nothing listens there: the agent must not even try.
    let mut w = world(|_| Some("https://127.0.0.1:1".into()));
    trust_only(&mut w.host, None);
    let out = w.host.run(&["brokers"]);
    no_panic(&out);
    assert_eq!(out.code, 69, "{out:?}");
    let line = error_line(&out);
    assert!(line.contains("no trusted CA certificates"), "{out:?}");
    assert!(line.contains("https://127.0.0.1:1"), "{out:?}");
    assert_eq!(
        out.stderr
            .lines()
            .filter(|l| l.starts_with("ksql-msk: error"))
            .count(),
        1,
        "{out:?}"
    );
}

/// The check the agent makes reads the same store the SDK does: a bundle in
/// `SSL_CERT_FILE` holding only the test CA is enough for an https MSK endpoint.
#[test]
fn the_store_named_by_ssl_cert_file_is_the_one_used() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::generate(dir.path());
    let mut front = None;
    let mut w = world(|s| {
        let tls = TlsFront::start(&ca, s.msk.server.addr);
        let url = tls.url();
        front = Some(tls);
        Some(url)
    });
    trust_only(&mut w.host, Some(&ca.ca_pem));
    let out = w.host.run(&["brokers"]);
    no_panic(&out);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains(&iam_brokers(&w)), "{out:?}");
    drop(front);
}

/// `check` talks to STS over https: with no CA the handshake fails, and the failed
/// item says why.
#[test]
fn check_without_ca_fails_the_identity_item_naming_the_problem() {
    let sts = FakeSts::start();
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::generate(dir.path());
    let tls = TlsFront::start(&ca, sts.server.addr);
    let mut w = world(|_| None);
    trust_only(&mut w.host, None);
    w.host.env("AWS_ENDPOINT_URL_STS", &tls.url());
    // Loopback brokers: check resolves every broker, and no DNS query may leave the host.
    w.msk.set_brokers(
        &w.cluster.arn,
        "bootstrapBrokerStringSaslIam",
        Some("127.0.0.1:9"),
    );
    let out = w.host.run(&["check"]);
    no_panic(&out);
    assert_eq!(out.code, 69, "{out:?}");
    let identity = out
        .stdout
        .lines()
        .find(|l| l.contains("AWS identity"))
        .unwrap_or_else(|| panic!("no identity item: {out:?}"));
    assert!(identity.starts_with('✗'), "{out:?}");
    assert!(identity.contains("no trusted CA certificates"), "{out:?}");
    // The plain-http cluster check still ran and passed.
    assert!(out.stdout.contains("✓ cluster demo is ACTIVE"), "{out:?}");
    assert!(sts.server.requests().is_empty());
}

/// Downloads go through reqwest, which builds with an empty store: the archive over
/// https is refused at the handshake, and the line says the host has no CA at all
/// (not that the mirror needs `agent.extra_ca`).
#[test]
fn an_https_download_without_ca_is_one_line_and_69() {
    let mut w = World::new();
    let key = TestKey::generate("k <k@example.com>");
    w.publish(NEW, &tarball::ksqldb_tarball(NEW), &key);
    w.configure(NEW, &Pins::strict(&key.fingerprint()));
    let ca = TestCa::generate(&w.host.dir.path().join("ca"));
    let tls = TlsFront::start(&ca, w.art.server.addr);
    let path = w.host.config_path();
    let text = std::fs::read_to_string(&path).unwrap();
    let plain = format!("archive_url = \"{}/", w.art.server.url());
    assert!(text.contains(&plain), "{text}");
    let text = text.replace(&plain, &format!("archive_url = \"{}/", tls.url()));
    std::fs::write(&path, text).unwrap();
    trust_only(&mut w.host, None);
    let https = format!("{}{}", tls.url(), archive_path(NEW));
    let out = assert_refused(&w, 69, &[&https, "no trusted CA certificates"]);
    no_panic(&out);
}
