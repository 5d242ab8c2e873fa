//! The agent against a real Kafka broker that authenticates like MSK with IAM (issue 23):
//! install + run with each aws-msk-iam-auth version, the three-broker cluster, and
//! `SHOW TOPICS;` from the broker's topic list. The ksqlDB side is the Kafka-client-shaped
//! stand-in (tests/kafka/standin), started by the release's `bin/ksql-server-start`.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::run::wait_for;
use crate::support::fixture::Recorder;
use crate::support::kafka::{self, KafkaFixture, Setup};

/// Wait (bounded) for `READY=1` on the notify socket; how long it took.
pub fn wait_ready(notify: &Recorder, limit: Duration, agent_log: impl Fn() -> String) -> Duration {
    let start = Instant::now();
    while !notify.lines().iter().any(|l| l == "READY=1") {
        assert!(
            start.elapsed() < limit,
            "no READY=1 within {limit:?}; notify: {:?}\nagent log:\n{}",
            notify.lines(),
            agent_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    start.elapsed()
}

/// Install and run with aws-msk-iam-auth `iam`: READY once the stand-in's admin client
/// authenticated (the broker saw the IMDS role's signature) with the jar the agent placed
/// (the only IAM jar on its classpath); the command topic on the broker, as Kafka's own
/// admin client sees it, has the rendered replication settings.
fn install_and_run(iam: &str) {
    if !kafka::available(&format!("kafka_run (aws-msk-iam-auth {iam})")) {
        return;
    }
    let started = Instant::now();
    let mut fx = KafkaFixture::start(Setup {
        iam_version: iam.into(),
        ..Setup::default()
    });
    let world = started.elapsed();
    let (mut agent, notify) = fx.run(Duration::from_secs(10));
    let ready = wait_ready(&notify, Duration::from_secs(180), || agent.stderr());
    // The stand-in serves HTTP only after describeCluster went through the IAM listener.
    let auth = fx.kafka.iam_log();
    assert!(
        auth.iter().any(|l| l.contains("MSK-IAM AUTH-OK")),
        "READY without an IAM authentication on the broker: {auth:?}"
    );
    assert!(
        !auth.iter().any(|l| l.contains("AUTH-FAIL")),
        "failed authentications: {auth:?}"
    );
    // The JVM's classpath holds exactly the jar the agent placed.
    let pids = fx.standin_pids();
    assert_eq!(pids.len(), 1, "{pids:?}");
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", pids[0])).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    let jars: Vec<&str> = cmdline
        .split([':', ' '])
        .filter(|p| p.contains("aws-msk-iam-auth"))
        .collect();
    assert_eq!(jars.len(), 1, "{cmdline}");
    assert!(
        jars[0].ends_with(&format!("share/java/ksqldb/aws-msk-iam-auth-{iam}-all.jar")),
        "{cmdline}"
    );
    assert!(cmdline.contains("-Xmx128m"), "{cmdline}");
    // What the agent rendered for one broker, and what the broker holds.
    let rf = fx
        .property("ksql.internal.topic.replicas")
        .expect("rendered RF");
    let isr = fx
        .property("ksql.internal.topic.min.insync.replicas")
        .expect("rendered min ISR");
    assert_eq!((rf.as_str(), isr.as_str()), ("1", "1"));
    let topic = fx
        .kafka
        .describe_topic(&fx.command_topic())
        .expect("the command topic on the broker");
    assert_eq!(topic["partitions"], 1, "{topic}");
    assert_eq!(topic["replication_factor"].to_string(), rf, "{topic}");
    assert_eq!(
        topic["min_insync_replicas"].to_string(),
        format!("\"{isr}\""),
        "{topic}"
    );
    assert!(
        fx.kafka
            .describe_topic(&fx.processing_log_topic())
            .is_some(),
        "no processing log topic"
    );
    // Healthy from real calls; /info names the broker's cluster id.
    fx.wait_healthy(Duration::from_secs(30)).unwrap();
    assert_eq!(agent.stop(), 0);
    assert!(
        fx.standin_pids().is_empty(),
        "the stand-in JVM outlived the agent"
    );
    eprintln!(
        "kafka_run[{iam}]: world up in {world:?}, READY {ready:?} after run started, total {:?}",
        started.elapsed()
    );
}

#[test]
fn install_and_run_with_aws_msk_iam_auth_1_1_1() {
    install_and_run("1.1.1");
}

#[test]
fn install_and_run_with_aws_msk_iam_auth_2_x() {
    install_and_run("2.4.0");
}

/// Three KRaft brokers: the agent renders RF 3 / min ISR 2 and the broker really places
/// three replicas, all in sync; `SHOW TOPICS;` lists a topic made with Kafka's own client.
/// The answer to `SHOW [ALL] TOPICS;` (200), or None while a broker does not know a new
/// topic yet. A new topic reaches every broker's metadata a moment later (so ksqlDB's
/// admin client too): until then a broker may answer its describe with
/// UNKNOWN_TOPIC_OR_PARTITION, which the stand-in passes on as a 500, as ksqlDB would.
/// Any other answer fails the test.
fn listed_topics(fx: &KafkaFixture, statement: &str) -> Option<String> {
    let (status, body) = fx.ksql(statement).expect("an answer");
    if status == 500 && body.contains("UnknownTopicOrPartitionException") {
        return None;
    }
    assert_eq!(status, 200, "{statement} {body}");
    Some(body)
}

#[test]
fn three_brokers_hold_the_command_topic_with_rf_3_and_min_isr_2() {
    if !kafka::available("kafka_run (three brokers)") {
        return;
    }
    let started = Instant::now();
    let mut fx = KafkaFixture::start(Setup {
        kafka: ksql_msk_testkit::kafka::KafkaOptions::default().brokers(3),
        ..Setup::default()
    });
    let (mut agent, notify) = fx.run(Duration::from_secs(10));
    wait_ready(&notify, Duration::from_secs(180), || agent.stderr());
    assert_eq!(
        fx.property("ksql.internal.topic.replicas").as_deref(),
        Some("3")
    );
    assert_eq!(
        fx.property("ksql.internal.topic.min.insync.replicas")
            .as_deref(),
        Some("2")
    );
    let topic: Value = fx.kafka.describe_topic(&fx.command_topic()).unwrap();
    assert_eq!(topic["replication_factor"], 3, "{topic}");
    assert_eq!(topic["min_insync_replicas"], "2", "{topic}");
    let replicas = topic["replicas"][0].as_array().unwrap().len();
    assert_eq!(replicas, 3, "{topic}");
    let mut isr = 0;
    wait_for("all three replicas in sync", || {
        let t = fx.kafka.describe_topic(&fx.command_topic()).unwrap();
        isr = t["isr"][0].as_array().map_or(0, Vec::len);
        isr == 3
    });
    let log = fx.kafka.describe_topic(&fx.processing_log_topic()).unwrap();
    assert_eq!(log["replication_factor"], 3, "{log}");
    // SHOW TOPICS; answers from the broker: a topic Kafka's own client made is listed,
    // the internal ones are not (SHOW ALL TOPICS; has them).
    let out = fx.kafka.admin(&["create-topic", "pageviews", "2", "3"]);
    assert_eq!(out.code, 0, "{out:?}");
    let mut body = String::new();
    let mut names: Vec<String> = Vec::new();
    wait_for("SHOW TOPICS; to list pageviews", || {
        let Some(b) = listed_topics(&fx, "SHOW TOPICS;") else {
            return false;
        };
        let answer: Value = serde_json::from_str(&b).unwrap();
        assert_eq!(answer[0]["@type"], "kafka_topics", "{b}");
        names = answer[0]["topics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect();
        body = b;
        !names.is_empty()
    });
    assert_eq!(names, ["pageviews"], "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        answer[0]["topics"][0]["replicaInfo"],
        serde_json::json!([3, 3])
    );
    let mut all = None;
    wait_for("SHOW ALL TOPICS;", || {
        all = listed_topics(&fx, "SHOW ALL TOPICS;");
        all.is_some()
    });
    let all = all.unwrap_or_default();
    assert!(all.contains(&fx.command_topic()), "{all}");
    assert_eq!(agent.stop(), 0);
    eprintln!("kafka_run[3 brokers]: {:?}", started.elapsed());
}
