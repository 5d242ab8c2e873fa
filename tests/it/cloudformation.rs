//! deploy/cloudformation/ksql-msk.yaml: AWS's own linter passes it with no error, warning
//! or informational finding; the instance role's policy, rendered the way CloudFormation
//! evaluates it (tests/cloudformation/render.py, on cfn-lint's decoder), is exactly what
//! `ksql-msk iam-policy` prints for the same cluster and `ksql.service.id` (an existing
//! cluster in two partitions, and a cluster the stack creates); the user data is a valid
//! bash script that writes the cluster and service id with `ksql-msk config set`.
//! (Running that user data against the stand-ins is the systemd e2e's part.)

use std::path::PathBuf;
use std::process::Command;

use serde_json::{json, Value};

use crate::support::{repo_root, skip, Host};

fn template() -> PathBuf {
    repo_root().join("deploy/cloudformation/ksql-msk.yaml")
}

/// cfn-lint (PyPI; tests/setup-host installs it), or a loud skip.
fn have_cfn_lint() -> bool {
    let ok = Command::new("cfn-lint")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        skip("KSQL_MSK_REQUIRE_CFN_LINT", "no cfn-lint on PATH");
    }
    ok
}

fn render(params: &Value, what: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("params.json");
    std::fs::write(&file, params.to_string()).unwrap();
    let out = Command::new("python3")
        .arg(repo_root().join("tests/cloudformation/render.py"))
        .arg(template())
        .arg(&file)
        .arg(what)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "render.py {what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn stack_params(existing: &str, created: &str, service_id: &str, region: &str) -> Value {
    stack_params_topics(existing, created, service_id, region, "*")
}

fn stack_params_topics(
    existing: &str,
    created: &str,
    service_id: &str,
    region: &str,
    topics: &str,
) -> Value {
    json!({
        "UserTopics": topics,
        "ExistingClusterArn": existing,
        // What `Ref Cluster` returns when the stack creates the cluster.
        "Cluster": created,
        "ServiceId": service_id,
        "RepositoryUrl": "https://repo.test/ksql-msk",
        "VpcId": "vpc-0123456789abcdef0",
        "SubnetIds": ["subnet-0123456789abcdef0"],
        "AWS::Region": region,
        "AWS::StackName": "ksql-test",
        "AWS::Partition": "aws",
    })
}

/// `ksql-msk iam-policy` for a cluster ARN, service id and user topics.
fn iam_policy(arn: &str, service_id: &str, topics: &str) -> Value {
    let host = Host::new();
    host.write_config(&format!(
        "[msk]\ncluster_arn = \"{arn}\"\n[iam_auth]\npolicy_topics = [\"{topics}\"]\n\
         [properties]\n\"ksql.service.id\" = \"{service_id}\"\n"
    ));
    let out = host.run(&["iam-policy"]);
    assert_eq!(out.code, 0, "{out:?}");
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {out:?}"))
}

#[test]
fn the_template_passes_cfn_lint() {
    if !have_cfn_lint() {
        return;
    }
    // Errors and warnings by default; I adds the informational rules.
    let out = Command::new("cfn-lint")
        .args(["--include-checks", "I", "--"])
        .arg(template())
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "cfn-lint ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_role_policy_is_what_iam_policy_prints() {
    if !have_cfn_lint() {
        return;
    }
    let demo =
        "arn:aws:kafka:eu-west-1:123456789012:cluster/demo/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0-2";
    let china = "arn:aws-cn:kafka:cn-north-1:210987654321:cluster/orders-prod/aaaabbbb-cccc-dddd-eeee-ffff00001111-7";
    let created = "arn:aws:kafka:us-east-1:111122223333:cluster/ksql-test-ksql/12345678-90ab-cdef-1234-567890abcdef-1";
    for (existing, arn, sid, region, topics) in [
        (demo, demo, "demo_", "eu-west-1", "*"),
        (china, china, "orders_", "cn-north-1", "orders.*"),
        ("", created, "ksql_msk_", "us-east-1", "clicks"),
    ] {
        let params = stack_params_topics(existing, created, sid, region, topics);
        let from_template: Value = serde_json::from_str(&render(&params, "policy")).unwrap();
        let from_agent = iam_policy(arn, sid, topics);
        assert_eq!(
            from_template,
            from_agent,
            "the template's policy differs from `ksql-msk iam-policy` for {arn} / {sid}:\n\
             template: {}\nagent:    {}",
            serde_json::to_string_pretty(&from_template).unwrap(),
            serde_json::to_string_pretty(&from_agent).unwrap()
        );
    }
}

#[test]
fn the_user_data_is_a_bash_script_that_configures_the_cluster() {
    if !have_cfn_lint() {
        return;
    }
    let arn =
        "arn:aws:kafka:eu-west-1:123456789012:cluster/demo/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0-2";
    let script = render(&stack_params(arn, "", "demo_", "eu-west-1"), "userdata");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("user-data");
    std::fs::write(&file, &script).unwrap();
    let syntax = Command::new("bash").arg("-n").arg(&file).output().unwrap();
    assert!(
        syntax.status.success(),
        "{}",
        String::from_utf8_lossy(&syntax.stderr)
    );
    assert!(script.starts_with("#!/bin/bash\n"), "{script}");
    for line in [
        format!("ksql-msk config set msk.cluster_arn '{arn}'"),
        "ksql-msk config set properties.ksql.service.id 'demo_'".into(),
        "ksql-msk config set iam_auth.policy_topics '*'".into(),
        "systemctl enable --now ksql-msk || rc=$?".into(),
        "baseurl=https://repo.test/ksql-msk".into(),
        "repo_gpgcheck=1".into(),
    ] {
        assert!(
            script.lines().any(|l| l == line),
            "no line {line:?} in:\n{script}"
        );
    }
}
