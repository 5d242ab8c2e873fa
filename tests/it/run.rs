//! `ksql-msk run`: supervision of a ksqlDB stand-in (`fake-ksqldb`) under a fake
//! systemd notify socket and a fake journal socket.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use ksql_msk_testkit::artifacts::ArtifactServer;
use ksql_msk_testkit::msk::{Cluster, FakeMsk, DESCRIBE_CLUSTER_V2};
use ksql_msk_testkit::standins::{self, Standins};

use crate::support::{bin, Host, REGION};

const DEADLINE: Duration = Duration::from_secs(30);
const VERSION: &str = "0.28.2";

/// The stand-in, built by `cargo test` as an example of this package; built here if a
/// narrower invocation (`cargo test --test it`) skipped it.
fn fake_ksqldb() -> &'static Path {
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
pub struct Fixture {
    pub host: Host,
    pub msk: FakeMsk,
    pub cluster: Cluster,
    pub art: ArtifactServer,
    pub release: PathBuf,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn write_exec(path: &Path, text: &str) {
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
        let world = Standins::start("demo", REGION);
        let host = Host::new();
        let root = host.dir.path();
        let jdk = root.join("jdk");
        write_exec(&jdk.join("bin/java"), &standins::java_script(java_version));
        let port = free_port();
        let start = format!("#!/bin/sh\nexec '{}' \"$@\"\n", fake_ksqldb().display());
        world.publish_release(VERSION, start.as_bytes(), &[]);
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
        let Standins {
            msk, cluster, art, ..
        } = world;
        Fixture {
            host,
            msk,
            cluster,
            art,
            release,
        }
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
        self.host
            .env("NOTIFY_SOCKET", &r.path.display().to_string());
        r
    }

    pub fn journal_socket(&mut self) -> Recorder {
        let r = Recorder::bind(self.host.dir.path().join("journal.sock"));
        self.host
            .env("KSQL_MSK_JOURNAL_SOCKET", &r.path.display().to_string())
            .env("KSQL_MSK_LOG_FORMAT", "journald");
        r
    }

    pub fn start(&self) -> Agent {
        let mut cmd = self.host.command(&["run"]);
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start ksql-msk run");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().expect("stderr");
        let s = stderr.clone();
        std::thread::spawn(move || {
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
            exited: None,
        }
    }
}

pub struct Agent {
    pub child: Child,
    stderr: Arc<Mutex<String>>,
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
                // Let the stderr reader drain.
                std::thread::sleep(Duration::from_millis(100));
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

fn statuses(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("STATUS="))
        .map(str::to_string)
        .collect()
}

#[test]
fn starts_when_healthy_logs_to_journal_and_stops_cleanly() {
    let mut fx = Fixture::new("");
    fx.mode("healthy_after_ms=700\ngrandchild=1\nlog_error=1\n");
    let notify = fx.notify_socket();
    let journal = fx.journal_socket();
    let mut agent = fx.start();

    wait_for("READY=1", || notify.lines().iter().any(|l| l == "READY=1"));
    let lines = notify.lines();
    let ready_at = lines.iter().position(|l| l == "READY=1").unwrap();
    let before = statuses(&lines[..ready_at]);
    let find = |needle: &str| {
        before
            .iter()
            .position(|s| s.contains(needle))
            .unwrap_or_else(|| panic!("no STATUS with {needle:?} before READY in {before:?}"))
    };
    let order = [
        find("loading configuration"),
        find("discovering"),
        find("starting ksqlDB 0.28.2"),
        find("still starting (503)"),
    ];
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{before:?}");
    assert!(
        lines[..ready_at]
            .iter()
            .any(|l| l.starts_with("EXTEND_TIMEOUT_USEC=")),
        "{lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l == "WATCHDOG=1"),
        "no watchdog asked"
    );

    // The child: its own process group, a clean explicit environment.
    let pids = fx.pids();
    assert_eq!(pids.len(), 1);
    let pid = pids[0];
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let pgrp: i32 = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split(' ')
        .nth(3)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(pgrp, pid, "ksqlDB leads its own process group");
    let env = fx.child_env();
    // PWD is set by the start script's shell.
    let mut keys: Vec<&str> = env
        .keys()
        .map(String::as_str)
        .filter(|k| *k != "PWD")
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "JAVA_HOME",
            "KSQL_HEAP_OPTS",
            "KSQL_JVM_PERFORMANCE_OPTS",
            "KSQL_LOG4J_OPTS",
            "LOG_DIR",
            "PATH"
        ],
        "{env:?}"
    );
    assert_eq!(
        env["JAVA_HOME"],
        fx.host.dir.path().join("jdk").display().to_string()
    );
    let log_dir = fx.host.state_dir().join("logs");
    assert_eq!(env["LOG_DIR"], log_dir.display().to_string());
    assert!(log_dir.is_dir());
    let heap: Vec<&str> = env["KSQL_HEAP_OPTS"].split(' ').collect();
    assert!(
        heap[0].starts_with("-Xms") && heap[1].starts_with("-Xmx"),
        "{heap:?}"
    );
    assert_eq!(heap[0][4..], heap[1][4..]);
    assert!(env["KSQL_JVM_PERFORMANCE_OPTS"].contains("-XX:+UseG1GC"));
    assert!(env["KSQL_LOG4J_OPTS"].ends_with("etc/ksqldb/log4j.properties"));
    let args = std::fs::read_to_string(fx.control("fake-ksqldb.args")).unwrap();
    assert_eq!(
        args.trim(),
        fx.release
            .canonicalize()
            .unwrap()
            .join("etc/ksqldb/ksql-server.properties")
            .display()
            .to_string()
    );
    let grandchild: i32 = std::fs::read_to_string(fx.control("fake-ksqldb.grandchild"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(alive(grandchild));

    // Journal: ksqlDB's lines under their own identifier, priorities from log4j levels,
    // the stack trace in the entry of the line that started it.
    wait_for("ksqlDB's lines in the journal", || {
        journal
            .entries()
            .iter()
            .any(|e| e["MESSAGE"].contains("Server up and running"))
    });
    let entries = journal.entries();
    let ksql: Vec<&HashMap<String, String>> = entries
        .iter()
        .filter(|e| e["SYSLOG_IDENTIFIER"] == "ksqldb")
        .collect();
    let by_text = |t: &str| {
        ksql.iter()
            .find(|e| e["MESSAGE"].contains(t))
            .unwrap_or_else(|| panic!("no ksqldb entry with {t:?}: {ksql:?}"))
    };
    assert_eq!(by_text("KsqlServerMain starting")["PRIORITY"], "6");
    assert_eq!(by_text("isn't a known config")["PRIORITY"], "4");
    assert_eq!(by_text("debug detail")["PRIORITY"], "7");
    let err = by_text("Could not reach the command topic");
    assert_eq!(err["PRIORITY"], "3");
    assert!(err["MESSAGE"].contains("\n\tat io.confluent.ksql.rest.server.KsqlRestApplication"));
    assert!(err["MESSAGE"].contains("\nCaused by: org.apache.kafka"));
    assert!(
        err["MESSAGE"].ends_with("\t... 4 more"),
        "{:?}",
        err["MESSAGE"]
    );
    assert_eq!(err["SYSLOG_PID"], pid.to_string());
    let jvm = by_text("OpenJDK 64-Bit Server VM warning");
    assert_eq!(jvm["PRIORITY"], "4");
    assert_eq!(jvm["KSQLDB_STREAM"], "stderr");
    let started = entries
        .iter()
        .find(|e| {
            e.get("MESSAGE_ID").map(String::as_str) == Some("5f3a9c1e7b2d4e8fa6c0b1d2e3f40512")
        })
        .expect("STARTED event");
    assert_eq!(started["SYSLOG_IDENTIFIER"], "ksql-msk");
    assert_eq!(started["PID"], pid.to_string());
    assert_eq!(started["VERSION"], VERSION);
    let prepared = entries
        .iter()
        .find(|e| {
            e.get("MESSAGE_ID").map(String::as_str) == Some("0e1b7c5a8f2d4c6b9a3e5d7f1c2b4a60")
        })
        .expect("PREPARED event");
    assert_eq!(
        prepared["BROKERS"],
        fx.cluster
            .brokers_field("bootstrapBrokerStringSaslIam")
            .unwrap()
    );

    // Stop: STOPPING=1, the whole group gone, exit 0.
    assert_eq!(agent.stop(), 0, "{}", agent.stderr());
    assert!(notify.lines().iter().any(|l| l == "STOPPING=1"));
    assert!(!group_alive(pid), "process group {pid} survived");
    assert!(!alive(pid) && !alive(grandchild));
    wait_for("shutdown line", || {
        journal
            .entries()
            .iter()
            .any(|e| e["MESSAGE"].contains("ksqlDB shutting down"))
    });
    let exited = journal
        .entries()
        .into_iter()
        .find(|e| {
            e.get("MESSAGE_ID").map(String::as_str) == Some("c2d9e6a1f4b3480d9e7c6b5a4f3e2d10")
        })
        .expect("EXITED event");
    assert_eq!(exited["EXIT_CODE"], "exited");
    assert_eq!(exited["EXIT_STATUS"], "143");
}

#[test]
fn crash_is_restarted_with_watchdog_only_while_healthy() {
    let mut fx = Fixture::new("");
    fx.mode("healthy_after_ms=300\n");
    let notify = fx.notify_socket();
    fx.host.env("WATCHDOG_USEC", "400000");
    let mut agent = fx.start();
    wait_for("READY=1", || notify.lines().iter().any(|l| l == "READY=1"));
    wait_for("WATCHDOG=1", || {
        notify.lines().iter().any(|l| l == "WATCHDOG=1")
    });
    let lines = notify.lines();
    let ready_at = lines.iter().position(|l| l == "READY=1").unwrap();
    assert!(
        !lines[..ready_at].iter().any(|l| l == "WATCHDOG=1"),
        "watchdog before healthy: {lines:?}"
    );
    let first = fx.pids()[0];

    // Crash: restarted after the backoff, becomes healthy again.
    let crashed_at = Instant::now();
    std::fs::write(fx.control("fake-ksqldb.crash"), "").unwrap();
    wait_for("a second start", || fx.pids().len() == 2);
    let restarted_after = crashed_at.elapsed();
    eprintln!("crash → restart took {restarted_after:?} (restart_backoff 100ms)");
    assert!(!group_alive(first));
    let second = fx.pids()[1];
    wait_for("healthy again", || {
        statuses(&notify.lines())
            .iter()
            .any(|s| s.contains(&format!("is running (pid {second})")))
    });
    assert_eq!(
        notify.lines().iter().filter(|l| *l == "READY=1").count(),
        1,
        "READY is sent once"
    );
    let err = agent.stderr();
    assert!(err.contains("ksqlDB exited with exit code 1"), "{err}");
    assert!(err.contains("restarting in 100ms"), "{err}");
    assert_eq!(agent.stop(), 0);
    assert!(!group_alive(fx.pids()[1]));
}

#[test]
fn watchdog_is_fed_while_the_agent_restarts_ksqldb() {
    // A backoff longer than the watchdog interval: systemd must not kill the agent
    // while it waits to restart a crashed ksqlDB.
    let mut fx = Fixture::new("restart_backoff = \"1500ms\"\nrestart_backoff_max = \"1500ms\"\n");
    fx.mode("healthy_after_ms=200\n");
    let notify = fx.notify_socket();
    fx.host.env("WATCHDOG_USEC", "400000");
    let mut agent = fx.start();
    wait_for("READY=1", || notify.lines().iter().any(|l| l == "READY=1"));
    let crashed_at = notify.lines().len();
    std::fs::write(fx.control("fake-ksqldb.crash"), "").unwrap();
    wait_for("a second start", || fx.pids().len() == 2);
    let during: Vec<String> = notify.lines()[crashed_at..].to_vec();
    let pings = during.iter().filter(|l| *l == "WATCHDOG=1").count();
    // 1.5 s of backoff at a 200 ms interval: several pings, none missed for long.
    assert!(pings >= 3, "watchdog pings during the restart: {during:?}");
    assert_eq!(agent.stop(), 0);
}

#[test]
fn watchdog_stops_while_unhealthy() {
    let mut fx = Fixture::new("");
    fx.mode("healthy_after_ms=200\nunhealthy_after_ms=1200\n");
    let notify = fx.notify_socket();
    fx.host.env("WATCHDOG_USEC", "400000");
    let mut agent = fx.start();
    wait_for("unhealthy status", || {
        statuses(&notify.lines())
            .iter()
            .any(|s| s.contains("not healthy: ksqlDB reports unhealthy: kafka"))
    });
    let lines = notify.lines();
    let unhealthy_at = lines
        .iter()
        .position(|l| l.contains("not healthy"))
        .unwrap();
    assert!(lines[..unhealthy_at].iter().any(|l| l == "WATCHDOG=1"));
    std::thread::sleep(Duration::from_millis(800));
    let after: Vec<String> = notify.lines()[unhealthy_at..].to_vec();
    assert!(
        !after.iter().any(|l| l == "WATCHDOG=1"),
        "watchdog while unhealthy: {after:?}"
    );
    assert_eq!(agent.stop(), 0);
}

#[test]
fn too_many_failures_exit_75() {
    let fx = Fixture::new("");
    fx.mode("exit_after_ms=100\nexit_code=3\n");
    let mut agent = fx.start();
    assert_eq!(agent.wait(), 75, "{}", agent.stderr());
    // restart_limit = 3: the fourth failure within the window gives up.
    assert_eq!(fx.pids().len(), 4, "{}", agent.stderr());
    let err = agent.stderr();
    assert!(err.contains("4 failures within 1m"), "{err}");
    assert!(
        err.contains("restarting in 100ms")
            && err.contains("restarting in 200ms")
            && err.contains("restarting in 400ms"),
        "{err}"
    );
    for pid in fx.pids() {
        assert!(!group_alive(pid));
    }
}

#[test]
fn never_healthy_child_is_killed_and_counted() {
    let fx = Fixture::new("start_timeout = \"1s\"\nrestart_limit = 1\n");
    fx.mode("never_healthy=1\n");
    let mut agent = fx.start();
    assert_eq!(agent.wait(), 75, "{}", agent.stderr());
    let err = agent.stderr();
    assert_eq!(fx.pids().len(), 2, "{err}");
    assert!(err.contains("did not become healthy within 1s"), "{err}");
    assert!(err.contains("ksqlDB never became healthy"), "{err}");
    for pid in fx.pids() {
        assert!(!group_alive(pid));
    }
}

#[test]
fn child_ignoring_sigterm_is_killed_after_stop_timeout() {
    let fx = Fixture::new("stop_timeout = \"1s\"\n");
    fx.mode("healthy_after_ms=100\nignore_term=1\ngrandchild=1\n");
    let mut agent = fx.start();
    wait_for("healthy", || agent.stderr().contains("is healthy"));
    let pid = fx.pids()[0];
    let grandchild: i32 = std::fs::read_to_string(fx.control("fake-ksqldb.grandchild"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let t = Instant::now();
    assert_eq!(agent.stop(), 0, "{}", agent.stderr());
    assert!(t.elapsed() >= Duration::from_millis(900));
    let err = agent.stderr();
    assert!(err.contains("did not stop within 1s"), "{err}");
    assert!(err.contains("signal SIGKILL"), "{err}");
    assert!(!group_alive(pid));
    assert!(!alive(grandchild));
}

#[test]
fn sighup_reloads_and_restarts_only_on_change() {
    let mut fx = Fixture::new("");
    fx.mode("healthy_after_ms=100\n");
    let notify = fx.notify_socket();
    let mut agent = fx.start();
    wait_for("READY=1", || notify.lines().iter().any(|l| l == "READY=1"));

    // Nothing changed: RELOADING, MONOTONIC_USEC, READY; same child.
    agent.signal(libc::SIGHUP);
    wait_for("reload done", || agent.stderr().contains("nothing changed"));
    wait_for("READY after reload", || {
        let l = notify.lines();
        let r = l.iter().position(|x| x == "RELOADING=1");
        r.is_some_and(|r| l[r..].iter().any(|x| x == "READY=1"))
    });
    let l = notify.lines();
    let r = l.iter().position(|x| x == "RELOADING=1").unwrap();
    assert!(
        l[r + 1].starts_with("MONOTONIC_USEC=") && l[r + 1][15..].parse::<u64>().is_ok(),
        "{l:?}"
    );
    assert_eq!(fx.pids().len(), 1);

    // The effective properties changed: restart.
    let props = fx.release.join("etc/ksqldb/ksql-server.properties");
    let mut text = std::fs::read_to_string(&props).unwrap();
    text.push_str("ksql.service.id=changed_\n");
    std::fs::write(&props, text).unwrap();
    agent.signal(libc::SIGHUP);
    wait_for("restart", || fx.pids().len() == 2);
    let err = agent.stderr();
    assert!(
        err.contains("restarting ksqlDB:") && err.contains("ksql-server.properties changed"),
        "{err}"
    );
    assert!(!group_alive(fx.pids()[0]));
    // The reload ends (READY=1) only once the restarted ksqlDB is healthy.
    let new_pid = fx.pids()[1];
    let reload_ready = || {
        let l = notify.lines();
        let r = l.iter().rposition(|x| x == "RELOADING=1").unwrap();
        l[r..]
            .iter()
            .position(|x| x == "READY=1")
            .map(|i| (l[r + i + 1].clone(), l[r..r + i].to_vec()))
    };
    wait_for("READY after the restarting reload", || {
        reload_ready().is_some()
    });
    let (status, before) = reload_ready().unwrap();
    assert!(
        status.starts_with("STATUS=ksqlDB ")
            && status.ends_with(&format!("is running (pid {new_pid})")),
        "{status}"
    );
    assert!(
        before
            .iter()
            .any(|x| x.starts_with("STATUS=restarting ksqlDB:")),
        "{before:?}"
    );

    // A broken config: the child keeps running, the error is logged.
    std::fs::write(fx.host.config_path(), "[msk\n").unwrap();
    let readies = notify.lines().iter().filter(|l| *l == "READY=1").count();
    agent.signal(libc::SIGHUP);
    wait_for("reload failure", || {
        agent.stderr().contains("reload failed")
    });
    wait_for("READY after failed reload", || {
        notify.lines().iter().filter(|l| *l == "READY=1").count() > readies
    });
    assert!(
        agent.stderr().contains("invalid TOML"),
        "{}",
        agent.stderr()
    );
    assert_eq!(fx.pids().len(), 2);
    assert!(alive(fx.pids()[1]));
    assert_eq!(agent.stop(), 0);
}

#[test]
fn rediscovery_restarts_on_broker_change_and_survives_api_errors() {
    let fx = Fixture::new("rediscover_interval = \"300ms\"\n");
    fx.mode("healthy_after_ms=100\n");
    let mut agent = fx.start();
    wait_for("healthy", || agent.stderr().contains("is healthy"));
    // Throttling: the child stays, the error is logged, the agent retries.
    fx.msk.fail_next(
        DESCRIBE_CLUSTER_V2,
        2,
        429,
        "TooManyRequestsException",
        "Rate exceeded",
    );
    wait_for("rediscovery failure logged", || {
        agent.stderr().contains("rediscovering brokers failed")
    });
    assert_eq!(fx.pids().len(), 1);
    // Same brokers in another order: no restart.
    let field = "bootstrapBrokerStringSaslIam";
    let old = fx.cluster.brokers_field(field).unwrap().to_string();
    let mut parts: Vec<&str> = old.split(',').collect();
    parts.reverse();
    fx.msk
        .set_brokers(&fx.cluster.arn, field, Some(&parts.join(",")));
    std::thread::sleep(Duration::from_millis(900));
    assert_eq!(fx.pids().len(), 1, "{}", agent.stderr());
    // A new broker set: restart.
    let new = old.replace("b-3.", "b-4.");
    fx.msk.set_brokers(&fx.cluster.arn, field, Some(&new));
    wait_for("restart on broker change", || fx.pids().len() == 2);
    let err = agent.stderr();
    assert!(err.contains("bootstrap brokers changed"), "{err}");
    assert!(err.contains("brokers now"), "{err}");
    assert_eq!(agent.stop(), 0);
    assert!(!group_alive(fx.pids()[0]) && !group_alive(fx.pids()[1]));
}

#[test]
fn first_start_installs_the_release() {
    let mut fx = Fixture::uninstalled("", "17.0.15", "1.1.1");
    let notify = fx.notify_socket();
    assert!(!fx.host.state_dir().join("current").exists());
    let mut agent = fx.start();
    wait_for("READY=1", || notify.lines().iter().any(|l| l == "READY=1"));
    let current = std::fs::canonicalize(fx.host.state_dir().join("current")).unwrap();
    assert_eq!(current, fx.release.canonicalize().unwrap());
    assert!(fx
        .release
        .join("share/java/ksqldb/aws-msk-iam-auth-1.1.1-all.jar")
        .exists());
    let err = agent.stderr();
    assert!(err.contains("now points to releases/0.28.2"), "{err}");
    assert_eq!(
        fx.art.requests_for(&standins::archive_path(VERSION)).len(),
        1
    );
    assert_eq!(agent.stop(), 0);
}

#[test]
fn iam_jar_needing_newer_java_is_refused() {
    let fx = Fixture::with("", "11.0.21", "2.3.5");
    let out = fx.host.run(&["run"]);
    assert_eq!(out.code, 78, "{out:?}");
    assert!(
        out.stderr.contains("aws-msk-iam-auth 2.3.5 needs Java 17")
            && out.stderr.contains("Java 11 (11.0.21)"),
        "{out:?}"
    );
    assert!(fx.pids().is_empty());
}

#[test]
fn sigterm_while_backing_off_exits_0() {
    let fx = Fixture::new("restart_backoff = \"30s\"\nrestart_backoff_max = \"30s\"\n");
    fx.mode("exit_after_ms=50\n");
    let mut agent = fx.start();
    wait_for("backing off", || {
        agent.stderr().contains("restarting in 30s")
    });
    assert_eq!(agent.stop(), 0, "{}", agent.stderr());
    assert_eq!(fx.pids().len(), 1);
}

#[test]
fn orphans_that_left_the_group_are_adopted_and_killed() {
    let fx = Fixture::new("stop_timeout = \"1s\"\n");
    fx.mode("healthy_after_ms=100\nescapee=1\n");
    let mut agent = fx.start();
    wait_for("healthy", || agent.stderr().contains("is healthy"));
    let escapee: i32 = std::fs::read_to_string(fx.control("fake-ksqldb.escapee"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(alive(escapee));
    // Adopted by the agent (a child subreaper), not by init.
    let stat = std::fs::read_to_string(format!("/proc/{escapee}/stat")).unwrap();
    let ppid: u32 = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split(' ')
        .nth(2)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(ppid, agent.child.id());
    assert_eq!(agent.stop(), 0, "{}", agent.stderr());
    assert!(
        !alive(escapee),
        "escaped helper {escapee} survived the stop"
    );
}
