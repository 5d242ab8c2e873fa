//! `[metrics]`: JMX bound to loopback (`jmx_port`) and the Prometheus JMX exporter java
//! agent (`prometheus_port`), whose jar is fetched, pinned or trusted on first use, kept
//! in `<state_dir>/exporter/` and hashed again before every start.
//!
//! The real exporter jar cannot be downloaded here (no network): the artifact server
//! serves stand-in bytes, and the real-JVM test serves a java agent built in the test
//! (tests/java/ArgsAgent.java) that records the argument string and jar it was loaded
//! with.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::fixture::*;
use crate::support::world::sha256_hex;
use crate::support::{error_line, repo_root, skip};

const JAR_PATH: &str = "/jmx_exporter/1.6.0/jmx_prometheus_javaagent-1.6.0.jar";
const JAR_NAME: &str = "jmx_prometheus_javaagent-1.6.0.jar";
const JAR: &[u8] = b"PK\x03\x04 stand-in Prometheus JMX exporter 1.6.0";

/// Serve `jar` as the exporter, with its published `.sha256`; its URL.
fn publish(fx: &Fixture, jar: &[u8]) -> String {
    fx.art.put(
        &format!("{JAR_PATH}.sha256"),
        format!("{}  {JAR_NAME}\n", sha256_hex(jar)),
    );
    fx.art.put(JAR_PATH, jar.to_vec())
}

/// A rules file in the host's temp dir.
fn rules(fx: &Fixture) -> PathBuf {
    let path = fx.host.dir.path().join("ksqldb-rules.yml");
    std::fs::write(&path, "rules:\n  - pattern: \".*\"\n").unwrap();
    path
}

/// The `[metrics]` drop-in for the exporter on `port`, pinned to `sha256` if given.
fn exporter_dropin(url: &str, port: u16, rules: &Path, sha256: Option<&str>) -> String {
    format!(
        "[metrics]\nprometheus_port = {port}\nexporter_url = \"{url}\"\nprometheus_rules = \"{}\"\nexporter_sha256 = \"{}\"\n",
        rules.display(),
        sha256.unwrap_or_default()
    )
}

fn exporter_jar(fx: &Fixture) -> PathBuf {
    fx.host.state_dir().join("exporter").join(JAR_NAME)
}

fn trust_toml(fx: &Fixture) -> String {
    std::fs::read_to_string(fx.host.state_dir().join("trust.toml")).unwrap_or_default()
}

#[test]
fn the_exporter_is_loaded_from_the_pinned_jar_with_the_rules_and_bind_port() {
    let fx = Fixture::new("");
    fx.mode("healthy_after_ms=100\n");
    let url = publish(&fx, JAR);
    let rules = rules(&fx);
    let port = free_port();
    fx.host.write_dropin(
        "60-metrics.toml",
        &exporter_dropin(&url, port, &rules, Some(&sha256_hex(JAR))),
    );
    fx.host.write_dropin(
        "61-jvm.toml",
        "[ksqldb]\njvm_opts = \"-Xss2m\"\n[metrics]\nprometheus_bind = \"127.0.0.1\"\n",
    );
    let trust_before = trust_toml(&fx);
    let out = fx.host.run(&["install", "--dry-run"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains(&format!(
            "would download {url} into {}",
            exporter_jar(&fx).display()
        )),
        "{out:?}"
    );
    let mut agent = fx.start();
    wait_for("healthy", || agent.stderr().contains("is healthy"));
    let jar = exporter_jar(&fx);
    let env = fx.child_env();
    assert_eq!(
        env["KSQL_OPTS"],
        format!(
            "-javaagent:{}=127.0.0.1:{port}:{} -Xss2m",
            jar.display(),
            rules.display()
        ),
        "{env:?}"
    );
    assert!(!env.contains_key("KSQL_JMX_OPTS"), "{env:?}");
    assert_eq!(std::fs::read(&jar).unwrap(), JAR);
    // Not on ksqlDB's classpath, not in the release.
    assert!(!jar.starts_with(&fx.release));
    // A pin is strict: nothing recorded on first use, no .sha256 fetched.
    assert_eq!(trust_toml(&fx), trust_before);
    assert!(fx
        .art
        .requests_for(&format!("{JAR_PATH}.sha256"))
        .is_empty());
    assert_eq!(agent.stop(), 0);
    let out = fx.host.run(&["install", "--dry-run"]);
    assert!(
        out.stdout.contains(&format!(
            "Prometheus JMX exporter 1.6.0 is installed in {}",
            jar.display()
        )),
        "{out:?}"
    );

    // `verify` checks it too.
    let out = fx.host.run(&["verify"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains(&format!(
            "exporter jar {}: SHA-256 {} as expected (metrics.exporter_sha256)",
            jar.display(),
            sha256_hex(JAR)
        )),
        "{out:?}"
    );
    std::fs::write(&jar, b"PK\x03\x04 planted").unwrap();
    let out = fx.host.run(&["verify"]);
    assert_eq!(out.code, 65, "{out:?}");
    assert!(error_line(&out).contains(&sha256_hex(JAR)), "{out:?}");
}

#[test]
fn a_jar_that_does_not_match_its_pin_is_refused_with_65_and_nothing_changes() {
    let fx = Fixture::new("");
    let url = publish(&fx, JAR);
    let rules = rules(&fx);
    let wrong = "ab".repeat(32);
    fx.host.write_dropin(
        "60-metrics.toml",
        &exporter_dropin(&url, free_port(), &rules, Some(&wrong)),
    );
    let props = fx.release.join("etc/ksqldb/ksql-server.properties");
    let before = std::fs::read(&props).unwrap();
    let current = std::fs::read_link(fx.host.state_dir().join("current")).unwrap();
    let out = fx.host.run(&["install"]);
    assert_eq!(out.code, 65, "{out:?}");
    let line = error_line(&out);
    assert!(
        line.contains(&url) && line.contains(&sha256_hex(JAR)) && line.contains(&wrong),
        "{line}"
    );
    assert_eq!(out.stderr.matches("ksql-msk: error:").count(), 1, "{out:?}");
    assert!(!exporter_jar(&fx).exists());
    assert_eq!(std::fs::read(&props).unwrap(), before);
    assert_eq!(
        std::fs::read_link(fx.host.state_dir().join("current")).unwrap(),
        current
    );
    // `run` refuses the same way, before ksqlDB starts.
    let out = fx.host.run(&["run"]);
    assert_eq!(out.code, 65, "{out:?}");
    assert!(fx.pids().is_empty(), "ksqlDB never started");
}

#[test]
fn trust_on_first_use_records_the_hash_and_refuses_a_different_jar_later() {
    let fx = Fixture::new("");
    let url = publish(&fx, JAR);
    let rules = rules(&fx);
    fx.host.write_dropin(
        "60-metrics.toml",
        &exporter_dropin(&url, free_port(), &rules, None),
    );
    let out = fx.host.run(&["install"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "TRUST ON FIRST USE: accepted the Prometheus JMX exporter jar {url} with SHA-256 {}",
            sha256_hex(JAR)
        )),
        "{out:?}"
    );
    let trust = trust_toml(&fx);
    assert!(
        trust.contains(&format!(
            "[exporter_sha256]\n\"{url}\" = \"{}\"",
            sha256_hex(JAR)
        )),
        "{trust}"
    );
    // Installed and unchanged: nothing is fetched again.
    let fetched = fx.art.requests_for(JAR_PATH).len();
    let out = fx.host.run(&["install"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(fx.art.requests_for(JAR_PATH).len(), fetched);

    // The mirror now serves another jar (and a matching .sha256): once the jar must be
    // fetched again, it is refused against the recorded hash.
    let evil = b"PK\x03\x04 another exporter";
    publish(&fx, evil);
    std::fs::remove_file(exporter_jar(&fx)).unwrap();
    let out = fx.host.run(&["install"]);
    assert_eq!(out.code, 65, "{out:?}");
    let line = error_line(&out);
    assert!(
        line.contains(&url)
            && line.contains(&sha256_hex(evil))
            && line.contains(&sha256_hex(JAR))
            && line.contains("recorded on first use in trust.toml"),
        "{line}"
    );
    assert_eq!(trust_toml(&fx), trust, "the record stays");
    assert!(!exporter_jar(&fx).exists());
}

#[test]
fn a_planted_jar_is_never_started_fetched_again_by_a_run_and_refused_by_a_restart() {
    let fx = Fixture::new("");
    fx.mode("healthy_after_ms=100\n");
    let url = publish(&fx, JAR);
    let rules = rules(&fx);
    fx.host.write_dropin(
        "60-metrics.toml",
        &exporter_dropin(&url, free_port(), &rules, Some(&sha256_hex(JAR))),
    );
    assert_eq!(fx.host.run(&["install"]).code, 0);
    let jar = exporter_jar(&fx);
    let planted = b"PK\x03\x04 planted by ksqlDB";

    // Phases 1-5 find it changed and fetch the pinned one again before starting.
    std::fs::write(&jar, planted).unwrap();
    let mut agent = fx.start();
    wait_for("healthy", || agent.stderr().contains("is healthy"));
    let err = agent.stderr();
    assert!(
        err.contains(&format!(
            "{}: SHA-256 is {}, expected {} (metrics.exporter_sha256): not used, fetching it again",
            jar.display(),
            sha256_hex(planted),
            sha256_hex(JAR)
        )),
        "{err}"
    );
    assert_eq!(std::fs::read(&jar).unwrap(), JAR);

    // Changed while ksqlDB runs: the restart after ksqlDB's exit is refused (65).
    std::fs::write(&jar, planted).unwrap();
    let pid = fx.pids()[0];
    // SAFETY: kill(2) on the stand-in ksqlDB this test started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    assert_eq!(agent.wait(), 65);
    let err = agent.stderr();
    assert!(
        err.contains(&format!(
            "{}: SHA-256 is {}, expected {}",
            jar.display(),
            sha256_hex(planted),
            sha256_hex(JAR)
        )) && err.contains("refusing to start ksqlDB with a changed exporter jar"),
        "{err}"
    );
    assert_eq!(fx.pids().len(), 1, "never started again");
}

#[test]
fn jmx_port_adds_exactly_the_loopback_options_and_turning_it_off_restarts() {
    let fx = Fixture::new("");
    fx.mode("healthy_after_ms=100\n");
    let port = free_port();
    fx.host.write_dropin(
        "60-metrics.toml",
        &format!("[metrics]\njmx_port = {port}\n"),
    );
    let mut agent = fx.start();
    wait_for("healthy", || agent.stderr().contains("is healthy"));
    let env = fx.child_env();
    assert_eq!(
        env["KSQL_JMX_OPTS"],
        format!(
            "-Dcom.sun.management.jmxremote -Dcom.sun.management.jmxremote.port={port} \
             -Dcom.sun.management.jmxremote.rmi.port={port} \
             -Dcom.sun.management.jmxremote.host=127.0.0.1 -Djava.rmi.server.hostname=127.0.0.1 \
             -Dcom.sun.management.jmxremote.authenticate=false -Dcom.sun.management.jmxremote.ssl=false \
             -Dcom.sun.management.jmxremote.local.only=true"
        )
    );
    assert!(!env.contains_key("JMX_PORT") && !env.contains_key("KSQL_OPTS"));

    // Off again: a reload restarts ksqlDB without them.
    fx.host
        .write_dropin("60-metrics.toml", "[metrics]\njmx_port = 0\n");
    agent.signal(libc::SIGHUP);
    wait_for("the restart", || fx.pids().len() == 2);
    wait_for("the new environment", || {
        !fx.child_env().is_empty() && !fx.child_env().contains_key("KSQL_JMX_OPTS")
    });
    assert!(
        agent
            .stderr()
            .contains("restarting ksqlDB: JVM environment changed: KSQL_JMX_OPTS unset"),
        "{}",
        agent.stderr()
    );
    assert_eq!(agent.stop(), 0);
}

// --- a real JVM --------------------------------------------------------------------

fn have_java() -> bool {
    match Command::new("java").arg("-version").output() {
        Ok(o) if o.status.success() => true,
        Ok(o) => {
            skip(
                "KSQL_MSK_REQUIRE_JAVA",
                &format!("the real-JVM metrics tests: `java -version` failed: {o:?}"),
            );
            false
        }
        Err(e) => {
            skip(
                "KSQL_MSK_REQUIRE_JAVA",
                &format!("the real-JVM metrics tests: cannot run `java`: {e}"),
            );
            false
        }
    }
}

fn java_source(name: &str) -> String {
    repo_root()
        .join("tests/java")
        .join(name)
        .display()
        .to_string()
}

/// A fixture whose start script first starts a real JVM in the background, with the
/// options the agent gave ksqlDB, composed as ksql-run-class composes them (unquoted,
/// so split on whitespace): JMX, then KSQL_OPTS.
fn real_jvm_fixture() -> Fixture {
    let before = format!(
        "java $KSQL_JMX_OPTS $KSQL_OPTS '{}' \"$(dirname \"$0\")/../real-jvm.pid\" \
         > \"$(dirname \"$0\")/../real-jvm.out\" 2>&1 &\n",
        java_source("JmxWait.java")
    );
    let fx = Fixture::with_start_prefix("", &before);
    fx.mode("healthy_after_ms=100\n");
    fx
}

fn real_jvm_pid(fx: &Fixture) -> i32 {
    let path = fx.control("real-jvm.pid");
    let mut pid = None;
    wait_for("the real JVM to start", || {
        pid = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| t.trim().parse().ok());
        pid.is_some()
    });
    pid.unwrap()
}

/// The TCP sockets `pid` listens on (IPv4 and IPv6), from /proc.
fn listening(pid: i32) -> Vec<SocketAddr> {
    let mut inodes = std::collections::HashSet::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
    {
        if let Ok(target) = std::fs::read_link(fd.path()) {
            let t = target.to_string_lossy().into_owned();
            if let Some(i) = t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                inodes.insert(i.to_string());
            }
        }
    }
    let mut out = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 || f[3] != "0A" || !inodes.contains(f[9]) {
                continue;
            }
            let (addr, port) = f[1].split_once(':').unwrap();
            let port = u16::from_str_radix(port, 16).unwrap();
            let bytes: Vec<u8> = (0..addr.len() / 2)
                .map(|i| u8::from_str_radix(&addr[2 * i..2 * i + 2], 16).unwrap())
                .collect();
            // /proc prints each 32-bit word in host (little-endian) order.
            let words: Vec<u8> = bytes
                .chunks(4)
                .flat_map(|w| w.iter().rev().copied().collect::<Vec<_>>())
                .collect();
            let ip: IpAddr = if words.len() == 4 {
                Ipv4Addr::new(words[0], words[1], words[2], words[3]).into()
            } else {
                let a: [u8; 16] = words.try_into().unwrap();
                let v6 = std::net::Ipv6Addr::from(a);
                // Java binds IPv4 addresses through dual-stack sockets: ::ffff:127.0.0.1.
                match v6.to_ipv4_mapped() {
                    Some(v4) => v4.into(),
                    None => v6.into(),
                }
            };
            out.push(SocketAddr::new(ip, port));
        }
    }
    out
}

/// A non-loopback IPv4 address of this machine, if it has one.
fn non_loopback_ipv4() -> Option<Ipv4Addr> {
    let mut ifaddrs: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills a list we free below.
    if unsafe { libc::getifaddrs(&mut ifaddrs) } != 0 {
        return None;
    }
    let mut found = None;
    let mut cur = ifaddrs;
    while !cur.is_null() {
        // SAFETY: walking the list getifaddrs returned.
        let ifa = unsafe { &*cur };
        if !ifa.ifa_addr.is_null()
            // SAFETY: ifa_addr points to a sockaddr of the family it names.
            && i32::from(unsafe { (*ifa.ifa_addr).sa_family }) == libc::AF_INET
        {
            // SAFETY: an AF_INET address is a sockaddr_in.
            let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            if !ip.is_loopback() {
                found = Some(ip);
                break;
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: freeing what getifaddrs allocated.
    unsafe { libc::freeifaddrs(ifaddrs) };
    found
}

#[test]
fn a_real_jvm_with_the_agents_jmx_options_listens_on_loopback_only() {
    if !have_java() {
        return;
    }
    let fx = real_jvm_fixture();
    let port = free_port();
    fx.host.write_dropin(
        "60-metrics.toml",
        &format!("[metrics]\njmx_port = {port}\n"),
    );
    let mut agent = fx.start();
    let pid = real_jvm_pid(&fx);
    let sockets = listening(pid);
    let loopback = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port);
    assert!(
        sockets.contains(&loopback),
        "{sockets:?}; {}",
        std::fs::read_to_string(fx.control("real-jvm.out")).unwrap_or_default()
    );
    // The JMX port (registry and connector) is bound to 127.0.0.1 and nothing else.
    let on_port: Vec<_> = sockets.iter().filter(|s| s.port() == port).collect();
    assert_eq!(on_port, [&loopback], "{sockets:?}");
    // Besides it only the JVM's local connector (an ephemeral port that closes every
    // connection not from this host: local.only=true).
    assert!(sockets.len() <= 2, "{sockets:?}");
    // From another address of this machine, the JMX port is not there.
    match non_loopback_ipv4() {
        Some(ip) => {
            let r = TcpStream::connect_timeout(
                &SocketAddr::new(ip.into(), port),
                Duration::from_secs(2),
            );
            assert!(r.is_err(), "connected to {ip}:{port}");
        }
        None => eprintln!("note: no non-loopback IPv4 address here; only /proc was checked"),
    }
    // A JMX client (jconsole's way: registry, then the connector its stub names) gets
    // through the one port on 127.0.0.1.
    let out = Command::new("java")
        .arg(java_source("JmxClient.java"))
        .arg("127.0.0.1")
        .arg(port.to_string())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("pid={pid}"),
        "{out:?}"
    );
    assert_eq!(agent.stop(), 0);
}

/// Build tests/java/ArgsAgent.java into a java agent jar; its bytes.
fn args_agent_jar(dir: &Path) -> Vec<u8> {
    let classes = dir.join("classes");
    std::fs::create_dir_all(&classes).unwrap();
    let javac = Command::new("javac")
        .arg("-d")
        .arg(&classes)
        .arg(java_source("ArgsAgent.java"))
        .output()
        .expect("javac");
    assert!(javac.status.success(), "{javac:?}");
    let manifest = dir.join("manifest.txt");
    std::fs::write(&manifest, "Premain-Class: ArgsAgent\n").unwrap();
    let jar = dir.join("agent.jar");
    let out = Command::new("jar")
        .arg("cfm")
        .arg(&jar)
        .arg(&manifest)
        .arg("-C")
        .arg(&classes)
        .arg("ArgsAgent.class")
        .output()
        .expect("jar");
    assert!(out.status.success(), "{out:?}");
    std::fs::read(&jar).unwrap()
}

#[test]
fn a_real_jvm_loads_the_pinned_jar_as_a_java_agent_with_bind_port_and_rules() {
    if !have_java() {
        return;
    }
    if Command::new("javac").arg("-version").output().is_err() {
        skip("KSQL_MSK_REQUIRE_JAVA", "the java agent test: no javac");
        return;
    }
    let fx = real_jvm_fixture();
    let agent_jar = args_agent_jar(fx.host.dir.path());
    let url = publish(&fx, &agent_jar);
    let rules = rules(&fx);
    let port = free_port();
    fx.host.write_dropin(
        "60-metrics.toml",
        &exporter_dropin(&url, port, &rules, Some(&sha256_hex(&agent_jar))),
    );
    let mut agent = fx.start();
    real_jvm_pid(&fx);
    let loaded = std::fs::read_to_string(format!("{}.loaded", rules.display())).unwrap();
    assert_eq!(
        loaded,
        format!(
            "args=127.0.0.1:{port}:{}\njar={}\n",
            rules.display(),
            exporter_jar(&fx).display()
        )
    );
    assert_eq!(agent.stop(), 0);
}

#[test]
fn check_names_a_metrics_port_in_use_and_a_missing_rules_file() {
    let sts = ksql_msk_testkit::sts::FakeSts::start();
    let mut fx = Fixture::new("");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_port = busy.local_addr().unwrap().port();
    let free = free_port();
    fx.host.write_dropin(
        "60-metrics.toml",
        &format!(
            "[metrics]\njmx_port = {busy_port}\nprometheus_port = {free}\nprometheus_rules = \"/nonexistent/rules.yml\"\n"
        ),
    );
    fx.host.env("AWS_ENDPOINT_URL_STS", &sts.url());
    let out = fx.host.run(&["check"]);
    assert_eq!(out.code, 69, "{out:?}");
    let line = |s: &str| {
        out.stdout
            .lines()
            .find(|l| l.contains(s))
            .unwrap_or_else(|| panic!("no line with {s:?}: {out:?}"))
            .to_string()
    };
    assert!(
        line(&format!("metrics.jmx_port: port {busy_port} is in use")).starts_with('✗'),
        "{out:?}"
    );
    assert!(
        line(&format!("metrics.prometheus_port: port {free} is free")).starts_with('✓'),
        "{out:?}"
    );
    assert!(
        line("metrics.prometheus_rules: /nonexistent/rules.yml").starts_with('✗'),
        "{out:?}"
    );
    drop(busy);
}

/// The shipped rules name ksqlDB's query, Kafka Streams, consumer and producer MBeans
/// (samples in the exporter's match format, names from ksqlDB's metrics reference), as
/// the exporter would: tests/jmx-exporter/name-metrics.py applies the rules the way the
/// exporter does (the exporter itself cannot be downloaded here).
#[test]
fn the_shipped_rules_name_ksqldbs_mbeans() {
    let have_yaml = Command::new("python3")
        .args(["-c", "import yaml"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_yaml {
        skip(
            "KSQL_MSK_REQUIRE_PYYAML",
            "the rules test: no python3 with the yaml module (python3-yaml)",
        );
        return;
    }
    let samples: &[(&str, &str)] = &[
        (
            "io.confluent.ksql.metrics<type=_confluent-ksql-engine-query-stats, ksql_service_id=default_><>num-persistent-queries: 3.0",
            "ksql_engine_query_stats_num_persistent_queries{ksql_service_id=\"default_\"}",
        ),
        (
            "io.confluent.ksql.metrics<type=_confluent-ksql-default_ksql-engine-query-stats><>messages-consumed-per-sec: 1.5",
            "ksql_engine_query_stats_messages_consumed_per_sec{ksql_service_id=\"default_\"}",
        ),
        (
            "io.confluent.ksql.metrics<type=ksql-queries, status=_confluent-ksql-default_query_CSAS_ORDERS_1><>query-status: RUNNING",
            "ksql_query_query_status{status=\"_confluent-ksql-default_query_CSAS_ORDERS_1\",state=\"RUNNING\"}",
        ),
        (
            "io.confluent.ksql.metrics<type=consumer-metrics, key=CSAS_ORDERS_1, id=c-1><>consumer-messages-per-sec: 2.0",
            "ksql_consumer_metrics_consumer_messages_per_sec{key=\"CSAS_ORDERS_1\",id=\"c-1\"}",
        ),
        (
            "io.confluent.ksql.metrics<type=producer-metrics, key=CSAS_ORDERS_1, id=p-1><>total-messages: 7.0",
            "ksql_producer_metrics_total_messages{key=\"CSAS_ORDERS_1\",id=\"p-1\"}",
        ),
        (
            "io.confluent.ksql.metrics<type=_confluent-ksql-rest-app-command-runner><>status: RUNNING",
            "ksql_command_runner_status{status=\"RUNNING\"}",
        ),
        (
            "io.confluent.ksql.metrics<type=_ksql-rocksdb-aggregates><>block-cache-usage: 1024.0",
            "ksql_ksql_rocksdb_aggregates_block_cache_usage",
        ),
        (
            "kafka.streams<type=stream-thread-metrics, thread-id=t-1><>process-rate: 5.0",
            "kafka_streams_stream_thread_metrics_process_rate{thread_id=\"t-1\"}",
        ),
        (
            "kafka.streams<type=stream-task-metrics, thread-id=t-1, task-id=0_1><>process-total: 5.0",
            "kafka_streams_stream_task_metrics_process_total{thread_id=\"t-1\",task_id=\"0_1\"}",
        ),
        (
            "kafka.streams<type=stream-state-metrics, thread-id=t-1, task-id=0_1, rocksdb-state-id=agg><>put-rate: 1.0",
            "kafka_streams_stream_state_metrics_put_rate{thread_id=\"t-1\",task_id=\"0_1\",rocksdb_state_id=\"agg\"}",
        ),
        (
            "kafka.streams<type=stream-metrics, client-id=app-1><>state: RUNNING",
            "kafka_streams_stream_metrics_info{client_id=\"app-1\",state=\"RUNNING\"}",
        ),
        (
            "kafka.consumer<type=consumer-fetch-manager-metrics, client-id=c-1><>records-lag-max: 4.0",
            "kafka_consumer_consumer_fetch_manager_metrics_records_lag_max{client_id=\"c-1\"}",
        ),
        (
            "kafka.consumer<type=consumer-fetch-manager-metrics, client-id=c-1, topic=orders, partition=0><>records-lag: 4.0",
            "kafka_consumer_consumer_fetch_manager_metrics_records_lag{client_id=\"c-1\",topic=\"orders\",partition=\"0\"}",
        ),
        (
            "kafka.consumer<type=consumer-coordinator-metrics, client-id=c-1><>rebalance-total: 2.0",
            "kafka_consumer_consumer_coordinator_metrics_rebalance_total{client_id=\"c-1\"}",
        ),
        (
            "kafka.producer<type=producer-metrics, client-id=p-1><>record-send-rate: 9.0",
            "kafka_producer_producer_metrics_record_send_rate{client_id=\"p-1\"}",
        ),
        (
            "kafka.producer<type=producer-topic-metrics, client-id=p-1, topic=orders><>record-send-total: 9.0",
            "kafka_producer_producer_topic_metrics_record_send_total{client_id=\"p-1\",topic=\"orders\"}",
        ),
        ("java.lang<type=Memory><>HeapMemoryUsage: 1", "UNMATCHED"),
    ];
    let input: String = samples.iter().map(|(s, _)| format!("{s}\n")).collect();
    let mut child = Command::new("python3")
        .arg(repo_root().join("tests/jmx-exporter/name-metrics.py"))
        .arg(repo_root().join("packaging/jmx-exporter/ksqldb.yml"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    let expected: Vec<&str> = samples.iter().map(|(_, n)| *n).collect();
    assert_eq!(names, expected);
}
