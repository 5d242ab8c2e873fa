//! `ksql-msk iam-policy` against the policy grammar: valid JSON, Version 2012-10-17,
//! unique Sids, every ARN of MSK's documented forms; `iam_auth.role_arn`'s split into
//! the instance role's and the assumed role's policy; DeleteTopic on user topics; the
//! partition of cn- and us-gov- regions; a cluster name resolved through the fake MSK,
//! and the wildcard fallback with its note when it cannot be.

use std::collections::BTreeSet;

use ksql_msk_testkit::msk::{Cluster, FakeMsk, LIST_CLUSTERS_V2};
use serde_json::Value;

use crate::support::{Host, Output, REGION};

const ROLE: &str = "arn:aws:iam::210987654321:role/ksqldb-brokers";

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().expect("a string").to_string())
        .collect()
}

/// A loopback endpoint nothing listens on.
fn dead_endpoint() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}")
}

/// `[msk]` with `cluster` (a whole line), `region` and the endpoint.
fn host(cluster: &str, region: &str, endpoint: &str, rest: &str) -> Host {
    let host = Host::new();
    host.write_config(&format!(
        "[msk]\n{cluster}\nregion = \"{region}\"\nendpoint_url = \"{endpoint}\"\n{rest}"
    ));
    host
}

fn run(host: &Host) -> (Value, Output) {
    let out = host.run(&["iam-policy"]);
    assert_eq!(out.code, 0, "{out:?}");
    let doc: Value =
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {out:?}"));
    (doc, out)
}

/// Checks one policy document against the grammar; returns its statements by Sid.
fn check_policy(policy: &Value, partition: &str) -> Vec<(String, Value)> {
    assert_eq!(policy["Version"], "2012-10-17", "{policy}");
    let statements = policy["Statement"].as_array().expect("Statement array");
    assert!(!statements.is_empty());
    let mut sids = BTreeSet::new();
    let mut out = Vec::new();
    for s in statements {
        let sid = s["Sid"].as_str().expect("Sid").to_string();
        assert!(
            !sid.is_empty() && sid.bytes().all(|b| b.is_ascii_alphanumeric()),
            "{sid:?}"
        );
        assert!(sids.insert(sid.clone()), "duplicate Sid {sid}");
        assert_eq!(s["Effect"], "Allow");
        let actions = strings(&s["Action"]);
        assert!(!actions.is_empty());
        for r in strings(&s["Resource"]) {
            if r == "*" {
                // Only the list action has no resource-level permissions.
                assert_eq!(actions, ["kafka:ListClustersV2"], "{sid}: Resource *");
            } else if actions.iter().all(|a| a.starts_with("sts:")) {
                check_role_arn(&r);
            } else {
                check_kafka_arn(&r, partition, &actions);
            }
        }
        out.push((sid, s.clone()));
    }
    out
}

fn check_role_arn(r: &str) {
    let parts: Vec<&str> = r.splitn(6, ':').collect();
    assert_eq!(parts.len(), 6, "{r}");
    assert_eq!((parts[0], parts[2], parts[3]), ("arn", "iam", ""), "{r}");
    assert!(parts[1].starts_with("aws"), "{r}");
    assert!(parts[4].len() == 12 && parts[4].bytes().all(|b| b.is_ascii_digit()));
    assert!(parts[5].starts_with("role/") && parts[5].len() > 5, "{r}");
}

/// `arn:<partition>:kafka:<region>:<account>:cluster/<name>/<uuid>`, or
/// `topic|group|transactional-id/<name>/<uuid>/<name or prefix*>`.
fn check_kafka_arn(r: &str, partition: &str, actions: &[String]) {
    let parts: Vec<&str> = r.splitn(6, ':').collect();
    assert_eq!(parts.len(), 6, "{r}");
    assert_eq!(
        (parts[0], parts[1], parts[2]),
        ("arn", partition, "kafka"),
        "{r}"
    );
    let region_ok = parts[3] == "*" || {
        let p: Vec<&str> = parts[3].split('-').collect();
        p.len() >= 3 && p.last().unwrap().bytes().all(|b| b.is_ascii_digit())
    };
    assert!(region_ok, "region in {r}");
    assert!(
        parts[4] == "*" || (parts[4].len() == 12 && parts[4].bytes().all(|b| b.is_ascii_digit())),
        "account in {r}"
    );
    let path: Vec<&str> = parts[5].split('/').collect();
    let name_ok =
        |n: &str| !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let uuid_ok = |u: &str| u == "*" || name_ok(u);
    match path[0] {
        "cluster" => {
            assert_eq!(path.len(), 3, "{r}");
            assert!(actions.iter().all(|a| !a.contains("Topic")
                && !a.contains("Group")
                && !a.contains("TransactionalId")));
        }
        "topic" | "group" | "transactional-id" => {
            assert_eq!(path.len(), 4, "{r}");
            assert!(!path[3].is_empty(), "{r}");
            let star = path[3].find('*');
            assert!(
                star.is_none_or(|i| i == path[3].len() - 1),
                "{r}: * only at the end"
            );
        }
        other => panic!("{r}: unknown resource type {other}"),
    }
    assert!(name_ok(path[1]) && uuid_ok(path[2]), "{r}");
}

fn by_sid<'a>(statements: &'a [(String, Value)], sid: &str) -> &'a Value {
    &statements
        .iter()
        .find(|(s, _)| s == sid)
        .unwrap_or_else(|| panic!("no {sid} in {statements:?}"))
        .1
}

fn actions(statements: &[(String, Value)]) -> Vec<String> {
    statements
        .iter()
        .flat_map(|(_, s)| strings(&s["Action"]))
        .collect()
}

#[test]
fn user_topics_get_delete_topic_and_the_grammar_holds() {
    let msk = FakeMsk::start();
    let c = Cluster::active("demo", REGION);
    msk.add(c.clone());
    let h = host(
        &format!("cluster_arn = \"{}\"", c.arn),
        REGION,
        &msk.url(),
        "[iam_auth]\npolicy_topics = [\"orders\", \"pay*\"]\n",
    );
    let (doc, out) = run(&h);
    assert_eq!(out.stderr, "", "{out:?}");
    let st = check_policy(&doc, "aws");
    let user = by_sid(&st, "KsqlDbUserTopics");
    assert!(
        strings(&user["Action"]).contains(&"kafka-cluster:DeleteTopic".to_string()),
        "{user}"
    );
    assert!(msk.operations().is_empty(), "an ARN needs no API call");
}

#[test]
fn role_arn_splits_the_instance_role_from_the_assumed_role() {
    let msk = FakeMsk::start();
    let c = Cluster::active("demo", REGION);
    msk.add(c.clone());
    let h = host(
        &format!("cluster_arn = \"{}\"", c.arn),
        REGION,
        &msk.url(),
        &format!("[iam_auth]\nrole_arn = \"{ROLE}\"\n"),
    );
    let (doc, _) = run(&h);
    let instance = check_policy(&doc["instance_role"], "aws");
    assert_eq!(doc["assumed_role"]["role_arn"], ROLE, "{doc}");
    let assumed = check_policy(&doc["assumed_role"]["policy"], "aws");
    assert_eq!(
        actions(&instance),
        [
            "kafka:DescribeClusterV2",
            "kafka:GetBootstrapBrokers",
            "sts:AssumeRole"
        ]
    );
    assert_eq!(
        strings(&by_sid(&instance, "KsqlDbAssumeRole")["Resource"]),
        [ROLE]
    );
    assert_eq!(
        strings(&by_sid(&instance, "KsqlMskDiscovery")["Resource"]),
        [c.arn.as_str()]
    );
    let kafka_cluster = actions(&assumed);
    assert!(
        kafka_cluster
            .iter()
            .all(|a| a.starts_with("kafka-cluster:")),
        "{kafka_cluster:?}"
    );
    assert!(kafka_cluster.contains(&"kafka-cluster:Connect".to_string()));
    by_sid(&assumed, "KsqlDbTransactionalIds");
    // Sids are unique across both policies too.
    let all: BTreeSet<&String> = instance.iter().chain(&assumed).map(|(s, _)| s).collect();
    assert_eq!(all.len(), instance.len() + assumed.len());
}

#[test]
fn cluster_name_is_resolved_through_the_api() {
    let msk = FakeMsk::start();
    for name in ["demo-2", "demo", "demox"] {
        msk.add(Cluster::active(name, REGION));
    }
    let c = Cluster::active("demo", REGION);
    let h = host("cluster_name = \"demo\"", REGION, &msk.url(), "");
    let (doc, out) = run(&h);
    assert_eq!(out.stderr, "", "no note when resolved: {out:?}");
    let st = check_policy(&doc, "aws");
    assert_eq!(
        strings(&by_sid(&st, "KsqlMskDiscovery")["Resource"]),
        [c.arn.as_str()]
    );
    // Every cluster-scoped ARN carries the exact account, region and cluster id.
    let (prefix, path) = c.arn.split_once(":cluster/").unwrap();
    for (_, s) in &st {
        for r in strings(&s["Resource"]).iter().filter(|r| *r != "*") {
            assert!(r.starts_with(prefix) && r.contains(path), "{r}");
            assert!(!r[..r.rfind('/').unwrap()].contains('*'), "{r}");
        }
    }
    strings(&by_sid(&st, "KsqlMskFindClusterByName")["Action"]);
    assert!(msk.operations().iter().any(|o| o == LIST_CLUSTERS_V2));
}

#[test]
fn partitions_of_china_and_govcloud_regions() {
    for (region, partition) in [("cn-north-1", "aws-cn"), ("us-gov-west-1", "aws-us-gov")] {
        // Resolved: the ARN MSK returns, in its partition.
        let msk = FakeMsk::start();
        let mut c = Cluster::active("demo", region);
        c.arn = c.arn.replacen("arn:aws:", &format!("arn:{partition}:"), 1);
        msk.add(c.clone());
        let (doc, out) = run(&host("cluster_name = \"demo\"", region, &msk.url(), ""));
        assert_eq!(out.stderr, "", "{out:?}");
        let st = check_policy(&doc, partition);
        assert_eq!(
            strings(&by_sid(&st, "KsqlMskDiscovery")["Resource"]),
            [c.arn.as_str()]
        );
        // Not resolved: wildcards, still in the region's partition.
        let (doc, out) = run(&host(
            "cluster_name = \"demo\"",
            region,
            &dead_endpoint(),
            "",
        ));
        assert!(out.stderr.contains("ksql-msk: note: "), "{out:?}");
        let st = check_policy(&doc, partition);
        assert_eq!(
            strings(&by_sid(&st, "KsqlMskDiscovery")["Resource"]),
            [format!("arn:{partition}:kafka:{region}:*:cluster/demo/*")]
        );
    }
}

#[test]
fn unreachable_api_falls_back_to_wildcards_with_one_note() {
    let h = host("cluster_name = \"demo\"", REGION, &dead_endpoint(), "");
    let started = std::time::Instant::now();
    let (doc, out) = run(&h);
    let took = started.elapsed();
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr: {out:?}");
    assert!(
        lines[0].starts_with("ksql-msk: note: cluster \"demo\" not resolved")
            && lines[0].contains("cannot reach the MSK API")
            && lines[0].contains("wildcards"),
        "{out:?}"
    );
    let st = check_policy(&doc, "aws");
    assert_eq!(
        strings(&by_sid(&st, "KsqlMskDiscovery")["Resource"]),
        [format!("arn:aws:kafka:{REGION}:*:cluster/demo/*")]
    );
    eprintln!("unreachable MSK API: wildcard policy in {took:?}");
    assert!(took < std::time::Duration::from_secs(15), "{took:?}");
}

#[test]
fn no_credentials_falls_back_to_wildcards_naming_why() {
    let msk = FakeMsk::start();
    msk.add(Cluster::active("demo", REGION));
    let mut h = host("cluster_name = \"demo\"", REGION, &msk.url(), "");
    h.unset_env("AWS_ACCESS_KEY_ID")
        .unset_env("AWS_SECRET_ACCESS_KEY");
    let (doc, out) = run(&h);
    let notes: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("ksql-msk: note: "))
        .collect();
    assert_eq!(notes.len(), 1, "{out:?}");
    assert!(notes[0].contains("no AWS credentials"), "{out:?}");
    let st = check_policy(&doc, "aws");
    assert_eq!(
        strings(&by_sid(&st, "KsqlMskDiscovery")["Resource"]),
        [format!("arn:aws:kafka:{REGION}:*:cluster/demo/*")]
    );
}

#[test]
fn explain_gives_a_reason_for_every_action() {
    let msk = FakeMsk::start();
    let c = Cluster::active("demo", REGION);
    msk.add(c.clone());
    let h = host(
        "cluster_name = \"demo\"",
        REGION,
        &msk.url(),
        &format!("[iam_auth]\nrole_arn = \"{ROLE}\"\n"),
    );
    let (doc, _) = run(&h);
    let out = h.run(&["iam-policy", "--explain"]);
    assert_eq!(out.code, 0, "{out:?}");
    let text = out.stdout;
    let mut all = check_policy(&doc["instance_role"], "aws");
    all.extend(check_policy(&doc["assumed_role"]["policy"], "aws"));
    for (sid, s) in &all {
        let resources = strings(&s["Resource"]).join(", ");
        let head = format!("  {sid} on {resources}\n");
        let at = text
            .find(&head)
            .unwrap_or_else(|| panic!("no {head:?} in\n{text}"));
        // The statement's own lines: those indented by four.
        let body: Vec<&str> = text[at + head.len()..]
            .lines()
            .take_while(|l| l.starts_with("    "))
            .collect();
        for a in strings(&s["Action"]) {
            let line = body
                .iter()
                .find(|l| l.starts_with(&format!("    {a}: ")))
                .unwrap_or_else(|| panic!("{sid}: no reason for {a} in\n{text}"));
            assert!(line.len() > a.len() + 20, "{line}");
        }
    }
    assert!(text.contains("instance role:\n"), "{text}");
    assert!(text.contains(&format!("assumed role {ROLE}:\n")), "{text}");
}

#[test]
fn access_denied_to_the_lookup_falls_back_naming_the_action() {
    // The usual first run: the instance role does not have this policy yet.
    let msk = FakeMsk::start();
    msk.add(Cluster::active("demo", REGION));
    msk.fail_next(
        LIST_CLUSTERS_V2,
        1,
        403,
        "AccessDeniedException",
        "User: arn:aws:sts::123456789012:assumed-role/ksql/i-0abc is not authorized to perform: kafka:ListClustersV2",
    );
    let (doc, out) = run(&host("cluster_name = \"demo\"", REGION, &msk.url(), ""));
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{out:?}");
    assert!(
        lines[0].contains("access denied") && lines[0].contains("kafka:ListClustersV2"),
        "{out:?}"
    );
    let st = check_policy(&doc, "aws");
    assert_eq!(
        strings(&by_sid(&st, "KsqlMskDiscovery")["Resource"]),
        [format!("arn:aws:kafka:{REGION}:*:cluster/demo/*")]
    );
}
