//! A cluster of three hosts, each in a network namespace the test makes, and a rolling
//! upgrade across them (issue 15 item 4; DESIGN.md "Scale").
//!
//! The network, all private to this run (names `kmc<pid>-*`): a namespace `svc` holding
//! a bridge at 10.77.0.2 and the shared stand-ins (fake MSK, artifact server), and three
//! host namespaces `h1..h3` on veth pairs into that bridge (10.77.0.11-13), each with
//! its own fake IMDS at 169.254.169.254:80 on its loopback answering its own
//! `local-ipv4`. No namespace has a route anywhere else, and the root namespace's
//! interfaces and routes are never touched. Each host runs its own `ksql-msk run` with
//! the same config (listeners on the wildcard address, the same `ksql.service.id`): the
//! agent learns its address from the default IMDS endpoint, as on EC2.
//!
//! Checked: each host's ksql-server.properties advertises its own address; each
//! ksqlDB stand-in answers `/info` on that address from the other two hosts; then a
//! rolling upgrade, one host at a time (a drop-in with the new `ksqldb.version` and an
//! internal listener, `ksql-msk reload`, which returns once the new ksqlDB is healthy),
//! while a prober in `svc` GETs `/info` on all three every 100 ms: never fewer than
//! two answer, each host is down only during its own turn, and after its turn it
//! advertises its internal listener, which the other hosts reach.
//!
//! Root only (namespaces, addresses): skipped loudly otherwise, a failure with
//! `KSQL_MSK_REQUIRE_ROOT=1` (tests/run-all sets it under root). Bounded: every wait
//! and command runs against one deadline ([`BUDGET`]). Cleans up on success and
//! failure (Drop guards: agents stopped, then every process left in the namespaces
//! killed and the namespaces deleted); a run killed outright (Ctrl-C, SIGKILL) takes
//! its agents with it (parent-death signal) but leaves its namespaces behind, and the
//! next run deletes those of runs whose process is gone.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ksql_msk_testkit::imds::FakeImds;
use ksql_msk_testkit::standins::{self, Standins};

use crate::support::fixture::{fake_ksqldb, write_exec, Agent, Fixture};
use crate::support::{skip, Host, REGION};

/// The whole test, setup and cleanup included.
const BUDGET: Duration = Duration::from_secs(300);
const OLD: &str = "0.28.2";
const NEW: &str = "0.29.0";
const SERVICE_ID: &str = "ksql_msk_cluster_test_";
const SVC_IP: &str = "10.77.0.2";
const HOSTS: usize = 3;
const PROBE_EVERY: Duration = Duration::from_millis(100);

fn host_ip(i: usize) -> String {
    format!("10.77.0.{}", 11 + i)
}

/// A panic naming `what` once the test's budget is spent.
fn check_deadline(deadline: Instant, what: &str) {
    assert!(
        Instant::now() < deadline,
        "cluster test: over its {BUDGET:?} budget while {what}"
    );
}

fn wait_until(deadline: Instant, what: &str, mut f: impl FnMut() -> bool) {
    while !f() {
        check_deadline(deadline, &format!("waiting for {what}"));
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// `ip ARGS`, which must succeed.
fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running ip {}: {e}", args.join(" ")));
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

fn ip_output(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("running ip");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Pids of the processes in network namespace `name` (`ip netns pids`).
fn pids_in(name: &str) -> Vec<i32> {
    ip_output(&["netns", "pids", name])
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// SIGKILL what is left in `name`, then delete it.
fn delete_netns(name: &str) {
    for pid in pids_in(name) {
        // SAFETY: kill(2); the pid lives in a namespace only this test creates.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let _ = Command::new("ip")
        .args(["netns", "del", name])
        .stderr(Stdio::null())
        .status();
}

const PREFIX: &str = "kmc";

/// Namespaces left by runs of this test that were killed outright: `kmc<pid>-*` whose
/// pid is gone.
fn sweep_stale() {
    for name in ip_output(&["netns", "list"])
        .lines()
        .filter_map(|l| l.split_whitespace().next())
    {
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|r| r.split_once('-'))
            .and_then(|(p, _)| p.parse::<i32>().ok())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            eprintln!("cluster: deleting {name}, left by an earlier run (pid {pid} is gone)");
            delete_netns(name);
        }
    }
}

/// This run's namespaces; dropped last: kills what is left in them and deletes them.
struct Net {
    svc: String,
    hosts: Vec<String>,
}

impl Net {
    fn create() -> Net {
        let run = format!("{PREFIX}{}", std::process::id());
        let net = Net {
            svc: format!("{run}-svc"),
            hosts: (1..=HOSTS).map(|i| format!("{run}-h{i}")).collect(),
        };
        // From here on the guard exists: a failing `ip` below still cleans up.
        for name in std::iter::once(&net.svc).chain(&net.hosts) {
            ip(&["netns", "add", name]);
            ip(&["-n", name, "link", "set", "lo", "up"]);
        }
        let svc = net.svc.as_str();
        ip(&["-n", svc, "link", "add", "br0", "type", "bridge"]);
        ip(&[
            "-n",
            svc,
            "addr",
            "add",
            &format!("{SVC_IP}/24"),
            "dev",
            "br0",
        ]);
        ip(&["-n", svc, "link", "set", "br0", "up"]);
        for (i, host) in net.hosts.iter().enumerate() {
            let port = format!("vh{}", i + 1);
            // Made inside svc with its peer moved straight into the host: nothing is
            // ever created in the root namespace.
            ip(&[
                "-n", svc, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
                host,
            ]);
            ip(&["-n", svc, "link", "set", &port, "master", "br0", "up"]);
            ip(&[
                "-n",
                host,
                "addr",
                "add",
                &format!("{}/24", host_ip(i)),
                "dev",
                "eth0",
            ]);
            ip(&["-n", host, "link", "set", "eth0", "up"]);
            // The instance metadata address, on this host's own loopback.
            ip(&["-n", host, "addr", "add", "169.254.169.254/32", "dev", "lo"]);
        }
        net
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for name in self.hosts.iter().chain(std::iter::once(&self.svc)) {
            delete_netns(name);
        }
    }
}

fn open_netns(name: &str) -> std::fs::File {
    std::fs::File::open(format!("/run/netns/{name}"))
        .unwrap_or_else(|e| panic!("opening /run/netns/{name}: {e}"))
}

/// Run `f` on a thread in network namespace `name`. Sockets it makes, and threads it
/// starts (the stand-ins' servers), stay in that namespace.
fn in_netns<T: Send>(name: &str, f: impl FnOnce() -> T + Send) -> T {
    let ns = open_netns(name);
    std::thread::scope(|s| {
        s.spawn(move || {
            // SAFETY: setns(2) on this thread only, with a namespace fd we opened.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            drop(ns);
            f()
        })
        .join()
        .expect("netns thread")
    })
}

/// `cmd` to be started in network namespace `name` (as `ip netns exec` would, without
/// its mount namespace). It gets SIGTERM if the test's thread that started it dies (a
/// test killed outright): an agent then stops its ksqlDB and exits by itself.
fn netns_command(name: &str, mut cmd: Command) -> Command {
    let ns = open_netns(name);
    // SAFETY: only setns(2) and prctl(2) between fork and exec; the fd is open until the
    // command is spawned (the closure owns the file) and close-on-exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) != 0
                || libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

/// `GET path` on `addr`: status and body, or `None` when nothing answers in time. A
/// stopped server refuses at once; the timeouts only forgive a busy CI machine.
fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    Some((status, body))
}

fn addr(ip: &str, port: u16) -> SocketAddr {
    format!("{ip}:{port}").parse().expect("address")
}

/// The version `/info` reports, if it answers 200 with a `KsqlServerInfo`.
fn info_version(answer: &Option<(u16, String)>) -> Option<String> {
    let (status, body) = answer.as_ref()?;
    if *status != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let info = v.get("KsqlServerInfo")?;
    assert_eq!(info["ksqlServiceId"], SERVICE_ID, "{body}");
    Some(info["version"].as_str()?.to_string())
}

/// One host: its scratch dir and config, and its agent once started.
struct Node {
    host: Host,
    ns: String,
    agent: Option<Agent>,
}

impl Node {
    fn command(&self, args: &[&str]) -> Command {
        netns_command(&self.ns, self.host.command(args))
    }

    /// `ksql-msk ARGS` in this host's namespace, killed at the deadline.
    fn run(&self, deadline: Instant, args: &[&str]) -> (i32, String, String) {
        let mut child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning ksql-msk");
        let (mut out, mut err) = (String::new(), String::new());
        let mut stdout = child.stdout.take().expect("stdout");
        let mut stderr = child.stderr.take().expect("stderr");
        let readers = std::thread::spawn(move || {
            let _ = stdout.read_to_string(&mut out);
            let _ = stderr.read_to_string(&mut err);
            (out, err)
        });
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("cluster test: over its {BUDGET:?} budget running ksql-msk {args:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let (out, err) = readers.join().expect("output readers");
        (status.code().unwrap_or(-1), out, err)
    }

    fn properties(&self) -> String {
        let path = self
            .host
            .state_dir()
            .join("current/etc/ksqldb/ksql-server.properties");
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn property(&self, key: &str) -> Option<String> {
        let prefix = format!("{key}=");
        self.properties()
            .lines()
            .find_map(|l| l.strip_prefix(&prefix).map(str::to_string))
    }
}

/// What the prober saw at one tick: which hosts answered `/info`, and with what version.
struct Probe {
    at: Instant,
    versions: Vec<Option<String>>,
}

impl Probe {
    fn answering(&self) -> usize {
        self.versions.iter().filter(|v| v.is_some()).count()
    }
}

/// From `svc`, GET `/info` on every host every [`PROBE_EVERY`] until stopped.
struct Prober {
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Probe>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Prober {
    fn start(svc: &str) -> Prober {
        let ns = open_netns(svc);
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (s, l) = (stop.clone(), log.clone());
        let thread = std::thread::spawn(move || {
            // SAFETY: setns(2) on this thread only.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            let mut next = Instant::now();
            while !s.load(Ordering::SeqCst) {
                let at = Instant::now();
                let versions = (0..HOSTS)
                    .map(|i| info_version(&http_get(addr(&host_ip(i), 8088), "/info")))
                    .collect();
                l.lock().expect("lock").push(Probe { at, versions });
                next += PROBE_EVERY;
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                } else {
                    next = now;
                }
            }
        });
        Prober {
            stop,
            log,
            thread: Some(thread),
        }
    }

    fn probes(&self) -> usize {
        self.log.lock().expect("lock").len()
    }

    fn finish(mut self) -> Vec<Probe> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().expect("prober");
        }
        std::mem::take(&mut *self.log.lock().expect("lock"))
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

#[test]
fn three_hosts_advertise_themselves_and_survive_a_rolling_upgrade() {
    let started = Instant::now();
    let deadline = started + BUDGET;
    // SAFETY: geteuid(2) cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        skip(
            "KSQL_MSK_REQUIRE_ROOT",
            "the cluster test makes network namespaces and needs root",
        );
        return;
    }
    if Command::new("ip").arg("-V").output().is_err() {
        skip(
            "KSQL_MSK_REQUIRE_ROOT",
            "the cluster test needs `ip` (iproute2; tests/setup-host installs it)",
        );
        return;
    }
    sweep_stale();
    let net = Net::create();
    for host in &net.hosts {
        let routes = ip_output(&["-n", host, "route", "show"]);
        assert!(
            !routes.contains("default") && routes.lines().count() == 1,
            "{host} must reach nothing but the bridge: {routes}"
        );
    }

    // The shared world in svc: one fake MSK, one artifact server with both releases.
    let start_script = format!("#!/bin/sh\nexec '{}' \"$@\"\n", fake_ksqldb().display());
    let svc_ip: std::net::IpAddr = SVC_IP.parse().expect("ip");
    let world = in_netns(&net.svc, || {
        let world = Standins::start_on(svc_ip, "cluster", REGION);
        for v in [OLD, NEW] {
            world.publish_release(v, start_script.as_bytes(), &[]);
        }
        world.publish_jar("1.1.1");
        world
    });
    let mut parts = world.config(OLD, "1.1.1");
    parts.msk.push_str("cluster_wait = \"3s\"\n");

    // Three hosts: own IMDS, own state, the same config.
    let mut imds = Vec::new();
    let mut nodes: Vec<Node> = Vec::new();
    for (i, ns) in net.hosts.iter().enumerate() {
        let ip = host_ip(i);
        imds.push(in_netns(ns, || {
            FakeImds::start_on(addr("169.254.169.254", 80), REGION, &ip)
        }));
        let mut host = Host::new();
        let root = host.dir.path().to_path_buf();
        write_exec(
            &root.join("jdk/bin/java"),
            &standins::java_script("17.0.15"),
        );
        let runtime = root.join("run");
        std::fs::create_dir_all(&runtime).expect("runtime dir");
        host.env("RUNTIME_DIRECTORY", &runtime.display().to_string())
            // The agent asks the default endpoint, 169.254.169.254, as on EC2.
            .env("AWS_EC2_METADATA_DISABLED", "false");
        let agent = "start_timeout = \"20s\"\nstop_timeout = \"3s\"\n\
                     restart_backoff = \"100ms\"\nrestart_backoff_max = \"400ms\"\n\
                     rediscover_interval = \"1h\"\n";
        let config = parts.toml(
            &format!(
                "listeners = \"http://0.0.0.0:8088\"\njava_home = \"{}\"\n",
                root.join("jdk").display()
            ),
            agent,
        );
        host.write_config(&format!(
            "{config}\n[properties]\n\"ksql.service.id\" = \"{SERVICE_ID}\"\n"
        ));
        nodes.push(Node {
            host,
            ns: ns.clone(),
            agent: None,
        });
    }

    for node in &mut nodes {
        node.agent = Some(Fixture::spawn_agent(node.command(&["run"])));
    }
    let control = |n: &Node| -> PathBuf { n.host.dir.path().join("run/control.sock") };
    for (i, node) in nodes.iter().enumerate() {
        let agent = node.agent.as_ref().expect("agent");
        wait_until(deadline, &format!("host {} healthy", i + 1), || {
            check_deadline(deadline, "starting the agents");
            let err = agent.stderr();
            assert!(!err.contains("panicked"), "host {}: {err}", i + 1);
            err.contains("is healthy") && control(node).exists()
        });
    }
    let ready = started.elapsed();

    // Each advertises its own address, and answers on it from the other hosts.
    for (i, node) in nodes.iter().enumerate() {
        assert_eq!(
            node.property("ksql.advertised.listener").as_deref(),
            Some(format!("http://{}:8088", host_ip(i)).as_str()),
            "host {}",
            i + 1
        );
        assert!(
            imds[i]
                .server
                .requests()
                .iter()
                .any(|r| r.path() == "/latest/meta-data/local-ipv4"),
            "host {} never asked its IMDS",
            i + 1
        );
        assert_eq!(
            node.property("ksql.service.id").as_deref(),
            Some(SERVICE_ID)
        );
        assert_eq!(node.property("ksql.internal.listener"), None);
        for (j, other) in net.hosts.iter().enumerate().filter(|(j, _)| *j != i) {
            let answer = in_netns(other, || http_get(addr(&host_ip(i), 8088), "/info"));
            assert_eq!(
                info_version(&answer).as_deref(),
                Some(OLD),
                "host {} asking host {}: {answer:?}",
                j + 1,
                i + 1
            );
        }
    }
    eprintln!(
        "cluster: 3 hosts healthy in {ready:.1?}, each advertising its own address, each answering the other two"
    );

    // The rolling upgrade, one host at a time, each waiting for the previous.
    let prober = Prober::start(&net.svc);
    wait_until(deadline, "the first probes", || prober.probes() >= 5);
    let mut turns = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let from = Instant::now();
        node.host.write_dropin(
            "50-upgrade.toml",
            &format!(
                "[ksqldb]\nversion = \"{NEW}\"\ninternal_listener = \"http://0.0.0.0:8099\"\n"
            ),
        );
        let (code, out, err) = node.run(deadline, &["reload"]);
        assert_eq!(code, 0, "host {} reload:\n{out}\n{err}", i + 1);
        assert!(
            out.starts_with(&format!("reloaded: ksqlDB {NEW} is running")),
            "host {}: {out}",
            i + 1
        );
        // Healthy on the new version as the other hosts see it.
        wait_until(deadline, &format!("host {} on {NEW}", i + 1), || {
            let probes = prober.log.lock().expect("lock");
            probes
                .last()
                .is_some_and(|p| p.at > from && p.versions[i].as_deref() == Some(NEW))
        });
        turns.push((from, Instant::now()));
        // Now it advertises its internal listener, which the others reach.
        assert_eq!(
            node.property("ksql.internal.listener").as_deref(),
            Some("http://0.0.0.0:8099")
        );
        assert_eq!(
            node.property("ksql.advertised.listener").as_deref(),
            Some(format!("http://{}:8099", host_ip(i)).as_str()),
            "host {}",
            i + 1
        );
        for other in net.hosts.iter().enumerate().filter(|(j, _)| *j != i) {
            let answer = in_netns(other.1, || http_get(addr(&host_ip(i), 8099), "/info"));
            assert_eq!(info_version(&answer).as_deref(), Some(NEW), "{answer:?}");
        }
    }
    // A few probes with all three on the new version.
    let end = prober.probes() + 5;
    wait_until(deadline, "the last probes", || prober.probes() >= end);
    let probes = prober.finish();

    let min = probes.iter().map(Probe::answering).min().unwrap_or(0);
    let span = probes.last().expect("probes").at - probes[0].at;
    eprintln!(
        "cluster: rolling upgrade {OLD} -> {NEW}: {} probes over {span:.1?} (every {PROBE_EVERY:?}), at least {min} of {HOSTS} hosts answering /info throughout",
        probes.len()
    );
    for (i, (from, to)) in turns.iter().enumerate() {
        // Down: from its first failed probe to the first one it answered again.
        let failed: Vec<&Probe> = probes.iter().filter(|p| p.versions[i].is_none()).collect();
        let first = failed.first().unwrap_or_else(|| {
            panic!(
                "the prober never saw host {} down: it cannot tell a restart",
                i + 1
            )
        });
        let back = probes
            .iter()
            .find(|p| p.at > first.at && p.versions[i].is_some())
            .expect("back up");
        let outside: Vec<_> = failed
            .iter()
            .filter(|p| p.at < *from || p.at > *to)
            .collect();
        assert!(
            outside.is_empty(),
            "host {} was down outside its own turn ({} probes)",
            i + 1,
            outside.len()
        );
        eprintln!(
            "cluster: host {} ({}): down {:.0?} ({} failed probes), turn {:.1?}",
            i + 1,
            host_ip(i),
            back.at - first.at,
            failed.len(),
            *to - *from
        );
    }
    assert!(min >= 2, "only {min} hosts answered at some point");
    assert!(
        probes
            .last()
            .is_some_and(|p| p.versions.iter().all(|v| v.as_deref() == Some(NEW))),
        "not every host ended on {NEW}"
    );

    for (i, node) in nodes.iter_mut().enumerate() {
        let mut agent = node.agent.take().expect("agent");
        assert_eq!(agent.stop(), 0, "host {}: {}", i + 1, agent.stderr());
    }
    drop(imds);
    drop(world);
    drop(net);
    eprintln!("cluster: whole test {:.1?}", started.elapsed());
}

/// The internal listener without namespaces (any user): on a wildcard address it is
/// advertised with this host's IMDS address and its own port; on a routable one it is
/// written as given, nothing is advertised, and the ksqlDB stand-in serves it.
#[test]
fn an_internal_listener_is_written_advertised_and_served() {
    use crate::support::fixture::{free_port, wait_for};
    let mut fx = Fixture::new("");
    let imds = FakeImds::start(REGION, "10.9.8.7");
    fx.host
        .env("AWS_EC2_METADATA_DISABLED", "false")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds.url());
    let props = || {
        std::fs::read_to_string(fx.release.join("etc/ksqldb/ksql-server.properties"))
            .expect("properties")
    };
    let port = free_port();
    // Rendered by install only: nothing binds the wildcard address.
    fx.host.write_dropin(
        "50-internal.toml",
        &format!("[ksqldb]\ninternal_listener = \"http://0.0.0.0:{port}\"\n"),
    );
    let out = fx.host.run(&["install"]);
    assert_eq!(out.code, 0, "{out:?}");
    let text = props();
    assert!(
        text.contains(&format!("\nksql.internal.listener=http://0.0.0.0:{port}\n"))
            && text.contains(&format!(
                "\nksql.advertised.listener=http://10.9.8.7:{port}\n"
            )),
        "{text}"
    );

    fx.host.write_dropin(
        "50-internal.toml",
        &format!("[ksqldb]\ninternal_listener = \"http://127.0.0.1:{port}\"\n"),
    );
    let mut agent = fx.start();
    wait_for("healthy", || agent.stderr().contains("is healthy"));
    let text = props();
    assert!(
        text.contains(&format!(
            "\nksql.internal.listener=http://127.0.0.1:{port}\n"
        )) && !text.contains("ksql.advertised.listener="),
        "{text}"
    );
    let answer = http_get(addr("127.0.0.1", port), "/info");
    assert_eq!(
        answer.as_ref().map(|(status, _)| *status),
        Some(200),
        "{answer:?}"
    );
    assert!(answer.expect("answer").1.contains("\"KsqlServerInfo\""));
    assert_eq!(agent.stop(), 0, "{}", agent.stderr());
}
