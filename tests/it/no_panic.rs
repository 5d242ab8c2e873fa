//! Issue "install pipeline v2", part 2.1: every failure of the install ends in one line
//! and a sysexits code, never a panic (exit 101, which the unit restarts for ever), also
//! when it strikes while the archive is still downloading.

use std::time::Duration;

use ksql_msk_testkit::artifacts::Fault;
use ksql_msk_testkit::signing::TestKey;
use ksql_msk_testkit::tarball;

use crate::support::world::{archive_path, assert_no_staging, assert_refused, Pins, World, NEW};

/// A strictly pinned world with `NEW` published, its archive served slowly (about 3 s)
/// so that verification fails while the download is still running.
fn slow_world() -> (World, TestKey, Vec<u8>) {
    let w = World::new();
    let key = TestKey::generate("k <k@example.com>");
    let pins = Pins::strict(&key.fingerprint());
    let tgz = tarball::ksqldb_tarball(NEW);
    w.publish(NEW, &tgz, &key);
    w.configure(NEW, &pins);
    let chunk = tgz.len() / 30 + 1;
    w.art.fault_always(
        &archive_path(NEW),
        Fault::Drip(chunk, Duration::from_millis(100)),
    );
    (w, key, tgz)
}

#[test]
fn corrupt_signature_found_mid_download_is_one_line_65() {
    let (w, key, tgz) = slow_world();
    let sig = key.sign(&tgz, false);
    w.publish_raw(
        NEW,
        &tgz,
        sig[..sig.len() / 2].to_vec(),
        key.public_armored(),
    );
    w.art.fault_always(
        &archive_path(NEW),
        Fault::Drip(tgz.len() / 30 + 1, Duration::from_millis(100)),
    );
    let out = assert_refused(&w, 65, &["signature", ".asc"]);
    assert!(!out.stderr.contains("panicked"), "{out:?}");
}

#[test]
fn signature_from_another_key_found_mid_download_is_one_line_65() {
    let (w, _key, tgz) = slow_world();
    let other = TestKey::generate("other <o@example.com>");
    w.art.put(
        &format!("{}.asc", archive_path(NEW)),
        other.sign(&tgz, true),
    );
    let out = w.install();
    assert_eq!(out.code, 65, "{out:?}");
    assert!(!out.stderr.contains("panicked"), "{out:?}");
}

/// A small tmpfs mounted over a path for the length of a test (root only).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(at: &std::path::Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).unwrap();
        let ok = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0750"),
                "tmpfs",
            ])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn disk_that_fills_during_unpack_is_one_line_74_and_leaves_no_staging() {
    let w = World::new();
    let key = TestKey::generate("k <k@example.com>");
    let pins = Pins::strict(&key.fingerprint());
    // 8 MB of zeros gzip to a few KB: the free-space check (by archive size) passes,
    // and the 4 MB disk fills while the file is written.
    // They come first, so the disk fills while most of the archive is still on its way.
    let mut b = tarball::TarballBuilder::new(NEW);
    b.dir("")
        .dir("share")
        .dir("share/java")
        .dir("share/java/ksqldb");
    b.file("share/java/ksqldb/zeros.jar", &vec![0u8; 8 << 20], 0o644);
    let tgz = b.standard().finish();
    w.publish(NEW, &tgz, &key);
    w.configure(NEW, &pins);
    w.art.fault_always(
        &archive_path(NEW),
        Fault::Drip(tgz.len() / 20 + 1, Duration::from_millis(100)),
    );
    let Some(_disk) = Tmpfs::mount(&w.state(), "4m") else {
        crate::support::skip(
            "KSQL_MSK_REQUIRE_ROOT",
            "cannot mount a tmpfs for the disk-full test (not root?)",
        );
        return;
    };
    let out = w.install();
    eprintln!(
        "disk full: exit {}: {}",
        out.code,
        crate::support::error_line(&out)
    );
    assert_eq!(out.code, 74, "{out:?}");
    assert!(!out.stderr.contains("panicked"), "{out:?}");
    assert!(
        out.stderr.contains("No space left") || out.stderr.contains("space"),
        "{out:?}"
    );
    assert_no_staging(&w.state());
    assert!(!w.state().join("current").exists());
}
