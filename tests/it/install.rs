//! `ksql-msk install` against the fake MSK API and the local artifact server.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ksql_msk_testkit::artifacts::Fault;
use ksql_msk_testkit::signing::{self, GpgKey, TestKey};
use ksql_msk_testkit::tarball::{self, Hostile};

use crate::support::error_line;

// The world these tests share with hostile.rs, crash.rs and others lives in
// support/world.rs; `crate::install::World` and friends keep working.
pub(crate) use crate::support::world::*;

/// Starting points only this file's tests use.
impl World {
    /// A world with `OLD` installed under a fresh key pinned strictly, the config
    /// pointing at `NEW`: the start of most refusal tests.
    fn with_strict_previous() -> (World, TestKey) {
        let (w, key, _) = World::with_strict_previous_pins();
        (w, key)
    }

    /// A fresh world with a `size`-byte release `NEW` published (not yet configured).
    fn with_large_new(size: u64) -> (World, TestKey) {
        let w = World::new();
        let key = TestKey::generate("k <k@example.com>");
        let tgz = tarball::large_tarball(NEW, size);
        w.publish(NEW, &tgz, &key);
        (w, key)
    }

    /// [`World::with_strict_previous`], also returning the pins it used.
    fn with_strict_previous_pins() -> (World, TestKey, Pins) {
        let w = World::new();
        let key = TestKey::generate("k <k@example.com>");
        let pins = Pins::strict(&key.fingerprint());
        w.with_previous(&key, &pins);
        (w, key, pins)
    }

    /// The manifest text of installed release `v`.
    fn manifest(&self, v: &str) -> String {
        std::fs::read_to_string(
            self.state()
                .join("releases")
                .join(v)
                .join(".ksql-msk-manifest.toml"),
        )
        .unwrap()
    }
}

#[test]
fn upgrades_keep_the_previous_release_and_remove_older_ones() {
    let (w, key) = World::with_strict_previous();
    let pins = Pins::strict(&key.fingerprint());
    w.publish(NEW, &tarball::ksqldb_tarball(NEW), &key);
    assert_eq!(w.install().code, 0);
    // A directory the agent did not make (no manifest) is never touched.
    let foreign = w.state().join("releases/hand-made");
    std::fs::create_dir_all(&foreign).unwrap();
    let newer = "0.29.1";
    w.publish(newer, &tarball::ksqldb_tarball(newer), &key);
    w.configure(newer, &pins);
    let out = w.install();
    assert_eq!(out.code, 0, "{out:?}");
    let releases = w.state().join("releases");
    assert!(
        !releases.join(OLD).exists(),
        "{OLD} was not pruned: {out:?}"
    );
    assert!(releases.join(NEW).join(".ksql-msk-manifest.toml").exists());
    assert!(foreign.exists());
    assert!(out.stderr.contains("removed the old release"), "{out:?}");
    assert_eq!(
        std::fs::read_link(w.state().join("current")).unwrap(),
        Path::new("releases").join(newer)
    );
    // Going back to the kept previous release needs no download.
    w.configure(NEW, &pins);
    let before = w.archive_requests(NEW);
    assert_eq!(w.install().code, 0);
    assert_eq!(w.archive_requests(NEW), before);
    assert_installed(&w, NEW);
}

#[test]
fn cold_install_then_warm_rerun_downloads_nothing() {
    let w = World::new();
    let key = TestKey::generate("Test Packaging <packaging@example.com>");
    let tgz = tarball::ksqldb_tarball(NEW);
    w.publish(NEW, &tgz, &key);
    // Pinned by the signing subkey: the primary is reported as signer.
    w.configure(NEW, &Pins::strict(&key.signing_subkey()));
    let out = w.install();
    assert_eq!(out.code, 0, "{out:?}");
    assert_installed(&w, NEW);
    assert!(
        out.stdout
            .contains(&format!("ksqlDB {NEW} installed and activated")),
        "{out:?}"
    );
    assert!(out.stdout.contains(&key.fingerprint()), "{out:?}");
    assert!(out.stdout.contains("b-1.demo."), "{out:?}");
    let manifest = w.manifest(NEW);
    assert!(
        manifest.contains(&format!("archive_sha256 = \"{}\"", sha256_hex(&tgz))),
        "{manifest}"
    );
    assert!(
        manifest.contains(&format!("signer = \"{}\"", key.fingerprint())),
        "{manifest}"
    );
    assert!(
        manifest.contains(&format!("jar_sha256 = \"{}\"", sha256_hex(JAR_BYTES))),
        "{manifest}"
    );
    // Downloads are not kept once installed.
    let cache: Vec<_> = std::fs::read_dir(w.state().join("cache"))
        .unwrap()
        .collect();
    assert!(cache.is_empty(), "{cache:?}");
    assert!(
        !w.state().join("trust.toml").exists(),
        "nothing was trusted on first use"
    );

    let before = snapshot(&w.state());
    let requests = w.art.server.requests().len();
    let out = w.install();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("already installed and active"),
        "{out:?}"
    );
    assert_eq!(
        w.art.server.requests().len(),
        requests,
        "the warm run downloaded something"
    );
    assert_eq!(snapshot(&w.state()), before);
}

#[test]
fn binary_signature_and_binary_key_work() {
    let w = World::new();
    let key = TestKey::generate("bin <bin@example.com>");
    let tgz = tarball::ksqldb_tarball(NEW);
    w.publish_raw(NEW, &tgz, key.sign(&tgz, false), key.cert_binary());
    w.configure(NEW, &Pins::strict(&key.fingerprint()));
    let out = w.install();
    assert_eq!(out.code, 0, "{out:?}");
    assert_installed(&w, NEW);
}

#[test]
fn gnupg_rsa4096_key_with_binary_and_armored_signatures() {
    assert!(
        signing::have_gpg(),
        "gpg is missing: run tests/setup-host (installs gnupg)"
    );
    let gpg = GpgKey::generate("Confluent-like Packaging <pkg@example.com>", "rsa4096");
    for armored in [false, true] {
        let w = World::new();
        let tgz = tarball::ksqldb_tarball(NEW);
        w.publish_raw(NEW, &tgz, gpg.sign(&tgz, armored), gpg.public(!armored));
        w.configure(NEW, &Pins::strict(&gpg.fingerprint));
        let out = w.install();
        assert_eq!(out.code, 0, "armored signature: {armored}: {out:?}");
        assert_installed(&w, NEW);
    }
    // And a tampered archive fails against the same RSA key.
    let w = World::new();
    let mut tgz = tarball::ksqldb_tarball(NEW);
    let sig = gpg.sign(&tgz, true);
    let mid = tgz.len() / 2;
    tgz[mid] ^= 0x01;
    w.publish_raw(NEW, &tgz, sig, gpg.public(true));
    w.configure(NEW, &Pins::strict(&gpg.fingerprint));
    assert_refused(&w, 65, &["bad signature"]);
}

#[test]
fn tampered_byte_is_refused_and_previous_release_stays() {
    let (w, key) = World::with_strict_previous();
    let good = tarball::ksqldb_tarball(NEW);
    let sig = key.sign(&good, true);
    let mut bad = good.clone();
    let at = bad.len() / 3;
    bad[at] ^= 0x40;
    w.publish_raw(NEW, &bad, sig, key.public_armored());
    assert_refused(&w, 65, &["bad signature", "tampered"]);
    // The bad download is not kept: a fixed mirror is fetched afresh next time.
    w.publish(NEW, &good, &key);
    let out = w.install();
    assert_eq!(out.code, 0, "{out:?}");
    assert_installed(&w, NEW);
    assert!(
        w.state().join("releases").join(OLD).is_dir(),
        "older release removed"
    );
}

#[test]
fn signature_by_another_key_is_refused() {
    let (w, key) = World::with_strict_previous();
    let other = TestKey::generate("mallory <m@example.com>");
    let tgz = tarball::ksqldb_tarball(NEW);
    w.publish_raw(NEW, &tgz, other.sign(&tgz, true), key.public_armored());
    assert_refused(&w, 65, &["not in the signing key file"]);
}

#[test]
fn good_signature_by_an_unpinned_key_is_refused() {
    let (w, _key) = World::with_strict_previous();
    let other = TestKey::generate("other <o@example.com>");
    w.publish(NEW, &tarball::ksqldb_tarball(NEW), &other);
    assert_refused(
        &w,
        65,
        &[&other.fingerprint(), "not in ksqldb.trusted_fingerprints"],
    );
}

#[test]
fn expired_and_revoked_keys_are_refused() {
    let (w, _key) = World::with_strict_previous();
    let tgz = tarball::ksqldb_tarball(NEW);

    let expired = TestKey::generate_expired("old <old@example.com>");
    w.configure(NEW, &Pins::strict(&expired.fingerprint()));
    w.publish(NEW, &tgz, &expired);
    assert_refused(&w, 65, &["expired"]);

    let revoked = TestKey::generate("rev <rev@example.com>");
    w.configure(NEW, &Pins::strict(&revoked.fingerprint()));
    w.publish_raw(
        NEW,
        &tgz,
        revoked.sign(&tgz, true),
        revoked.revoked_public_armored(),
    );
    assert_refused(&w, 65, &["revoked"]);
}

#[test]
fn empty_or_truncated_signature_is_refused() {
    let (w, key) = World::with_strict_previous();
    let tgz = tarball::ksqldb_tarball(NEW);
    w.publish_raw(NEW, &tgz, Vec::new(), key.public_armored());
    assert_refused(&w, 65, &["is empty", ".asc"]);
    let sig = key.sign(&tgz, false);
    w.publish_raw(
        NEW,
        &tgz,
        sig[..sig.len() / 2].to_vec(),
        key.public_armored(),
    );
    assert_refused(&w, 65, &["signature", ".asc"]);
}

#[test]
fn trust_on_first_use_records_the_signer_and_refuses_a_new_one() {
    let w = World::new();
    let key = TestKey::generate("k <k@example.com>");
    let tofu = Pins {
        fingerprints: vec![],
        jar_sha256: None,
        agent: String::new(),
    };
    w.publish(OLD, &tarball::ksqldb_tarball(OLD), &key);
    w.configure(OLD, &tofu);
    let out = w.install();
    assert_eq!(out.code, 0, "{out:?}");
    let fp = key.fingerprint();
    assert!(
        out.stderr
            .contains(&format!("trusted_fingerprints = [\"{fp}\"]")),
        "no pin line in the log: {out:?}"
    );
    assert!(
        out.stderr
            .contains(&format!("sha256 = \"{}\"", sha256_hex(JAR_BYTES))),
        "{out:?}"
    );
    let trust = std::fs::read_to_string(w.state().join("trust.toml")).unwrap();
    assert!(trust.contains(&fp), "{trust}");
    assert!(trust.contains(&sha256_hex(JAR_BYTES)), "{trust}");

    // A new version signed by a different key: refused, named in the error.
    let other = TestKey::generate("new <new@example.com>");
    w.publish(NEW, &tarball::ksqldb_tarball(NEW), &other);
    w.configure(NEW, &tofu);
    assert_refused(&w, 65, &[&other.fingerprint(), &fp, "trusted on first use"]);
    // The same key again is fine.
    w.publish(NEW, &tarball::ksqldb_tarball(NEW), &key);
    let out = w.install();
    assert_eq!(out.code, 0, "{out:?}");
    assert_installed(&w, NEW);
}

#[test]
fn jar_hash_mismatch_is_refused() {
    let (w, key, pins) = World::with_strict_previous_pins();
    w.publish(NEW, &tarball::ksqldb_tarball(NEW), &key);
    let mut wrong = pins.clone();
    wrong.jar_sha256 = Some("ab".repeat(32));
    w.configure(NEW, &wrong);
    assert_refused(&w, 65, &["SHA-256", "iam_auth.sha256", "aws-msk-iam-auth"]);
    // Published .sha256 that does not match the jar (first use).
    w.art.put(
        &format!("{}.sha256", jar_path(JAR_VERSION)),
        format!("{}\n", "cd".repeat(32)),
    );
    let mut tofu = pins.clone();
    tofu.jar_sha256 = None;
    w.configure(NEW, &tofu);
    assert_refused(&w, 65, &["SHA-256", ".sha256"]);
}

#[test]
fn hostile_tar_entries_are_refused_by_name() {
    let (w, key) = World::with_strict_previous();
    for kind in Hostile::ALL {
        w.publish(NEW, &tarball::hostile_tarball(NEW, *kind), &key);
        let (entry, why) = kind.expect(NEW);
        let out = assert_refused(&w, 65, &[&entry, why, "refused"]);
        assert!(!out.stdout.contains("installed"), "{kind:?}: {out:?}");
    }
    assert!(!Path::new("/tmp/ksql-msk-pwned").exists());
}

#[test]
fn gzip_bomb_is_stopped_at_max_release_size() {
    let w = World::new();
    let key = TestKey::generate("k <k@example.com>");
    let pins = Pins::strict(&key.fingerprint()).agent("max_release_size = \"2m\"");
    w.with_previous(&key, &pins);
    w.publish(NEW, &tarball::gzip_bomb(NEW, 64 << 20), &key);
    assert_refused(&w, 65, &["max_release_size"]);
}

#[test]
fn download_resumes_after_a_reset_with_range_and_if_range() {
    let (w, key) = World::with_large_new(3 << 20);
    w.art
        .fault_next(&archive_path(NEW), Fault::ResetAfter(1 << 20));
    w.configure(NEW, &Pins::strict(&key.fingerprint()));
    let out = w.install();
    assert_eq!(out.code, 0, "{out:?}");
    assert_installed(&w, NEW);
    let reqs = w.art.requests_for(&archive_path(NEW));
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    let range = reqs[1].header("range").expect("second request resumes");
    let from: u64 = range
        .trim_start_matches("bytes=")
        .trim_end_matches('-')
        .parse()
        .unwrap();
    assert!(from > 0 && from <= 1 << 20, "{range}");
    assert!(
        reqs[1]
            .header("if-range")
            .is_some_and(|v| v.starts_with('"')),
        "{reqs:?}"
    );
    assert!(out.stderr.contains("resuming at byte"), "{out:?}");
}

#[test]
fn server_that_ignores_range_or_changed_file_starts_over_cleanly() {
    let (w, key) = World::with_large_new(2 << 20);
    w.art
        .fault_next(&archive_path(NEW), Fault::ResetAfter(700_000));
    w.art.fault_next(&archive_path(NEW), Fault::IgnoreRange);
    w.configure(NEW, &Pins::strict(&key.fingerprint()));
    let out = w.install();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("starting over"), "{out:?}");
    assert_installed(&w, NEW);

    // The file changes between the cut and the resume: If-Range makes the server send
    // the new file whole instead of splicing its tail onto the old head. The signature
    // fetched earlier is for the old file, so this run refuses it and drops the cached
    // download; the next run fetches both afresh and installs.
    let w = World::new();
    let first = tarball::large_tarball(NEW, 2 << 20);
    w.publish(NEW, &first, &key);
    w.art
        .fault_next(&archive_path(NEW), Fault::ResetAfter(700_000));
    w.art.fault_next(&archive_path(NEW), Fault::Status(503));
    w.configure(NEW, &Pins::strict(&key.fingerprint()));
    let child = w.spawn_install(true);
    wait_for("the first attempts", Duration::from_secs(20), || {
        w.archive_requests(NEW) >= 2
    });
    let second = tarball::ksqldb_tarball(NEW);
    w.publish(NEW, &second, &key);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(65), "{stderr}");
    assert!(stderr.contains("bad signature"), "{stderr}");
    assert!(stderr.contains("starting over"), "{stderr}");
    let reqs = w.art.requests_for(&archive_path(NEW));
    let last = reqs.last().unwrap();
    assert!(
        last.header("range").is_some() && last.header("if-range").is_some(),
        "{reqs:?}"
    );
    let out = w.install();
    assert_eq!(out.code, 0, "{out:?}");
    let manifest = w.manifest(NEW);
    assert!(manifest.contains(&sha256_hex(&second)), "{manifest}");
}

#[test]
fn stalls_short_bodies_and_5xx_are_retried() {
    let (w, key) = World::with_large_new(1 << 20);
    let p = archive_path(NEW);
    w.art.fault_next(&p, Fault::Status(503));
    w.art
        .fault_next(&p, Fault::StallAfter(300_000, Duration::from_secs(60)));
    w.art.fault_next(&p, Fault::ShortBody(5000));
    w.art.fault_next(&p, Fault::Status(429));
    w.art.fault_next(&jar_path(JAR_VERSION), Fault::Status(500));
    w.art
        .fault_next(&format!("{p}.asc"), Fault::Hang(Duration::from_secs(60)));
    w.configure(
        NEW,
        &Pins::strict(&key.fingerprint()).agent("stall_timeout = \"1s\""),
    );
    let started = Instant::now();
    let out = w.install();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert!(out.stderr.contains("HTTP 503"), "{out:?}");
    assert!(out.stderr.contains("no data for 1s"), "{out:?}");
    assert!(out.stderr.contains("HTTP 429"), "{out:?}");
    assert!(out.stderr.contains("no response for 1s"), "{out:?}");
    assert_eq!(w.archive_requests(NEW), 5);
    assert_installed(&w, NEW);
}

#[test]
fn not_found_exits_69_naming_the_url() {
    let (w, key) = World::with_strict_previous();
    // NEW's signature and key are there, its archive is not: the 404 is the archive's
    // (with nothing published, whichever concurrent download fails first is named).
    w.publish(NEW, &tarball::ksqldb_tarball(NEW), &key);
    w.art.remove(&archive_path(NEW));
    let url = w.art.url(&archive_path(NEW));
    assert_refused(&w, 69, &[&url, "404"]);
}

#[test]
fn exhausted_retries_exit_75_naming_the_url() {
    let (w, key, pins) = World::with_strict_previous_pins();
    w.publish(NEW, &tarball::ksqldb_tarball(NEW), &key);
    w.art.fault_always(&archive_path(NEW), Fault::Status(500));
    w.configure(NEW, &pins.clone().agent("download_timeout = \"3s\""));
    let started = Instant::now();
    let url = w.art.url(&archive_path(NEW));
    assert_refused(
        &w,
        75,
        &[&url, "giving up", "HTTP 500", "agent.download_timeout"],
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        w.archive_requests(NEW) >= 3,
        "retried: {}",
        w.archive_requests(NEW)
    );
}

pub(crate) fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

pub(crate) fn staging_dirs(state: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(state.join("releases"))
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .unwrap()
                        .to_string_lossy()
                        .starts_with(".staging-")
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn sigkill_mid_download_and_mid_unpack_then_rerun_is_consistent() {
    let (w, key) = World::with_strict_previous();
    let before = snapshot(&w.state());
    let tgz = tarball::large_tarball(NEW, 48 << 20);
    w.publish(NEW, &tgz, &key);

    // 1. Killed mid-download (slow drip): the partial stays for a resume.
    w.art.fault_next(
        &archive_path(NEW),
        Fault::Drip(256 << 10, Duration::from_millis(50)),
    );
    let mut child = w.spawn_install(false);
    let cache = w.state().join("cache");
    wait_for("a partial download", Duration::from_secs(20), || {
        std::fs::read_dir(&cache)
            .map(|d| {
                d.flatten().any(|e| {
                    e.file_name().to_string_lossy().ends_with(".tar.gz.part")
                        && e.metadata().is_ok_and(|m| m.len() > 1 << 20)
                })
            })
            .unwrap_or(false)
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(snapshot(&w.state()), before);

    // 2. Killed mid-unpack: the download resumes and unpacking (which reads the archive
    //    while it downloads) is cut. Run 1 may have left a staging directory of its own:
    //    wait for this run's.
    let left = staging_dirs(&w.state());
    let mut child = w.spawn_install(false);
    let state = w.state();
    wait_for("unpacking to start", Duration::from_secs(30), || {
        w.archive_requests(NEW) >= 2
            && staging_dirs(&state)
                .iter()
                .any(|s| !left.contains(s) && s.join("bin").exists())
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        snapshot(&w.state()),
        before,
        "a killed install changed the active release"
    );
    let reqs = w.art.requests_for(&archive_path(NEW));
    assert!(
        reqs.iter().any(|r| r.header("range").is_some()),
        "no resume: {reqs:?}"
    );

    // 3. The re-run cleans up and installs.
    let out = w.install();
    assert_eq!(out.code, 0, "{out:?}");
    assert_installed(&w, NEW);
    assert_eq!(
        std::fs::metadata(
            w.state()
                .join("releases")
                .join(NEW)
                .join("share/java/ksqldb/big-0.jar")
        )
        .unwrap()
        .len(),
        48 << 20
    );
}

#[test]
fn concurrent_installs_serialise_on_the_lock() {
    let (w, key) = World::with_large_new(2 << 20);
    // The first install is slow (drip), so the others must wait for it.
    w.art.fault_next(
        &archive_path(NEW),
        Fault::Drip(256 << 10, Duration::from_millis(100)),
    );
    w.configure(NEW, &Pins::strict(&key.fingerprint()));
    let children: Vec<_> = (0..3)
        .map(|_| {
            let c = w.spawn_install(true);
            std::thread::sleep(Duration::from_millis(100));
            c
        })
        .collect();
    let outs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    for o in &outs {
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let waited = outs
        .iter()
        .filter(|o| String::from_utf8_lossy(&o.stderr).contains("waiting up to"))
        .count();
    assert!(waited >= 1, "nobody waited for the lock");
    let activated = outs
        .iter()
        .filter(|o| String::from_utf8_lossy(&o.stdout).contains("installed and activated"))
        .count();
    assert_eq!(activated, 1, "exactly one install does the work");
    assert_eq!(
        w.archive_requests(NEW),
        1,
        "the archive was downloaded once"
    );
    assert_installed(&w, NEW);

    // A second agent with a short lock_timeout gives up with 75.
    w.art.fault_next(
        &archive_path(OLD),
        Fault::Drip(64 << 10, Duration::from_millis(200)),
    );
    w.publish(OLD, &tarball::large_tarball(OLD, 1 << 20), &key);
    w.configure(
        OLD,
        &Pins::strict(&key.fingerprint()).agent("lock_timeout = \"1s\""),
    );
    let slow = w.spawn_install(false);
    wait_for(
        "the slow install to download",
        Duration::from_secs(20),
        || w.archive_requests(OLD) > 0,
    );
    let out = w.install();
    assert_eq!(out.code, 75, "{out:?}");
    assert!(error_line(&out).contains("agent.lock_timeout"), "{out:?}");
    let slow = slow.wait_with_output().unwrap();
    assert_eq!(slow.status.code(), Some(0));
}

#[test]
fn iam_jar_version_change_updates_only_the_jar() {
    let w = World::new();
    let key = TestKey::generate("k <k@example.com>");
    w.publish(NEW, &tarball::ksqldb_tarball(NEW), &key);
    w.configure(NEW, &Pins::strict(&key.fingerprint()));
    assert_eq!(w.install().code, 0);
    let new_jar = b"PK\x03\x04 newer iam jar".to_vec();
    w.art.put(&jar_path("2.3.0"), new_jar.clone());
    let text = std::fs::read_to_string(w.host.config_path()).unwrap();
    std::fs::write(
        w.host.config_path(),
        text.replace(
            &format!("version = \"{JAR_VERSION}\""),
            "version = \"2.3.0\"",
        )
        .replace(&sha256_hex(JAR_BYTES), &sha256_hex(&new_jar)),
    )
    .unwrap();
    let out = w.install();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("installed and activated"), "{out:?}");
    assert_eq!(w.archive_requests(NEW), 1, "the archive was fetched again");
    let jars = w
        .state()
        .join("releases")
        .join(NEW)
        .join("share/java/ksqldb");
    assert_eq!(
        std::fs::read(jars.join("aws-msk-iam-auth-2.3.0-all.jar")).unwrap(),
        new_jar
    );
    assert!(!jars
        .join(format!("aws-msk-iam-auth-{JAR_VERSION}-all.jar"))
        .exists());
}

#[test]
fn http_proxy_from_the_environment_is_used() {
    let mut w = World::new();
    let key = TestKey::generate("k <k@example.com>");
    w.publish(NEW, &tarball::ksqldb_tarball(NEW), &key);
    w.configure(NEW, &Pins::strict(&key.fingerprint()));
    // Artifacts on a host that does not resolve: only the proxy can fetch them.
    let text = std::fs::read_to_string(w.host.config_path()).unwrap();
    std::fs::write(
        w.host.config_path(),
        text.replace(&w.art.server.url(), "http://artifacts.invalid"),
    )
    .unwrap();
    let proxy = w.art.server.url();
    w.host
        .env("HTTP_PROXY", &proxy)
        .env("NO_PROXY", "127.0.0.1");
    let out = w.install();
    assert_eq!(out.code, 0, "{out:?}");
    let reqs = w.art.requests_for(&archive_path(NEW));
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].header("host"), Some("artifacts.invalid"));
}

#[test]
fn dry_run_reports_and_writes_nothing() {
    let w = World::new();
    let key = TestKey::generate("k <k@example.com>");
    w.publish(NEW, &tarball::ksqldb_tarball(NEW), &key);
    w.configure(NEW, &Pins::strict(&key.fingerprint()));
    let out = w.host.run(&["install", "--dry-run"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .contains(&format!("would download {}", w.art.url(&archive_path(NEW)))),
        "{out:?}"
    );
    assert!(!w.state().exists(), "dry run wrote the state dir");
    assert!(w.art.server.requests().is_empty());
}

/// Peak RSS of a release-build install of a ~200 MB incompressible archive. Run with
/// `KSQL_MSK_BIN=target/release/ksql-msk cargo test --test it rss -- --ignored --nocapture`.
#[test]
#[ignore]
fn rss_of_a_large_install() {
    let bin = std::env::var("KSQL_MSK_BIN").unwrap_or_else(|_| crate::support::bin().to_string());
    let w = World::new();
    let key = TestKey::generate("k <k@example.com>");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.tar.gz");
    tarball::write_large_tarball(&path, NEW, 200 << 20);
    let tgz = std::fs::read(&path).unwrap();
    w.publish(NEW, &tgz, &key);
    drop(tgz);
    w.configure(NEW, &Pins::strict(&key.fingerprint()));
    let template = w.host.command(&["install"]);
    let started = Instant::now();
    let status = std::process::Command::new("/usr/bin/time")
        .arg("-f")
        .arg("maxrss_kib=%M")
        .arg(&bin)
        .args(template.get_args())
        .env_clear()
        .envs(template.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
        .output()
        .expect("run /usr/bin/time");
    let stderr = String::from_utf8_lossy(&status.stderr);
    println!("{stderr}");
    println!("wall: {:.1}s", started.elapsed().as_secs_f64());
    assert!(status.status.success());
    let kib: u64 = stderr
        .lines()
        .find_map(|l| l.strip_prefix("maxrss_kib="))
        .expect("maxrss line")
        .trim()
        .parse()
        .unwrap();
    println!("peak RSS: {:.1} MiB", kib as f64 / 1024.0);
    assert!(kib < 64 * 1024, "peak RSS {kib} KiB");
}

#[test]
fn extra_ca_that_is_not_pem_exits_78() {
    let w = World::new();
    let key = TestKey::generate("k <k@example.com>");
    w.publish(NEW, &tarball::ksqldb_tarball(NEW), &key);
    let ca = w.host.dir.path().join("not-a-ca.pem");
    std::fs::write(&ca, "hello\n").unwrap();
    w.configure(
        NEW,
        &Pins::strict(&key.fingerprint()).agent(&format!("extra_ca = \"{}\"", ca.display())),
    );
    let out = assert_refused(&w, 78, &["agent.extra_ca", "not-a-ca.pem"]);
    assert!(out.stdout.is_empty(), "{out:?}");
    assert!(
        w.art.server.requests().is_empty(),
        "fetched before checking the CA"
    );
}
