//! The health model against a real broker (issue 23 item 4): an MSK outage, IAM denials
//! fixed while the agent runs, and instance-role credentials rotated by IMDS, each with
//! the real aws-msk-iam-auth client in the Kafka-client-shaped ksqlDB stand-in.

use std::time::{Duration, Instant};

use ksql_msk_testkit::imds::Credentials;
use ksql_msk_testkit::kafka::KafkaOptions;

use crate::kafka_run::wait_ready;
use crate::run::statuses;
use crate::support::kafka::{self, KafkaFixture, Setup};

/// The agent's own restart settings (the fixture's are faster): what a host runs with.
const DEFAULT_RESTARTS: &str = "restart_backoff = \"2s\"\nrestart_backoff_max = \"2m\"\n\
                                restart_limit = 5\nrestart_window = \"10m\"\n";

/// The longest gap between two WATCHDOG=1 in `from..to`.
fn watchdog_gap(msgs: &[(Instant, Vec<u8>)], from: Instant, to: Instant) -> Duration {
    let mut edges = vec![from];
    edges.extend(
        msgs.iter()
            .filter(|(t, m)| {
                *t >= from && *t <= to && m.split(|b| *b == b'\n').any(|l| l == b"WATCHDOG=1")
            })
            .map(|(t, _)| *t),
    );
    edges.push(to);
    edges
        .windows(2)
        .map(|w| w[1].duration_since(w[0]))
        .max()
        .unwrap_or_default()
}

/// Stop the broker for `outage` while the agent runs (WATCHDOG_USEC = `watchdog`): the
/// agent stays up, keeps WATCHDOG=1 coming and never restarts ksqlDB; the broker back,
/// ksqlDB is healthy again within 30 s without anyone doing anything. Returns the STATUS
/// lines sent during the outage.
fn outage(watchdog: Duration, outage: Duration, agent: &str) -> Vec<String> {
    let mut fx = KafkaFixture::start(Setup {
        agent: agent.into(),
        ..Setup::default()
    });
    let (mut agent, notify) = fx.run(watchdog);
    wait_ready(&notify, Duration::from_secs(180), || agent.stderr());
    fx.wait_healthy(Duration::from_secs(30)).unwrap();
    let pids = fx.standin_pids();
    assert_eq!(pids.len(), 1);
    let before = statuses(&notify.lines()).len();
    let down = Instant::now();
    fx.kafka.stop_broker(0);
    while down.elapsed() < outage {
        assert!(
            agent.child.try_wait().unwrap().is_none(),
            "the agent exited during the outage:\n{}",
            agent.stderr()
        );
        assert_eq!(
            fx.standin_pids(),
            pids,
            "ksqlDB was restarted during the outage"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let up = Instant::now();
    let gap = watchdog_gap(&notify.raw(), down, up);
    assert!(
        gap < watchdog / 2 + Duration::from_secs(2),
        "a WATCHDOG=1 gap of {gap:?}"
    );
    let during: Vec<String> = statuses(&notify.lines())[before..].to_vec();
    assert!(
        during
            .iter()
            .any(|s| !s.contains("is healthy") && !s.contains("is running")),
        "STATUS never said anything was wrong over a {:?} outage: {during:#?}",
        up.duration_since(down)
    );
    fx.kafka.start_broker(0);
    let healed = fx
        .wait_healthy(Duration::from_secs(30))
        .unwrap_or_else(|e| {
            panic!("{e}\nagent log:\n{}", agent.stderr());
        });
    // The agent sees it too (its probe, its STATUS), without a restart of ksqlDB.
    let mut back = false;
    let start = Instant::now();
    while !back && start.elapsed() < Duration::from_secs(30) {
        let last = notify.last_status();
        back = last.contains("is healthy") || last.contains("is running");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(back, "{:#?}", statuses(&notify.lines()));
    assert_eq!(fx.standin_pids(), pids, "ksqlDB was restarted");
    let log = agent.stderr();
    assert_eq!(agent.stop(), 0);
    // Whether ksqlDB's Kafka check (30 s timeout, inside the request) even finished
    // failing before the broker was back: for the report, not a requirement.
    let failed_checks = log
        .matches("Error describing command topic during health check")
        .count();
    eprintln!(
        "kafka_health[outage]: {:?} outage, healthy {healed:?} after the broker was back; \
         longest watchdog gap {gap:?}; {failed_checks} failed Kafka checks logged by ksqlDB; \
         STATUS during the outage: {during:#?}",
        up.duration_since(down)
    );
    during
}

/// The broker stopped for 4 × the watchdog interval (10 s), longer than twice
/// `agent.hang_timeout` (20 s here, 2 m by default): ksqlDB's `/healthcheck` runs its
/// Kafka check (`describeTopics`, 30 s timeout) inside the request, so during the outage
/// it answers late or not at all while `/info` still answers; the agent must say
/// "waiting for Kafka" (DESIGN.md) and never take ksqlDB for hung.
#[test]
fn an_msk_outage_of_four_watchdog_intervals_is_waited_out() {
    if !kafka::available("kafka_health (outage)") {
        return;
    }
    let watchdog = Duration::from_secs(10);
    let during = outage(
        watchdog,
        watchdog * 4 + Duration::from_secs(5),
        "hang_timeout = \"20s\"\n",
    );
    assert!(
        during.iter().any(|s| s.contains("waiting for Kafka")),
        "no 'waiting for Kafka': {during:#?}"
    );
}

/// A policy that denies what ksqlDB needs at start, fixed while the agent runs: ksqlDB
/// fails (the real client's error in the agent's log), the agent keeps going on its own
/// restart settings, and once the policy allows it, ksqlDB is healthy within a minute.
fn denied_then_fixed(what: &str, deny: impl Fn(&KafkaFixture) -> serde_json::Value, error: &str) {
    if !kafka::available(&format!("kafka_health ({what})")) {
        return;
    }
    let mut fx = KafkaFixture::start(Setup {
        agent: DEFAULT_RESTARTS.into(),
        ..Setup::default()
    });
    fx.kafka.set_policy(&deny(&fx));
    let (mut agent, notify) = fx.run(Duration::from_secs(10));
    let start = Instant::now();
    while !agent.stderr().contains(error) {
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "no {error:?} in the agent's log:\n{}",
            agent.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let seen = start.elapsed();
    assert!(
        !notify.lines().iter().any(|l| l == "READY=1"),
        "READY while denied"
    );
    let denials = fx.kafka.denials();
    assert!(!denials.is_empty(), "the broker denied nothing");
    fx.kafka.set_policy(&fx.kafka.allow_all_policy());
    let fixed = Instant::now();
    let ready = wait_ready(&notify, Duration::from_secs(60), || agent.stderr());
    let healthy =
        fx.wait_healthy(Duration::from_secs(60) - fixed.elapsed().min(Duration::from_secs(59)));
    let log = agent.stderr();
    assert!(healthy.is_ok(), "{healthy:?}\n{log}");
    assert!(
        agent.child.try_wait().unwrap().is_none(),
        "the agent exited:\n{log}"
    );
    let error_lines: Vec<&str> = log.lines().filter(|l| l.contains(error)).take(3).collect();
    assert_eq!(agent.stop(), 0);
    eprintln!(
        "kafka_health[{what}]: error in the agent's log {seen:?} after run; READY {ready:?} after the fix; \
         denials: {:?}; the real client's error: {error_lines:#?}",
        denials.iter().take(2).collect::<Vec<_>>()
    );
}

#[test]
fn iam_without_connect_then_fixed_heals_by_itself() {
    denied_then_fixed(
        "no kafka-cluster:Connect",
        |fx| fx.kafka.policy_without("kafka-cluster:Connect"),
        "SaslAuthenticationException",
    );
}

#[test]
fn iam_without_create_topic_on_the_command_topic_then_fixed_heals_by_itself() {
    denied_then_fixed(
        "no CreateTopic on the command topic",
        |fx| {
            fx.kafka.policy_denying(
                "kafka-cluster:CreateTopic",
                &fx.kafka.topic_arn(&fx.command_topic()),
            )
        },
        "TopicAuthorizationException",
    );
}

/// `now + seconds` as IMDS writes an expiry (ISO 8601, UTC).
fn expiry_in(seconds: u64) -> String {
    let out = std::process::Command::new("date")
        .args([
            "-u",
            "-d",
            &format!("+{seconds} sec"),
            "+%Y-%m-%dT%H:%M:%SZ",
        ])
        .output()
        .expect("date");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// IMDS hands out new instance-role credentials while ksqlDB runs, ahead of the old
/// ones' expiry (as EC2 does), and the broker refuses the old ones once they expired;
/// connections re-authenticate every 10 s (MSK re-authenticates its IAM sessions too):
/// ksqlDB stays healthy throughout and signs with the new credentials.
#[test]
fn credentials_rotated_by_imds_cause_no_outage() {
    if !kafka::available("kafka_health (credential rotation)") {
        return;
    }
    let lifetime = Duration::from_secs(90);
    let mut fx = KafkaFixture::start(Setup {
        kafka: KafkaOptions {
            reauth_ms: Some(10_000),
            ..KafkaOptions::default()
        },
        ..Setup::default()
    });
    let old = Credentials {
        expiration: expiry_in(lifetime.as_secs()),
        ..Credentials::default()
    };
    let expires = Instant::now() + lifetime;
    let new = Credentials {
        access_key_id: "ASIAFAKEIMDSROTATED02".into(),
        secret_access_key: "rotatedFakeSecretAccessKey/DoNotLeak00000".into(),
        token: "IQoJb3JpZ2luRotatedFakeSessionTokenDoNotLeak".into(),
        expiration: expiry_in(3600),
    };
    fx.imds.set_credentials(old.clone());
    // The broker knows both (as STS would); each is valid until its own expiry.
    fx.kafka.trust_credentials(&[old, new.clone()]);
    let (mut agent, notify) = fx.run(Duration::from_secs(10));
    wait_ready(&notify, Duration::from_secs(180), || agent.stderr());
    fx.wait_healthy(Duration::from_secs(30)).unwrap();
    fx.imds.set_credentials(new);
    let rotated = Instant::now();
    let pids = fx.standin_pids();
    let mut answers = 0;
    while Instant::now() < expires + Duration::from_secs(40) {
        let h = fx.health();
        assert!(
            matches!(&h, Some((200, b)) if b.contains("\"isHealthy\":true")),
            "an outage {:?} after the rotation: {h:?}; broker IAM log: {:#?}",
            rotated.elapsed(),
            fx.kafka.iam_log().iter().rev().take(5).collect::<Vec<_>>()
        );
        answers += 1;
        std::thread::sleep(Duration::from_secs(2));
    }
    let log = fx.kafka.iam_log();
    let fails: Vec<&String> = log.iter().filter(|l| l.contains("AUTH-FAIL")).collect();
    assert_eq!(fx.standin_pids(), pids, "ksqlDB was restarted");
    assert!(fails.is_empty(), "authentications refused: {fails:#?}");
    let oks = log.iter().filter(|l| l.contains("AUTH-OK")).count();
    assert_eq!(agent.stop(), 0);
    eprintln!(
        "kafka_health[rotation]: {answers} healthy answers from the rotation to 40 s after the old credentials expired; \
         {oks} authentications in all, none refused"
    );
}
