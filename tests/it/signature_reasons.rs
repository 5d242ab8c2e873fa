//! Issue "install pipeline v2", part 2.6: a refused signature says the real reason
//! (hash algorithm refused by policy, dated in the future), not "tampered".

use std::time::{Duration, SystemTime};

use ksql_msk_testkit::signing::TestKey;
use ksql_msk_testkit::tarball;
use sequoia_openpgp::types::HashAlgorithm;

use crate::install::{assert_refused, Pins, World, NEW};

fn refused_with(sig: impl Fn(&TestKey, &[u8]) -> Vec<u8>, needles: &[&str]) -> String {
    let w = World::new();
    let key = TestKey::generate("k <k@example.com>");
    let tgz = tarball::ksqldb_tarball(NEW);
    w.publish_raw(NEW, &tgz, sig(&key, &tgz), key.public_armored());
    w.configure(NEW, &Pins::strict(&key.fingerprint()));
    let out = assert_refused(&w, 65, needles);
    let line = crate::support::error_line(&out).to_string();
    assert!(!line.contains("tampered"), "{line}");
    line
}

#[test]
fn a_sha1_signature_is_refused_as_such() {
    refused_with(
        |k, data| k.sign_with(data, true, Some(HashAlgorithm::SHA1), k.sign_time),
        &["SHA1", "policy"],
    );
}

#[test]
fn a_signature_from_the_future_is_refused_as_such() {
    let future = SystemTime::now() + Duration::from_secs(3 * 24 * 3600);
    refused_with(
        |k, data| k.sign_with(data, true, None, future),
        &["future", "clock"],
    );
}
