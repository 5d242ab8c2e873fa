//! Hostile servers (docs/RELIABILITY.md): artifact servers and an MSK API that misbehave
//! on purpose. Each case ends in one clear error line (or, where the agent may follow
//! along safely, a verified install) and leaves the installed release, its properties
//! and the state directory as they were. Cases already covered in install.rs (resets,
//! stalls after some bytes, short bodies, 5xx, ignored Range, silent servers, hostile
//! tar entries, a bomb over max_release_size) are not repeated here.

use std::path::Path;
use std::time::{Duration, Instant};

use ksql_msk_testkit::artifacts::{ArtifactServer, Fault};
use ksql_msk_testkit::hostile::{RawServer, TestCa, TlsFront};
use ksql_msk_testkit::signing::TestKey;
use ksql_msk_testkit::tarball::{self, TarballBuilder};

use crate::support::error_line;
use crate::support::world::{
    archive_path, assert_installed, assert_refused, Pins, World, NEW, OLD,
};

fn live_properties(w: &World) -> Vec<u8> {
    std::fs::read(w.state().join("current/etc/ksqldb/ksql-server.properties")).unwrap()
}

/// Replace the archive URL template's host part in the config.
fn archive_from(w: &World, base: &str) {
    let path = w.host.config_path();
    let text = std::fs::read_to_string(&path).unwrap();
    let from = format!("archive_url = \"{}/", w.art.server.url());
    assert!(text.contains(&from), "{text}");
    std::fs::write(
        &path,
        text.replace(&from, &format!("archive_url = \"{base}/")),
    )
    .unwrap();
}

fn world() -> (World, TestKey, Pins) {
    let w = World::new();
    let key = TestKey::generate("k <k@example.com>");
    let pins = Pins::strict(&key.fingerprint());
    w.with_previous(&key, &pins);
    (w, key, pins)
}

#[test]
fn endless_slow_drip_trips_the_stall_timeout() {
    let (w, key, pins) = world();
    w.configure(
        NEW,
        &pins.agent("stall_timeout = \"1s\"\ndownload_timeout = \"5s\""),
    );
    w.publish(NEW, &tarball::large_tarball(NEW, 1 << 20), &key);
    // 200 bytes every 400 ms, forever: never silent, never done.
    w.art.fault_always(
        &archive_path(NEW),
        Fault::Drip(200, Duration::from_millis(400)),
    );
    let started = Instant::now();
    let out = assert_refused(
        &w,
        75,
        &[&w.art.url(&archive_path(NEW)), "agent.download_timeout"],
    );
    assert!(
        out.stderr
            .contains("less than 16 KiB (agent.stall_timeout)"),
        "the stall timeout did not fire: {out:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn body_longer_than_content_length_is_cut_and_refused_by_the_signature() {
    let (w, key, _pins) = world();
    let tgz = tarball::ksqldb_tarball(NEW);
    let sig = key.sign(&tgz, true);
    w.publish(NEW, &tgz, &key);
    let before = live_properties(&w);
    // The server announces 1000 bytes less than it sends.
    let (t, s) = (tgz.clone(), sig.clone());
    let raw = RawServer::start(move |path| {
        let (body, announced) = if path.ends_with(".asc") {
            (s.clone(), s.len())
        } else {
            (t.clone(), t.len() - 1000)
        };
        let mut out = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: {announced}\r\nconnection: close\r\n\r\n"
        )
        .into_bytes();
        out.extend_from_slice(&body);
        out
    });
    archive_from(&w, &format!("http://{}", raw.addr));
    assert_refused(&w, 65, &["bad signature"]);
    assert_eq!(live_properties(&w), before);

    // Announced right, with junk after the body: the junk is not part of the file.
    let (t, s) = (tgz.clone(), sig.clone());
    let raw2 = RawServer::start(move |path| {
        let body = if path.ends_with(".asc") {
            s.clone()
        } else {
            t.clone()
        };
        let mut out = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(&body);
        out.extend_from_slice(&[0x1f; 4096]);
        out
    });
    let text = std::fs::read_to_string(w.host.config_path()).unwrap();
    std::fs::write(
        w.host.config_path(),
        text.replace(
            &format!("http://{}", raw.addr),
            &format!("http://{}", raw2.addr),
        ),
    )
    .unwrap();
    let out = w.install();
    assert_eq!(out.code, 0, "{out:?}");
    assert_installed(&w, NEW);
}

#[test]
fn gzip_bomb_is_stopped_by_the_inflate_ratio_under_the_default_cap() {
    let (w, key, _pins) = world();
    // 192 MB of zeros in about 2 MB: over 50 times its size and over 64 MB.
    let bomb = tarball::gzip_bomb(NEW, 192 << 20);
    assert!((bomb.len() as u64) * 50 < 192 << 20, "{}", bomb.len());
    w.publish(NEW, &bomb, &key);
    let started = Instant::now();
    assert_refused(&w, 65, &["50 times its size", "gzip bomb"]);
    eprintln!(
        "gzip bomb of {} bytes refused in {:?}",
        bomb.len(),
        started.elapsed()
    );
}

#[test]
fn a_hundred_thousand_tiny_entries_are_refused() {
    let (w, key, _pins) = world();
    let mut b = TarballBuilder::new(NEW).standard();
    for i in 0..100_000 {
        b.file(&format!("share/doc/flood/{i}"), b"", 0o644);
    }
    let tgz = b.finish();
    w.publish(NEW, &tgz, &key);
    let started = Instant::now();
    assert_refused(&w, 65, &["more than 20000 entries"]);
    let took = started.elapsed();
    eprintln!(
        "100 000-entry archive ({} bytes) refused in {took:?}",
        tgz.len()
    );
    assert!(took < Duration::from_secs(30), "{took:?}");
}

#[test]
fn redirects_to_another_host_are_followed_and_still_verified() {
    let (w, key, _pins) = world();
    let good = tarball::ksqldb_tarball(NEW);
    w.publish(NEW, &good, &key);
    // Another host: `localhost` is not `127.0.0.1`, and another port too.
    let mirror = ArtifactServer::start();
    let mut bad = good.clone();
    let at = bad.len() / 2;
    bad[at] ^= 1;
    mirror.put(&archive_path(NEW), bad);
    let mirror_url = format!(
        "http://localhost:{}{}",
        mirror.server.addr.port(),
        archive_path(NEW)
    );
    w.art
        .fault_always(&archive_path(NEW), Fault::Redirect(mirror_url.clone()));
    assert_refused(&w, 65, &["bad signature"]);
    assert_eq!(mirror.requests_for(&archive_path(NEW)).len(), 1);

    // The same redirect to an honest mirror installs.
    mirror.put(&archive_path(NEW), good);
    let out = w.install();
    assert_eq!(out.code, 0, "{out:?}");
    assert_installed(&w, NEW);
    assert_eq!(mirror.requests_for(&archive_path(NEW)).len(), 2);
}

#[test]
fn redirect_loops_fail_fast_with_a_clear_error() {
    let (w, key, _pins) = world();
    w.publish(NEW, &tarball::ksqldb_tarball(NEW), &key);
    let other = ArtifactServer::start();
    let a = w.art.url(&archive_path(NEW));
    let b = other.url("/loop");
    w.art
        .fault_always(&archive_path(NEW), Fault::Redirect(b.clone()));
    other.fault_always("/loop", Fault::Redirect(a.clone()));
    let started = Instant::now();
    assert_refused(&w, 69, &[&a, "redirect loop"]);
    assert!(started.elapsed() < Duration::from_secs(10));
    // Ten redirects, not a retry loop until the deadline.
    assert!(w.art.requests_for(&archive_path(NEW)).len() <= 6);
}

#[test]
fn https_with_a_test_ca_needs_extra_ca() {
    let (w, key, pins) = world();
    w.publish(NEW, &tarball::ksqldb_tarball(NEW), &key);
    let dir = w.host.dir.path().join("ca");
    let ca = TestCa::generate(&dir);
    let tls = TlsFront::start(&ca, w.art.server.addr);
    // Not in the system store: refused, naming the fix.
    archive_from(&w, &tls.url());
    let https = format!("{}{}", tls.url(), archive_path(NEW));
    let out = assert_refused(
        &w,
        69,
        &[&https, "TLS certificate not trusted", "agent.extra_ca"],
    );
    assert_eq!(error_line(&out).matches('\n').count(), 0);

    // With the CA: fetched over TLS, verified, installed.
    w.configure(
        NEW,
        &pins.agent(&format!("extra_ca = \"{}\"", ca.ca_pem.display())),
    );
    archive_from(&w, &tls.url());
    let out = w.install();
    assert_eq!(out.code, 0, "{out:?}");
    assert_installed(&w, NEW);
    assert!(Path::new(&ca.ca_pem).exists());
}

#[test]
fn a_redirect_from_https_to_http_is_refused_and_https_to_https_followed() {
    let (w, key, pins) = world();
    let good = tarball::ksqldb_tarball(NEW);
    w.publish(NEW, &good, &key);
    let ca = TestCa::generate(&w.host.dir.path().join("ca"));
    let tls = TlsFront::start(&ca, w.art.server.addr);
    w.configure(
        NEW,
        &pins.agent(&format!("extra_ca = \"{}\"", ca.ca_pem.display())),
    );
    archive_from(&w, &tls.url());
    // A plain-text mirror holding the very same (validly signed) archive.
    let mirror = ArtifactServer::start();
    mirror.put(&archive_path(NEW), good.clone());
    w.art.fault_always(
        &archive_path(NEW),
        Fault::Redirect(mirror.url(&archive_path(NEW))),
    );
    let https = format!("{}{}", tls.url(), archive_path(NEW));
    let out = assert_refused(
        &w,
        69,
        &[
            &https,
            "redirected from https to http://",
            "refusing to leave TLS",
        ],
    );
    assert_eq!(error_line(&out).matches('\n').count(), 0);
    assert!(mirror.requests_for(&archive_path(NEW)).is_empty());

    // Moved within TLS: followed, verified, installed.
    let moved = format!("/moved{}", archive_path(NEW));
    w.art.put(&moved, good);
    w.art.fault_always(
        &archive_path(NEW),
        Fault::Redirect(format!("{}{moved}", tls.url())),
    );
    let out = w.install();
    assert_eq!(out.code, 0, "{out:?}");
    assert_installed(&w, NEW);
    assert_eq!(w.art.requests_for(&moved).len(), 1);
}

#[test]
fn absurd_broker_strings_and_broken_json_change_nothing() {
    let (w, key, pins) = world();
    // The previous install stays configured for OLD: only discovery is hostile.
    w.publish(NEW, &tarball::ksqldb_tarball(NEW), &key);
    w.configure(OLD, &pins);
    let before = live_properties(&w);
    let field = "bootstrapBrokerStringSaslIam";
    let long = vec!["b-1.demo.example.com:9098"; 20_000].join(",");
    let cases: Vec<String> = vec![
        String::new(),
        ",".into(),
        "b-1.demo:0".into(),
        "b-1.demo:99999".into(),
        "b-1.demo:9098\nssl.truststore.location=/etc/passwd".into(),
        "b-1.demo:9098,evil host;rm -rf /:9098".into(),
        "b-1.demo:9098#\\u0000".into(),
        "[::1".into(),
        long,
    ];
    let mut refused = 0;
    for bad in &cases {
        w.msk.set_brokers(&w.cluster.arn, field, Some(bad));
        let out = w.install();
        assert_eq!(out.code, 69, "{bad:?}: {out:?}");
        let line = error_line(&out);
        assert!(
            line.contains("invalid BootstrapBrokerStringSaslIam")
                || line.contains("IAM authentication is not enabled"),
            "{bad:?}: {line}"
        );
        assert!(line.len() < 2000, "the error line is {} bytes", line.len());
        assert_eq!(live_properties(&w), before, "{bad:?}");
        refused += 1;
    }
    w.msk
        .set_brokers(&w.cluster.arn, field, Some("b-1.demo.example.com:9098"));
    for raw in [
        "{\"bootstrapBrokerStringSaslIam\": [1,",
        "<html>not json</html>",
        "{\"bootstrapBrokerStringSaslIam\": 7}",
    ] {
        w.msk.answer_next_raw("GetBootstrapBrokers", 200, raw);
        let out = w.install();
        assert_eq!(out.code, 69, "{raw:?}: {out:?}");
        assert!(error_line(&out).contains("MSK"), "{out:?}");
        assert_eq!(live_properties(&w), before, "{raw:?}");
        refused += 1;
    }
    eprintln!("hostile MSK answers refused: {refused}");
}
