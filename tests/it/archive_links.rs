//! Issue "install pipeline v2", part 2.4: links that come out of the archive cannot aim
//! the agent's own later writes (the pristine copy, the jar, the rendered file), and the
//! archive must be the release it claims to be.

use ksql_msk_testkit::signing::TestKey;
use ksql_msk_testkit::tarball::{self, TarballBuilder, SERVER_START};
use tar::EntryType;

use crate::install::{assert_installed, assert_no_staging, Pins, World, NEW};
use crate::support::error_line;

const DIST: &str = "etc/ksqldb/ksql-server.properties.dist";

fn world_with(tgz: &[u8]) -> World {
    let w = World::new();
    let key = TestKey::generate("k <k@example.com>");
    w.publish(NEW, tgz, &key);
    w.configure(NEW, &Pins::strict(&key.fingerprint()));
    w
}

fn release_file(w: &World, rel: &str) -> Vec<u8> {
    std::fs::read(w.state().join("releases").join(NEW).join(rel)).unwrap()
}

#[test]
fn a_dist_symlink_in_the_archive_does_not_redirect_the_pristine_copy() {
    let mut b = TarballBuilder::new(NEW).standard();
    b.symlink(DIST, "../../bin/ksql-server-start");
    let w = world_with(&b.finish());
    let out = w.install();
    assert_eq!(out.code, 0, "{out:?}");
    assert_installed(&w, NEW);
    assert_eq!(
        release_file(&w, "bin/ksql-server-start"),
        SERVER_START.as_bytes()
    );
    let dist = w.state().join("releases").join(NEW).join(DIST);
    assert!(std::fs::symlink_metadata(&dist).unwrap().is_file());
    assert_eq!(release_file(&w, DIST), tarball::server_properties());
}

#[test]
fn a_dist_hard_link_in_the_archive_does_not_overwrite_what_it_links_to() {
    let mut b = TarballBuilder::new(NEW).standard();
    let top = b.top().to_string();
    b.raw(
        &format!("{top}/{DIST}"),
        EntryType::Link,
        0o644,
        b"",
        Some(&format!("{top}/bin/ksql-server-start")),
    );
    let w = world_with(&b.finish());
    let out = w.install();
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        release_file(&w, "bin/ksql-server-start"),
        SERVER_START.as_bytes()
    );
    assert_eq!(release_file(&w, DIST), tarball::server_properties());
}

#[test]
fn a_symlinked_directory_where_the_agent_writes_is_refused_65() {
    // etc/ksqldb is a link to a directory that holds what ksqlDB's would.
    let mut b = TarballBuilder::new(NEW);
    b.dir("")
        .dir("bin")
        .file("bin/ksql-server-start", SERVER_START.as_bytes(), 0o755)
        .dir("etc")
        .dir("etc/real")
        .file(
            "etc/real/ksql-server.properties",
            &tarball::server_properties(),
            0o644,
        )
        .symlink("etc/ksqldb", "real")
        .dir("share")
        .dir("share/java")
        .dir("share/java/ksqldb");
    let w = world_with(&b.finish());
    let out = w.install();
    assert_eq!(out.code, 65, "{out:?}");
    assert!(error_line(&out).contains("etc/ksqldb"), "{out:?}");
    assert!(!w.state().join("current").exists());
    assert_no_staging(&w.state());
}

#[test]
fn a_top_directory_of_another_version_is_refused_65() {
    // A correctly signed archive of 0.28.0 served as 0.29.0.
    let w = world_with(&tarball::ksqldb_tarball("0.28.0"));
    let out = w.install();
    assert_eq!(out.code, 65, "{out:?}");
    let line = error_line(&out);
    assert!(
        line.contains("confluent-ksqldb-0.28.0") && line.contains("confluent-ksqldb-0.29.0"),
        "{line}"
    );
    assert!(!w.state().join("current").exists());
    assert_no_staging(&w.state());
}
