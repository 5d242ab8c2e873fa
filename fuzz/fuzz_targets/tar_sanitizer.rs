//! The tar sanitizer on arbitrary (uncompressed) tar streams: whatever the archive
//! holds, nothing is created, changed or removed outside the staging directory, and
//! after a successful extraction no symlink in it resolves outside it.
#![no_main]

use std::path::{Path, PathBuf};

use libfuzzer_sys::fuzz_target;

fn listing(root: &Path, skip: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(root).expect("list").flatten() {
        let p = e.path();
        if p == skip {
            continue;
        }
        out.push(p.clone());
        let meta = std::fs::symlink_metadata(&p).expect("stat");
        if meta.is_dir() {
            listing(&p, skip, out);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("state");
    let staging = root.join("releases").join(".staging-fuzz");
    std::fs::create_dir_all(&staging).expect("staging");
    // Targets an escape would hit: a sibling release, a file beside staging.
    std::fs::create_dir_all(root.join("releases/0.28.0/bin")).expect("release");
    std::fs::write(root.join("releases/0.28.0/bin/ksql-server-start"), b"old").expect("w");
    std::fs::write(root.join("trust.toml"), b"t").expect("w");
    let mut before = Vec::new();
    listing(dir.path(), &staging, &mut before);

    let result = ksql_msk::release::unpack::extract_tar(data, &staging);

    let mut after = Vec::new();
    listing(dir.path(), &staging, &mut after);
    assert_eq!(before, after, "entries appeared or vanished outside staging");
    assert_eq!(
        std::fs::read(root.join("releases/0.28.0/bin/ksql-server-start")).expect("r"),
        b"old"
    );
    assert_eq!(std::fs::read(root.join("trust.toml")).expect("r"), b"t");
    if result.is_ok() {
        let real_root = std::fs::canonicalize(&staging).expect("canonical staging");
        let mut inside = Vec::new();
        listing(&staging, Path::new(""), &mut inside);
        for p in inside {
            if let Ok(real) = std::fs::canonicalize(&p) {
                assert!(real.starts_with(&real_root), "{} resolves to {}", p.display(), real.display());
            }
        }
    }
});
