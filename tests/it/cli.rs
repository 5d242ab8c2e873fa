//! The command line: help, config errors and exit codes, `config get/set`, `iam-policy`.

use serde_json::Value;

use crate::support::{bin, error_line, repo_root, Host};

const ARN: &str =
    "arn:aws:kafka:eu-west-1:123456789012:cluster/demo/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0-2";

#[test]
fn every_command_has_help() {
    for args in [
        vec!["--help"],
        vec!["run", "--help"],
        vec!["install", "--help"],
        vec!["brokers", "--help"],
        vec!["check", "--help"],
        vec!["config", "--help"],
        vec!["config", "get", "--help"],
        vec!["config", "set", "--help"],
        vec!["iam-policy", "--help"],
    ] {
        let out = std::process::Command::new(bin())
            .args(&args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage: ksql-msk"),
            "{args:?}"
        );
    }
}

#[test]
fn config_errors_exit_78_with_one_line() {
    let host = Host::new();
    let cases = [
        (
            "[msk]\ncluster_arn = \"x\"\n",
            "ksql-msk.toml:2: msk.cluster_arn: \"x\" is not an ARN",
        ),
        (
            "[msk]\ncluster_name = \"demo\"\nflavour = \"x\"\n",
            "ksql-msk.toml:3: msk.flavour: unknown key",
        ),
        (
            "[msk]\ncluster_name = \"demo\"\nconnectivity = \"internet\"\n",
            "ksql-msk.toml:3: msk.connectivity: \"internet\" is not one of private, public, vpc",
        ),
        (
            &format!("[msk]\ncluster_name = \"demo\"\ncluster_arn = \"{ARN}\"\n"),
            "msk.cluster_name: both msk.cluster_arn",
        ),
        (
            "[msk]\nregion = \"eu-west-1\"\n",
            "msk.cluster_arn: no cluster configured",
        ),
        (
            "[msk]\ncluster_name = \"demo\"\n[agent]\nrestart_limit = \"5\"\n",
            "agent.restart_limit: expected a non-negative integer, found a string",
        ),
    ];
    for (text, expect) in cases {
        host.write_config(text);
        for cmd in ["brokers", "iam-policy"] {
            let out = host.run(&[cmd]);
            assert_eq!(out.code, 78, "{text}: {out:?}");
            let line = error_line(&out);
            assert!(line.contains(expect), "{cmd}: {line}");
            assert_eq!(
                out.stderr.lines().filter(|l| l.contains("error")).count(),
                1,
                "{out:?}"
            );
        }
    }
}

#[test]
fn missing_config_file_exit_78() {
    let host = Host::new();
    let out = host.run(&["brokers"]);
    assert_eq!(out.code, 78, "{out:?}");
    assert!(
        error_line(&out).contains("ksql-msk.toml: config file not found"),
        "{out:?}"
    );
}

#[test]
fn config_flag_beats_environment() {
    let host = Host::new();
    let other = host.dir.path().join("other.toml");
    std::fs::write(&other, "[msk]\ncluster_name = \"flagged\"\n").unwrap();
    host.write_config("[msk]\ncluster_name = \"fromenv\"\n");
    let out = host.run(&[
        "--config",
        other.to_str().unwrap(),
        "config",
        "get",
        "msk.cluster_name",
    ]);
    assert_eq!(out.stdout, "flagged\n", "{out:?}");
    let out = host.run(&["config", "get", "msk.cluster_name"]);
    assert_eq!(out.stdout, "fromenv\n", "{out:?}");
}

#[test]
fn config_set_on_shipped_default_changes_only_that_value() {
    let host = Host::new();
    let shipped = std::fs::read_to_string(repo_root().join("packaging/ksql-msk.toml")).unwrap();
    std::fs::write(host.config_path(), &shipped).unwrap();
    let out = host.run(&["config", "set", "ksqldb.version", "0.29.0"]);
    assert_eq!(out.code, 0, "{out:?}");
    let after = std::fs::read_to_string(host.config_path()).unwrap();
    // Byte diff: exactly the version's bytes differ.
    let old_line = "version = \"0.23.1\"\n";
    let pos = shipped.find(&format!("\n{old_line}")).unwrap() + 1;
    let mut expected = shipped.clone();
    expected.replace_range(pos..pos + old_line.len(), "version = \"0.29.0\"\n");
    assert_eq!(after, expected);
    // iam_auth.version, also "version", is untouched.
    assert!(after.contains("[iam_auth]\n# aws-msk-iam-auth release; its -all.jar goes into share/java/ksqldb/ of the release.\n# 2.3.5 and later need Java 17.\nversion = \"1.1.1\""));
    let out = host.run(&["config", "get", "ksqldb.version"]);
    assert_eq!(out.stdout, "0.29.0\n");
}

#[test]
fn config_set_refuses_wrong_type_and_keeps_file() {
    let host = Host::new();
    host.write_config("[msk]\ncluster_name = \"demo\"\n");
    let before = std::fs::read(host.config_path()).unwrap();
    let out = host.run(&["config", "set", "msk.ipv6", "maybe"]);
    assert_eq!(out.code, 78, "{out:?}");
    assert_eq!(
        error_line(&out),
        "ksql-msk: error: msk.ipv6: \"maybe\" is not true or false"
    );
    let out = host.run(&["config", "set", "agent.stall_timeout", "0s"]);
    assert_eq!(out.code, 78, "{out:?}");
    assert!(
        error_line(&out).contains("agent.stall_timeout: must be longer than zero"),
        "{out:?}"
    );
    assert_eq!(std::fs::read(host.config_path()).unwrap(), before);
}

#[test]
fn config_set_takes_values_that_start_with_a_hyphen() {
    let host = Host::new();
    host.write_config("[msk]\ncluster_name = \"demo\"\n");
    let out = host.run(&["config", "set", "ksqldb.jvm_opts", "-Xss2m"]);
    assert_eq!(out.code, 0, "{out:?}");
    let out = host.run(&["config", "get", "ksqldb.jvm_opts"]);
    assert_eq!(out.stdout, "-Xss2m\n", "{out:?}");
}

#[test]
fn config_set_refuses_a_heap_without_unit() {
    let host = Host::new();
    host.write_config("[msk]\ncluster_name = \"demo\"\n");
    let before = std::fs::read(host.config_path()).unwrap();
    let out = host.run(&["config", "set", "ksqldb.heap", "4096"]);
    assert_eq!(out.code, 78, "{out:?}");
    let line = error_line(&out);
    assert!(
        line.contains(
            "ksqldb.heap: \"4096\" is neither \"auto\" nor a JVM size with a unit (k, m or g"
        ),
        "{out:?}"
    );
    assert_eq!(std::fs::read(host.config_path()).unwrap(), before);
}

#[test]
fn config_set_warns_when_a_dropin_overrides() {
    let host = Host::new();
    host.write_config("[msk]\ncluster_name = \"demo\"\n");
    host.write_dropin("50-version.toml", "[ksqldb]\nversion = \"0.28.2\"\n");
    let out = host.run(&["config", "set", "ksqldb.version", "0.29.0"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr
            .contains("warning: ksqldb.version is also set in"),
        "{out:?}"
    );
    assert!(
        out.stderr.contains("50-version.toml:2 (drop-in)"),
        "{out:?}"
    );
    assert_eq!(
        host.run(&["config", "get", "ksqldb.version"]).stdout,
        "0.28.2\n"
    );
}

fn statement<'a>(policy: &'a Value, sid: &str) -> Option<&'a Value> {
    policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Sid"] == sid)
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn iam_policy_for_cluster_arn() {
    let host = Host::new();
    host.write_config(&format!(
        "[msk]\ncluster_arn = \"{ARN}\"\n[iam_auth]\npolicy_topics = [\"orders\", \"pay*\"]\n[properties]\n\"ksql.service.id\" = \"prod_\"\n"
    ));
    let out = host.run(&["iam-policy"]);
    assert_eq!(out.code, 0, "{out:?}");
    let policy: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(policy["Version"], "2012-10-17");
    let discovery = statement(&policy, "KsqlMskDiscovery").unwrap();
    assert_eq!(
        strings(&discovery["Action"]),
        ["kafka:DescribeClusterV2", "kafka:GetBootstrapBrokers"]
    );
    assert_eq!(strings(&discovery["Resource"]), [ARN]);
    assert!(
        statement(&policy, "KsqlMskFindClusterByName").is_none(),
        "no list permission needed with an ARN"
    );
    let connect = statement(&policy, "KsqlDbConnect").unwrap();
    assert!(strings(&connect["Action"])
        .contains(&"kafka-cluster:DescribeClusterDynamicConfiguration".to_string()));
    let base = "arn:aws:kafka:eu-west-1:123456789012";
    let cluster_path = "demo/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0-2";
    assert_eq!(
        strings(&statement(&policy, "KsqlDbInternalTopics").unwrap()["Resource"]),
        [
            format!("{base}:topic/{cluster_path}/_confluent-ksql-prod_*"),
            format!("{base}:topic/{cluster_path}/prod_ksql_processing_log")
        ]
    );
    assert_eq!(
        strings(&statement(&policy, "KsqlDbUserTopics").unwrap()["Resource"]),
        [
            format!("{base}:topic/{cluster_path}/orders"),
            format!("{base}:topic/{cluster_path}/pay*")
        ]
    );
    assert_eq!(
        strings(&statement(&policy, "KsqlDbConsumerGroups").unwrap()["Resource"]),
        [format!(
            "{base}:group/{cluster_path}/_confluent-ksql-prod_*"
        )]
    );
    let txn = statement(&policy, "KsqlDbTransactionalIds").unwrap();
    assert_eq!(
        strings(&txn["Resource"]),
        [
            format!("{base}:transactional-id/{cluster_path}/prod_*"),
            format!("{base}:transactional-id/{cluster_path}/_confluent-ksql-prod_*")
        ]
    );
}

#[test]
fn iam_policy_for_cluster_name_uses_wildcards_and_list() {
    let host = Host::new();
    // A loopback endpoint nothing listens on: the name lookup fails without touching AWS.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    host.write_config(&format!(
        "[msk]\ncluster_name = \"demo\"\nregion = \"us-east-1\"\nendpoint_url = \"http://127.0.0.1:{port}\"\n"
    ));
    let out = host.run(&["iam-policy"]);
    assert_eq!(out.code, 0, "{out:?}");
    let policy: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        strings(&statement(&policy, "KsqlMskDiscovery").unwrap()["Resource"]),
        ["arn:aws:kafka:us-east-1:*:cluster/demo/*"]
    );
    let list = statement(&policy, "KsqlMskFindClusterByName").unwrap();
    assert_eq!(strings(&list["Action"]), ["kafka:ListClustersV2"]);
    assert_eq!(
        strings(&statement(&policy, "KsqlDbInternalTopics").unwrap()["Resource"])[0],
        "arn:aws:kafka:us-east-1:*:topic/demo/*/_confluent-ksql-default_*"
    );
}
