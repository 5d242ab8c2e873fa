//! Crash consistency (docs/RELIABILITY.md): the agent is failed or SIGKILLed at every
//! named failure point of install and configure (a build with the `failpoints`
//! feature, see src/host/failpoint.rs), and SIGKILLed at random moments of a real install.
//! After each, the active release is complete (the old one or the new one, never a
//! mix), the live properties file is the old or the new one, never partial, and a
//! re-run of `install` ends with exactly the state a clean install leaves.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ksql_msk::host::failpoint::POINTS;
use ksql_msk_testkit::signing::TestKey;
use ksql_msk_testkit::tarball;

use crate::support::world::{Pins, World, NEW, OLD};
use crate::support::{paths_under, repo_root, skip, Output};

const PROPS: &str = "etc/ksqldb/ksql-server.properties";

/// The failpoints build of the agent: `KSQL_MSK_FAILPOINTS_BIN`, else
/// target/failpoints/ksql-msk (tests/run-all builds it). Missing: the tests that need
/// it are skipped, unless `KSQL_MSK_REQUIRE_FAILPOINTS=1` (run-all sets it).
pub(crate) fn failpoints_bin() -> Option<PathBuf> {
    let path = std::env::var_os("KSQL_MSK_FAILPOINTS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/failpoints/ksql-msk"));
    if path.is_file() {
        return Some(path);
    }
    skip(
        "KSQL_MSK_REQUIRE_FAILPOINTS",
        &format!(
            "no failpoints build at {} (tests/run-all builds it: cargo build --features \
             failpoints, copied there)",
            path.display()
        ),
    );
    None
}

/// Every entry under `root`: path, kind, size or link target. Equal trees mean the
/// same files with the same sizes, including litter (staging, temp files, cache).
fn tree(root: &Path) -> Vec<String> {
    paths_under(root)
        .iter()
        .map(|p| {
            let meta = std::fs::symlink_metadata(p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            if meta.file_type().is_symlink() {
                format!("{rel} -> {}", std::fs::read_link(p).unwrap().display())
            } else if meta.is_dir() {
                format!("{rel}/")
            } else {
                format!("{rel} {}", meta.len())
            }
        })
        .collect()
}

/// What a ksqlDB started now would run: the release `current` points at (its whole
/// tree) and its live properties file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Active {
    current: Option<PathBuf>,
    files: Vec<String>,
    properties: Option<Vec<u8>>,
}

fn active(state: &Path) -> Active {
    let current = std::fs::read_link(state.join("current")).ok();
    let (files, properties) = match &current {
        Some(c) => (
            tree(&state.join(c)),
            std::fs::read(state.join(c).join(PROPS)).ok(),
        ),
        None => (Vec::new(), None),
    };
    Active {
        current,
        files,
        properties,
    }
}

fn copy_tree(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    let ok = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap()
        .success();
    assert!(ok, "cp -a {} {}", from.display(), to.display());
}

fn run(cmd: &mut Command) -> (std::process::ExitStatus, Output) {
    let out = cmd.output().expect("run ksql-msk");
    let status = out.status;
    (
        status,
        Output {
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        },
    )
}

/// A world with `OLD` installed and configured, the config pointing at `NEW` with a
/// changed override, and the state of both a clean old and a clean new install.
struct Bench {
    w: World,
    template: PathBuf,
    old: Active,
    new: Active,
    new_tree: Vec<String>,
    _keep: tempfile::TempDir,
}

fn write_config(w: &World, pins: &Pins, version: &str, value: &str) {
    w.configure(version, pins);
    let path = w.host.config_path();
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!(
        "\n[properties]\n\"ksql.crash.test\" = \"{value}\"\n"
    ));
    std::fs::write(&path, text).unwrap();
}

fn bench(new_jar_bytes: u64) -> Bench {
    let w = World::new();
    let key = TestKey::generate("k <k@example.com>");
    let pins = Pins::strict(&key.fingerprint());
    w.publish(OLD, &tarball::ksqldb_tarball(OLD), &key);
    w.publish(NEW, &tarball::large_tarball(NEW, new_jar_bytes), &key);
    write_config(&w, &pins, OLD, "old");
    let out = w.install();
    assert_eq!(out.code, 0, "{out:?}");
    let old = active(&w.state());
    // ksqlDB's command-topic backup, as it would have written one: the upgrade copies it
    // into upgrades/ before `current` switches (the upgrade.* points).
    std::fs::write(
        w.state()
            .join("metastore/backup__confluent-ksql-default__command_topic_1639500000000"),
        "\"stream/S/create\":{\"statement\":\"CREATE STREAM S ...\"}\n",
    )
    .unwrap();
    let keep = tempfile::tempdir().unwrap();
    let template = keep.path().join("state");
    copy_tree(&w.state(), &template);
    write_config(&w, &pins, NEW, "new");
    let out = w.install();
    assert_eq!(out.code, 0, "{out:?}");
    let new = active(&w.state());
    let new_tree = tree(&w.state());
    assert!(
        new_tree.iter().any(|e| e.contains(&format!(
            "upgrades/{OLD}-to-{NEW}/backup__confluent-ksql-default__command_topic_1639500000000"
        ))),
        "{new_tree:#?}"
    );
    assert_ne!(old.properties, new.properties);
    assert!(
        String::from_utf8_lossy(new.properties.as_deref().unwrap()).contains("ksql.crash.test=new"),
        "{new:?}"
    );
    copy_tree(&template, &w.state());
    Bench {
        w,
        template,
        old,
        new,
        new_tree,
        _keep: keep,
    }
}

impl Bench {
    fn reset(&self) {
        copy_tree(&self.template, &self.w.state());
    }

    /// The active release is one of the two complete ones.
    fn assert_consistent(&self, what: &str) -> bool {
        let now = active(&self.w.state());
        assert!(
            now == self.old || now == self.new,
            "{what}: the active release is neither the old nor the new one: {now:?}"
        );
        now == self.new
    }

    /// A normal re-run ends with exactly what a clean install leaves.
    fn assert_rerun_completes(&self, what: &str) {
        let out = self.w.install();
        assert_eq!(out.code, 0, "{what}: the re-run failed: {out:?}");
        assert_eq!(
            tree(&self.w.state()),
            self.new_tree,
            "{what}: the re-run left another state than a clean install"
        );
        assert_eq!(active(&self.w.state()), self.new, "{what}");
    }
}

/// Which hit of a point to act on: the unpacker's point is passed once per file.
fn arm(point: &str, action: &str) -> String {
    match point {
        "unpack.mid_archive" => format!("{point}={action}@3"),
        _ => format!("{point}={action}"),
    }
}

#[test]
fn every_failure_point_killed_or_failed_then_rerun_completes() {
    let Some(bin) = failpoints_bin() else {
        return;
    };
    let b = bench(1 << 20);
    let started = Instant::now();
    let mut tried = 0;
    let mut left_new = 0;
    // An upgrade meets every point but the properties ones; a changed override on the
    // installed release meets those (and the staging render meets them too).
    for point in POINTS {
        for action in ["kill", "error"] {
            let what = format!("{point}={action}");
            b.reset();
            let (status, out) = run(b
                .w
                .host
                .command_with(&bin, &["install"])
                .env("KSQL_MSK_FAILPOINTS", arm(point, action)));
            assert!(
                out.stderr.contains(&format!("failpoint {point} hit")),
                "{what}: the point was not reached: {out:?}"
            );
            match action {
                "kill" => assert_eq!(status.signal(), Some(9), "{what}: {out:?}"),
                _ => {
                    assert_ne!(out.code, 0, "{what}: {out:?}");
                    assert!(
                        out.stderr
                            .contains(&format!("failpoint {point}: injected failure")),
                        "{what}: {out:?}"
                    );
                }
            }
            if b.assert_consistent(&what) {
                left_new += 1;
            }
            b.assert_rerun_completes(&what);
            tried += 1;
        }
    }

    // Same release, changed override: the live file is rewritten in place.
    b.reset();
    let out = b.w.install();
    assert_eq!(out.code, 0, "{out:?}");
    let installed = b.w.state().parent().unwrap().join("installed-new");
    copy_tree(&b.w.state(), &installed);
    let text = std::fs::read_to_string(b.w.host.config_path()).unwrap();
    std::fs::write(
        b.w.host.config_path(),
        text.replace(
            "\"ksql.crash.test\" = \"new\"",
            "\"ksql.crash.test\" = \"newer\"",
        ),
    )
    .unwrap();
    let props = b.w.state().join("current").join(PROPS);
    let before = std::fs::read(&props).unwrap();
    let clean = b.w.install();
    assert_eq!(clean.code, 0, "{clean:?}");
    let after = std::fs::read(&props).unwrap();
    assert_ne!(before, after);
    let after_tree = tree(&b.w.state());
    for point in [
        "properties.before_write",
        "properties.mid_write",
        "properties.after_write",
    ] {
        for action in ["kill", "error"] {
            let what = format!("reconfigure {point}={action}");
            copy_tree(&installed, &b.w.state());
            let (status, out) = run(b
                .w
                .host
                .command_with(&bin, &["install"])
                .env("KSQL_MSK_FAILPOINTS", format!("{point}={action}")));
            assert!(
                out.stderr.contains(&format!("failpoint {point} hit")),
                "{what}: the point was not reached: {out:?}"
            );
            assert!(
                status.signal() == Some(9) || out.code != 0,
                "{what}: {out:?}"
            );
            let now = std::fs::read(&props).unwrap();
            assert!(
                now == before || now == after,
                "{what}: the properties file is neither old nor new:\n{}",
                String::from_utf8_lossy(&now)
            );
            let rerun = b.w.install();
            assert_eq!(rerun.code, 0, "{what}: {rerun:?}");
            assert_eq!(std::fs::read(&props).unwrap(), after, "{what}");
            assert_eq!(tree(&b.w.state()), after_tree, "{what}: litter left");
            tried += 1;
        }
    }
    let _ = std::fs::remove_dir_all(&installed);
    eprintln!(
        "crash consistency: {tried} failure-point trials ({} points x kill/error + 6 reconfigure), \
         {left_new} left the new release active, all re-runs complete, {:.1}s",
        POINTS.len(),
        started.elapsed().as_secs_f64()
    );
}

/// The shipped build has no failure points: arming them does nothing.
#[test]
fn the_normal_build_ignores_failpoints() {
    let w = World::new();
    let key = TestKey::generate("k <k@example.com>");
    w.publish(NEW, &tarball::ksqldb_tarball(NEW), &key);
    w.configure(NEW, &Pins::strict(&key.fingerprint()));
    let spec: Vec<String> = POINTS.iter().map(|p| format!("{p}=kill")).collect();
    let (status, out) = run(w
        .host
        .command(&["install"])
        .env("KSQL_MSK_FAILPOINTS", spec.join(";")));
    assert!(status.success(), "{out:?}");
    assert!(!out.stderr.contains("failpoint"), "{out:?}");
}

/// A tiny PRNG (xorshift64*): reproducible from the printed seed, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[test]
fn random_sigkills_during_a_real_install_then_rerun_completes() {
    let trials: usize = std::env::var("KSQL_MSK_KILL_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let seed: u64 = std::env::var("KSQL_MSK_KILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("random SIGKILLs: seed {seed} (KSQL_MSK_KILL_SEED to repeat)");
    let mut rng = Rng(seed);
    let b = bench(4 << 20);

    // How long a whole install of the new release takes here.
    let t0 = Instant::now();
    b.assert_rerun_completes("timing run");
    let full = t0.elapsed();
    let started = Instant::now();
    let (mut old, mut new, mut litter) = (0, 0, 0);
    for i in 0..trials {
        b.reset();
        let at = Duration::from_micros(rng.next() % (full.as_micros() as u64 + 1));
        let mut child = b.w.spawn_install(false);
        std::thread::sleep(at);
        let _ = child.kill();
        child.wait().unwrap();
        let what = format!("trial {i}: SIGKILL after {at:?} (seed {seed})");
        if b.assert_consistent(&what) {
            new += 1;
        } else {
            old += 1;
        }
        if tree(&b.w.state()) != b.new_tree && tree(&b.w.state()) != tree(&b.template) {
            litter += 1;
        }
        b.assert_rerun_completes(&what);
    }
    eprintln!(
        "random SIGKILLs: {trials} trials over a {:.0} ms install survived: {old} left the old \
         release active, {new} the new one, {litter} left partial downloads, staging or temp \
         files that the re-run cleaned up; {:.1}s",
        full.as_secs_f64() * 1000.0,
        started.elapsed().as_secs_f64()
    );
    // The kills must have landed inside the install, not all before or after it: a
    // trial that interrupted it leaves downloads, staging or temp files behind (about
    // two in three do). None in ten or more means the timing proved nothing.
    assert!(
        litter > 0 || trials < 10,
        "none of {trials} SIGKILLs interrupted the {:.0} ms install (seed {seed})",
        full.as_secs_f64() * 1000.0
    );
}
