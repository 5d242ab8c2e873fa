//! The Kafka test world itself (tests/testkit/src/kafka.rs, tests/kafka/): a real Apache
//! Kafka broker that authenticates and authorizes like MSK, met by the real
//! aws-msk-iam-auth client (1.1.1 and 2.x) with credentials from the fake IMDS.
//! Skipped (loudly) without the Maven artifacts, unless KSQL_MSK_REQUIRE_KAFKA=1.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use ksql_msk_testkit::imds::{self, FakeImds};
use ksql_msk_testkit::kafka::{self, KafkaCluster, KafkaOptions, ToolOutput, IAM_VERSIONS};

use crate::support::{skip, REGION};

/// One Kafka test at a time in this process: each starts JVMs, the machine has 2 cores.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn kafka_world(test: &str) -> Option<std::sync::MutexGuard<'static, ()>> {
    if let Some(why) = kafka::unavailable() {
        skip(kafka::REQUIRE_SWITCH, &format!("{test}: {why}"));
        return None;
    }
    Some(ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner()))
}

fn took(test: &str, start: Instant) {
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "kafka_broker::{test}: {:.1} s",
        start.elapsed().as_secs_f64()
    );
}

#[track_caller]
fn ok(out: &ToolOutput) {
    assert_eq!(out.code, 0, "{out:?}");
}

#[test]
fn iam_clients_authenticate_with_imds_credentials_and_create_topics() {
    let Some(_one) = kafka_world("iam_clients_authenticate") else {
        return;
    };
    let start = Instant::now();
    let cluster = KafkaCluster::start(KafkaOptions::default());
    let imds = FakeImds::start(REGION, "10.0.0.5");
    for version in IAM_VERSIONS {
        let topic = format!("created-by-iam-{version}");
        let out = cluster.iam_client(
            version,
            &imds.url(),
            &["create-topic", &topic, "2", "1", "retention.ms=3600000"],
        );
        ok(&out);
        // Kafka's own view, over the listener without IAM.
        let t = cluster.describe_topic(&topic).expect("the topic exists");
        assert_eq!(t["partitions"], 2, "{t}");
        assert_eq!(t["replication_factor"], 1, "{t}");
        // And the IAM client lists it too (DescribeTopic through the policy).
        let out = cluster.iam_client(version, &imds.url(), &["list-topics"]);
        ok(&out);
        assert!(out.stdout.contains(&format!("\"{topic}\"")), "{out:?}");
    }
    // The idempotent producer (kafka-clients' default): WriteData and
    // WriteDataIdempotently.
    let out = cluster.iam_client(
        IAM_VERSIONS[1],
        &imds.url(),
        &["produce", "created-by-iam-2.4.0", "hello"],
    );
    ok(&out);
    // Every authentication verified a signature by the IMDS credentials and named the
    // instance role's session as the principal.
    let log = cluster.iam_log();
    let oks: Vec<_> = log
        .iter()
        .filter(|l| l.contains("MSK-IAM AUTH-OK"))
        .collect();
    assert!(oks.len() >= 5, "{log:#?}");
    assert!(
        oks.iter()
            .all(|l| l.contains(&format!("principal=User:{}", ksql_msk_testkit::sts::ARN))),
        "{oks:#?}"
    );
    assert!(!log.iter().any(|l| l.contains("AUTH-FAIL")), "{log:#?}");
    took("iam_clients_authenticate", start);
}

#[test]
fn refusals_name_what_failed_and_policy_changes_apply_while_running() {
    let Some(_one) = kafka_world("refusals") else {
        return;
    };
    let start = Instant::now();
    let cluster = KafkaCluster::start(KafkaOptions::default());
    let imds = FakeImds::start(REGION, "10.0.0.5");
    let v2 = IAM_VERSIONS[1];

    // A secret the broker does not know: authentication fails.
    imds.set_credentials(imds::Credentials {
        secret_access_key: "wrongSecretAccessKey/NotTheOneIamKnows000".into(),
        ..imds::Credentials::default()
    });
    let out = cluster.iam_client(v2, &imds.url(), &["create-topic", "never", "1", "1"]);
    assert_eq!(out.code, 2, "{out:?}");
    let line = out.error_line().expect("an error line");
    assert!(
        line.contains("SaslAuthenticationException") && line.contains("Access denied"),
        "{out:?}"
    );
    let fail = cluster
        .wait_for_iam_log("AUTH-FAIL", Duration::from_secs(5))
        .expect("the broker logged the refusal");
    assert!(fail.contains("the signature does not match"), "{fail}");
    imds.set_credentials(imds::Credentials::default());

    // Signed for another region (the client takes it from IMDS, as localhost names
    // none): the credential scope does not match the cluster's.
    let elsewhere = FakeImds::start("us-east-1", "10.0.0.5");
    let out = cluster.iam_client(v2, &elsewhere.url(), &["list-topics"]);
    assert_eq!(out.code, 2, "{out:?}");
    let fail = cluster
        .wait_for_iam_log("region is us-east-1", Duration::from_secs(5))
        .expect("the broker logged the region");
    assert!(fail.contains("the cluster's is eu-west-1"), "{fail}");

    // Credentials rotated by IMDS that the broker trusts too: accepted.
    let rotated = imds::Credentials {
        access_key_id: "ASIAFAKEIMDSKEY00002".into(),
        secret_access_key: "imdsRotatedSecretAccessKey/DoNotLeak0000".into(),
        token: "IQoJb3JpZ2luRotatedImdsSessionToken".into(),
        expiration: "2099-01-01T00:00:00Z".into(),
    };
    cluster.trust_credentials(&[imds::Credentials::default(), rotated.clone()]);
    imds.set_credentials(rotated.clone());
    ok(&cluster.iam_client(v2, &imds.url(), &["list-topics"]));
    imds.set_credentials(imds::Credentials::default());

    // No kafka-cluster:Connect: refused at authentication, the denial names the action
    // and the cluster ARN.
    cluster.set_policy(&cluster.policy_without("kafka-cluster:Connect"));
    let out = cluster.iam_client(v2, &imds.url(), &["create-topic", "never", "1", "1"]);
    assert_eq!(out.code, 2, "{out:?}");
    let deny = cluster
        .wait_for_iam_log("action=kafka-cluster:Connect", Duration::from_secs(5))
        .expect("the Connect denial is logged");
    assert!(
        deny.contains("MSK-IAM DENY")
            && deny.contains(&format!("resource={}", cluster.cluster_arn())),
        "{deny}"
    );

    // CreateTopic denied on one topic: TopicAuthorizationException for it, the denial
    // names the action and the topic ARN; another topic is created.
    let denied = "ksql-denied-topic";
    cluster.set_policy(&cluster.policy_denying(
        "kafka-cluster:CreateTopic",
        &cluster.topic_arn("ksql-denied-*"),
    ));
    let out = cluster.iam_client(v2, &imds.url(), &["create-topic", denied, "1", "1"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.error_line()
            .is_some_and(|l| l.contains("TopicAuthorizationException")),
        "{out:?}"
    );
    let denials = cluster.denials();
    let expected = format!(
        "action=kafka-cluster:CreateTopic resource={}",
        cluster.topic_arn(denied)
    );
    assert!(
        denials.iter().any(|l| l.contains(&expected)),
        "no '{expected}' in {denials:#?}"
    );
    assert!(cluster.describe_topic(denied).is_none());
    ok(&cluster.iam_client(v2, &imds.url(), &["create-topic", "ksql-allowed", "1", "1"]));
    assert!(cluster.describe_topic("ksql-allowed").is_some());

    // The idempotent producer (kafka-clients' default since 3.0) without
    // kafka-cluster:WriteDataIdempotently: ClusterAuthorizationException, as ksqlDB met
    // on MSK (ksql PR #8927).
    cluster.set_policy(&cluster.policy_without("kafka-cluster:WriteDataIdempotently"));
    let out = cluster.iam_client(v2, &imds.url(), &["produce", "ksql-allowed", "v"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.error_line()
            .is_some_and(|l| l.contains("ClusterAuthorizationException")),
        "{out:?}"
    );
    let expected = format!(
        "action=kafka-cluster:WriteDataIdempotently resource={}",
        cluster.cluster_arn()
    );
    assert!(
        cluster.denials().iter().any(|l| l.contains(&expected)),
        "no '{expected}' in {:#?}",
        cluster.denials()
    );

    // The policy fixed while the broker runs: the same request now passes.
    cluster.set_policy(&cluster.allow_all_policy());
    ok(&cluster.iam_client(v2, &imds.url(), &["create-topic", denied, "1", "1"]));
    assert!(cluster.describe_topic(denied).is_some());

    // A policy the test broker cannot evaluate (a Condition) denies everything, loudly;
    // the older client (1.1.1: SDK v1 credentials) meets that refusal.
    let mut conditional = cluster.allow_all_policy();
    conditional["Statement"][0]["Condition"] =
        serde_json::json!({"Bool": {"aws:SecureTransport": "true"}});
    cluster.set_policy(&conditional);
    let out = cluster.iam_client(IAM_VERSIONS[0], &imds.url(), &["list-topics"]);
    assert_eq!(out.code, 2, "{out:?}");
    let invalid = cluster
        .wait_for_iam_log("POLICY invalid", Duration::from_secs(5))
        .expect("the invalid policy is logged");
    assert!(invalid.contains("Condition"), "{invalid}");
    took("refusals", start);
}

#[test]
fn three_brokers_place_rf_3_and_min_isr_2() {
    let Some(_one) = kafka_world("three_brokers") else {
        return;
    };
    let start = Instant::now();
    let mut cluster = KafkaCluster::start(KafkaOptions::default().brokers(3));
    let imds = FakeImds::start(REGION, "10.0.0.5");
    assert_eq!(cluster.bootstrap().split(',').count(), 3);
    let topic = "_confluent-ksql-ksql_msk__command_topic";
    ok(&cluster.iam_client(
        IAM_VERSIONS[1],
        &imds.url(),
        &["create-topic", topic, "1", "3", "min.insync.replicas=2"],
    ));
    let t = cluster.describe_topic(topic).expect("created");
    assert_eq!(t["replication_factor"], 3, "{t}");
    assert_eq!(t["min_insync_replicas"], "2", "{t}");
    assert_eq!(
        t["min_insync_replicas_source"], "DYNAMIC_TOPIC_CONFIG",
        "{t}"
    );
    let mut replicas: Vec<i64> = t["replicas"][0]
        .as_array()
        .expect("replicas")
        .iter()
        .map(|v| v.as_i64().expect("id"))
        .collect();
    replicas.sort();
    assert_eq!(replicas, [1, 2, 3], "{t}");

    // One broker down: the topic keeps 2 in sync (min ISR 2 still met); back: 3 again.
    cluster.stop_broker(2);
    assert!(!cluster.is_running(2));
    let mut isr = 0;
    let shrank = (0..60).any(|_| {
        let t = cluster.describe_topic(topic).expect("still there");
        isr = t["isr"][0].as_array().map_or(0, Vec::len);
        isr == 2 || {
            std::thread::sleep(Duration::from_millis(500));
            false
        }
    });
    assert!(shrank, "ISR stayed {isr} with a broker down");
    cluster.start_broker(2);
    let grew = (0..60).any(|_| {
        let t = cluster.describe_topic(topic).expect("still there");
        isr = t["isr"][0].as_array().map_or(0, Vec::len);
        isr == 3 || {
            std::thread::sleep(Duration::from_millis(500));
            false
        }
    });
    assert!(grew, "ISR stayed {isr} after the broker came back");
    took("three_brokers", start);
}
