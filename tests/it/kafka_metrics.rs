//! The Prometheus JMX exporter for real (issue 23 item 4): the agent fetches the real
//! `jmx_prometheus_javaagent` 1.0.1 jar (pinned), loads it into the stand-in's JVM with
//! the shipped rules (packaging/jmx-exporter/ksqldb.yml), and `/metrics` parses with
//! Python prometheus_client's own parser: the JVM's series, the Kafka consumer's (the
//! command runner's) and the ksqlDB engine gauge the stand-in registers under ksqlDB's
//! MBean name.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ksql_msk_testkit::kafka_standin;
use ksql_msk_testkit::standins::sha256_hex;
use serde_json::Value;

use crate::kafka_run::wait_ready;
use crate::support::fixture::free_port;
use crate::support::kafka::{self, http, KafkaFixture, Setup, SERVICE_ID};
use crate::support::{repo_root, skip};

const PARSE: &str = r#"
import json, math, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
# NaN and infinities (the Kafka clients' idle rates) are valid in the exposition format,
# not in JSON: passed on as strings.
num = lambda v: v if math.isfinite(v) else str(v)
for f in text_string_to_metric_families(sys.stdin.read()):
    out[f.name] = [f.type, [[s.name, s.labels, num(s.value)] for s in f.samples]]
print(json.dumps(out))
"#;

#[test]
fn the_real_exporter_serves_the_standins_jvm_with_the_shipped_rules() {
    if !kafka::available("kafka_metrics") {
        return;
    }
    let have_parser = Command::new("python3")
        .args(["-c", "import prometheus_client"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !have_parser {
        skip(
            "KSQL_MSK_REQUIRE_PROMETHEUS_CLIENT",
            "kafka_metrics: no Python prometheus_client (tests/setup-host installs it)",
        );
        return;
    }
    let started = Instant::now();
    let mut fx = KafkaFixture::start(Setup::default());
    let jar_path = &kafka_standin::classpath("jmx-exporter").expect("the exporter set")[0];
    let jar = std::fs::read(jar_path).unwrap();
    let url = fx.standins.art.put(
        "/jmx_exporter/1.0.1/jmx_prometheus_javaagent-1.0.1.jar",
        jar.clone(),
    );
    let port = free_port();
    let rules = repo_root().join("packaging/jmx-exporter/ksqldb.yml");
    fx.host.write_dropin(
        "60-metrics.toml",
        &format!(
            "[metrics]\nprometheus_port = {port}\nexporter_version = \"1.0.1\"\nexporter_url = \"{url}\"\n\
             prometheus_rules = \"{}\"\nexporter_sha256 = \"{}\"\n",
            rules.display(),
            sha256_hex(&jar)
        ),
    );
    let (mut agent, notify) = fx.run(Duration::from_secs(10));
    wait_ready(&notify, Duration::from_secs(180), || agent.stderr());
    // The command runner's consumer registers its metrics once it polled.
    let mut families: HashMap<String, Value>;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) =
            http("GET", port, "/metrics", None, Duration::from_secs(20)).expect("/metrics");
        assert_eq!(status, 200, "{body}");
        let mut py = Command::new("python3")
            .args(["-c", PARSE])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        py.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
        let out = py.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "prometheus_client refused /metrics: {}\n{body}",
            String::from_utf8_lossy(&out.stderr)
        );
        families = serde_json::from_slice(&out.stdout).unwrap();
        if families.keys().any(|k| k.starts_with("kafka_consumer_")) || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let names: Vec<&String> = families.keys().collect();
    assert!(
        families.keys().any(|k| k.starts_with("jvm_memory")),
        "no JVM memory series: {names:?}"
    );
    let liveness = &families["ksql_engine_query_stats_liveness_indicator"];
    assert_eq!(liveness[0], "gauge", "{liveness}");
    assert_eq!(
        liveness[1][0][1]["ksql_service_id"], SERVICE_ID,
        "{liveness}"
    );
    assert_eq!(liveness[1][0][2], 1.0, "{liveness}");
    let consumer: Vec<&String> = families
        .keys()
        .filter(|k| k.starts_with("kafka_consumer_"))
        .collect();
    assert!(!consumer.is_empty(), "no kafka.consumer series: {names:?}");
    assert!(
        families.values().any(
            |f| f[1].as_array().unwrap().iter().any(|s| s[1]["client_id"]
                .as_str()
                .is_some_and(|c| c.contains("command-runner")))
        ),
        "no series of the command runner's consumer"
    );
    assert_eq!(agent.stop(), 0);
    eprintln!(
        "kafka_metrics: {} families ({} kafka_consumer_*) in {:?}",
        families.len(),
        consumer.len(),
        started.elapsed()
    );
}
