//! The outside world of the install tests: the testkit's [`Standins`] (fake MSK with an
//! ACTIVE cluster, artifact server with the IAM jar published) plus a scratch [`Host`],
//! and what tests of a refused or completed install check afterwards. The `run` tests'
//! [`super::fixture::Fixture`] is built on the same world.

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use ksql_msk_testkit::signing::TestKey;
use ksql_msk_testkit::standins::{self, Standins};
use ksql_msk_testkit::tarball;

use super::{error_line, Host, Output, REGION};

pub const OLD: &str = "0.28.0";
pub const NEW: &str = "0.29.0";
pub const JAR_VERSION: &str = "2.2.0";
pub const JAR_BYTES: &[u8] = standins::IAM_JAR;

pub fn archive_path(v: &str) -> String {
    standins::archive_path(v)
}
pub fn key_path(v: &str) -> String {
    standins::key_path(v)
}
pub fn jar_path(v: &str) -> String {
    standins::jar_path(v)
}
pub fn sha256_hex(b: &[u8]) -> String {
    standins::sha256_hex(b)
}

/// The stand-ins and a scratch host. Derefs to the [`Standins`] (`w.msk`, `w.art`,
/// `w.cluster`, `w.key`).
pub struct World {
    pub standins: Standins,
    pub host: Host,
}

impl Deref for World {
    type Target = Standins;
    fn deref(&self) -> &Standins {
        &self.standins
    }
}

/// How the config pins things.
#[derive(Clone)]
pub struct Pins {
    pub fingerprints: Vec<String>,
    /// None: empty sha256 (trust on first use of the published .sha256).
    pub jar_sha256: Option<String>,
    pub agent: String,
}

impl Pins {
    pub fn strict(fp: &str) -> Pins {
        Pins {
            fingerprints: vec![fp.to_string()],
            jar_sha256: Some(sha256_hex(JAR_BYTES)),
            agent: String::new(),
        }
    }
    pub fn agent(mut self, extra: &str) -> Pins {
        self.agent.push_str(extra);
        self.agent.push('\n');
        self
    }
}

/// `text` with its line starting `key =` replaced by `line`.
fn replace_line(text: &str, key: &str, line: &str) -> String {
    let prefix = format!("{key} =");
    assert!(
        text.lines().any(|l| l.starts_with(&prefix)),
        "no {key} in {text}"
    );
    text.lines()
        .map(|l| if l.starts_with(&prefix) { line } else { l })
        .map(|l| format!("{l}\n"))
        .collect()
}

impl World {
    /// The stand-ins (cluster `demo`, aws-msk-iam-auth [`JAR_VERSION`] published) and a
    /// scratch host with nothing configured yet.
    pub fn new() -> World {
        let w = World::bare();
        w.publish_jar(JAR_VERSION);
        w
    }

    /// The stand-ins with nothing published, and a scratch host.
    pub fn bare() -> World {
        World {
            standins: Standins::start("demo", REGION),
            host: Host::new(),
        }
    }

    /// Publish `tarball` for version `v`, signed by `key` (armored signature and key).
    pub fn publish(&self, v: &str, tarball: &[u8], key: &TestKey) {
        self.publish_raw(v, tarball, key.sign(tarball, true), key.public_armored());
    }

    pub fn publish_raw(&self, v: &str, tarball: &[u8], sig: Vec<u8>, key: Vec<u8>) {
        self.art.put(&archive_path(v), tarball.to_vec());
        self.art.put(&format!("{}.asc", archive_path(v)), sig);
        self.art.put(&key_path(v), key);
    }

    /// The stand-ins' config for ksqlDB `v` with `pins` instead of the stand-ins' own
    /// key and jar hash, and short test timeouts unless `pins.agent` sets them.
    pub fn configure(&self, v: &str, pins: &Pins) {
        let mut agent = pins.agent.clone();
        for (k, v) in [
            ("download_timeout", "20s"),
            ("stall_timeout", "2s"),
            ("lock_timeout", "60s"),
        ] {
            if !agent.contains(k) {
                agent.push_str(&format!("{k} = \"{v}\"\n"));
            }
        }
        let fps: Vec<String> = pins
            .fingerprints
            .iter()
            .map(|f| format!("\"{f}\""))
            .collect();
        let mut parts = self.config(v, JAR_VERSION);
        parts.msk.push_str("cluster_wait = \"3s\"\n");
        parts.ksqldb = replace_line(
            &parts.ksqldb,
            "trusted_fingerprints",
            &format!("trusted_fingerprints = [{}]", fps.join(", ")),
        );
        parts.iam_auth = replace_line(
            &parts.iam_auth,
            "sha256",
            &format!(
                "sha256 = \"{}\"",
                pins.jar_sha256.clone().unwrap_or_default()
            ),
        );
        self.host.write_config(&parts.toml("", &agent));
    }

    pub fn install(&self) -> Output {
        self.host.run(&["install"])
    }

    /// `ksql-msk install` in the background; its output captured if `capture`.
    pub fn spawn_install(&self, capture: bool) -> std::process::Child {
        let out = || {
            if capture {
                Stdio::piped()
            } else {
                Stdio::null()
            }
        };
        self.host
            .command(&["install"])
            .stdout(out())
            .stderr(out())
            .spawn()
            .expect("spawning ksql-msk install")
    }

    pub fn state(&self) -> PathBuf {
        self.host.state_dir()
    }

    /// Install `OLD` successfully, then point the config at `NEW` with the same pins.
    pub fn with_previous(&self, key: &TestKey, pins: &Pins) {
        self.publish(OLD, &tarball::ksqldb_tarball(OLD), key);
        self.configure(OLD, pins);
        let out = self.install();
        assert_eq!(out.code, 0, "installing the previous release: {out:?}");
        self.configure(NEW, pins);
    }

    pub fn archive_requests(&self, v: &str) -> usize {
        self.art.requests_for(&archive_path(v)).len()
    }
}

/// What must not change when an install fails.
#[derive(Debug, PartialEq, Eq)]
pub struct Snapshot {
    current: Option<PathBuf>,
    releases: Vec<String>,
    manifest: Option<String>,
    files: Vec<String>,
}

pub fn snapshot(state: &Path) -> Snapshot {
    let releases_dir = state.join("releases");
    let mut releases: Vec<String> = std::fs::read_dir(&releases_dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                // Staging left by a killed run is not part of the installed state.
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    releases.sort();
    let current = std::fs::read_link(state.join("current")).ok();
    let manifest = current
        .as_ref()
        .and_then(|c| std::fs::read_to_string(state.join(c).join(".ksql-msk-manifest.toml")).ok());
    // Every entry of the active release with its size.
    let files = current
        .as_ref()
        .map(|c| {
            let root = state.join(c);
            super::paths_under(&root)
                .iter()
                .map(|p| {
                    let len = std::fs::symlink_metadata(p).unwrap().len();
                    format!("{} {len}", p.strip_prefix(&root).unwrap().display())
                })
                .collect()
        })
        .unwrap_or_default();
    Snapshot {
        current,
        releases,
        manifest,
        files,
    }
}

pub fn assert_no_staging(state: &Path) {
    let left: Vec<String> = std::fs::read_dir(state.join("releases"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "left in releases/: {left:?}");
}

/// Run a failing install and check code, message and that nothing changed.
pub fn assert_refused(w: &World, code: i32, needles: &[&str]) -> Output {
    let before = snapshot(&w.state());
    let out = w.install();
    assert_eq!(out.code, code, "{out:?}");
    let line = error_line(&out);
    for n in needles {
        assert!(line.contains(n), "error line lacks {n:?}: {line}");
    }
    assert_eq!(
        snapshot(&w.state()),
        before,
        "the installed release changed"
    );
    assert_no_staging(&w.state());
    out
}

pub fn assert_installed(w: &World, v: &str) {
    let state = w.state();
    assert_eq!(
        std::fs::read_link(state.join("current")).unwrap(),
        Path::new("releases").join(v)
    );
    let rel = state.join("releases").join(v);
    let start = rel.join("bin/ksql-server-start");
    assert_eq!(
        std::fs::read_to_string(&start).unwrap(),
        tarball::SERVER_START
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&start).unwrap().permissions().mode() & 0o777,
        0o755
    );
    assert_eq!(
        std::fs::read(rel.join("etc/ksqldb/ksql-server.properties.dist")).unwrap(),
        tarball::server_properties()
    );
    let jars = rel.join("share/java/ksqldb");
    assert_eq!(
        std::fs::read(jars.join(format!("aws-msk-iam-auth-{JAR_VERSION}-all.jar"))).unwrap(),
        JAR_BYTES
    );
    assert!(
        !jars.join("aws-msk-iam-auth-0.0.1-all.jar").exists(),
        "old IAM jar kept"
    );
    assert!(jars.join("ksqldb-engine-0.jar").exists() || jars.join("big-0.jar").exists());
    assert_no_staging(&state);
}
