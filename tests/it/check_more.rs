//! `ksql-msk check`, issue 16 item 7: the listener port held by this service's own
//! ksqlDB, the reach of every artifact host, the security-group hint on a broker that
//! does not answer, and SDK errors as one line without the SDK's own log dumps.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use ksql_msk_testkit::msk::DESCRIBE_CLUSTER_V2;
use ksql_msk_testkit::sts::FakeSts;

use crate::support::fixture::{free_port, wait_for, Fixture};
use crate::support::Output;

fn line<'a>(out: &'a Output, s: &str) -> &'a str {
    out.stdout
        .lines()
        .find(|l| (l.starts_with('✓') || l.starts_with('✗')) && l.contains(s))
        .unwrap_or_else(|| panic!("no checklist line with {s:?}: {out:?}"))
}

/// A fixture whose STS and brokers are on loopback (no DNS lookups of MSK names).
fn fixture(sts: &FakeSts) -> (Fixture, std::net::TcpListener) {
    let mut fx = Fixture::new("");
    fx.host.env("AWS_ENDPOINT_URL_STS", &sts.url());
    let broker = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = broker.local_addr().unwrap().port();
    fx.msk.set_brokers(
        &fx.cluster.arn,
        "bootstrapBrokerStringSaslIam",
        Some(&format!("127.0.0.1:{port}")),
    );
    (fx, broker)
}

fn listener_port(fx: &Fixture) -> u16 {
    let text = std::fs::read_to_string(fx.host.config_path()).unwrap();
    let l = text
        .lines()
        .find(|l| l.starts_with("listeners = "))
        .expect("listeners line");
    let port = l.rsplit(':').next().unwrap().trim_end_matches('"');
    port.parse().unwrap()
}

#[test]
fn the_port_held_by_this_services_ksqldb_passes() {
    let sts = FakeSts::start();
    let (fx, _broker) = fixture(&sts);
    let port = listener_port(&fx);
    let mut agent = fx.start();
    wait_for("the stand-in ksqlDB to listen", || {
        !fx.pids().is_empty() && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let pid = *fx.pids().last().unwrap();
    let out = fx.host.run(&["check"]);
    agent.stop();
    let l = line(&out, &format!("port {port}"));
    assert!(l.starts_with('✓'), "{out:?}");
    assert!(
        l.contains(&format!("held by this service's ksqlDB (pid {pid})")),
        "{out:?}"
    );
}

#[test]
fn the_port_held_by_another_process_fails() {
    let sts = FakeSts::start();
    let (fx, _broker) = fixture(&sts);
    let port = listener_port(&fx);
    let _foreign = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let out = fx.host.run(&["check"]);
    let l = line(&out, &format!("port {port}"));
    assert!(l.starts_with('✗'), "{out:?}");
    assert!(l.contains("is in use"), "{out:?}");
    assert!(
        l.contains(&format!("pid {}", std::process::id())),
        "the holder is named: {out:?}"
    );
    assert!(!l.contains("held by this service's ksqlDB"), "{out:?}");
}

#[test]
fn every_artifact_host_is_reached_and_an_unreachable_one_gets_the_hint() {
    let sts = FakeSts::start();
    let (fx, _broker) = fixture(&sts);
    let art = fx.art.url("");
    let art_host = art.trim_start_matches("http://").trim_end_matches('/');
    let out = fx.host.run(&["check"]);
    let l = line(&out, &format!("artifact host {art_host}"));
    assert!(l.starts_with('✓'), "{out:?}");
    let probed = fx.art.server.requests();
    assert!(
        probed
            .iter()
            .any(|r| r.header("range") == Some("bytes=0-0")),
        "the probe asks for one byte: {probed:?}"
    );

    // The key from a loopback port nobody listens on: refused at once.
    let closed = free_port();
    fx.host.write_dropin(
        "60-key.toml",
        &format!("[ksqldb]\nkey_url = \"http://127.0.0.1:{closed}/archive.key\"\n"),
    );
    let out = fx.host.run(&["check"]);
    assert_eq!(out.code, 69, "{out:?}");
    assert!(
        line(&out, &format!("artifact host {art_host}")).starts_with('✓'),
        "{out:?}"
    );
    let l = line(&out, &format!("artifact host 127.0.0.1:{closed}"));
    assert!(l.starts_with('✗'), "{out:?}");
    assert!(l.contains("archive.key"), "names the URL: {out:?}");
    assert!(
        l.contains("NAT") && l.contains("HTTPS_PROXY") && l.contains("mirror"),
        "the hint: {out:?}"
    );
}

/// A loopback listener that never accepts, with its accept queue filled: Linux then
/// drops further SYNs (net.ipv4.tcp_abort_on_overflow is 0 by default), so a connect
/// hangs like one to a security group that drops the packets. Returns the port and what
/// must stay open.
fn blackhole() -> (u16, OwnedFd, Vec<std::net::TcpStream>) {
    // SAFETY: plain socket calls on a descriptor this function owns.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
    assert!(fd >= 0);
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    addr.sin_family = libc::AF_INET as libc::sa_family_t;
    addr.sin_addr.s_addr = u32::from_be_bytes([127, 0, 0, 1]).to_be();
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &addr as *const _ as *const libc::sockaddr,
            len,
        )
    };
    assert_eq!(rc, 0);
    assert_eq!(unsafe { libc::listen(fd.as_raw_fd(), 0) }, 0);
    let mut got: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    let mut got_len = len;
    let rc = unsafe {
        libc::getsockname(
            fd.as_raw_fd(),
            &mut got as *mut _ as *mut libc::sockaddr,
            &mut got_len,
        )
    };
    assert_eq!(rc, 0);
    let port = u16::from_be(got.sin_port);
    // Fill the queue until a connect no longer completes.
    let mut held = Vec::new();
    for _ in 0..8 {
        match std::net::TcpStream::connect_timeout(
            &(std::net::Ipv4Addr::LOCALHOST, port).into(),
            std::time::Duration::from_millis(300),
        ) {
            Ok(s) => held.push(s),
            Err(_) => return (port, fd, held),
        }
    }
    panic!("the accept queue of a backlog-0 listener never filled");
}

#[test]
fn a_broker_that_does_not_answer_gets_the_security_group_rule() {
    let sts = FakeSts::start();
    let (port, _fd, _held) = blackhole();
    let mut fx = Fixture::new("");
    fx.host.env("AWS_ENDPOINT_URL_STS", &sts.url());
    fx.msk.set_brokers(
        &fx.cluster.arn,
        "bootstrapBrokerStringSaslIam",
        Some(&format!("127.0.0.1:{port}")),
    );
    let out = fx.host.run(&["check"]);
    assert_eq!(out.code, 69, "{out:?}");
    let l = line(&out, &format!("broker 127.0.0.1:{port}: TCP"));
    assert!(
        l.starts_with('✗') && l.contains("no answer within"),
        "{out:?}"
    );
    assert!(
        l.contains(&format!("inbound TCP {port}"))
            && l.contains("cluster's security group")
            && l.contains("this instance's security group"),
        "{out:?}"
    );
}

#[test]
fn sdk_errors_are_one_line_without_the_sdks_log_dumps() {
    let sts = FakeSts::start();
    let (mut fx, _broker) = fixture(&sts);
    // No credentials anywhere and an IMDS that is not there (a loopback port nobody
    // listens on), as on a host without an instance role: the chain fails, and the
    // SDK logs each provider's failure at WARN.
    fx.host
        .unset_env("AWS_ACCESS_KEY_ID")
        .unset_env("AWS_SECRET_ACCESS_KEY")
        .unset_env("AWS_SESSION_TOKEN")
        .env("AWS_EC2_METADATA_DISABLED", "false")
        .env(
            "AWS_EC2_METADATA_SERVICE_ENDPOINT",
            &format!("http://127.0.0.1:{}", free_port()),
        );
    fx.msk.answer_next_raw(
        DESCRIBE_CLUSTER_V2,
        500,
        "garbage\n<html>{not json\n</html>",
    );
    // A container credentials endpoint that refuses: the chain's provider fails (not
    // just "not enabled"), which the SDK logs at WARN with a Debug dump of the error.
    fx.host.env(
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        &format!("http://127.0.0.1:{}/creds", free_port()),
    );
    let out = fx.host.run(&["check"]);
    assert_eq!(out.code, 69, "{out:?}");
    let identity = line(&out, "AWS identity");
    assert!(identity.starts_with('✗'), "{out:?}");
    assert!(!identity.contains("ProviderError"), "{out:?}");
    let cluster = line(&out, "cluster: ");
    assert!(cluster.starts_with('✗'), "{out:?}");
    assert!(!cluster.contains("<html>"), "{out:?}");
    assert!(!out.stderr.contains("WARN"), "no SDK log lines: {out:?}");
    assert!(!out.stderr.contains("ProviderError"), "{out:?}");
    // Every line of stdout is a checklist line or the summary.
    for l in out.stdout.lines() {
        assert!(
            l.starts_with('✓') || l.starts_with('✗') || l.ends_with("checks passed"),
            "a stray line {l:?}: {out:?}"
        );
    }
}

#[test]
fn a_creating_cluster_names_the_bound_check_waited() {
    let sts = FakeSts::start();
    let (fx, _broker) = fixture(&sts);
    let creating = ksql_msk_testkit::msk::Cluster::active("young", crate::support::REGION)
        .with_states(&["CREATING"]);
    fx.msk.add(creating.clone());
    fx.host.write_dropin(
        "60-young.toml",
        &format!("[msk]\ncluster_arn = \"{}\"\n", creating.arn),
    );
    let started = std::time::Instant::now();
    let out = fx.host.run(&["check"]);
    let took = started.elapsed();
    assert_eq!(out.code, 69, "{out:?}");
    let l = line(&out, "cluster: ");
    assert!(l.contains("is still CREATING"), "{out:?}");
    // The fixture's msk.cluster_wait is 3s; check waits less, and says so.
    assert!(
        l.contains("check waits at most 2s") && l.contains("msk.cluster_wait = 3s"),
        "{out:?}"
    );
    assert!(
        took < std::time::Duration::from_secs(3),
        "{took:?}: {out:?}"
    );
}

#[test]
fn artifact_hosts_are_probed_through_the_configured_proxy() {
    use ksql_msk_testkit::http::{handler, response, Server};
    let sts = FakeSts::start();
    let (mut fx, _broker) = fixture(&sts);
    // A proxy on loopback that answers every request with one byte.
    let proxy = Server::start(handler(|_| {
        response(206, &[("content-range", "bytes 0-0/1")], "x")
    }));
    // Every artifact on a loopback port nobody listens on: only the proxy can answer.
    let closed = free_port();
    fx.host.write_dropin(
        "60-mirror.toml",
        &format!(
            "[ksqldb]\narchive_url = \"http://127.0.0.1:{closed}/k.tar.gz\"\nkey_url = \"http://127.0.0.1:{closed}/k.key\"\n[iam_auth]\njar_url = \"http://127.0.0.1:{closed}/iam.jar\"\n"
        ),
    );
    let out = fx.host.run(&["check"]);
    let l = line(&out, &format!("artifact host 127.0.0.1:{closed}"));
    assert!(l.starts_with('✗'), "no proxy, no answer: {out:?}");

    fx.host.env("HTTP_PROXY", &proxy.url());
    let out = fx.host.run(&["check"]);
    let l = line(&out, &format!("artifact host 127.0.0.1:{closed}"));
    assert!(l.starts_with('✓') && l.contains("4 URLs"), "{out:?}");
    let asked = proxy.requests();
    let host = format!("127.0.0.1:{closed}");
    assert!(
        asked
            .iter()
            .any(|r| r.target.ends_with("/k.tar.gz") && r.header("host") == Some(host.as_str())),
        "the proxy was asked for the archive: {asked:?}"
    );
}

/// A host without CA certificates cannot fetch from an https mirror whatever its route:
/// the line says so instead of blaming NAT or a proxy.
#[test]
fn an_https_artifact_host_without_ca_names_the_missing_certificates() {
    use ksql_msk_testkit::hostile::{TestCa, TlsFront};
    let sts = FakeSts::start();
    let (mut fx, _broker) = fixture(&sts);
    let ca = TestCa::generate(&fx.host.dir.path().join("ca"));
    let tls = TlsFront::start(&ca, fx.art.server.addr);
    fx.host.write_dropin(
        "60-https.toml",
        &format!("[ksqldb]\narchive_url = \"{}/k.tar.gz\"\n", tls.url()),
    );
    let dir = fx.host.dir.path().join("no-ca");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("bundle.pem"), "").unwrap();
    fx.host
        .env(
            "SSL_CERT_FILE",
            &dir.join("bundle.pem").display().to_string(),
        )
        .env("SSL_CERT_DIR", &dir.join("empty").display().to_string());
    let out = fx.host.run(&["check"]);
    assert_eq!(out.code, 69, "{out:?}");
    let host = tls.url().trim_start_matches("https://").to_string();
    let l = line(&out, &format!("artifact host {host}"));
    assert!(l.starts_with('✗'), "{out:?}");
    assert!(l.contains("no trusted CA certificates"), "{out:?}");
    assert!(!l.contains("NAT"), "{out:?}");
}

/// A mirror whose certificate no trusted CA signed: the route is there, the trust is
/// not, and the line says which setting adds it.
#[test]
fn an_https_artifact_host_with_an_unknown_ca_names_extra_ca() {
    use ksql_msk_testkit::hostile::{TestCa, TlsFront};
    let sts = FakeSts::start();
    let (fx, _broker) = fixture(&sts);
    let ca = TestCa::generate(&fx.host.dir.path().join("ca"));
    let tls = TlsFront::start(&ca, fx.art.server.addr);
    fx.host.write_dropin(
        "60-https.toml",
        &format!("[ksqldb]\narchive_url = \"{}/k.tar.gz\"\n", tls.url()),
    );
    let out = fx.host.run(&["check"]);
    assert_eq!(out.code, 69, "{out:?}");
    let host = tls.url().trim_start_matches("https://").to_string();
    let l = line(&out, &format!("artifact host {host}"));
    assert!(l.starts_with('✗'), "{out:?}");
    assert!(
        l.contains("certificate") && l.contains("agent.extra_ca"),
        "{out:?}"
    );
    assert!(!l.contains("NAT"), "{out:?}");
}
