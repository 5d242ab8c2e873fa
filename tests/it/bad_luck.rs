//! Issue "install pipeline v2", part 2.6: bad luck never needs a human. A torn or
//! poisoned cache heals in the same run, failures caused by the archive's content are
//! data errors that drop the cache, hopeless redirects fail at once.

use std::time::{Duration, Instant};

use ksql_msk_testkit::artifacts::Fault;
use ksql_msk_testkit::signing::TestKey;
use ksql_msk_testkit::tarball;

use crate::install::{archive_path, assert_installed, Pins, World, NEW};
use crate::support::error_line;

fn world() -> (World, TestKey) {
    let w = World::new();
    let key = TestKey::generate("k <k@example.com>");
    w.publish(NEW, &tarball::ksqldb_tarball(NEW), &key);
    w.configure(
        NEW,
        &Pins::strict(&key.fingerprint()).agent("download_timeout = \"30s\""),
    );
    (w, key)
}

#[test]
fn a_redirect_to_a_scheme_the_agent_does_not_speak_fails_at_once_69() {
    for to in ["ftp://127.0.0.1/x.tar.gz", "file:///etc/passwd"] {
        let (w, _key) = world();
        w.art
            .fault_always(&archive_path(NEW), Fault::Redirect(to.to_string()));
        let started = Instant::now();
        let out = w.install();
        assert_eq!(out.code, 69, "{to}: {out:?}");
        assert!(error_line(&out).contains(to), "{to}: {out:?}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{to}: retried for {:?}",
            started.elapsed()
        );
    }
}

/// Leave a partial archive download in the cache: each attempt gets 1 MB and then
/// stalls, until `download_timeout` gives up (75, the cache kept).
fn world_with_partial_download() -> (World, TestKey, std::path::PathBuf) {
    let w = World::new();
    let key = TestKey::generate("k <k@example.com>");
    w.publish(NEW, &tarball::large_tarball(NEW, 4 << 20), &key);
    let pins = Pins::strict(&key.fingerprint());
    w.configure(
        NEW,
        &pins
            .clone()
            .agent("download_timeout = \"3s\"\nstall_timeout = \"1s\""),
    );
    w.art.fault_always(
        &archive_path(NEW),
        Fault::StallAfter(1 << 20, Duration::from_secs(30)),
    );
    let out = w.install();
    assert_eq!(out.code, 75, "{out:?}");
    w.art.clear_faults();
    w.configure(NEW, &pins);
    let part = cached(&w, ".tar.gz.part").expect("a partial download is left");
    (w, key, part)
}

/// The cache file whose name ends in `suffix`.
fn cached(w: &World, suffix: &str) -> Option<std::path::PathBuf> {
    std::fs::read_dir(w.state().join("cache"))
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(suffix))
}

fn flip_byte(path: &std::path::Path, at: u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 0x55], at).unwrap();
}

#[test]
fn a_torn_partial_download_heals_in_the_same_run() {
    let (w, _key, part) = world_with_partial_download();
    // A power cut tore what the last run wrote: one byte of the kept part is wrong.
    flip_byte(&part, 4096);
    let before = w.art.requests_for(&archive_path(NEW)).len();
    let out = w.install();
    assert_eq!(out.code, 0, "{out:?}");
    assert_installed(&w, NEW);
    assert!(out.stderr.contains("resuming at byte"), "{out:?}");
    assert!(
        out.stderr.contains("fetching everything whole once more"),
        "{out:?}"
    );
    // One resumed request, then one whole one.
    let reqs = w.art.requests_for(&archive_path(NEW));
    assert_eq!(reqs.len() - before, 2, "{reqs:?}");
    assert!(reqs.last().unwrap().header("range").is_none(), "{reqs:?}");
}

#[test]
fn a_poisoned_complete_cache_file_heals_in_the_same_run() {
    let (w, _key, part) = world_with_partial_download();
    // Whatever lies in the cache under the archive's name is checked before it is used.
    let complete = std::path::PathBuf::from(part.to_string_lossy().trim_end_matches(".part"));
    std::fs::rename(&part, &complete).unwrap();
    let _ = std::fs::remove_file(format!("{}.meta", part.display()));
    let out = w.install();
    assert_eq!(out.code, 0, "{out:?}");
    assert_installed(&w, NEW);
    assert!(out.stderr.contains("already downloaded"), "{out:?}");
    assert!(
        out.stderr.contains("fetching everything whole once more"),
        "{out:?}"
    );
}

#[test]
fn a_mirror_that_serves_the_same_bad_bytes_twice_is_refused_65_and_the_cache_dropped() {
    let (w, key, part) = world_with_partial_download();
    flip_byte(&part, 4096);
    // The mirror itself now serves a tampered archive: the whole fetch fails too.
    let mut tgz = tarball::large_tarball(NEW, 4 << 20);
    tgz[4096] ^= 0x55;
    w.publish_raw(
        NEW,
        &tgz,
        key.sign(&tarball::large_tarball(NEW, 4 << 20), true),
        key.public_armored(),
    );
    let out = w.install();
    assert_eq!(out.code, 65, "{out:?}");
    assert!(cached(&w, ".tar.gz").is_none() && cached(&w, ".part").is_none());
}

#[test]
fn an_archive_whose_content_cannot_be_unpacked_is_a_data_error_that_drops_the_cache() {
    let w = World::new();
    let key = TestKey::generate("k <k@example.com>");
    // A correctly signed archive with a file where a directory must go.
    let mut b = tarball::TarballBuilder::new(NEW);
    b.dir("").file("share", b"not a directory", 0o644).file(
        "share/java/ksqldb/x.jar",
        b"PK",
        0o644,
    );
    w.publish(NEW, &b.finish(), &key);
    w.configure(NEW, &Pins::strict(&key.fingerprint()));
    let out = w.install();
    assert_eq!(out.code, 65, "{out:?}");
    assert!(error_line(&out).contains("share/java"), "{out:?}");
    assert!(
        cached(&w, ".tar.gz").is_none(),
        "the archive stayed in the cache"
    );
    assert!(!w.state().join("current").exists());
}
