//! `ksql-msk iam-policy`: the least-privilege IAM policy for the configured cluster.
//!
//! MSK's IAM resources are derived from the cluster ARN
//! (`arn:aws:kafka:<region>:<account>:cluster/<name>/<uuid>`): topics are
//! `topic/<name>/<uuid>/<topic>`, groups `group/...`, transactional ids
//! `transactional-id/...`. With only a cluster name configured, account and uuid are
//! unknown and become wildcards.

use serde_json::{json, Value};

use crate::config::{ClusterRef, Settings};

struct ClusterResources {
    /// `arn:<partition>:kafka:<region>:<account>`
    prefix: String,
    /// `<name>/<uuid>`
    cluster_path: String,
}

impl ClusterResources {
    fn new(settings: &Settings) -> ClusterResources {
        match &settings.msk.cluster {
            ClusterRef::Arn(arn) => ClusterResources {
                prefix: format!("arn:{}:kafka:{}:{}", arn.partition, arn.region, arn.account),
                cluster_path: format!("{}/{}", arn.name, arn.uuid),
            },
            ClusterRef::Name(name) => ClusterResources {
                prefix: format!(
                    "arn:aws:kafka:{}:*",
                    settings.msk.region.as_deref().unwrap_or("*")
                ),
                cluster_path: format!("{name}/*"),
            },
        }
    }
    fn cluster(&self) -> String {
        format!("{}:cluster/{}", self.prefix, self.cluster_path)
    }
    fn child(&self, kind: &str, name: &str) -> String {
        format!("{}:{kind}/{}/{name}", self.prefix, self.cluster_path)
    }
}

/// The policy document.
pub fn policy(settings: &Settings) -> Value {
    let r = ClusterResources::new(settings);
    let sid = settings.service_id();
    let internal = format!("_confluent-ksql-{sid}");
    let mut statements = vec![json!({
        "Sid": "KsqlMskDiscovery",
        "Effect": "Allow",
        "Action": ["kafka:DescribeClusterV2", "kafka:GetBootstrapBrokers"],
        "Resource": [r.cluster()]
    })];
    if matches!(settings.msk.cluster, ClusterRef::Name(_)) {
        // List actions have no resource-level permissions.
        statements.push(json!({
            "Sid": "KsqlMskFindClusterByName",
            "Effect": "Allow",
            "Action": ["kafka:ListClustersV2"],
            "Resource": ["*"]
        }));
    }
    statements.push(json!({
        "Sid": "KsqlDbConnect",
        "Effect": "Allow",
        "Action": [
            "kafka-cluster:Connect",
            "kafka-cluster:DescribeCluster",
            "kafka-cluster:DescribeClusterDynamicConfiguration"
        ],
        "Resource": [r.cluster()]
    }));
    // The command topic, internal topics and the processing log (`<id>ksql_processing_log`).
    statements.push(json!({
        "Sid": "KsqlDbInternalTopics",
        "Effect": "Allow",
        "Action": [
            "kafka-cluster:CreateTopic",
            "kafka-cluster:DeleteTopic",
            "kafka-cluster:DescribeTopic",
            "kafka-cluster:AlterTopic",
            "kafka-cluster:DescribeTopicDynamicConfiguration",
            "kafka-cluster:AlterTopicDynamicConfiguration",
            "kafka-cluster:ReadData",
            "kafka-cluster:WriteData"
        ],
        "Resource": [
            r.child("topic", &format!("{internal}*")),
            r.child("topic", &format!("{sid}ksql_processing_log"))
        ]
    }));
    let user_topics: Vec<String> = settings
        .iam_auth
        .policy_topics
        .iter()
        .map(|t| r.child("topic", t))
        .collect();
    if !user_topics.is_empty() {
        statements.push(json!({
            "Sid": "KsqlDbUserTopics",
            "Effect": "Allow",
            "Action": [
                "kafka-cluster:CreateTopic",
                "kafka-cluster:DescribeTopic",
                "kafka-cluster:DescribeTopicDynamicConfiguration",
                "kafka-cluster:ReadData",
                "kafka-cluster:WriteData"
            ],
            "Resource": user_topics
        }));
    }
    statements.push(json!({
        "Sid": "KsqlDbConsumerGroups",
        "Effect": "Allow",
        "Action": [
            "kafka-cluster:AlterGroup",
            "kafka-cluster:DescribeGroup",
            "kafka-cluster:DeleteGroup"
        ],
        "Resource": [r.child("group", &format!("{internal}*"))]
    }));
    // The command-topic producer uses the service id; exactly-once queries use ids under
    // the internal prefix.
    statements.push(json!({
        "Sid": "KsqlDbTransactionalIds",
        "Effect": "Allow",
        "Action": [
            "kafka-cluster:AlterTransactionalId",
            "kafka-cluster:DescribeTransactionalId"
        ],
        "Resource": [
            r.child("transactional-id", &format!("{sid}*")),
            r.child("transactional-id", &format!("{internal}*"))
        ]
    }));
    json!({ "Version": "2012-10-17", "Statement": statements })
}
