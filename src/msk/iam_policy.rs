//! `ksql-msk iam-policy`: the least-privilege IAM policy for the configured cluster.
//!
//! MSK's IAM resources are derived from the cluster ARN
//! (`arn:<partition>:kafka:<region>:<account>:cluster/<name>/<uuid>`): topics are
//! `topic/<name>/<uuid>/<topic>`, groups `group/...`, transactional ids
//! `transactional-id/...`. With only a cluster name configured the ARN is looked up
//! through the API (discovery's ListClustersV2 lookup); when that fails, account,
//! cluster id (and region, if unknown) become wildcards and the caller says why.
//!
//! With `iam_auth.role_arn` the agent still discovers with the instance role, while
//! ksqlDB's IAM module assumes the role towards the brokers: the document then has two
//! policies, `instance_role` (discovery plus `sts:AssumeRole`) and
//! `assumed_role.policy` (the kafka-cluster statements).

use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::config::{ClusterArn, ClusterRef, Settings};
use crate::exit::one_line;

/// The partition of a region: `aws-cn` for `cn-*`, `aws-us-gov` for `us-gov-*`.
fn partition_of(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// The cluster the policy is for; `*` where unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    partition: String,
    region: String,
    account: String,
    name: String,
    uuid: String,
}

impl Target {
    fn exact(arn: &ClusterArn) -> Target {
        Target {
            partition: arn.partition.clone(),
            region: arn.region.clone(),
            account: arn.account.clone(),
            name: arn.name.clone(),
            uuid: arn.uuid.clone(),
        }
    }

    fn wildcards(name: &str, region: Option<&str>) -> Target {
        Target {
            partition: partition_of(region.unwrap_or("")).to_string(),
            region: region.unwrap_or("*").to_string(),
            account: "*".into(),
            name: name.to_string(),
            uuid: "*".into(),
        }
    }

    fn cluster(&self) -> String {
        format!(
            "arn:{}:kafka:{}:{}:cluster/{}/{}",
            self.partition, self.region, self.account, self.name, self.uuid
        )
    }

    fn child(&self, kind: &str, name: &str) -> String {
        format!(
            "arn:{}:kafka:{}:{}:{kind}/{}/{}/{name}",
            self.partition, self.region, self.account, self.name, self.uuid
        )
    }
}

/// The cluster to write the policy for, and a note when its ARN could not be resolved.
/// A configured ARN is used as it is; a name is looked up with discovery's own client
/// and ListClustersV2 lookup, with at most two attempts so a host without network or
/// credentials gets its wildcard policy in seconds.
pub(crate) async fn target(settings: &Settings) -> (Target, Option<String>) {
    let name = match &settings.msk.cluster {
        ClusterRef::Arn(arn) => return (Target::exact(arn), None),
        ClusterRef::Name(name) => name,
    };
    let mut msk = settings.msk.clone();
    msk.api_max_attempts = msk.api_max_attempts.min(2);
    let client = match crate::msk::discovery::kafka_client(&msk).await {
        Ok(client) => client,
        Err(e) => return fallback(name, msk.region.as_deref(), &e),
    };
    let region = client.config().region().map(|r| r.to_string());
    let shown = region
        .clone()
        .unwrap_or_else(|| "the configured region".into());
    let found = crate::msk::discovery::resolve(&client, &msk.cluster, &shown).await;
    let arn = found.and_then(|c| {
        let arn = c.cluster_arn().unwrap_or_default();
        ClusterArn::parse(arn).map_err(|e| anyhow::anyhow!("MSK returned a cluster ARN {e}"))
    });
    match arn {
        Ok(arn) => (Target::exact(&arn), None),
        Err(e) => fallback(name, region.as_deref(), &e),
    }
}

fn fallback(name: &str, region: Option<&str>, err: &anyhow::Error) -> (Target, Option<String>) {
    let t = Target::wildcards(name, region);
    let unknown = if region.is_some() {
        "account and cluster id"
    } else {
        "account, region and cluster id (partition aws assumed)"
    };
    let note = format!(
        "cluster {name:?} not resolved through the MSK API ({}); {unknown} are wildcards",
        one_line(err)
    );
    (t, Some(note))
}

/// One statement: what it is for, its actions with why each is needed, its resources.
struct Statement {
    sid: &'static str,
    actions: &'static [(&'static str, &'static str)],
    resources: Vec<String>,
}

impl Statement {
    fn json(&self) -> Value {
        let actions: Vec<&str> = self.actions.iter().map(|(a, _)| *a).collect();
        json!({
            "Sid": self.sid,
            "Effect": "Allow",
            "Action": actions,
            "Resource": self.resources
        })
    }
}

const DISCOVERY: &[(&str, &str)] = &[
    (
        "kafka:DescribeClusterV2",
        "the agent reads the cluster's state (waits while CREATING) before asking for brokers",
    ),
    (
        "kafka:GetBootstrapBrokers",
        "the agent reads the SASL/IAM bootstrap broker string it writes as bootstrap.servers",
    ),
];

const FIND_BY_NAME: &[(&str, &str)] = &[(
    "kafka:ListClustersV2",
    "the agent finds the cluster by msk.cluster_name; list actions have no resource-level permissions, hence Resource *",
)];

const ASSUME_ROLE: &[(&str, &str)] = &[(
    "sts:AssumeRole",
    "ksqlDB's aws-msk-iam-auth assumes iam_auth.role_arn (awsRoleArn) to sign its broker connections; that role's trust policy must also allow this instance role",
)];

const CONNECT: &[(&str, &str)] = &[
    (
        "kafka-cluster:Connect",
        "ksqlDB opens IAM-authenticated connections to the brokers",
    ),
    (
        "kafka-cluster:DescribeCluster",
        "ksqlDB's admin client describes the cluster (brokers, controller) at start",
    ),
    (
        "kafka-cluster:DescribeClusterDynamicConfiguration",
        "ksqlDB reads the brokers' configuration at start and does not start without it",
    ),
];

const INTERNAL_TOPICS: &[(&str, &str)] = &[
    (
        "kafka-cluster:CreateTopic",
        "ksqlDB creates its command topic, processing log, and the repartition and changelog topics of its queries",
    ),
    (
        "kafka-cluster:DeleteTopic",
        "ksqlDB deletes a query's internal topics when the query is terminated",
    ),
    (
        "kafka-cluster:DescribeTopic",
        "ksqlDB and Kafka Streams read the metadata of the topics they use",
    ),
    (
        "kafka-cluster:AlterTopic",
        "Kafka Streams adjusts its internal topics",
    ),
    (
        "kafka-cluster:DescribeTopicDynamicConfiguration",
        "ksqlDB checks the command topic's and internal topics' configuration (retention, cleanup policy)",
    ),
    (
        "kafka-cluster:AlterTopicDynamicConfiguration",
        "ksqlDB sets the configuration of its internal topics (the command topic keeps everything)",
    ),
    (
        "kafka-cluster:ReadData",
        "ksqlDB replays the command topic and its queries read their internal topics",
    ),
    (
        "kafka-cluster:WriteData",
        "ksqlDB writes statements to the command topic, the processing log and internal topics",
    ),
];

const USER_TOPICS: &[(&str, &str)] = &[
    (
        "kafka-cluster:CreateTopic",
        "CREATE STREAM/TABLE ... WITH (PARTITIONS=...) and CREATE ... AS SELECT create their topics",
    ),
    (
        "kafka-cluster:DeleteTopic",
        "DROP STREAM/TABLE ... DELETE TOPIC deletes the topic",
    ),
    (
        "kafka-cluster:DescribeTopic",
        "ksqlDB reads the metadata of source and sink topics (SHOW TOPICS, partitions)",
    ),
    (
        "kafka-cluster:DescribeTopicDynamicConfiguration",
        "ksqlDB reads topic configuration (SHOW TOPICS EXTENDED, creating sinks like their sources)",
    ),
    (
        "kafka-cluster:ReadData",
        "queries read their source topics; PRINT reads any topic",
    ),
    (
        "kafka-cluster:WriteData",
        "persistent queries and INSERT INTO write their sink topics",
    ),
];

const GROUPS: &[(&str, &str)] = &[
    (
        "kafka-cluster:AlterGroup",
        "ksqlDB's queries join their consumer groups and commit offsets",
    ),
    (
        "kafka-cluster:DescribeGroup",
        "ksqlDB reads its groups' state and offsets (consumer lag, DESCRIBE ... EXTENDED)",
    ),
    (
        "kafka-cluster:DeleteGroup",
        "ksqlDB deletes a terminated query's consumer group",
    ),
];

const TRANSACTIONAL_IDS: &[(&str, &str)] = &[
    (
        "kafka-cluster:AlterTransactionalId",
        "the command-topic producer (service id) and exactly-once queries (internal prefix) write in transactions",
    ),
    (
        "kafka-cluster:DescribeTransactionalId",
        "the same producers look up their transactional ids",
    ),
];

/// The instance role's statements: what the agent itself calls.
fn discovery_statements(settings: &Settings, t: &Target) -> Vec<Statement> {
    let mut out = vec![Statement {
        sid: "KsqlMskDiscovery",
        actions: DISCOVERY,
        resources: vec![t.cluster()],
    }];
    if matches!(settings.msk.cluster, ClusterRef::Name(_)) {
        out.push(Statement {
            sid: "KsqlMskFindClusterByName",
            actions: FIND_BY_NAME,
            resources: vec!["*".into()],
        });
    }
    out
}

/// The statements of the identity ksqlDB connects to the brokers as.
fn kafka_cluster_statements(settings: &Settings, t: &Target) -> Vec<Statement> {
    let sid = settings.service_id();
    let internal = format!("_confluent-ksql-{sid}");
    let mut out = vec![
        Statement {
            sid: "KsqlDbConnect",
            actions: CONNECT,
            resources: vec![t.cluster()],
        },
        // The command topic, internal topics and the processing log (`<id>ksql_processing_log`).
        Statement {
            sid: "KsqlDbInternalTopics",
            actions: INTERNAL_TOPICS,
            resources: vec![
                t.child("topic", &format!("{internal}*")),
                t.child("topic", &format!("{sid}ksql_processing_log")),
            ],
        },
    ];
    let user_topics: Vec<String> = settings
        .iam_auth
        .policy_topics
        .iter()
        .map(|topic| t.child("topic", topic))
        .collect();
    if !user_topics.is_empty() {
        out.push(Statement {
            sid: "KsqlDbUserTopics",
            actions: USER_TOPICS,
            resources: user_topics,
        });
    }
    out.push(Statement {
        sid: "KsqlDbConsumerGroups",
        actions: GROUPS,
        resources: vec![t.child("group", &format!("{internal}*"))],
    });
    // The command-topic producer uses the service id; exactly-once queries use ids under
    // the internal prefix.
    out.push(Statement {
        sid: "KsqlDbTransactionalIds",
        actions: TRANSACTIONAL_IDS,
        resources: vec![
            t.child("transactional-id", &format!("{sid}*")),
            t.child("transactional-id", &format!("{internal}*")),
        ],
    });
    out
}

/// The policies, each a titled list of statements: one (the instance role's) without
/// `iam_auth.role_arn`, two with it.
fn policies(settings: &Settings, t: &Target) -> Vec<(String, Vec<Statement>)> {
    let mut instance = discovery_statements(settings, t);
    match &settings.iam_auth.role_arn {
        None => {
            instance.extend(kafka_cluster_statements(settings, t));
            vec![("instance role".into(), instance)]
        }
        Some(role) => {
            instance.push(Statement {
                sid: "KsqlDbAssumeRole",
                actions: ASSUME_ROLE,
                resources: vec![role.clone()],
            });
            vec![
                ("instance role".into(), instance),
                (
                    format!("assumed role {role}"),
                    kafka_cluster_statements(settings, t),
                ),
            ]
        }
    }
}

fn document(statements: &[Statement]) -> Value {
    let statements: Vec<Value> = statements.iter().map(Statement::json).collect();
    json!({ "Version": "2012-10-17", "Statement": statements })
}

/// The policy JSON: one policy document, or with `iam_auth.role_arn`
/// `{"instance_role": <policy>, "assumed_role": {"role_arn": ..., "policy": <policy>}}`.
pub(crate) fn policy(settings: &Settings, t: &Target) -> Value {
    let mut ps = policies(settings, t);
    match &settings.iam_auth.role_arn {
        None => document(&ps.remove(0).1),
        Some(role) => json!({
            "instance_role": document(&ps[0].1),
            "assumed_role": { "role_arn": role, "policy": document(&ps[1].1) }
        }),
    }
}

/// `--explain`: every statement of every policy, its resources, and why each action is
/// needed.
pub(crate) fn explain(settings: &Settings, t: &Target) -> String {
    let mut out = String::new();
    for (title, statements) in policies(settings, t) {
        let _ = writeln!(out, "{title}:");
        for s in statements {
            let _ = writeln!(out, "  {} on {}", s.sid, s.resources.join(", "));
            for (action, why) in s.actions {
                let _ = writeln!(out, "    {action}: {why}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_follows_the_region() {
        assert_eq!(partition_of("cn-north-1"), "aws-cn");
        assert_eq!(partition_of("cn-northwest-1"), "aws-cn");
        assert_eq!(partition_of("us-gov-west-1"), "aws-us-gov");
        assert_eq!(partition_of("us-east-1"), "aws");
        assert_eq!(partition_of(""), "aws");
    }
}
