//! The `run` tests' fixture: the shared [`World`] with a fake Java and a signed release
//! whose `bin/ksql-server-start` runs the ksqlDB stand-in (`fake-ksqldb`), that release
//! installed, a fake systemd notify socket and journal socket ([`Recorder`]), and the
//! running agent ([`Agent`]).

use std::collections::HashMap;
use std::io::Read;
use std::ops::{Deref, DerefMut};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use ksql_msk_testkit::standins;

use super::bin;
use super::world::World;

pub const DEADLINE: Duration = Duration::from_secs(30);
/// The ksqlDB version the fixture publishes and installs.
pub const VERSION: &str = "0.28.2";

/// The stand-in, built by `cargo test` as an example of this package; built here if a
/// narrower invocation (`cargo test --test it`) skipped it.
pub fn fake_ksqldb() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = Path::new(bin()).parent().expect("bin dir");
        let path = dir.join("examples/fake-ksqldb");
        if !path.exists() {
            let mut cmd = std::process::Command::new(env!("CARGO"));
            cmd.args(["build", "--example", "fake-ksqldb"])
                .current_dir(env!("CARGO_MANIFEST_DIR"));
            if dir.ends_with("release") {
                cmd.arg("--release");
            }
            let status = cmd.status().expect("run cargo build");
            assert!(status.success(), "building fake-ksqldb failed");
        }
        assert!(path.exists(), "{} missing", path.display());
        path
    })
}

/// The `STATUS=` texts among sd_notify lines, in order.
pub fn statuses(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("STATUS="))
        .map(str::to_string)
        .collect()
}

/// Wait until `f` is true; panic with `what` after [`DEADLINE`].
pub fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + DEADLINE;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

type Received = Arc<Mutex<Vec<(Instant, Vec<u8>)>>>;

/// A Unix datagram socket that records what is sent to it.
pub struct Recorder {
    pub path: PathBuf,
    messages: Received,
}

impl Recorder {
    pub fn bind(path: PathBuf) -> Recorder {
        let sock = UnixDatagram::bind(&path).expect("bind datagram socket");
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let messages = Arc::new(Mutex::new(Vec::new()));
        let m = messages.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                match sock.recv(&mut buf) {
                    Ok(n) => m
                        .lock()
                        .expect("lock")
                        .push((Instant::now(), buf[..n].to_vec())),
                    Err(e)
                        if e.kind() == std::io::ErrorKind::WouldBlock
                            || e.kind() == std::io::ErrorKind::TimedOut =>
                    {
                        if Arc::strong_count(&m) == 1 {
                            return;
                        }
                    }
                    Err(_) => return,
                }
            }
        });
        Recorder { path, messages }
    }

    pub fn raw(&self) -> Vec<(Instant, Vec<u8>)> {
        self.messages.lock().expect("lock").clone()
    }

    /// sd_notify messages, one `KEY=VALUE` line each, in order.
    pub fn lines(&self) -> Vec<String> {
        self.raw()
            .iter()
            .flat_map(|(_, m)| {
                String::from_utf8_lossy(m)
                    .lines()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// The last `STATUS=` text sent so far ("" before the first).
    pub fn last_status(&self) -> String {
        statuses(&self.lines()).pop().unwrap_or_default()
    }

    /// Journal entries in the native protocol.
    pub fn entries(&self) -> Vec<HashMap<String, String>> {
        self.raw().iter().map(|(_, m)| parse_native(m)).collect()
    }
}

fn parse_native(mut buf: &[u8]) -> HashMap<String, String> {
    let mut fields = HashMap::new();
    while !buf.is_empty() {
        let nl = buf.iter().position(|b| *b == b'\n').expect("field end");
        let line = &buf[..nl];
        if let Some(eq) = line.iter().position(|b| *b == b'=') {
            fields.insert(
                String::from_utf8_lossy(&line[..eq]).into_owned(),
                String::from_utf8_lossy(&line[eq + 1..]).into_owned(),
            );
            buf = &buf[nl + 1..];
        } else {
            let key = String::from_utf8_lossy(line).into_owned();
            let len = u64::from_le_bytes(buf[nl + 1..nl + 9].try_into().expect("len")) as usize;
            let value = &buf[nl + 9..nl + 9 + len];
            assert_eq!(buf[nl + 9 + len], b'\n', "binary field ends with newline");
            fields.insert(key, String::from_utf8_lossy(value).into_owned());
            buf = &buf[nl + 10 + len..];
        }
    }
    fields
}

/// A host with a fake MSK, a fake Java, an artifact server publishing a signed release
/// whose `bin/ksql-server-start` runs the stand-in, and that release installed (by
/// `ksql-msk install`, so `run` finds it in place).
/// Derefs to the [`World`] (`fx.host`, `fx.msk`, `fx.art`, `fx.cluster`).
pub struct Fixture {
    pub world: World,
    pub release: PathBuf,
    /// The published release archive (its SHA-256 is what install verified).
    pub archive: Vec<u8>,
}

impl Deref for Fixture {
    type Target = World;
    fn deref(&self) -> &World {
        &self.world
    }
}

impl DerefMut for Fixture {
    fn deref_mut(&mut self) -> &mut World {
        &mut self.world
    }
}

/// The release's restore tool: the stand-in in its restore mode.
pub const RESTORE_TOOL: &str = "bin/ksql-restore-command-topic";

fn restore_script() -> String {
    format!(
        "#!/bin/sh\nexec '{}' --restore-command-topic \"$@\"\n",
        fake_ksqldb().display()
    )
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

pub fn write_exec(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

impl Fixture {
    pub fn new(agent: &str) -> Fixture {
        Self::with(agent, "17.0.15", "1.1.1")
    }

    pub fn with(agent: &str, java_version: &str, iam_version: &str) -> Fixture {
        let fx = Self::uninstalled(agent, java_version, iam_version);
        let out = fx.host.run(&["install"]);
        assert_eq!(out.code, 0, "installing the stand-in release: {out:?}");
        fx
    }

    /// Everything but the installed release.
    pub fn uninstalled(agent: &str, java_version: &str, iam_version: &str) -> Fixture {
        Self::uninstalled_with_start(agent, java_version, iam_version, "")
    }

    /// Installed, with `before` (shell lines) run by the release's `ksql-server-start`
    /// before it execs the stand-in.
    pub fn with_start_prefix(agent: &str, before: &str) -> Fixture {
        let fx = Self::uninstalled_with_start(agent, "17.0.15", "1.1.1", before);
        let out = fx.host.run(&["install"]);
        assert_eq!(out.code, 0, "installing the stand-in release: {out:?}");
        fx
    }

    fn uninstalled_with_start(
        agent: &str,
        java_version: &str,
        iam_version: &str,
        before: &str,
    ) -> Fixture {
        let world = World::bare();
        let host = &world.host;
        let root = host.dir.path();
        let jdk = root.join("jdk");
        write_exec(&jdk.join("bin/java"), &standins::java_script(java_version));
        let port = free_port();
        let start = format!(
            "#!/bin/sh\n{before}exec '{}' \"$@\"\n",
            fake_ksqldb().display()
        );
        let restore = restore_script();
        let archive = world.publish_release(
            VERSION,
            start.as_bytes(),
            &[(RESTORE_TOOL, restore.as_bytes(), 0o755)],
        );
        world.publish_jar(iam_version);
        let release = host.state_dir().join("releases").join(VERSION);
        // Test defaults for [agent], overridden line by line by `agent`.
        let mut agent_lines: Vec<String> = [
            format!("health_url = \"http://127.0.0.1:{port}/healthcheck\""),
            "start_timeout = \"20s\"".into(),
            "stop_timeout = \"3s\"".into(),
            "restart_backoff = \"100ms\"".into(),
            "restart_backoff_max = \"400ms\"".into(),
            "restart_limit = 3".into(),
            "restart_window = \"1m\"".into(),
            "rediscover_interval = \"1h\"".into(),
        ]
        .into_iter()
        .collect();
        for line in agent.lines().filter(|l| !l.trim().is_empty()) {
            let key = line.split('=').next().unwrap_or("").trim();
            agent_lines.retain(|l| l.split('=').next().unwrap_or("").trim() != key);
            agent_lines.push(line.to_string());
        }
        let mut parts = world.config(VERSION, iam_version);
        parts
            .msk
            .push_str("cluster_wait = \"3s\"\napi_max_attempts = 1\n");
        host.write_config(&parts.toml(
            &format!(
                "listeners = \"http://127.0.0.1:{port}\"\njava_home = \"{}\"\nheap = \"auto\"\n",
                jdk.display()
            ),
            &agent_lines.join("\n"),
        ));
        Fixture {
            world,
            release,
            archive,
        }
    }

    /// Publish ksqlDB `version`, whose release runs the stand-in like the installed one,
    /// with `files` (e.g. `fake-ksqldb.mode`) in the release directory: how an upgrade
    /// test serves a new version that behaves in its own way from its first start.
    pub fn publish_version(&self, version: &str, files: &[(&str, &str)]) {
        let start = format!("#!/bin/sh\nexec '{}' \"$@\"\n", fake_ksqldb().display());
        let restore = restore_script();
        let mut extra: Vec<(&str, &[u8], u32)> = files
            .iter()
            .map(|(name, text)| (*name, text.as_bytes(), 0o644))
            .collect();
        extra.push((RESTORE_TOOL, restore.as_bytes(), 0o755));
        self.world
            .publish_release(version, start.as_bytes(), &extra);
    }

    /// Set the stand-in's behaviour (`key=value` lines).
    pub fn mode(&self, text: &str) {
        std::fs::write(self.release.join("fake-ksqldb.mode"), text).expect("mode");
    }

    pub fn control(&self, name: &str) -> PathBuf {
        self.release.join(name)
    }

    /// Pids of every start of the stand-in, in order.
    pub fn pids(&self) -> Vec<i32> {
        std::fs::read_to_string(self.control("fake-ksqldb.pids"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// The names in the stand-in's recorded environment, sorted, without the `PWD`
    /// that the start script's shell sets.
    pub fn child_env_names(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .child_env()
            .into_keys()
            .filter(|k| k != "PWD")
            .collect();
        keys.sort();
        keys
    }

    pub fn child_env(&self) -> HashMap<String, String> {
        std::fs::read_to_string(self.control("fake-ksqldb.env"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    pub fn notify_socket(&mut self) -> Recorder {
        let r = Recorder::bind(self.host.dir.path().join("notify.sock"));
        self.world
            .host
            .env("NOTIFY_SOCKET", &r.path.display().to_string());
        r
    }

    pub fn journal_socket(&mut self) -> Recorder {
        let r = Recorder::bind(self.host.dir.path().join("journal.sock"));
        self.world
            .host
            .env("KSQL_MSK_JOURNAL_SOCKET", &r.path.display().to_string())
            .env("KSQL_MSK_LOG_FORMAT", "journald");
        r
    }

    pub fn start(&self) -> Agent {
        Self::spawn_agent(self.host.command(&["run"]))
    }

    /// `ksql-msk run` exec'd by a shell that first runs `prelude`: what the shell
    /// leaves running becomes the agent's child (a container entrypoint's `tee`).
    pub fn start_behind(&self, prelude: &str) -> Agent {
        let inner = self.host.command(&["run"]);
        let mut cmd = std::process::Command::new("/bin/sh");
        cmd.env_clear();
        for (k, v) in inner.get_envs() {
            if let Some(v) = v {
                cmd.env(k, v);
            }
        }
        cmd.arg("-c")
            .arg(format!("{prelude}\nexec \"$0\" run"))
            .arg(inner.get_program());
        Self::spawn_agent(cmd)
    }

    pub fn spawn_agent(mut cmd: std::process::Command) -> Agent {
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start ksql-msk run");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().expect("stderr");
        let s = stderr.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                s.lock()
                    .expect("lock")
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Agent {
            child,
            stderr,
            reader,
            exited: None,
        }
    }
}

pub struct Agent {
    pub child: Child,
    stderr: Arc<Mutex<String>>,
    /// Reads the agent's stderr until its end.
    reader: std::thread::JoinHandle<()>,
    exited: Option<i32>,
}

impl Agent {
    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("lock").clone()
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0);
    }

    /// Wait for the agent to exit; its exit code.
    pub fn wait(&mut self) -> i32 {
        let end = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                let code = status.code().unwrap_or(-1);
                self.exited = Some(code);
                // Let the stderr reader drain to the pipe's end (bounded: a process the
                // agent left behind could still hold the pipe).
                let drained = Instant::now() + Duration::from_secs(5);
                while !self.reader.is_finished() && Instant::now() < drained {
                    std::thread::sleep(Duration::from_millis(10));
                }
                return code;
            }
            assert!(
                Instant::now() < end,
                "agent did not exit; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop(&mut self) -> i32 {
        self.signal(libc::SIGTERM);
        self.wait()
    }
}

impl Drop for Agent {
    /// A test that failed half-way still must not leak processes: ask the agent to stop
    /// (it stops ksqlDB's whole group and adopted orphans), SIGKILL it only if it hangs.
    fn drop(&mut self) {
        if self.exited.is_some() {
            return;
        }
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let end = Instant::now() + Duration::from_secs(15);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn alive(pid: i32) -> bool {
    // A zombie still "exists" for kill(0); read its state.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// Whether any live (non-zombie) process is in process group `pgid`.
pub fn group_alive(pgid: i32) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .any(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    let rest = s.rsplit_once(')')?.1.trim_start().to_string();
                    let mut it = rest.split(' ');
                    let state = it.next()?.to_string();
                    let _ppid = it.next()?;
                    let pgrp: i32 = it.next()?.parse().ok()?;
                    Some(pgrp == pgid && state != "Z")
                })
                .unwrap_or(false)
        })
}
