//! `ksql-msk check`: the preflight checklist against fake MSK, STS, Java and brokers.

use ksql_msk_testkit::sts::{FakeSts, ARN};

use crate::support::fixture::{free_port, Fixture};

fn checklist(out: &str) -> Vec<&str> {
    out.lines()
        .filter(|l| l.starts_with('✓') || l.starts_with('✗'))
        .collect()
}

#[test]
fn all_checks_pass() {
    let sts = FakeSts::start();
    // A port that accepts and closes at once: everything up to TLS passes. (The Kafka
    // steps after it are tested against a real broker in kafka_doctor.rs.)
    let broker = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let broker_port = broker.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in broker.incoming() {
            drop(conn);
        }
    });
    let mut fx = Fixture::new("");
    fx.msk.set_brokers(
        &fx.cluster.arn,
        "bootstrapBrokerStringSaslIam",
        Some(&format!("127.0.0.1:{broker_port},localhost:{broker_port}")),
    );
    let listen = free_port();
    fx.host.write_dropin(
        "50-listen.toml",
        &format!("[ksqldb]\nlisteners = \"http://127.0.0.1:{listen}\"\n"),
    );
    fx.host.env("AWS_ENDPOINT_URL_STS", &sts.url());
    let out = fx.host.run(&["check"]);
    assert_eq!(out.code, 69, "{out:?}");
    let lines = checklist(&out.stdout);
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with('✓') || l.contains(": TLS: ") && l.contains("plain TCP")),
        "{out:?}"
    );
    let has = |s: &str| lines.iter().any(|l| l.contains(s));
    assert!(has("config: "), "{out:?}");
    assert!(
        has(&format!("AWS identity: {ARN} (account 123456789012)")),
        "{out:?}"
    );
    assert!(
        has("cluster demo is ACTIVE with IAM authentication (2 private brokers)"),
        "{out:?}"
    );
    for host in ["127.0.0.1", "localhost"] {
        let broker = format!("broker {host}:{broker_port}");
        assert!(
            has(&format!("{broker}: DNS: {host} is 127.0.0.1")),
            "{out:?}"
        );
        assert!(
            has(&format!(
                "{broker}: TCP: connected to 127.0.0.1:{broker_port}"
            )),
            "{out:?}"
        );
    }
    assert!(
        has("Java 17 (17.0.15)") && has("with G1 instead of its CMS defaults"),
        "{out:?}"
    );
    assert!(has("disk: "), "{out:?}");
    assert!(has(&format!("port {listen} is free")), "{out:?}");
    assert!(has("artifact host 127.0.0.1:"), "{out:?}");
    assert!(
        has("REST API: no authentication, listening on loopback only"),
        "{out:?}"
    );
    // The memory plan, with RocksDB unbounded here: no setter jar at the RPM's path.
    assert!(
        has("warning: memory budget ")
            && has("(not bounded: /usr/share/ksql-msk/java/ksql-msk-rocksdb.jar is missing"),
        "{out:?}"
    );
    assert!(out.stdout.contains("13 of 15 checks passed"), "{out:?}");
    assert_eq!(sts.server.requests().len(), 1);
}

#[test]
fn failures_are_named_and_exit_69() {
    let sts = FakeSts::start();
    sts.fail_next(
        403,
        "InvalidClientTokenId",
        "The security token included in the request is invalid.",
    );
    sts.fail_next(
        403,
        "InvalidClientTokenId",
        "The security token included in the request is invalid.",
    );
    let open = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let open_port = open.local_addr().unwrap().port();
    let closed = free_port();
    let mut fx = Fixture::with("", "11.0.21", "2.3.5");
    fx.msk.set_brokers(
        &fx.cluster.arn,
        "bootstrapBrokerStringSaslIam",
        Some(&format!("127.0.0.1:{open_port},127.0.0.1:{closed}")),
    );
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_port = busy.local_addr().unwrap().port();
    fx.host.write_dropin(
        "50-listen.toml",
        &format!("[ksqldb]\nlisteners = \"http://127.0.0.1:{busy_port}\"\n"),
    );
    fx.host.env("AWS_ENDPOINT_URL_STS", &sts.url());
    let out = fx.host.run(&["check"]);
    assert_eq!(out.code, 69, "{out:?}");
    let lines = checklist(&out.stdout);
    let line = |s: &str| {
        *lines
            .iter()
            .find(|l| l.contains(s))
            .unwrap_or_else(|| panic!("no line with {s:?}: {out:?}"))
    };
    assert!(line("AWS identity").starts_with("✗"), "{out:?}");
    assert!(
        line("AWS identity").contains("InvalidClientTokenId"),
        "{out:?}"
    );
    assert!(
        line(&format!("broker 127.0.0.1:{open_port}")).starts_with("✓"),
        "{out:?}"
    );
    let tcp = line(&format!("broker 127.0.0.1:{closed}: TCP"));
    assert!(tcp.starts_with("✗ "), "{out:?}");
    assert!(
        tcp.contains(&format!("connect to 127.0.0.1:{closed} failed")),
        "{out:?}"
    );
    let java = line("Java");
    assert!(
        java.starts_with("✗")
            && java.contains("aws-msk-iam-auth 2.3.5 needs Java 17")
            && java.contains("Java 11"),
        "{out:?}"
    );
    assert!(
        line(&format!("port {busy_port} is in use")).starts_with("✗"),
        "{out:?}"
    );
    assert!(out.stdout.contains("9 of 14 checks passed"), "{out:?}");
    assert!(out.stderr.contains("5 of 14 checks failed"), "{out:?}");
}

#[test]
fn unreachable_cluster_and_invalid_config() {
    let mut fx = Fixture::new("");
    // Loopback only: an STS endpoint nobody listens on.
    fx.host.env(
        "AWS_ENDPOINT_URL_STS",
        &format!("http://127.0.0.1:{}", free_port()),
    );
    fx.msk.fail_next(
        ksql_msk_testkit::msk::DESCRIBE_CLUSTER_V2,
        1,
        404,
        "NotFoundException",
        "The specified cluster was not found",
    );
    let out = fx.host.run(&["check"]);
    assert_eq!(out.code, 69, "{out:?}");
    assert!(out.stdout.contains("✗ cluster: "), "{out:?}");
    assert!(out.stdout.contains("✗ brokers: not checked"), "{out:?}");

    std::fs::write(fx.host.config_path(), "[msk]\ncluster_arn = 3\n").unwrap();
    let out = fx.host.run(&["check"]);
    assert_eq!(out.code, 78, "{out:?}");
    assert!(out.stdout.starts_with("✗ config: "), "{out:?}");
}
