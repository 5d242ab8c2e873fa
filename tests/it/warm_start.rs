//! A warm start vouches for what it starts (issue 12, part 2, item 3): a release that
//! no longer matches the tree its manifest binds is installed again, never started as
//! it is; `ksql-msk verify` re-hashes the whole active release.

use std::path::{Path, PathBuf};

use ksql_msk_testkit::signing::TestKey;
use ksql_msk_testkit::tarball;

use crate::install::{jar_path, sha256_hex, Pins, World, JAR_BYTES, JAR_VERSION, NEW};
use crate::support::error_line;

/// `NEW` installed from a fresh world, strictly pinned.
fn installed() -> World {
    let w = World::new();
    let key = TestKey::generate("k <k@example.com>");
    w.publish(NEW, &tarball::ksqldb_tarball(NEW), &key);
    w.configure(NEW, &Pins::strict(&key.fingerprint()));
    let out = w.install();
    assert_eq!(out.code, 0, "{out:?}");
    w
}

fn release(w: &World) -> PathBuf {
    w.state().join("releases").join(NEW)
}

/// Change one byte of `path` in place: same size, same mode.
fn flip_one_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 0x20;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn an_edited_start_script_is_installed_again_not_started() {
    let w = installed();
    let start = release(&w).join("bin/ksql-server-start");
    // Same length, so only the hash can tell.
    let edited = tarball::SERVER_START.replace("exec", "true");
    assert_eq!(edited.len(), tarball::SERVER_START.len());
    std::fs::write(&start, &edited).unwrap();
    let before = w.archive_requests(NEW);

    let out = w.install();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .contains(&format!("ksqlDB {NEW} installed and activated")),
        "the edited release was taken as installed: {out:?}"
    );
    assert!(
        out.stderr
            .contains("bin/ksql-server-start: content changed"),
        "the reason is not logged: {out:?}"
    );
    assert_eq!(
        std::fs::read_to_string(&start).unwrap(),
        tarball::SERVER_START,
        "the edited script is still there"
    );
    assert_eq!(w.archive_requests(NEW), before + 1, "not fetched again");
    crate::install::assert_installed(&w, NEW);
    // And the release it installed is warm again.
    let out = w.install();
    assert!(
        out.stdout.contains("already installed and active"),
        "{out:?}"
    );
}

#[test]
fn a_release_replaced_by_a_symlink_to_a_copy_is_installed_again() {
    let w = installed();
    let rel = release(&w);
    // An exact copy, manifest and tree record included: only the link gives it away.
    let copy = w.host.dir.path().join("copy");
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(&rel)
        .arg(&copy)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::remove_dir_all(&rel).unwrap();
    std::os::unix::fs::symlink(&copy, &rel).unwrap();

    let out = w.install();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .contains(&format!("ksqlDB {NEW} installed and activated")),
        "the symlinked release was taken as installed: {out:?}"
    );
    assert!(out.stderr.contains("is a symlink"), "{out:?}");
    let meta = std::fs::symlink_metadata(&rel).unwrap();
    assert!(
        meta.is_dir() && !meta.file_type().is_symlink(),
        "releases/{NEW} is still a link"
    );
    crate::install::assert_installed(&w, NEW);
    // The copy the link pointed to is left alone: it is not the agent's.
    assert!(copy.join("bin/ksql-server-start").is_file());
}

#[test]
fn verify_passes_a_clean_install_and_fails_on_one_byte_of_a_jar() {
    let w = installed();
    let out = w.host.run(&["verify"]);
    assert_eq!(out.code, 0, "{out:?}");
    let line = out.stdout.trim();
    assert!(
        line.starts_with(&format!("ksqlDB {NEW} in {}: ", release(&w).display()))
            && line.ends_with(" files verified"),
        "{out:?}"
    );
    // bin/ 3 (the server's start script, ksql-run-class and the CLI's ksql), etc/ 2
    // (log4j and the pristine copy: the live file and its managed keys are rendered on
    // every run, not recorded), share/java 3, share/doc 1.
    assert!(line.contains(": 9 files verified"), "{out:?}");

    // A jar the quick check does not hash: only a full one finds the change.
    flip_one_byte(&release(&w).join("share/java/ksqldb/ksqldb-engine-0.jar"));
    let out = w.host.run(&["verify"]);
    assert_eq!(out.code, 65, "{out:?}");
    let line = error_line(&out);
    assert!(
        line.contains("share/java/ksqldb/ksqldb-engine-0.jar: content changed"),
        "{line}"
    );
    assert!(out.stdout.is_empty(), "{out:?}");
}

#[test]
fn verify_with_nothing_installed_exits_69() {
    let w = World::new();
    w.configure(NEW, &Pins::strict(&"AB".repeat(20)));
    let out = w.host.run(&["verify"]);
    assert_eq!(out.code, 69, "{out:?}");
    assert!(error_line(&out).contains("nothing is installed"), "{out:?}");
}

#[test]
fn a_jar_update_keeps_the_release_verifiable() {
    let w = installed();
    let new_jar = b"PK\x03\x04 newer iam jar".to_vec();
    w.art.put(&jar_path("2.3.0"), new_jar.clone());
    let text = std::fs::read_to_string(w.host.config_path()).unwrap();
    let text = text
        .replace(
            &format!("version = \"{JAR_VERSION}\""),
            "version = \"2.3.0\"",
        )
        .replace(&sha256_hex(JAR_BYTES), &sha256_hex(&new_jar));
    std::fs::write(w.host.config_path(), text).unwrap();
    let out = w.install();
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(w.archive_requests(NEW), 1, "the archive was fetched again");
    // The tree record follows the jar: the new one recorded, the old one forgotten.
    let out = w.host.run(&["verify"]);
    assert_eq!(out.code, 0, "{out:?}");
    let out = w.install();
    assert!(
        out.stdout.contains("already installed and active"),
        "{out:?}"
    );
    flip_one_byte(
        &release(&w)
            .join("share/java/ksqldb")
            .join("aws-msk-iam-auth-2.3.0-all.jar"),
    );
    let out = w.install();
    assert!(
        out.stdout.contains("installed and activated"),
        "an edited IAM jar was taken as installed: {out:?}"
    );
    assert_eq!(
        std::fs::read(release(&w).join("share/java/ksqldb/aws-msk-iam-auth-2.3.0-all.jar"))
            .unwrap(),
        new_jar
    );
}

#[test]
fn a_dangling_link_in_place_of_the_release_is_replaced() {
    let w = installed();
    let rel = release(&w);
    std::fs::remove_dir_all(&rel).unwrap();
    std::os::unix::fs::symlink(w.host.dir.path().join("gone"), &rel).unwrap();
    let out = w.install();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!std::fs::symlink_metadata(&rel)
        .unwrap()
        .file_type()
        .is_symlink());
    crate::install::assert_installed(&w, NEW);
}

#[test]
fn a_release_whose_own_links_aim_the_agents_writes_is_never_activated_as_changed() {
    // The pristine properties file is a hard link to the start script: a copy of the
    // properties written through it rewrites the script. Either the write does not go
    // through the link (complete() writes by rename) or the check after complete()
    // refuses the release (65); never is it activated with another start script, nor
    // installed again on every start.
    let w = World::new();
    let key = TestKey::generate("k <k@example.com>");
    let mut b = tarball::TarballBuilder::new(NEW).standard();
    let top = b.top().to_string();
    b.raw(
        &format!("{top}/etc/ksqldb/ksql-server.properties.dist"),
        tar::EntryType::Link,
        0o644,
        b"",
        Some(&format!("{top}/bin/ksql-server-start")),
    );
    w.publish(NEW, &b.finish(), &key);
    w.configure(NEW, &Pins::strict(&key.fingerprint()));
    let out = w.install();
    if out.code == 65 {
        assert!(
            error_line(&out).contains("bin/ksql-server-start"),
            "{out:?}"
        );
        assert!(!w.state().join("current").exists(), "activated: {out:?}");
        crate::install::assert_no_staging(&w.state());
        return;
    }
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        std::fs::read_to_string(release(&w).join("bin/ksql-server-start")).unwrap(),
        tarball::SERVER_START,
        "activated with a rewritten start script"
    );
    let out = w.install();
    assert!(
        out.stdout.contains("already installed and active"),
        "installed again: {out:?}"
    );
}

#[test]
fn verify_refuses_a_manifest_without_a_tree_record() {
    // What an agent from before the tree record left: such a manifest vouches for no
    // tree, so verify says so (65) and the next install installs the release again.
    let w = installed();
    let manifest = release(&w).join(".ksql-msk-manifest.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let old: String = text
        .lines()
        .filter(|l| !l.starts_with("tree_sha256"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&manifest, old).unwrap();
    let out = w.host.run(&["verify"]);
    assert_eq!(out.code, 65, "{out:?}");
    assert!(
        error_line(&out).contains("without a tree record"),
        "{out:?}"
    );
    let out = w.install();
    assert!(out.stdout.contains("installed and activated"), "{out:?}");
    assert_eq!(w.host.run(&["verify"]).code, 0);
}
