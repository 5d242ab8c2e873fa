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
