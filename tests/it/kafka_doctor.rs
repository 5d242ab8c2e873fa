//! The Kafka doctor (`ksql-msk check`'s Kafka lines) against the real broker of the
//! Kafka test world (tests/kafka/README.md): a KRaft broker that authenticates
//! `AWS_MSK_IAM` and authorizes from an IAM policy file like MSK. Skipped (loudly)
//! without the Maven artifacts, unless KSQL_MSK_REQUIRE_KAFKA=1.

use std::sync::Mutex;
use std::time::Instant;

use ksql_msk_testkit::hostile::{TestCa, TlsFront};
use ksql_msk_testkit::imds;
use ksql_msk_testkit::kafka::{self, KafkaCluster, KafkaOptions};
use ksql_msk_testkit::sts::{self, FakeSts, ARN};
use serde_json::Value;

use crate::support::fixture::{free_port, Fixture};
use crate::support::{skip, Output};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn kafka_world(test: &str) -> Option<std::sync::MutexGuard<'static, ()>> {
    if let Some(why) = kafka::unavailable() {
        skip(kafka::REQUIRE_SWITCH, &format!("{test}: {why}"));
        return None;
    }
    Some(ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner()))
}

/// A host whose config points at `cluster` (through the fake MSK), signing with the
/// credentials the brokers trust, trusting the test CA.
struct Doctor {
    fx: Fixture,
    sts: FakeSts,
}

impl Doctor {
    fn new(options: KafkaOptions, extra_properties: &str) -> (Doctor, KafkaCluster) {
        let fx = Fixture::new("");
        let options = KafkaOptions {
            cluster_arn: fx.cluster.arn.clone(),
            ..options
        };
        let cluster = KafkaCluster::start(options);
        let doctor = Doctor::on(fx, &cluster.bootstrap(), &cluster, extra_properties);
        (doctor, cluster)
    }

    fn on(mut fx: Fixture, bootstrap: &str, cluster: &KafkaCluster, extra: &str) -> Doctor {
        let sts = FakeSts::start();
        fx.msk.set_brokers(
            &fx.cluster.arn,
            "bootstrapBrokerStringSaslIam",
            Some(bootstrap),
        );
        let listen = free_port();
        fx.host.write_dropin(
            "50-listen.toml",
            &format!(
                "[ksqldb]\nlisteners = \"http://127.0.0.1:{listen}\"\n\n[properties]\n{extra}"
            ),
        );
        let creds = imds::Credentials::default();
        fx.host
            .env("AWS_ENDPOINT_URL_STS", &sts.url())
            .env("AWS_ACCESS_KEY_ID", &creds.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &creds.secret_access_key)
            .env("AWS_SESSION_TOKEN", &creds.token)
            .env("SSL_CERT_FILE", &cluster.ca_pem().display().to_string());
        Doctor { fx, sts }
    }

    fn check(&self) -> Output {
        self.fx.host.run(&["check"])
    }

    fn policy(&self) -> Value {
        let out = self.fx.host.run(&["iam-policy"]);
        assert_eq!(out.code, 0, "{out:?}");
        serde_json::from_str(&out.stdout).expect("policy JSON")
    }
}

fn kafka_lines(out: &Output) -> Vec<&str> {
    out.stdout
        .lines()
        .filter(|l| l.contains("broker ") && l.contains(": ") || l.contains(" Kafka "))
        .filter(|l| l.starts_with('✓') || l.starts_with('✗'))
        .collect()
}

fn failures(out: &Output) -> Vec<&str> {
    out.stdout.lines().filter(|l| l.starts_with('✗')).collect()
}

/// The policy without `action` in any statement.
fn without(policy: &Value, action: &str) -> Value {
    let mut p = policy.clone();
    for s in p["Statement"].as_array_mut().expect("statements") {
        if let Some(actions) = s["Action"].as_array_mut() {
            actions.retain(|a| a != action);
        }
    }
    p["Statement"]
        .as_array_mut()
        .expect("statements")
        .retain(|s| s["Action"].as_array().is_none_or(|a| !a.is_empty()));
    p
}

fn kafka_actions(policy: &Value) -> Vec<String> {
    let mut out: Vec<String> = policy["Statement"]
        .as_array()
        .expect("statements")
        .iter()
        .flat_map(|s| s["Action"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a.as_str().map(str::to_string))
        .filter(|a| a.starts_with("kafka-cluster:"))
        .collect();
    out.sort();
    out.dedup();
    out
}

#[test]
fn iam_policy_passes_and_each_action_denied_is_named() {
    let Some(_one) = kafka_world("iam_policy_passes_and_each_action_denied_is_named") else {
        return;
    };
    let (doctor, cluster) = Doctor::new(
        KafkaOptions::default(),
        "\"processing.guarantee\" = \"exactly_once_v2\"\n",
    );
    let policy = doctor.policy();
    cluster.set_policy(&policy);
    let started = Instant::now();
    let out = doctor.check();
    eprintln!("check with the fixed policy: {:?}", started.elapsed());
    assert_eq!(out.code, 0, "{out:?}");
    let lines = kafka_lines(&out);
    for step in ["DNS", "TCP", "TLS", "SASL", "authentication"] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with('✓') && l.contains(&format!(": {step}: "))),
            "no ✓ {step} line: {out:?}"
        );
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains("allowed on") && l.contains("_command_topic")),
        "{out:?}"
    );
    let json = doctor.fx.host.run(&["check", "--json"]);
    assert_eq!(json.code, 0, "{json:?}");
    let doc: Value = serde_json::from_str(&json.stdout).expect("one JSON document");
    assert_eq!(doc["ok"], true, "{doc}");
    assert!(doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["kafka"]["step"] == "authorization"));

    let actions = kafka_actions(&policy);
    assert!(actions.len() >= 17, "{actions:?}");
    for action in &actions {
        cluster.set_policy(&without(&policy, action));
        let out = doctor.check();
        assert_eq!(out.code, 69, "{action}: {out:?}");
        let failed = failures(&out);
        let denials: Vec<&&str> = failed.iter().filter(|l| l.contains("IAM denies")).collect();
        assert!(!denials.is_empty(), "{action}: no denial line: {out:?}");
        for line in &denials {
            assert!(
                line.contains(&format!("IAM denies {action} on arn:aws:kafka:")),
                "{action}: {line}\n{out:?}"
            );
            assert!(
                line.contains("`ksql-msk iam-policy` statement Ksql"),
                "{action}: {line}"
            );
        }
        // Every other ✗ is a need that could not be asked because of this denial.
        for line in &failed {
            assert!(
                line.contains("IAM denies")
                    || line.contains(&format!("needs {action} first"))
                    || (action == "kafka-cluster:Connect"
                        && line
                            .contains(": authentication: the broker refused the signed payload")),
                "{action}: unexpected ✗ {line}\n{out:?}"
            );
        }
        let resource_kind = match action.as_str() {
            a if a.contains("Topic") || a.contains("Data") && !a.contains("Idempotently") => {
                "topic/"
            }
            a if a.contains("Group") => "group/",
            a if a.contains("TransactionalId") => "transactional-id/",
            _ => "cluster/",
        };
        assert!(
            denials
                .iter()
                .all(|l| l.contains(&format!(":{resource_kind}"))),
            "{action}: {denials:?}"
        );
        if action == "kafka-cluster:Connect" {
            assert!(denials[0].contains(ARN), "{out:?}");
        }
    }
    cluster.set_policy(&policy);
    assert_eq!(doctor.check().code, 0);
}

fn line<'a>(out: &'a Output, needle: &str) -> &'a str {
    out.stdout
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?}: {out:?}"))
}

/// A listener that accepts and never says a word (a black hole behind TCP).
fn silent_port() -> (u16, std::net::TcpListener) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    (l.local_addr().unwrap().port(), l)
}

#[test]
fn connection_failures_are_named_per_step() {
    let Some(_one) = kafka_world("connection_failures_are_named_per_step") else {
        return;
    };
    let (mut doctor, cluster) = Doctor::new(KafkaOptions::default(), "");
    cluster.set_policy(&doctor.policy());
    let run = |doctor: &Doctor, brokers: &str| {
        doctor.fx.msk.set_brokers(
            &doctor.fx.cluster.arn,
            "bootstrapBrokerStringSaslIam",
            Some(brokers),
        );
        let started = Instant::now();
        let out = doctor.check();
        (out, started.elapsed())
    };

    // Kafka's PLAINTEXT listener where TLS was expected: it closes on the ClientHello.
    let plain = cluster.internal_bootstrap();
    let plain = plain.split(',').next().unwrap();
    let (out, _) = run(&doctor, plain);
    assert_eq!(out.code, 69, "{out:?}");
    let tls = line(&out, &format!("broker {plain}: TLS: "));
    assert!(tls.starts_with('✗') && tls.contains("plain TCP"), "{out:?}");

    // TLS in front of that listener: a broker without SASL, so without AWS_MSK_IAM.
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::generate(&dir.path().join("ca"));
    let front = TlsFront::start(&ca, plain.parse().unwrap());
    doctor
        .fx
        .host
        .env("SSL_CERT_FILE", &ca.ca_pem.display().to_string());
    let (out, _) = run(&doctor, &front.addr.to_string());
    assert_eq!(out.code, 69, "{out:?}");
    assert!(line(&out, ": TLS: ").starts_with('✓'), "{out:?}");
    let sasl = line(&out, ": SASL: ");
    assert!(
        sasl.starts_with('✗')
            && sasl.contains(
                "IAM access control is not enabled on this cluster, or this is not its IAM port"
            ),
        "{out:?}"
    );

    // The same front, its CA not trusted by this host.
    doctor
        .fx
        .host
        .env("SSL_CERT_FILE", &cluster.ca_pem().display().to_string());
    let (out, _) = run(&doctor, &front.addr.to_string());
    let tls = line(&out, ": TLS: ");
    assert!(
        tls.starts_with('✗') && tls.contains("not trusted"),
        "{out:?}"
    );

    // A trusted certificate for another host.
    let other = TestCa::generate_for(&dir.path().join("other"), "DNS:elsewhere.invalid");
    let front = TlsFront::start(&other, plain.parse().unwrap());
    doctor
        .fx
        .host
        .env("SSL_CERT_FILE", &other.ca_pem.display().to_string());
    let (out, _) = run(&doctor, &front.addr.to_string());
    let tls = line(&out, ": TLS: ");
    assert!(
        tls.starts_with('✗')
            && tls.contains("for another host")
            && tls.contains("elsewhere.invalid"),
        "{out:?}"
    );

    // A port that accepts TCP and then says nothing: bounded, named.
    let (port, _held) = silent_port();
    let (out, took) = run(&doctor, &format!("127.0.0.1:{port}"));
    let tls = line(&out, ": TLS: ");
    assert!(
        tls.starts_with('✗') && tls.contains("no TLS answer within 3s"),
        "{out:?}"
    );
    assert!(took < std::time::Duration::from_secs(20), "{took:?}");
}

#[test]
fn credential_failures_are_told_apart() {
    let Some(_one) = kafka_world("credential_failures_are_told_apart") else {
        return;
    };
    let (mut doctor, cluster) = Doctor::new(KafkaOptions::default(), "");
    cluster.set_policy(&doctor.policy());
    let sts = FakeSts::start();
    doctor.fx.host.env("AWS_ENDPOINT_URL_STS", &sts.url());

    // A wrong secret: the broker refuses the signature, STS says why.
    doctor.fx.host.env(
        "AWS_SECRET_ACCESS_KEY",
        "wrongSecretAccessKey/000000000000000000000",
    );
    for _ in 0..2 {
        // check's identity line, then the doctor's question.
        sts.fail_next(
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        );
    }
    let out = doctor.check();
    assert_eq!(out.code, 69, "{out:?}");
    let auth = line(&out, "Kafka authentication: ");
    assert!(
        auth.starts_with('✗')
            && auth.contains("invalid credentials")
            && auth.contains("SignatureDoesNotMatch"),
        "{out:?}"
    );
    assert!(
        line(&out, ": authentication: the broker refused").contains("Access denied"),
        "{out:?}"
    );

    // The same refusal while this host's clock is an hour off STS's.
    sts.set_date(Some("Mon, 07 Dec 2020 17:00:00 GMT"));
    let out = doctor.check();
    let auth = line(&out, "Kafka authentication: ");
    assert!(
        auth.starts_with('✗') && auth.contains("clock skew") && auth.contains("ahead of STS"),
        "{out:?}"
    );
    sts.set_date(None);

    // Credentials the brokers know as expired.
    let creds = imds::Credentials::default();
    doctor
        .fx
        .host
        .env("AWS_SECRET_ACCESS_KEY", &creds.secret_access_key);
    cluster.trust_credentials(&[imds::Credentials {
        expiration: "2020-01-01T00:00:00Z".into(),
        ..creds.clone()
    }]);
    for _ in 0..2 {
        sts.fail_next(
            403,
            "ExpiredToken",
            "The security token included in the request is expired",
        );
    }
    let out = doctor.check();
    let auth = line(&out, "Kafka authentication: ");
    assert!(
        auth.starts_with('✗') && auth.contains("expired credentials"),
        "{out:?}"
    );

    // Trusted again: all passes.
    cluster.trust_credentials(&[creds]);
    let out = doctor.check();
    assert_eq!(out.code, 0, "{out:?}");
}

/// The role `iam_auth.role_arn` names in the tests below (not the instance's role).
const ROLE: &str = "arn:aws:iam::123456789012:role/ksql-msk-kafka";

fn with_role(doctor: &Doctor, role: Option<&str>) {
    let text = role.map_or(String::new(), |r| {
        format!("[iam_auth]\nrole_arn = \"{r}\"\n")
    });
    doctor.fx.host.write_dropin("60-role.toml", &text);
}

/// The fake STS's AssumeRole calls so far: (RoleArn, RoleSessionName).
fn assume_role_calls(sts: &FakeSts) -> Vec<(String, String)> {
    let get = |form: &[(String, String)], k: &str| {
        form.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    sts.calls()
        .iter()
        .filter(|form| get(form, "Action") == "AssumeRole")
        .map(|form| (get(form, "RoleArn"), get(form, "RoleSessionName")))
        .collect()
}

/// `iam_auth.role_arn`: the doctor signs with what STS AssumeRole hands out for that
/// role (session name aws-msk-iam-auth, the jar's default for `awsRoleArn`). The broker
/// trusts only those credentials, so the same check without the role is refused.
#[test]
fn role_arn_is_assumed_through_sts_and_signs_for_kafka() {
    let Some(_one) = kafka_world("role_arn_is_assumed_through_sts_and_signs_for_kafka") else {
        return;
    };
    let (doctor, cluster) = Doctor::new(KafkaOptions::default(), "");
    cluster.trust_credentials(&[sts::assumed_role_credentials()]);
    with_role(&doctor, Some(ROLE));
    let policy = doctor.policy();
    assert_eq!(policy["assumed_role"]["role_arn"], ROLE, "{policy}");
    cluster.set_policy(&policy["assumed_role"]["policy"]);

    let out = doctor.check();
    assert_eq!(out.code, 0, "{out:?}");
    let lines = kafka_lines(&out);
    assert!(
        lines.iter().all(|l| l.starts_with('✓')),
        "a Kafka line failed: {out:?}"
    );
    for step in ["DNS", "TCP", "TLS", "SASL", "authentication"] {
        assert!(
            lines.iter().any(|l| l.contains(&format!(": {step}: "))),
            "no {step} line: {out:?}"
        );
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("✓ Kafka authorization:")),
        "no authorization probe: {out:?}"
    );
    let assumed = assume_role_calls(&doctor.sts);
    assert!(
        !assumed.is_empty(),
        "no AssumeRole: {:?}",
        doctor.sts.calls()
    );
    for (role, session) in &assumed {
        assert_eq!(role, ROLE, "{assumed:?}");
        assert_eq!(session, "aws-msk-iam-auth", "{assumed:?}");
    }

    // The same broker and policy, without the role: the instance's own credentials,
    // which this broker does not know. No AssumeRole asked.
    with_role(&doctor, None);
    let before = assume_role_calls(&doctor.sts).len();
    let out = doctor.check();
    assert_eq!(out.code, 69, "{out:?}");
    assert!(line(&out, ": authentication: ").starts_with('✗'), "{out:?}");
    assert_eq!(assume_role_calls(&doctor.sts).len(), before, "{out:?}");
}

/// STS refuses AssumeRole (403 AccessDenied, as for a role whose trust policy does not
/// name this instance's role): one ✗ line naming the role, exit 69, quickly.
#[test]
fn role_arn_refused_by_sts_is_one_line() {
    let Some(_one) = kafka_world("role_arn_refused_by_sts_is_one_line") else {
        return;
    };
    let (doctor, cluster) = Doctor::new(KafkaOptions::default(), "");
    cluster.trust_credentials(&[sts::assumed_role_credentials()]);
    with_role(&doctor, Some(ROLE));
    let policy = doctor.policy();
    cluster.set_policy(&policy["assumed_role"]["policy"]);
    doctor.sts.fail_action(
        "AssumeRole",
        403,
        "AccessDenied",
        &format!("User: {ARN} is not authorized to perform: sts:AssumeRole on resource: {ROLE}"),
    );
    let started = Instant::now();
    let out = doctor.check();
    let took = started.elapsed();
    eprintln!("check with AssumeRole refused: {took:?}");
    assert_eq!(out.code, 69, "{out:?}");
    assert!(!out.stderr.contains("panicked"), "{out:?}");
    let failed = failures(&out);
    assert_eq!(failed.len(), 1, "{out:?}");
    let refused = failed[0];
    eprintln!("{refused}");
    // About the cluster as a whole, once, not a line per broker: nothing was signed to
    // send a broker (its lines stop at SASL).
    assert!(refused.starts_with("✗ Kafka authentication: "), "{out:?}");
    assert!(
        !out.stdout.contains(": authentication: ") && line(&out, ": SASL: ").starts_with('✓'),
        "{out:?}"
    );
    assert!(
        refused.contains(ROLE)
            && refused.contains("STS refused to assume it")
            && refused.contains("AccessDenied")
            && refused.contains("statement KsqlDbAssumeRole"),
        "{out:?}"
    );
    // The statement the line names is the one iam-policy emits for the role.
    assert!(
        policy["instance_role"]["Statement"]
            .as_array()
            .expect("statements")
            .iter()
            .any(|s| s["Sid"] == "KsqlDbAssumeRole"
                && (s["Resource"] == ROLE || s["Resource"][0] == ROLE)),
        "{policy}"
    );
    assert!(!assume_role_calls(&doctor.sts).is_empty(), "{out:?}");
    assert!(took < std::time::Duration::from_secs(20), "{took:?}");
}

/// Three brokers: every broker's steps, and the time (printed; the bound is generous,
/// the figure is for the notes).
#[test]
fn three_brokers_each_get_their_steps() {
    let Some(_one) = kafka_world("three_brokers_each_get_their_steps") else {
        return;
    };
    let (doctor, cluster) = Doctor::new(KafkaOptions::default().brokers(3), "");
    cluster.set_policy(&doctor.policy());
    let mut times = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let out = doctor.check();
        times.push(started.elapsed());
        assert_eq!(out.code, 0, "{out:?}");
        for b in cluster.bootstrap().split(',') {
            assert!(
                line(&out, &format!("broker {b}: authentication: ")).starts_with('✓'),
                "{out:?}"
            );
        }
    }
    eprintln!("check against 3 brokers: {times:?}");
}

/// The check's time against 1 and 3 brokers on loopback (issue 24: at most 2 s for 3),
/// printed, not asserted (performance is measured, not tested): `bench/check-kafka`
/// runs it with a release build. `KSQL_MSK_BENCH_BIN` names the binary to time (else
/// the test build); `KSQL_MSK_BENCH_ROUNDS` the rounds (7).
#[test]
#[ignore = "prints figures; run by bench/check-kafka"]
fn figures_check_time_for_1_and_3_brokers() {
    let Some(_one) = kafka_world("figures_check_time_for_1_and_3_brokers") else {
        return;
    };
    let bin = std::env::var("KSQL_MSK_BENCH_BIN").unwrap_or_else(|_| crate::support::bin().into());
    let rounds: usize = std::env::var("KSQL_MSK_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(7);
    for brokers in [1, 3] {
        let (doctor, cluster) = Doctor::new(KafkaOptions::default().brokers(brokers), "");
        cluster.set_policy(&doctor.policy());
        let mut total = Vec::new();
        let mut kafka_ms = Vec::new();
        for _ in 0..=rounds {
            let started = Instant::now();
            let out = doctor
                .fx
                .host
                .command_with(std::path::Path::new(&bin), &["check"])
                .output()
                .expect("check");
            let took = started.elapsed().as_secs_f64() * 1000.0;
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert_eq!(out.status.code(), Some(0), "{stdout}");
            // The doctor's own part: its broker steps run in parallel, then the probes;
            // from the first broker line to the last Kafka line, as the lines report it.
            let per_broker: Vec<u64> = stdout
                .lines()
                .filter(|l| l.starts_with("✓ broker "))
                .filter_map(|l| l.rsplit_once(" (")?.1.strip_suffix(" ms)")?.parse().ok())
                .collect();
            let probes: u64 = stdout
                .lines()
                .filter(|l| l.starts_with("✓ Kafka authorization:"))
                .filter_map(|l| {
                    l.rsplit_once(" (")?
                        .1
                        .strip_suffix(" ms)")?
                        .parse::<u64>()
                        .ok()
                })
                .max()
                .unwrap_or(0);
            let steps = per_broker
                .chunks(5)
                .map(|c| c.iter().sum::<u64>())
                .max()
                .unwrap_or(0);
            total.push(took);
            kafka_ms.push((steps + probes) as f64);
        }
        // The first round warms the page cache and the JVM-free path alike: dropped.
        total.remove(0);
        kafka_ms.remove(0);
        let stat = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            (v[v.len() / 2], v[0], v[v.len() - 1])
        };
        let (m, lo, hi) = stat(&mut total);
        let (km, klo, khi) = stat(&mut kafka_ms);
        println!(
            "figures: check against {brokers} broker(s), {rounds} rounds, {bin}: whole check {m:.0} ms \
             median ({lo:.0}-{hi:.0}); the Kafka part (slowest broker's steps + slowest probe) \
             {km:.0} ms ({klo:.0}-{khi:.0})"
        );
    }
}
