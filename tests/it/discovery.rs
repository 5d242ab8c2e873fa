//! `ksql-msk brokers` against the fake MSK API (and fake IMDS).

use ksql_msk_testkit::imds::{self, FakeImds};
use ksql_msk_testkit::msk::{Cluster, FakeMsk, GET_BOOTSTRAP_BROKERS, LIST_CLUSTERS_V2};

use crate::support::{error_line, Host, REGION};

fn host_for(msk: &FakeMsk, cluster_line: &str, extra: &str) -> Host {
    let host = Host::new();
    host.write_config(&format!(
        "[msk]\n{cluster_line}\nregion = \"{REGION}\"\nendpoint_url = \"{}\"\ncluster_wait = \"3s\"\n{extra}",
        msk.url()
    ));
    host
}

fn arn_line(c: &Cluster) -> String {
    format!("cluster_arn = \"{}\"", c.arn)
}

#[test]
fn prints_exact_broker_string_for_each_connectivity() {
    let msk = FakeMsk::start();
    let c = Cluster::active("demo", REGION);
    msk.add(c.clone());
    for (extra, field) in [
        ("", "bootstrapBrokerStringSaslIam"),
        ("connectivity = \"private\"", "bootstrapBrokerStringSaslIam"),
        (
            "connectivity = \"public\"",
            "bootstrapBrokerStringPublicSaslIam",
        ),
        (
            "connectivity = \"vpc\"",
            "bootstrapBrokerStringVpcConnectivitySaslIam",
        ),
        ("ipv6 = true", "bootstrapBrokerStringSaslIamIpv6"),
    ] {
        let out = host_for(&msk, &arn_line(&c), extra).run(&["brokers"]);
        assert_eq!(out.code, 0, "{extra}: {out:?}");
        assert_eq!(
            out.stdout,
            format!("{}\n", c.brokers_field(field).unwrap()),
            "{extra}"
        );
    }
}

#[test]
fn name_lookup_picks_exact_name_among_prefix_siblings_across_pages() {
    let msk = FakeMsk::start();
    for name in ["demo-2", "demo-10", "demox", "demo", "demo-old"] {
        msk.add(Cluster::active(name, REGION));
    }
    msk.set_page_size(2);
    let host = host_for(&msk, "cluster_name = \"demo\"", "");
    let out = host.run(&["brokers"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.starts_with("b-1.demo.abc123."), "{out:?}");
    let lists = msk
        .operations()
        .iter()
        .filter(|o| *o == LIST_CLUSTERS_V2)
        .count();
    assert_eq!(
        lists,
        2,
        "demo is on the second page: {:?}",
        msk.operations()
    );
    let filters: Vec<_> = msk
        .server
        .requests()
        .iter()
        .filter_map(|r| r.query("clusterNameFilter"))
        .collect();
    assert!(filters.iter().all(|f| f == "demo"), "{filters:?}");
}

#[test]
fn unknown_name_is_unavailable_and_lists_similar_names() {
    let msk = FakeMsk::start();
    msk.add(Cluster::active("demo-2", REGION));
    let out = host_for(&msk, "cluster_name = \"demo\"", "").run(&["brokers"]);
    assert_eq!(out.code, 69, "{out:?}");
    assert_eq!(
        error_line(&out),
        "ksql-msk: error: msk.cluster_name: no MSK cluster named \"demo\" in eu-west-1 (similar names: demo-2)"
    );
}

#[test]
fn unknown_arn_is_unavailable() {
    let msk = FakeMsk::start();
    let c = Cluster::active("demo", REGION);
    let out = host_for(&msk, &arn_line(&c), "").run(&["brokers"]);
    assert_eq!(out.code, 69, "{out:?}");
    let line = error_line(&out);
    assert!(
        line.contains(&format!("describing cluster {}: not found", c.arn)),
        "{line}"
    );
}

#[test]
fn waits_while_creating_then_uses_active_cluster() {
    let msk = FakeMsk::start();
    let c = Cluster::active("demo", REGION).with_states(&["CREATING", "CREATING", "ACTIVE"]);
    msk.add(c.clone());
    let out = host_for(&msk, &arn_line(&c), "").run(&["brokers"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("cluster is CREATING; waiting"),
        "{out:?}"
    );
    assert_eq!(
        out.stdout.trim(),
        c.brokers_field("bootstrapBrokerStringSaslIam").unwrap()
    );
}

#[test]
fn clusters_that_serve_clients_while_changing_are_used_without_waiting() {
    for state in ["UPDATING", "MAINTENANCE", "HEALING", "REBOOTING_BROKER"] {
        let msk = FakeMsk::start();
        // Stuck in the state for good: waiting for ACTIVE would time out (3 s).
        let c = Cluster::active("demo", REGION).with_states(&[state]);
        msk.add(c.clone());
        let out = host_for(&msk, &arn_line(&c), "").run(&["brokers"]);
        assert_eq!(out.code, 0, "{state}: {out:?}");
        assert!(
            out.stderr
                .contains(&format!("cluster is {state}; MSK clusters serve clients")),
            "{state}: {out:?}"
        );
        assert!(!out.stderr.contains("; waiting"), "{state}: {out:?}");
        assert_eq!(
            out.stdout.trim(),
            c.brokers_field("bootstrapBrokerStringSaslIam").unwrap()
        );
    }
}

#[test]
fn waits_while_an_update_enables_iam_then_uses_it() {
    let msk = FakeMsk::start();
    let c = Cluster::active("demo", REGION)
        .with_states(&["UPDATING", "UPDATING", "ACTIVE"])
        .hiding_until_active(&["bootstrapBrokerStringSaslIam"]);
    msk.add(c.clone());
    let out = host_for(&msk, &arn_line(&c), "").run(&["brokers"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr
            .contains("cluster is UPDATING and has no BootstrapBrokerStringSaslIam yet; waiting"),
        "{out:?}"
    );
    assert_eq!(
        out.stdout.trim(),
        c.brokers_field("bootstrapBrokerStringSaslIam").unwrap()
    );
}

#[test]
fn gives_up_waiting_after_cluster_wait() {
    let stuck = |cluster: Cluster, expected: &str| {
        let msk = FakeMsk::start();
        msk.add(cluster.clone());
        let host = Host::new();
        host.write_config(&format!(
            "[msk]\n{}\nendpoint_url = \"{}\"\ncluster_wait = \"1s\"\n",
            arn_line(&cluster),
            msk.url()
        ));
        let out = host.run(&["brokers"]);
        assert_eq!(out.code, 75, "{out:?}");
        assert!(error_line(&out).contains(expected), "{out:?}");
    };
    stuck(
        Cluster::active("demo", REGION).with_states(&["CREATING"]),
        "is still CREATING after 1s (msk.cluster_wait)",
    );
    stuck(
        Cluster::active("demo", REGION)
            .with_states(&["UPDATING"])
            .hiding_until_active(&["bootstrapBrokerStringSaslIam"]),
        "is still UPDATING and has no BootstrapBrokerStringSaslIam yet after 1s (msk.cluster_wait)",
    );
}

#[test]
fn failed_cluster_is_unavailable_with_state_info() {
    let msk = FakeMsk::start();
    let mut c = Cluster::active("demo", REGION).with_states(&["FAILED"]);
    c.state_message = Some("Insufficient capacity in subnet".into());
    msk.add(c.clone());
    let out = host_for(&msk, &arn_line(&c), "").run(&["brokers"]);
    assert_eq!(out.code, 69, "{out:?}");
    assert_eq!(
        error_line(&out),
        format!(
            "ksql-msk: error: cluster {} is FAILED: Insufficient capacity in subnet",
            c.arn
        )
    );
}

#[test]
fn cluster_without_iam_says_so() {
    let msk = FakeMsk::start();
    let c = Cluster::active("demo", REGION);
    msk.add(c.clone());
    msk.set_brokers(&c.arn, "bootstrapBrokerStringSaslIam", None);
    msk.set_brokers(&c.arn, "bootstrapBrokerStringPublicSaslIam", None);
    let out = host_for(&msk, &arn_line(&c), "").run(&["brokers"]);
    assert_eq!(out.code, 69, "{out:?}");
    assert!(
        error_line(&out).contains(
            "has no BootstrapBrokerStringSaslIam: IAM authentication is not enabled on the cluster"
        ),
        "{out:?}"
    );
    let out = host_for(&msk, &arn_line(&c), "connectivity = \"public\"").run(&["brokers"]);
    assert_eq!(out.code, 69, "{out:?}");
    assert!(
        error_line(&out).contains("public access with IAM authentication is not enabled"),
        "{out:?}"
    );
}

#[test]
fn access_denied_names_action_and_role() {
    let msk = FakeMsk::start();
    let c = Cluster::active("demo", REGION);
    msk.add(c.clone());
    msk.fail_next(
        GET_BOOTSTRAP_BROKERS,
        1,
        403,
        "ForbiddenException",
        "User: arn:aws:sts::123456789012:assumed-role/ksql-host/i-0abc is not authorized to perform: kafka:GetBootstrapBrokers on resource: x",
    );
    let out = host_for(&msk, &arn_line(&c), "").run(&["brokers"]);
    assert_eq!(out.code, 69, "{out:?}");
    let line = error_line(&out);
    assert!(line.contains("access denied: role arn:aws:sts::123456789012:assumed-role/ksql-host/i-0abc may not call kafka:GetBootstrapBrokers"), "{line}");
    assert!(line.contains("ksql-msk iam-policy"), "{line}");
}

/// The switch the systemd e2e flips (ksql-msk-standins' `msk-deny`): while the file
/// exists, discovery is an AccessDenied (69, one call: the SDK does not retry a 403);
/// once it is gone, the same host discovers.
#[test]
fn deny_switch_is_access_denied_until_the_file_goes() {
    let msk = FakeMsk::start();
    let c = Cluster::active("demo", REGION);
    msk.add(c.clone());
    let host = host_for(&msk, &arn_line(&c), "");
    let switch = host.dir.path().join("msk-deny");
    msk.deny_while_exists(&switch);
    std::fs::write(&switch, "").unwrap();
    let out = host.run(&["brokers"]);
    assert_eq!(out.code, 69, "{out:?}");
    let line = error_line(&out);
    assert!(line.contains("access denied: role arn:aws:sts::123456789012:assumed-role/ksql/i-0standin may not call kafka:DescribeClusterV2"), "{line}");
    assert_eq!(
        msk.operations(),
        ["DescribeClusterV2"],
        "a 403 is not retried"
    );
    std::fs::remove_file(&switch).unwrap();
    let out = host.run(&["brokers"]);
    assert_eq!(out.code, 0, "{out:?}");
}

#[test]
fn throttling_is_retried_by_the_sdk() {
    let msk = FakeMsk::start();
    let c = Cluster::active("demo", REGION);
    msk.add(c.clone());
    msk.fail_next(
        GET_BOOTSTRAP_BROKERS,
        2,
        429,
        "TooManyRequestsException",
        "Too Many Requests",
    );
    let out = host_for(&msk, &arn_line(&c), "").run(&["brokers"]);
    assert_eq!(out.code, 0, "{out:?}");
    let calls = msk
        .operations()
        .iter()
        .filter(|o| *o == GET_BOOTSTRAP_BROKERS)
        .count();
    assert_eq!(calls, 3, "{:?}", msk.operations());
}

#[test]
fn server_errors_retry_then_exit_temporary() {
    let msk = FakeMsk::start();
    let c = Cluster::active("demo", REGION);
    msk.add(c.clone());
    msk.fail_next(
        GET_BOOTSTRAP_BROKERS,
        1,
        503,
        "ServiceUnavailableException",
        "try later",
    );
    let out = host_for(&msk, &arn_line(&c), "").run(&["brokers"]);
    assert_eq!(out.code, 0, "one 503 is retried: {out:?}");

    msk.fail_next(
        GET_BOOTSTRAP_BROKERS,
        3,
        500,
        "InternalServerErrorException",
        "boom",
    );
    let out = host_for(&msk, &arn_line(&c), "api_max_attempts = 3").run(&["brokers"]);
    assert_eq!(out.code, 75, "{out:?}");
    assert!(
        error_line(&out)
            .contains("MSK API still failing after retries (InternalServerErrorException: boom)"),
        "{out:?}"
    );
}

#[test]
fn bad_request_and_malformed_answers_are_clear() {
    let msk = FakeMsk::start();
    let c = Cluster::active("demo", REGION);
    msk.add(c.clone());
    msk.fail_next(
        GET_BOOTSTRAP_BROKERS,
        1,
        400,
        "BadRequestException",
        "The request is invalid",
    );
    let out = host_for(&msk, &arn_line(&c), "").run(&["brokers"]);
    assert_eq!(out.code, 69, "{out:?}");
    assert!(
        error_line(&out).contains(
            "kafka:GetBootstrapBrokers failed (BadRequestException: The request is invalid)"
        ),
        "{out:?}"
    );

    msk.answer_next_raw(
        GET_BOOTSTRAP_BROKERS,
        200,
        "{\"bootstrapBrokerStringSaslIam\": [1,",
    );
    let out = host_for(&msk, &arn_line(&c), "").run(&["brokers"]);
    assert_eq!(out.code, 69, "{out:?}");
    assert!(
        error_line(&out).contains("unreadable MSK API response"),
        "{out:?}"
    );

    msk.set_brokers(
        &c.arn,
        "bootstrapBrokerStringSaslIam",
        Some("b-1.demo:9098,evil host;rm -rf /:9098"),
    );
    let out = host_for(&msk, &arn_line(&c), "").run(&["brokers"]);
    assert_eq!(out.code, 69, "{out:?}");
    assert!(
        error_line(&out).contains("MSK returned an invalid BootstrapBrokerStringSaslIam"),
        "{out:?}"
    );
}

#[test]
fn serverless_cluster_works() {
    let msk = FakeMsk::start();
    let mut c = Cluster::active("serverless-demo", REGION);
    c.serverless = true;
    msk.add(c.clone());
    let out = host_for(&msk, &arn_line(&c), "").run(&["brokers"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout.trim(),
        c.brokers_field("bootstrapBrokerStringSaslIam").unwrap()
    );
}

#[test]
fn region_and_credentials_from_imds() {
    let msk = FakeMsk::start();
    msk.add(Cluster::active("demo", REGION));
    let imds = FakeImds::start(REGION, "10.1.2.3");
    let mut host = Host::new();
    host.write_config(&format!(
        "[msk]\ncluster_name = \"demo\"\nendpoint_url = \"{}\"\n",
        msk.url()
    ));
    host.unset_env("AWS_ACCESS_KEY_ID")
        .unset_env("AWS_SECRET_ACCESS_KEY");
    host.env("AWS_EC2_METADATA_DISABLED", "false");
    host.env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds.url());
    let out = host.run(&["brokers"]);
    assert_eq!(out.code, 0, "{out:?}");
    let auth = msk.server.requests()[0]
        .header("authorization")
        .unwrap()
        .to_string();
    assert!(
        auth.contains(&format!("Credential={}/", imds::ACCESS_KEY_ID)),
        "{auth}"
    );
    assert!(
        auth.contains(&format!("/{REGION}/kafka/aws4_request")),
        "{auth}"
    );
    let paths: Vec<String> = imds
        .server
        .requests()
        .iter()
        .map(|r| r.path().to_string())
        .collect();
    assert!(
        paths.contains(&"/latest/meta-data/placement/region".to_string()),
        "{paths:?}"
    );
}

#[test]
fn no_region_anywhere_is_a_config_error() {
    let msk = FakeMsk::start();
    let host = Host::new();
    host.write_config(&format!(
        "[msk]\ncluster_name = \"demo\"\nendpoint_url = \"{}\"\n",
        msk.url()
    ));
    let out = host.run(&["brokers"]);
    assert_eq!(out.code, 78, "{out:?}");
    assert!(
        error_line(&out).contains("msk.region: no AWS region"),
        "{out:?}"
    );
}

#[test]
fn endpoint_from_aws_endpoint_url_kafka() {
    let msk = FakeMsk::start();
    let c = Cluster::active("demo", REGION);
    msk.add(c.clone());
    let mut host = Host::new();
    host.write_config(&format!("[msk]\n{}\n", arn_line(&c)));
    host.env("AWS_ENDPOINT_URL_KAFKA", &msk.url());
    let out = host.run(&["brokers"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout.trim(),
        c.brokers_field("bootstrapBrokerStringSaslIam").unwrap()
    );
}

#[test]
fn unreachable_api_is_temporary() {
    // A port nothing listens on: bind, note the port, drop.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let c = Cluster::active("demo", REGION);
    let host = Host::new();
    host.write_config(&format!(
        "[msk]\n{}\nendpoint_url = \"http://127.0.0.1:{port}\"\napi_max_attempts = 2\n",
        arn_line(&c)
    ));
    let out = host.run(&["brokers"]);
    assert_eq!(out.code, 75, "{out:?}");
    assert!(
        error_line(&out).contains("cannot reach the MSK API"),
        "{out:?}"
    );
}
