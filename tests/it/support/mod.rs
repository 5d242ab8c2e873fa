//! What the integration tests share: running the agent binary with a clean,
//! loopback-only environment ([`Host`]), the world of stand-ins around it
//! ([`world::World`], for install tests; [`fixture::Fixture`], for `run`), and
//! [`skip`] for tests that cannot run on this machine.

pub mod fixture;
pub mod kafka;
pub mod world;

use std::path::{Path, PathBuf};
use std::process::Command;

pub const REGION: &str = "eu-west-1";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ksql-msk")
}

/// A scratch host: a config dir and a state dir in a temp dir.
pub struct Host {
    pub dir: tempfile::TempDir,
    pub envs: Vec<(String, String)>,
}

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn of(out: std::process::Output) -> Output {
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl Host {
    pub fn new() -> Host {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("etc")).expect("etc");
        // Empty AWS config and credentials files: nothing from the real ~/.aws, and no
        // SDK warning about a missing file in every captured stderr.
        for f in ["aws-config", "aws-credentials"] {
            std::fs::write(dir.path().join(f), "").expect("empty AWS file");
        }
        Host {
            dir,
            envs: vec![
                ("AWS_ACCESS_KEY_ID".into(), "AKIAENVTESTKEY000001".into()),
                (
                    "AWS_SECRET_ACCESS_KEY".into(),
                    "envFakeSecretAccessKey/DoNotLeak00000000".into(),
                ),
            ],
        }
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("etc/ksql-msk.toml")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Write the main config; `[agent] state_dir` points into the temp dir unless given.
    pub fn write_config(&self, text: &str) {
        let mut text = text.to_string();
        if !text.contains("state_dir") {
            let line = format!("state_dir = \"{}\"\n", self.state_dir().display());
            match text.find("[agent]\n") {
                Some(i) => text.insert_str(i + "[agent]\n".len(), &line),
                None => text.push_str(&format!("\n[agent]\n{line}")),
            }
        }
        std::fs::write(self.config_path(), text).expect("write config");
    }

    pub fn write_dropin(&self, name: &str, text: &str) {
        let dir = self.dir.path().join("etc/ksql-msk.d");
        std::fs::create_dir_all(&dir).expect("dropin dir");
        std::fs::write(dir.join(name), text).expect("write dropin");
    }

    pub fn env(&mut self, k: &str, v: &str) -> &mut Self {
        self.envs.retain(|(key, _)| key != k);
        self.envs.push((k.into(), v.into()));
        self
    }

    pub fn unset_env(&mut self, k: &str) -> &mut Self {
        self.envs.retain(|(key, _)| key != k);
        self
    }

    /// The agent command with a clean environment: no real AWS config, no IMDS unless
    /// a test points it at a fake, nothing but loopback.
    pub fn command(&self, args: &[&str]) -> Command {
        self.command_with(Path::new(bin()), args)
    }

    /// [`Host::command`] running another build of the agent (the failpoints build).
    pub fn command_with(&self, bin: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("AWS_CONFIG_FILE", self.dir.path().join("aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.dir.path().join("aws-credentials"),
            )
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("KSQL_MSK_LOG_FORMAT", "stderr")
            .env("KSQL_MSK_CONFIG", self.config_path())
            .args(args);
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        let out = self.command(args).output().expect("run ksql-msk");
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// The one error line the agent prints.
pub fn error_line(out: &Output) -> &str {
    out.stderr
        .lines()
        .find(|l| l.starts_with("ksql-msk: error: "))
        .unwrap_or_else(|| panic!("no error line in {out:?}"))
}

pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A test that cannot run here (no `../shared` checkout, no `java`, no failpoints
/// build) says so on stderr with a `SKIPPED:` prefix and passes, unless `switch=1` is
/// set (tests/run-all sets every switch), where the skip is a failure instead.
pub fn skip(switch: &str, why: &str) {
    assert!(
        std::env::var(switch).as_deref() != Ok("1"),
        "{why}, and {switch}=1 requires it"
    );
    // Straight to the process's stderr: the test harness captures `eprintln!` of a
    // passing test, and a skip must be seen.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {why} (set {switch}=1 to make this a failure)"
    );
}

/// Every path under `dir` (not `dir` itself), recursively, never following a link,
/// sorted; none when `dir` is missing. What a redirected write would have left.
pub fn paths_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for p in entries.flatten().map(|e| e.path()) {
            if std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
                dirs.push(p.clone());
            }
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Every file, link or other non-directory under `dir`: [`paths_under`] without the
/// directories.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    paths_under(dir)
        .into_iter()
        .filter(|p| !std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()))
        .collect()
}

/// Whether the tests run as root (and so may switch users).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Make `cmd` run as an operator in the service's group, as `ksql` must be run (root is
/// refused): as root, `nobody` (65534), with everything under `dir` (the test's host)
/// readable and its directories enterable by others; otherwise the test's own user.
/// Returns that uid.
pub fn as_operator(dir: &Path, cmd: &mut Command) -> u32 {
    use std::os::unix::process::CommandExt;
    if !is_root() {
        return rustix::process::geteuid().as_raw();
    }
    open_to_others(dir);
    cmd.uid(65534).gid(65534);
    65534
}

fn open_to_others(path: &Path) {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::symlink_metadata(path).expect("stat");
    if meta.file_type().is_symlink() {
        return;
    }
    let add = if meta.is_dir() || meta.mode() & 0o100 != 0 {
        0o055
    } else {
        0o044
    };
    std::fs::set_permissions(
        path,
        std::fs::Permissions::from_mode(meta.mode() & 0o7777 | add),
    )
    .expect("chmod");
    if meta.is_dir() {
        for e in std::fs::read_dir(path).expect("read_dir") {
            open_to_others(&e.expect("entry").path());
        }
    }
}
