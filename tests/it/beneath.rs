//! Root over a hostile state directory (issue 21, classes 1, 3 and 4; docs/RELIABILITY.md,
//! "Root and the state directory"): links at intermediate directories (also into
//! `/proc/<pid>/root` of a process of the service user), a renaming race against root's
//! staging, and FIFOs, `/dev/zero` and huge sparse files as each state file. Root's
//! commands must neither follow, hang, eat memory nor write outside the state directory.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ksql_msk_testkit::signing::TestKey;
use ksql_msk_testkit::tarball;

use crate::install::{Pins, World, NEW, OLD};
use crate::support::{is_root, paths_under, Output};

/// The most any refusal here may take: a hang or a read of /dev/zero takes for ever.
const BOUND: Duration = Duration::from_secs(30);
/// Plays the service user (as tests/it/owner.rs does).
const SERVICE: u32 = 65534;

/// Run `cmd`, killed after [`BOUND`]; the output and whether it ended by itself.
fn run_bounded(mut cmd: Command) -> (Output, bool) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ksql-msk");
    let started = Instant::now();
    let mut ended = true;
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > BOUND {
            let _ = child.kill();
            ended = false;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let output = Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    (output, ended)
}

/// `OLD` installed under a strict pin, `NEW` published, and an empty directory outside.
fn installed() -> (World, Pins, PathBuf) {
    let w = World::new();
    let key = TestKey::generate("k <k@example.com>");
    // Nothing pinned: the signer and the jar's hash are trusted on first use, so the
    // trust record exists and is read by the next install.
    let pins = Pins {
        fingerprints: Vec::new(),
        jar_sha256: None,
        agent: String::new(),
    };
    let _ = key.fingerprint();
    w.publish(OLD, &tarball::ksqldb_tarball(OLD), &key);
    w.publish(NEW, &tarball::ksqldb_tarball(NEW), &key);
    w.configure(OLD, &pins);
    let out = w.install();
    assert_eq!(out.code, 0, "installing {OLD}: {out:?}");
    let outside = w.host.dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    (w, pins, outside)
}

/// One error line, a sysexits code (never a panic), in bounded time.
fn assert_one_line_refusal(what: &str, out: &Output, ended: bool) {
    assert!(
        ended,
        "{what}: still running after {BOUND:?} (hung): {out:?}"
    );
    assert!(
        out.code != 0 && out.code != 101 && out.code != -1,
        "{what}: {out:?}"
    );
    let errors = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("ksql-msk: error: "))
        .count();
    assert_eq!(errors, 1, "{what}: {out:?}");
}

enum Plant {
    Fifo,
    DevZero,
    Sparse,
}

fn plant(at: &Path, how: &Plant) {
    let _ = std::fs::remove_file(at);
    match how {
        Plant::Fifo => {
            let c = std::ffi::CString::new(at.as_os_str().as_encoded_bytes()).unwrap();
            // SAFETY: a valid C string.
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        }
        Plant::DevZero => symlink("/dev/zero", at).unwrap(),
        Plant::Sparse => {
            let f = std::fs::File::create(at).unwrap();
            f.set_len(1 << 40).unwrap();
        }
    }
}

#[test]
fn fifos_dev_zero_and_sparse_files_as_state_files_never_hang_or_eat_memory() {
    let (w, _pins, _outside) = installed();
    let release = w.state().join("releases").join(OLD);
    let files = [
        (w.state().join("trust.toml"), "install"),
        (release.join(".ksql-msk-manifest.toml"), "verify"),
        (release.join(".ksql-msk-tree"), "verify"),
        (release.join("etc/ksqldb/log4j.properties"), "install"),
    ];
    for (file, command) in &files {
        let saved = std::fs::read(file).unwrap();
        for how in [Plant::Fifo, Plant::DevZero, Plant::Sparse] {
            plant(file, &how);
            let what = format!(
                "{command} with {} as {}",
                match how {
                    Plant::Fifo => "a FIFO",
                    Plant::DevZero => "a link to /dev/zero",
                    Plant::Sparse => "a 1 TiB sparse file",
                },
                file.display()
            );
            let started = Instant::now();
            let (out, ended) = run_bounded(w.host.command(&[command]));
            // install may heal a release whose files are wrong by installing it again;
            // what it must never do is hang, read without bound, or panic.
            if out.code == 0 {
                assert!(ended, "{what}: {out:?}");
            } else {
                assert_one_line_refusal(&what, &out, ended);
            }
            assert!(started.elapsed() < BOUND, "{what}");
        }
        let _ = std::fs::remove_file(file);
        if std::fs::symlink_metadata(file).is_err() {
            std::fs::write(file, &saved).unwrap();
        }
    }
}

#[test]
fn a_link_as_the_trust_record_never_copies_its_target() {
    let (w, _pins, outside) = installed();
    let secret = outside.join("root-only");
    std::fs::write(&secret, "[ksqldb]\nsecret = \"ROOT-ONLY-SECRET\"\n").unwrap();
    let trust = w.state().join("trust.toml");
    std::fs::remove_file(&trust).unwrap();
    symlink(&secret, &trust).unwrap();
    let (out, ended) = run_bounded(w.host.command(&["install"]));
    assert_one_line_refusal("a symlinked trust record", &out, ended);
    assert!(
        !paths_under(&w.state())
            .iter()
            .filter(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file()))
            .any(|p| std::fs::read_to_string(p).is_ok_and(|t| t.contains("ROOT-ONLY-SECRET"))),
        "the link's target was copied into the state directory"
    );
}

/// A process of the service user that lives as long as the guard.
struct ServiceProcess(std::process::Child);

impl ServiceProcess {
    fn start() -> ServiceProcess {
        let child = Command::new("setpriv")
            .args([
                &format!("--reuid={SERVICE}"),
                &format!("--regid={SERVICE}"),
                "--clear-groups",
                "sleep",
                "60",
            ])
            .spawn()
            .expect("setpriv sleep");
        ServiceProcess(child)
    }

    /// `/proc/<pid>/root/<path>`: `path` as that process sees it (a magic link).
    fn root_of(&self, path: &Path) -> PathBuf {
        Path::new(&format!("/proc/{}/root", self.0.id())).join(path.strip_prefix("/").unwrap())
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn links_at_intermediate_directories_never_steer_root() {
    if !is_root() {
        eprintln!("SKIPPED: setpriv to the service user needs root");
        return;
    }
    let service = ServiceProcess::start();
    let (w, pins, outside) = installed();
    let state = w.state();
    let releases = state.join("releases");
    // A copy of the release outside, that the links lead to.
    let copy = outside.join("copy");
    assert!(Command::new("cp")
        .args(["-a"])
        .arg(releases.join(OLD))
        .arg(&copy)
        .status()
        .unwrap()
        .success());
    let before = paths_under(&outside);
    let cases: Vec<(&str, PathBuf, PathBuf)> = vec![
        // the release directory itself, by a plain and by a magic link
        ("release dir", releases.join(OLD), copy.clone()),
        (
            "release dir via /proc/<pid>/root",
            releases.join(OLD),
            service.root_of(&copy),
        ),
        // current pointing elsewhere than releases/<version>
        ("current", state.join("current"), copy.clone()),
        (
            "current via /proc/<pid>/root",
            state.join("current"),
            service.root_of(&copy),
        ),
        // a directory inside the release
        ("etc", releases.join(OLD).join("etc"), copy.join("etc")),
    ];
    for (what, at, target) in &cases {
        let saved = state.join("saved");
        std::fs::rename(at, &saved).unwrap();
        symlink(target, at).unwrap();
        for command in ["verify", "status"] {
            let (out, ended) = run_bounded(w.host.command(&[command]));
            assert!(ended, "{command} with a link at {what}: hung: {out:?}");
            assert_ne!(out.code, 101, "{command} with a link at {what}: {out:?}");
            if command == "verify" {
                assert_eq!(out.code, 65, "{command} with a link at {what}: {out:?}");
            }
        }
        w.configure(NEW, &pins);
        let (out, ended) = run_bounded(w.host.command(&["install"]));
        assert!(ended, "install with a link at {what}: hung: {out:?}");
        assert_ne!(out.code, 101, "install with a link at {what}: {out:?}");
        assert_eq!(
            paths_under(&outside),
            before,
            "install with a link at {what} changed something outside: {out:?}"
        );
        // Back to the installed OLD for the next case.
        w.configure(OLD, &pins);
        std::fs::remove_file(at).ok();
        if std::fs::symlink_metadata(at).is_err() {
            std::fs::rename(&saved, at).unwrap();
        } else {
            let _ = std::fs::remove_dir_all(&saved);
        }
        let _ = std::fs::remove_file(state.join("current"));
        symlink(Path::new("releases").join(OLD), state.join("current")).unwrap();
        if !releases.join(OLD).join(".ksql-msk-manifest.toml").exists() {
            let out = w.install();
            assert_eq!(out.code, 0, "reinstalling {OLD} after {what}: {out:?}");
        }
    }
}

#[test]
fn a_renaming_race_against_roots_staging_writes_nothing_outside() {
    let (w, pins, outside) = installed();
    let releases = w.state().join("releases");
    let stop = Arc::new(AtomicBool::new(false));
    let attacker = {
        let (stop, releases, outside) = (stop.clone(), releases.clone(), outside.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let Ok(entries) = std::fs::read_dir(&releases) else {
                    continue;
                };
                for e in entries.flatten() {
                    let name = e.file_name();
                    if !name.to_string_lossy().starts_with(".staging-")
                        || e.file_type().is_ok_and(|t| t.is_symlink())
                    {
                        continue;
                    }
                    n += 1;
                    let away = releases.join(format!(".stolen-{n}"));
                    if std::fs::rename(e.path(), &away).is_ok() {
                        let _ = symlink(&outside, e.path());
                    }
                }
            }
        })
    };
    w.configure(NEW, &pins);
    for _ in 0..3 {
        let (out, ended) = run_bounded(w.host.command(&["install"]));
        assert!(ended, "install under a renaming race: hung: {out:?}");
        assert_ne!(out.code, 101, "install under a renaming race: {out:?}");
        assert_eq!(
            paths_under(&outside),
            Vec::<PathBuf>::new(),
            "install under a renaming race wrote outside the state directory: {out:?}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    attacker.join().unwrap();
}
