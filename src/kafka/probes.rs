//! What ksqlDB needs from Kafka (the plan: IAM action × resource), and how each need is
//! asked without changing anything. Kafka's "authorized operations" bitfields carry
//! most answers: the broker evaluates every operation on the named resource, also for a
//! topic or group that does not exist yet. MSK maps each Kafka operation to one
//! `kafka-cluster:` action (AWS's "Semantics of IAM authorization policy actions").
//!
//! | need | asked with | denied when |
//! | --- | --- | --- |
//! | Connect (cluster) | SaslAuthenticate | "Access denied" (client.rs, credentials.rs) |
//! | DescribeCluster | DescribeCluster ops | bit DESCRIBE(8) clear (0 = denied) |
//! | DescribeClusterDynamicConfiguration | DescribeConfigs BROKER | 31 (and bit 10) |
//! | WriteDataIdempotently | cluster ops bit 12 + InitProducerId without id | clear / 31 |
//! | DescribeTopic | Metadata v8 with topic ops | 29 |
//! | ReadData, WriteData, DeleteTopic, AlterTopic, Describe/AlterTopicDynamicConfiguration | topic ops bits 3, 4, 6, 7, 10, 11 | clear |
//! | CreateTopic | CreateTopics validate_only | 29 |
//! | DescribeGroup | FindCoordinator GROUP, DescribeGroups ops bit 8 | 30 / clear |
//! | AlterGroup, DeleteGroup | DescribeGroups ops bits 3, 6 (at the coordinator) | clear |
//! | DescribeTransactionalId | FindCoordinator TRANSACTION | 53 |
//! | AlterTransactionalId | EndTxn (abort) of an unused probe id | 53 (49 = allowed, nothing there) |
//!
//! Side effects: none on data. FindCoordinator makes a brand-new cluster create
//! `__consumer_offsets` / `__transaction_state` (as ksqlDB's first start does), and
//! InitProducerId uses up one producer id. EndTxn is only ever sent for a probe id no
//! producer uses, never for ksqlDB's own transactional id (that could fence it).

use std::time::{Duration, Instant};

use super::client::{self, Conn, Signer};
use super::finding::{Finding, Step};
use super::messages::{self, code};
use crate::config::Settings;
use crate::msk::discovery::BrokerAddr;
use crate::msk::iam_policy::Target;

/// The name part of probe resources that must not be ksqlDB's own.
pub const PROBE: &str = "ksql-msk-probe";

/// What a resource is, for the lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Cluster,
    Topic,
    Group,
    TransactionalId,
}

/// One need: an IAM action on one resource, with the name Kafka knows it by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    pub action: &'static str,
    pub kind: Kind,
    /// The topic, group or transactional id (empty for the cluster).
    pub name: String,
    /// What it is to ksqlDB ("command topic").
    pub role: String,
}

impl Need {
    pub fn resource(&self, t: &Target) -> String {
        match self.kind {
            Kind::Cluster => t.cluster(),
            Kind::Topic => t.child("topic", &self.name),
            Kind::Group => t.child("group", &self.name),
            Kind::TransactionalId => t.child("transactional-id", &self.name),
        }
    }
}

const CLUSTER: &[&str] = &[
    "kafka-cluster:Connect",
    "kafka-cluster:DescribeCluster",
    "kafka-cluster:DescribeClusterDynamicConfiguration",
    "kafka-cluster:WriteDataIdempotently",
];
/// ksqlDB's own topics: it creates, configures, reads, writes and deletes them.
const INTERNAL_TOPIC: &[&str] = &[
    "kafka-cluster:DescribeTopic",
    "kafka-cluster:CreateTopic",
    "kafka-cluster:ReadData",
    "kafka-cluster:WriteData",
    "kafka-cluster:DeleteTopic",
    "kafka-cluster:AlterTopic",
    "kafka-cluster:DescribeTopicDynamicConfiguration",
    "kafka-cluster:AlterTopicDynamicConfiguration",
];
/// Topics the operator's statements use (`iam_auth.policy_topics`).
const USER_TOPIC: &[&str] = &[
    "kafka-cluster:DescribeTopic",
    "kafka-cluster:CreateTopic",
    "kafka-cluster:ReadData",
    "kafka-cluster:WriteData",
    "kafka-cluster:DeleteTopic",
    "kafka-cluster:DescribeTopicDynamicConfiguration",
];
const GROUP: &[&str] = &[
    "kafka-cluster:DescribeGroup",
    "kafka-cluster:AlterGroup",
    "kafka-cluster:DeleteGroup",
];
const TRANSACTIONAL_ID: &[&str] = &[
    "kafka-cluster:DescribeTransactionalId",
    "kafka-cluster:AlterTransactionalId",
];

/// Whether `[properties]` turn on exactly-once processing.
pub fn exactly_once(settings: &Settings) -> bool {
    settings.properties.iter().any(|(k, v)| {
        (k == "processing.guarantee" || k == "ksql.streams.processing.guarantee")
            && v.trim().starts_with("exactly_once")
    })
}

/// A concrete name for a configured topic pattern (`orders*` → `orders` + probe).
fn concrete(pattern: &str) -> String {
    pattern.replace('*', PROBE).replace('?', "x")
}

/// Everything ksqlDB needs, in the order it is reported.
pub fn plan(settings: &Settings) -> Vec<Need> {
    let sid = settings.service_id();
    let internal = format!("_confluent-ksql-{sid}");
    let mut needs = Vec::new();
    let mut add = |actions: &[&'static str], kind: Kind, name: String, role: String| {
        for action in actions {
            needs.push(Need {
                action,
                kind,
                name: name.clone(),
                role: role.clone(),
            });
        }
    };
    add(CLUSTER, Kind::Cluster, String::new(), "cluster".into());
    add(
        INTERNAL_TOPIC,
        Kind::Topic,
        format!("{internal}_command_topic"),
        "command topic".into(),
    );
    add(
        INTERNAL_TOPIC,
        Kind::Topic,
        crate::msk::iam_policy::processing_log_topic(settings),
        "processing log".into(),
    );
    for pattern in &settings.iam_auth.policy_topics {
        add(
            USER_TOPIC,
            Kind::Topic,
            concrete(pattern),
            format!("topic {pattern} (iam_auth.policy_topics)"),
        );
    }
    add(
        GROUP,
        Kind::Group,
        format!("{internal}query_{PROBE}"),
        "ksqlDB's query consumer groups".into(),
    );
    // The command topic's producer is transactional, with the service id.
    add(
        &TRANSACTIONAL_ID[..1],
        Kind::TransactionalId,
        sid.to_string(),
        "command topic producer's transactional id".into(),
    );
    add(
        &TRANSACTIONAL_ID[1..],
        Kind::TransactionalId,
        format!("{sid}{PROBE}"),
        "command topic producer's transactional id (an unused probe id under it)".into(),
    );
    if exactly_once(settings) {
        add(
            TRANSACTIONAL_ID,
            Kind::TransactionalId,
            format!("{internal}query_{PROBE}"),
            "exactly-once queries' transactional ids".into(),
        );
    }
    needs
}

/// The answer to one need.
#[derive(Debug, Clone)]
enum Verdict {
    Allowed,
    Denied(String),
    /// Not askable (an earlier denial, a broker error): a ✗ naming why.
    Unknown(String),
}

const READ: i32 = 3;
const WRITE: i32 = 4;
const DELETE: i32 = 6;
const ALTER: i32 = 7;
const DESCRIBE: i32 = 8;
const DESCRIBE_CONFIGS: i32 = 10;
const ALTER_CONFIGS: i32 = 11;
const IDEMPOTENT_WRITE: i32 = 12;

fn has(ops: i32, bit: i32) -> bool {
    ops != i32::MIN && ops & (1 << bit) != 0
}

fn bit_of(action: &str) -> Option<i32> {
    Some(match action {
        "kafka-cluster:ReadData" | "kafka-cluster:AlterGroup" => READ,
        "kafka-cluster:WriteData" => WRITE,
        "kafka-cluster:DeleteTopic" | "kafka-cluster:DeleteGroup" => DELETE,
        "kafka-cluster:AlterTopic" => ALTER,
        "kafka-cluster:DescribeTopic"
        | "kafka-cluster:DescribeGroup"
        | "kafka-cluster:DescribeCluster" => DESCRIBE,
        "kafka-cluster:DescribeTopicDynamicConfiguration"
        | "kafka-cluster:DescribeClusterDynamicConfiguration" => DESCRIBE_CONFIGS,
        "kafka-cluster:AlterTopicDynamicConfiguration" => ALTER_CONFIGS,
        "kafka-cluster:WriteDataIdempotently" => IDEMPOTENT_WRITE,
        _ => return None,
    })
}

fn from_ops(ops: i32, action: &str, asked: &str) -> Verdict {
    if ops == i32::MIN {
        return Verdict::Unknown(format!(
            "the broker did not compute authorized operations for {asked}"
        ));
    }
    match bit_of(action) {
        Some(bit) if has(ops, bit) => Verdict::Allowed,
        Some(_) => Verdict::Denied(format!("{asked}: authorized operations lack it")),
        None => Verdict::Unknown(format!("no probe for {action}")),
    }
}

/// Connections by broker, opened on demand for coordinators.
struct Pool<'a> {
    conns: &'a mut Vec<Conn>,
    signer: Result<&'a Signer, &'a str>,
}

impl Pool<'_> {
    /// The connection to `host:port`, authenticating a new one when needed.
    async fn to(&mut self, host: &str, port: i32) -> Result<&mut Conn, String> {
        let found = self
            .conns
            .iter()
            .position(|c| c.broker.host == host && i32::from(c.broker.port) == port);
        let i = match found {
            Some(i) => i,
            None => {
                let port = u16::try_from(port).map_err(|_| format!("coordinator port {port}"))?;
                let broker = BrokerAddr {
                    host: host.to_string(),
                    port,
                };
                let (lines, conn, _) = client::connect(&broker, self.signer).await;
                let Some(conn) = conn else {
                    let why = lines
                        .iter()
                        .rev()
                        .find(|l| !l.ok)
                        .map(|l| l.line())
                        .unwrap_or_default();
                    return Err(format!("cannot reach the coordinator {broker}: {why}"));
                };
                self.conns.push(conn);
                self.conns.len() - 1
            }
        };
        Ok(&mut self.conns[i])
    }
    fn first(&mut self) -> &mut Conn {
        &mut self.conns[0]
    }
}

/// Ask every need of the plan; one finding per denied need, one ✓ per resource.
pub async fn run(
    settings: &Settings,
    t: &Target,
    conns: &mut Vec<Conn>,
    signer: Result<&Signer, &str>,
) -> Vec<Finding> {
    let needs = plan(settings);
    let mut pool = Pool { conns, signer };
    let mut verdicts: Vec<(Verdict, Duration)> = Vec::with_capacity(needs.len());
    let (cluster_ops, cluster_error, cluster_took) = describe_cluster(&mut pool).await;
    let topics = TopicAnswers::ask(&needs, &mut pool).await;
    for need in &needs {
        let started = Instant::now();
        let (verdict, took) = match need.kind {
            Kind::Cluster => {
                let v = cluster_need(need, &cluster_ops, &cluster_error, &mut pool).await;
                (v, cluster_took + started.elapsed())
            }
            Kind::Topic => topics.verdict(need),
            // Asked below, by coordinator.
            Kind::Group | Kind::TransactionalId => {
                (Verdict::Unknown(String::new()), Duration::ZERO)
            }
        };
        verdicts.push((verdict, took));
    }
    coordinated(&needs, &mut pool, &mut verdicts).await;
    report(settings, t, &needs, &verdicts)
}

/// The cluster's authorized operations and brokers (DescribeCluster), or why not.
async fn describe_cluster(
    pool: &mut Pool<'_>,
) -> (
    Option<(i32, Vec<messages::Broker>)>,
    Option<String>,
    Duration,
) {
    let started = Instant::now();
    let cluster = async {
        let body = pool
            .first()
            .request(
                messages::DESCRIBE_CLUSTER,
                &messages::describe_cluster_request(),
            )
            .await?;
        messages::describe_cluster_response(&body).map_err(|e| e.to_string())
    }
    .await;
    let took = started.elapsed();
    match cluster {
        Ok(c) if c.error_code == code::NONE => {
            (Some((c.authorized_operations, c.brokers)), None, took)
        }
        Ok(c) => {
            let why = format!(
                "DescribeCluster answered {} {}",
                messages::error_name(c.error_code),
                c.error_message.unwrap_or_default()
            );
            (None, Some(why), took)
        }
        Err(e) => (None, Some(e), took),
    }
}

/// The topics' answers: one Metadata and one dry-run CreateTopics for all of them.
struct TopicAnswers {
    metadata: Result<messages::Metadata, String>,
    metadata_took: Duration,
    created: Result<Vec<(String, i16, Option<String>)>, String>,
    create_took: Duration,
}

impl TopicAnswers {
    async fn ask(needs: &[Need], pool: &mut Pool<'_>) -> TopicAnswers {
        let mut topics: Vec<&str> = needs
            .iter()
            .filter(|n| n.kind == Kind::Topic)
            .map(|n| n.name.as_str())
            .collect();
        topics.dedup();
        let started = Instant::now();
        let metadata = async {
            let body = pool
                .first()
                .request(messages::METADATA, &messages::metadata_request(&topics))
                .await?;
            messages::metadata_response(&body).map_err(|e| e.to_string())
        }
        .await;
        let metadata_took = started.elapsed();
        let started = Instant::now();
        let created = async {
            let body = pool
                .first()
                .request(
                    messages::CREATE_TOPICS,
                    &messages::create_topics_dry_run(&topics, 5000),
                )
                .await?;
            messages::create_topics_response(&body).map_err(|e| e.to_string())
        }
        .await;
        TopicAnswers {
            metadata,
            metadata_took,
            created,
            create_took: started.elapsed(),
        }
    }

    fn verdict(&self, need: &Need) -> (Verdict, Duration) {
        if need.action == "kafka-cluster:CreateTopic" {
            return (self.create_verdict(need), self.create_took);
        }
        let v = match &self.metadata {
            Ok(m) => match m.topics.iter().find(|t| t.name == need.name) {
                Some(tm) if tm.error_code == code::TOPIC_AUTHORIZATION_FAILED => {
                    if need.action == "kafka-cluster:DescribeTopic" {
                        Verdict::Denied("Metadata answered TOPIC_AUTHORIZATION_FAILED".into())
                    } else {
                        Verdict::Unknown("needs kafka-cluster:DescribeTopic first".into())
                    }
                }
                Some(tm)
                    if tm.error_code == code::NONE
                        || tm.error_code == code::UNKNOWN_TOPIC_OR_PARTITION =>
                {
                    from_ops(tm.authorized_operations, need.action, "Metadata")
                }
                Some(tm) => Verdict::Unknown(format!(
                    "Metadata answered {}",
                    messages::error_name(tm.error_code)
                )),
                None => Verdict::Unknown("Metadata did not answer for it".into()),
            },
            Err(e) => Verdict::Unknown(e.clone()),
        };
        (v, self.metadata_took)
    }

    fn create_verdict(&self, need: &Need) -> Verdict {
        match &self.created {
            Ok(list) => match list.iter().find(|(n, _, _)| *n == need.name) {
                Some((_, c, _)) if *c == code::TOPIC_AUTHORIZATION_FAILED => Verdict::Denied(
                    "CreateTopics (validate only) answered TOPIC_AUTHORIZATION_FAILED".into(),
                ),
                Some(_) => Verdict::Allowed,
                None => Verdict::Unknown("CreateTopics did not answer for it".into()),
            },
            Err(e) => Verdict::Unknown(e.clone()),
        }
    }
}

/// Groups and transactional ids, each name once, asked of its coordinator.
async fn coordinated(needs: &[Need], pool: &mut Pool<'_>, verdicts: &mut [(Verdict, Duration)]) {
    let mut i = 0;
    while i < needs.len() {
        let need = &needs[i];
        let same: Vec<usize> = (i..needs.len())
            .take_while(|j| needs[*j].kind == need.kind && needs[*j].name == need.name)
            .collect();
        let next = same.last().map_or(i + 1, |l| l + 1);
        match need.kind {
            Kind::Group => {
                let started = Instant::now();
                let answers = group(&need.name, pool).await;
                for j in same {
                    verdicts[j] = (answers(needs[j].action), started.elapsed());
                }
            }
            Kind::TransactionalId => {
                for j in same {
                    let started = Instant::now();
                    let v = transactional_id(&needs[j], pool).await;
                    verdicts[j] = (v, started.elapsed());
                }
            }
            _ => {}
        }
        i = next;
    }
}

async fn cluster_need(
    need: &Need,
    ops: &Option<(i32, Vec<messages::Broker>)>,
    error: &Option<String>,
    pool: &mut Pool<'_>,
) -> Verdict {
    if need.action == "kafka-cluster:Connect" {
        // Authentication passed on this connection: MSK checks Connect there.
        return Verdict::Allowed;
    }
    let Some((ops, brokers)) = ops else {
        return Verdict::Unknown(error.clone().unwrap_or_default());
    };
    if need.action == "kafka-cluster:DescribeCluster" {
        return if *ops == 0 || !has(*ops, DESCRIBE) {
            Verdict::Denied("DescribeCluster: authorized operations lack DESCRIBE".into())
        } else {
            Verdict::Allowed
        };
    }
    if *ops == 0 {
        return Verdict::Unknown("needs kafka-cluster:DescribeCluster first".into());
    }
    let bits = from_ops(*ops, need.action, "DescribeCluster");
    if !matches!(bits, Verdict::Allowed) {
        return bits;
    }
    // Confirm with the request ksqlDB (or its producers) really make.
    let conn = pool.first();
    match need.action {
        "kafka-cluster:DescribeClusterDynamicConfiguration" => {
            let me = brokers
                .iter()
                .find(|b| b.host == conn.broker.host && b.port == i32::from(conn.broker.port))
                .map(|b| b.node_id.to_string())
                .unwrap_or_default();
            let answer = async {
                let body = conn
                    .request(
                        messages::DESCRIBE_CONFIGS,
                        &messages::describe_configs_request(&me, "auto.create.topics.enable"),
                    )
                    .await?;
                messages::describe_configs_response(&body).map_err(|e| e.to_string())
            };
            match answer.await {
                Ok(code::NONE) => Verdict::Allowed,
                Ok(code::CLUSTER_AUTHORIZATION_FAILED) => Verdict::Denied(
                    "DescribeConfigs of the broker answered CLUSTER_AUTHORIZATION_FAILED".into(),
                ),
                Ok(c) => Verdict::Unknown(format!(
                    "DescribeConfigs answered {}",
                    messages::error_name(c)
                )),
                Err(e) => Verdict::Unknown(e),
            }
        }
        "kafka-cluster:WriteDataIdempotently" => {
            let answer = async {
                let body = conn
                    .request(
                        messages::INIT_PRODUCER_ID,
                        &messages::init_producer_id_request(),
                    )
                    .await?;
                messages::init_producer_id_response(&body).map_err(|e| e.to_string())
            };
            match answer.await {
                Ok(code::CLUSTER_AUTHORIZATION_FAILED) => {
                    Verdict::Denied("InitProducerId answered CLUSTER_AUTHORIZATION_FAILED".into())
                }
                Ok(_) => Verdict::Allowed,
                Err(e) => Verdict::Unknown(e),
            }
        }
        _ => Verdict::Allowed,
    }
}

/// FindCoordinator, asked again while the coordinator is loading or not there yet (a
/// new cluster creates `__consumer_offsets` / `__transaction_state` on the first ask),
/// within [`client::STEP_TIMEOUT`].
async fn find_coordinator(
    pool: &mut Pool<'_>,
    key: &str,
    key_type: i8,
) -> Result<messages::Coordinator, String> {
    let deadline = Instant::now() + client::STEP_TIMEOUT;
    loop {
        let body = pool
            .first()
            .request(
                messages::FIND_COORDINATOR,
                &messages::find_coordinator_request(key, key_type),
            )
            .await?;
        let c = messages::find_coordinator_response(&body).map_err(|e| e.to_string())?;
        let retriable = c.error_code == code::COORDINATOR_NOT_AVAILABLE
            || c.error_code == code::COORDINATOR_LOAD_IN_PROGRESS;
        if !retriable || Instant::now() >= deadline {
            return Ok(c);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The group's coordinator, then its authorized operations there.
async fn group(name: &str, pool: &mut Pool<'_>) -> impl Fn(&str) -> Verdict {
    let deadline = Instant::now() + client::STEP_TIMEOUT;
    let result: Result<Option<i32>, String> = loop {
        let r = describe_group(name, pool).await;
        // A coordinator that is still loading (a new cluster's `__consumer_offsets`).
        let loading = matches!(&r, Err((Some(c), _)) if [code::COORDINATOR_LOAD_IN_PROGRESS, code::COORDINATOR_NOT_AVAILABLE, code::NOT_COORDINATOR].contains(c));
        if !loading || Instant::now() >= deadline {
            break r.map_err(|(_, e)| e);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    move |action: &str| match &result {
        Ok(None) if action == "kafka-cluster:DescribeGroup" => {
            Verdict::Denied("FindCoordinator answered GROUP_AUTHORIZATION_FAILED".into())
        }
        Ok(None) => Verdict::Unknown("needs kafka-cluster:DescribeGroup first".into()),
        Ok(Some(ops)) => from_ops(*ops, action, "DescribeGroups"),
        Err(e) => Verdict::Unknown(e.clone()),
    }
}

/// The group's authorized operations (None: describing it is denied), or the error
/// code and line.
async fn describe_group(
    name: &str,
    pool: &mut Pool<'_>,
) -> Result<Option<i32>, (Option<i16>, String)> {
    {
        let c = find_coordinator(pool, name, messages::KEY_GROUP)
            .await
            .map_err(|e| (None, e))?;
        if c.error_code == code::GROUP_AUTHORIZATION_FAILED {
            return Ok(None);
        }
        if c.error_code != code::NONE {
            return Err((
                Some(c.error_code),
                format!(
                    "FindCoordinator answered {}",
                    messages::error_name(c.error_code)
                ),
            ));
        }
        let conn = pool.to(&c.host, c.port).await.map_err(|e| (None, e))?;
        let body = conn
            .request(
                messages::DESCRIBE_GROUPS,
                &messages::describe_groups_request(name),
            )
            .await
            .map_err(|e| (None, e))?;
        let g = messages::describe_groups_response(&body).map_err(|e| (None, e.to_string()))?;
        match g.error_code {
            code::NONE => Ok(Some(g.authorized_operations)),
            code::GROUP_AUTHORIZATION_FAILED => Ok(None),
            other => Err((
                Some(other),
                format!("DescribeGroups answered {}", messages::error_name(other)),
            )),
        }
    }
}

async fn transactional_id(need: &Need, pool: &mut Pool<'_>) -> Verdict {
    let result: Result<Verdict, String> = async {
        let c = find_coordinator(pool, &need.name, messages::KEY_TRANSACTION).await?;
        if c.error_code == code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED {
            return Ok(if need.action == "kafka-cluster:DescribeTransactionalId" {
                Verdict::Denied(
                    "FindCoordinator answered TRANSACTIONAL_ID_AUTHORIZATION_FAILED".into(),
                )
            } else {
                Verdict::Unknown("needs kafka-cluster:DescribeTransactionalId first".into())
            });
        }
        if c.error_code != code::NONE {
            return Err(format!(
                "FindCoordinator answered {}",
                messages::error_name(c.error_code)
            ));
        }
        if need.action == "kafka-cluster:DescribeTransactionalId" {
            return Ok(Verdict::Allowed);
        }
        let conn = pool.to(&c.host, c.port).await?;
        let body = conn
            .request(messages::END_TXN, &messages::end_txn_request(&need.name))
            .await?;
        Ok(
            match messages::end_txn_response(&body).map_err(|e| e.to_string())? {
                code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED => {
                    Verdict::Denied("EndTxn answered TRANSACTIONAL_ID_AUTHORIZATION_FAILED".into())
                }
                // No producer for the probe id (49) or another broker's id (16): allowed.
                _ => Verdict::Allowed,
            },
        )
    }
    .await;
    result.unwrap_or_else(Verdict::Unknown)
}

/// One ✓ line per resource listing what is allowed; one ✗ line per need denied or not
/// askable, naming the action, the resource ARN and the iam-policy statement.
fn report(
    settings: &Settings,
    t: &Target,
    needs: &[Need],
    verdicts: &[(Verdict, Duration)],
) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < needs.len() {
        let first = &needs[i];
        let end = (i..needs.len())
            .find(|j| needs[*j].kind != first.kind || needs[*j].name != first.name)
            .unwrap_or(needs.len());
        let resource = first.resource(t);
        let mut allowed = Vec::new();
        let mut took = Duration::ZERO;
        for j in i..end {
            let (verdict, d) = &verdicts[j];
            took = took.max(*d);
            let need = &needs[j];
            let sid = crate::msk::iam_policy::granting_sid(settings, t, need.action, &resource);
            let grant = match sid {
                Some(s) => format!("`ksql-msk iam-policy` statement {s} grants it"),
                None => "no `ksql-msk iam-policy` statement grants it".into(),
            };
            let text = match verdict {
                Verdict::Allowed => {
                    allowed.push(need.action.trim_start_matches("kafka-cluster:"));
                    continue;
                }
                Verdict::Denied(how) => format!(
                    "IAM denies {} on {resource} ({}): {grant} ({how})",
                    need.action, need.role
                ),
                Verdict::Unknown(why) => format!(
                    "{} on {resource} ({}) could not be checked: {why}; {grant}",
                    need.action, need.role
                ),
            };
            out.push(Finding {
                ok: false,
                step: Step::Authorization,
                broker: None,
                action: Some(need.action.to_string()),
                resource: Some(resource.clone()),
                sid: sid.map(str::to_string),
                text,
                millis: d.as_millis() as u64,
            });
        }
        if !allowed.is_empty() {
            out.push(Finding {
                ok: true,
                step: Step::Authorization,
                broker: None,
                action: None,
                resource: Some(resource.clone()),
                sid: None,
                text: format!(
                    "{} allowed on {resource} ({})",
                    allowed.join(", "),
                    first.role
                ),
                millis: took.as_millis() as u64,
            });
        }
        i = end;
    }
    out
}
