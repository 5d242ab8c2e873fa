//! The supervisor uses the Kafka doctor (issue 24 item 3), against the real broker with
//! its test IAM authorizer and the Kafka-client-shaped ksqlDB stand-in: an IAM denial
//! while ksqlDB runs shows in STATUS, `status --json` (`kafka.diagnosis`) and the
//! metrics textfile within 70 s, and goes once the policy is fixed and ksqlDB is
//! healthy again; a healthy ksqlDB is never probed.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::kafka_run::wait_ready;
use crate::run::{statuses, wait_for, Recorder};
use crate::support::kafka::{self, KafkaFixture, Setup};

/// `message_id::KAFKA_DIAGNOSIS` (packaging/ksql-msk.catalog).
const KAFKA_DIAGNOSIS_ID: &str = "32dafb062518454daaa9ad6fa6938e0f";

fn status_json(fx: &KafkaFixture) -> Value {
    let out = fx.host.run(&["status", "--json"]);
    assert_eq!(out.code, 0, "{out:?}");
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
}

/// Poll (every 500 ms, at most `limit`) until `f` holds for `status --json`.
fn wait_status(
    fx: &KafkaFixture,
    limit: Duration,
    what: &str,
    agent_log: impl Fn() -> String,
    f: impl Fn(&Value) -> bool,
) -> (Duration, Value) {
    let start = Instant::now();
    loop {
        let st = status_json(fx);
        if f(&st) {
            return (start.elapsed(), st);
        }
        assert!(
            start.elapsed() < limit,
            "{what} not within {limit:?}; status --json: {st:#}\nagent log:\n{}",
            agent_log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn an_iam_denial_while_running_is_named_and_cleared_once_fixed() {
    if !kafka::available("kafka_wait") {
        return;
    }
    let mut fx = KafkaFixture::start(Setup::default());
    // The doctor checks the broker's certificate with the host's trust store; the test
    // CA is added the documented way.
    let ca = fx.kafka.ca_pem().display().to_string();
    fx.host.env("SSL_CERT_FILE", &ca);
    let textfile = fx.host.dir.path().join("ksql-msk.prom");
    fx.host.write_dropin(
        "60-textfile.toml",
        &format!("[metrics]\ntextfile = \"{}\"\n", textfile.display()),
    );
    // The agent's events and log go to a journal socket the test reads.
    let journal = Recorder::bind(fx.host.dir.path().join("journal.sock"));
    let socket = journal.path.display().to_string();
    fx.host
        .env("KSQL_MSK_JOURNAL_SOCKET", &socket)
        .env("KSQL_MSK_LOG_FORMAT", "journald");
    let log = || {
        journal
            .entries()
            .iter()
            .filter_map(|e| e.get("MESSAGE").cloned())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let (mut agent, notify) = fx.run(Duration::from_secs(10));
    wait_ready(&notify, Duration::from_secs(180), log);
    fx.wait_healthy(Duration::from_secs(30)).unwrap();

    // Healthy for longer than the doctor's grace: never probed.
    std::thread::sleep(Duration::from_secs(15));
    let st = status_json(&fx);
    assert_eq!(st["kafka"]["doctor_runs"], 0, "{st:#}");
    assert!(st["kafka"]["diagnosis"].is_null(), "{st:#}");

    let topic = fx.command_topic();
    let resource = fx.kafka.topic_arn(&topic);
    fx.kafka.set_policy(
        &fx.kafka
            .policy_denying("kafka-cluster:DescribeTopic", &resource),
    );
    let (named, st) = wait_status(
        &fx,
        Duration::from_secs(70),
        "kafka.diagnosis naming the denied DescribeTopic",
        log,
        |st| st["kafka"]["diagnosis"]["action"] == "kafka-cluster:DescribeTopic",
    );
    let d = &st["kafka"]["diagnosis"];
    assert_eq!(d["resource"], resource.as_str(), "{st:#}");
    assert_eq!(d["step"], "authorization", "{st:#}");
    assert_eq!(d["sid"], "KsqlDbInternalTopics", "{st:#}");
    assert!(d["first_seen"].is_string(), "{st:#}");
    let summary = d["summary"].as_str().unwrap_or_default().to_string();
    assert!(
        summary.starts_with("IAM denies kafka-cluster:DescribeTopic on topic/"),
        "{summary}"
    );
    // STATUS says it too (the STATUS after the run, or the next probe's).
    let start = Instant::now();
    let status_line = loop {
        let said = statuses(&notify.lines())
            .into_iter()
            .rev()
            .find(|s| s.contains("waiting for Kafka: IAM denies kafka-cluster:DescribeTopic"));
        if let Some(s) = said {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no STATUS with the diagnosis: {:#?}",
            statuses(&notify.lines())
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let events: Vec<_> = journal
        .entries()
        .into_iter()
        .filter(|e| e.get("MESSAGE_ID").map(String::as_str) == Some(KAFKA_DIAGNOSIS_ID))
        .collect();
    assert_eq!(events.len(), 1, "{events:#?}");
    let e = &events[0];
    assert_eq!(e["ACTION"], "kafka-cluster:DescribeTopic", "{e:#?}");
    assert_eq!(e["RESOURCE"], resource, "{e:#?}");
    assert_eq!(e["SID"], "KsqlDbInternalTopics", "{e:#?}");
    assert_eq!(e["PRIORITY"], "4", "{e:#?}");
    assert!(
        e["MESSAGE"].starts_with("ksqlDB waits for Kafka: Kafka authorization: IAM denies"),
        "{e:#?}"
    );
    // The textfile is written after status.json (the same background write): wait for it.
    let mut metrics = String::new();
    wait_for("the textfile's diagnosis sample", || {
        metrics = std::fs::read_to_string(&textfile).unwrap_or_default();
        metrics.contains("\nksql_msk_kafka_diagnosis_since_seconds{")
    });
    let sample = metrics
        .lines()
        .find(|l| l.starts_with("ksql_msk_kafka_diagnosis_since_seconds{"))
        .unwrap_or_else(|| panic!("no diagnosis sample in the textfile:\n{metrics}"));
    assert!(
        sample.contains("action=\"kafka-cluster:DescribeTopic\"")
            && sample.contains(&format!("resource=\"{resource}\"")),
        "{sample}"
    );
    let human = fx.host.run(&["status"]);
    assert!(
        human.stdout.contains("Kafka:") && human.stdout.contains("IAM denies"),
        "{human:?}"
    );

    // The agent's memory after its doctor ran (for the report, not a requirement).
    let memory = std::fs::read_to_string(format!("/proc/{}/status", agent.child.id()))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("VmRSS") || l.starts_with("VmHWM"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join(", ");
    fx.kafka.set_policy(&fx.kafka.allow_all_policy());
    let (cleared, st) = wait_status(
        &fx,
        Duration::from_secs(90),
        "kafka.diagnosis cleared after the fix",
        log,
        |st| st["kafka"]["diagnosis"].is_null() && st["ksqldb"]["health"]["condition"] == "healthy",
    );
    let runs = st["kafka"]["doctor_runs"].as_u64().unwrap_or(0);
    assert!(runs >= 1, "{st:#}");
    wait_for("the textfile without a diagnosis sample", || {
        std::fs::read_to_string(&textfile)
            .is_ok_and(|m| !m.is_empty() && !m.contains("ksql_msk_kafka_diagnosis_since_seconds{"))
    });
    // Healthy again: no further runs.
    std::thread::sleep(Duration::from_secs(15));
    let after = status_json(&fx)["kafka"]["doctor_runs"]
        .as_u64()
        .unwrap_or(0);
    assert_eq!(after, runs, "the doctor ran while ksqlDB was healthy");
    assert_eq!(agent.stop(), 0, "{}", log());
    eprintln!(
        "kafka_wait: named {named:?} after the denial ({runs} doctor runs; agent {memory} after it ran); \
         cleared {cleared:?} after the fix; STATUS: {status_line}"
    );
}

/// `kafka-cluster:Connect` denied from the start: ksqlDB exits before it is ever
/// healthy (the real client's SaslAuthenticationException), the doctor names the
/// denial with the identity STS gives, and it goes once the policy is fixed and ksqlDB
/// is healthy.
#[test]
fn connect_denied_at_start_is_named_with_the_identity() {
    if !kafka::available("kafka_wait (Connect)") {
        return;
    }
    let mut fx = KafkaFixture::start(Setup::default());
    let ca = fx.kafka.ca_pem().display().to_string();
    fx.host.env("SSL_CERT_FILE", &ca);
    fx.kafka
        .set_policy(&fx.kafka.policy_without("kafka-cluster:Connect"));
    let (mut agent, notify) = fx.run(Duration::from_secs(10));
    let (named, st) = wait_status(
        &fx,
        Duration::from_secs(90),
        "kafka.diagnosis naming the denied Connect",
        || agent.stderr(),
        |st| st["kafka"]["diagnosis"]["action"] == "kafka-cluster:Connect",
    );
    let d = &st["kafka"]["diagnosis"];
    assert_eq!(d["resource"], fx.kafka.cluster_arn(), "{st:#}");
    assert_eq!(d["step"], "authentication", "{st:#}");
    assert_eq!(d["sid"], "KsqlDbConnect", "{st:#}");
    let summary = d["summary"].as_str().unwrap_or_default().to_string();
    assert!(
        summary.starts_with("IAM denies kafka-cluster:Connect on cluster/")
            && summary.contains(" for arn:aws:sts::"),
        "{summary}"
    );
    let start = Instant::now();
    while !statuses(&notify.lines())
        .iter()
        .any(|s| s.contains("waiting for Kafka: IAM denies kafka-cluster:Connect on cluster/"))
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no STATUS with the diagnosis: {:#?}",
            statuses(&notify.lines())
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    fx.kafka.set_policy(&fx.kafka.allow_all_policy());
    wait_ready(&notify, Duration::from_secs(90), || agent.stderr());
    let (cleared, _) = wait_status(
        &fx,
        Duration::from_secs(60),
        "kafka.diagnosis cleared after the fix",
        || agent.stderr(),
        |st| st["kafka"]["diagnosis"].is_null() && st["ksqldb"]["health"]["condition"] == "healthy",
    );
    assert_eq!(agent.stop(), 0);
    eprintln!(
        "kafka_wait[Connect]: named {named:?} after run; cleared {cleared:?} after READY; {summary}"
    );
}
