//! The requests the doctor sends and the parts of their responses it reads, each at one
//! fixed version that every Kafka MSK offers accepts (2.8 to 4.x: none of these was
//! removed by KIP-896). Field layouts from Kafka's message schemas
//! (`clients/src/main/resources/common/message/*.json`). Non-flexible versions where
//! one exists (no tagged fields to get wrong); DescribeCluster has only flexible ones.

use super::wire::{Reader, Result, Writer};

/// One request: API key, the version we send, whether that version is flexible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Api {
    pub key: i16,
    pub version: i16,
    pub flexible: bool,
    pub name: &'static str,
}

pub const API_VERSIONS: Api = Api {
    key: 18,
    version: 0,
    flexible: false,
    name: "ApiVersions",
};
pub const SASL_HANDSHAKE: Api = Api {
    key: 17,
    version: 1,
    flexible: false,
    name: "SaslHandshake",
};
pub const SASL_AUTHENTICATE: Api = Api {
    key: 36,
    version: 1,
    flexible: false,
    name: "SaslAuthenticate",
};
pub const METADATA: Api = Api {
    key: 3,
    version: 8,
    flexible: false,
    name: "Metadata",
};
pub const DESCRIBE_CLUSTER: Api = Api {
    key: 60,
    version: 0,
    flexible: true,
    name: "DescribeCluster",
};
pub const DESCRIBE_CONFIGS: Api = Api {
    key: 32,
    version: 1,
    flexible: false,
    name: "DescribeConfigs",
};
pub const CREATE_TOPICS: Api = Api {
    key: 19,
    version: 4,
    flexible: false,
    name: "CreateTopics",
};
pub const FIND_COORDINATOR: Api = Api {
    key: 10,
    version: 2,
    flexible: false,
    name: "FindCoordinator",
};
pub const DESCRIBE_GROUPS: Api = Api {
    key: 15,
    version: 3,
    flexible: false,
    name: "DescribeGroups",
};
pub const INIT_PRODUCER_ID: Api = Api {
    key: 22,
    version: 1,
    flexible: false,
    name: "InitProducerId",
};
pub const END_TXN: Api = Api {
    key: 26,
    version: 1,
    flexible: false,
    name: "EndTxn",
};

/// Kafka's error codes the doctor reads (`Errors.java`).
pub mod code {
    pub const NONE: i16 = 0;
    pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const NOT_COORDINATOR: i16 = 16;
    pub const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
    pub const GROUP_AUTHORIZATION_FAILED: i16 = 30;
    pub const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
    pub const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
    pub const ILLEGAL_SASL_STATE: i16 = 34;
    pub const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
    pub const SASL_AUTHENTICATION_FAILED: i16 = 58;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
}

/// Kafka's name of an error code, for lines that show one.
pub fn error_name(code: i16) -> String {
    let name = match code {
        -1 => "UNKNOWN_SERVER_ERROR",
        0 => "NONE",
        3 => "UNKNOWN_TOPIC_OR_PARTITION",
        7 => "REQUEST_TIMED_OUT",
        14 => "COORDINATOR_LOAD_IN_PROGRESS",
        15 => "COORDINATOR_NOT_AVAILABLE",
        16 => "NOT_COORDINATOR",
        29 => "TOPIC_AUTHORIZATION_FAILED",
        30 => "GROUP_AUTHORIZATION_FAILED",
        31 => "CLUSTER_AUTHORIZATION_FAILED",
        33 => "UNSUPPORTED_SASL_MECHANISM",
        34 => "ILLEGAL_SASL_STATE",
        35 => "UNSUPPORTED_VERSION",
        36 => "TOPIC_ALREADY_EXISTS",
        37 => "INVALID_PARTITIONS",
        38 => "INVALID_REPLICATION_FACTOR",
        40 => "INVALID_CONFIG",
        41 => "NOT_CONTROLLER",
        42 => "INVALID_REQUEST",
        44 => "POLICY_VIOLATION",
        49 => "INVALID_PRODUCER_ID_MAPPING",
        53 => "TRANSACTIONAL_ID_AUTHORIZATION_FAILED",
        58 => "SASL_AUTHENTICATION_FAILED",
        89 => "THROTTLING_QUOTA_EXCEEDED",
        _ => return format!("error {code}"),
    };
    name.to_string()
}

/// Resource types of DescribeConfigs.
pub const RESOURCE_BROKER: i8 = 4;

// --- requests ---------------------------------------------------------------------

pub fn api_versions_request() -> Vec<u8> {
    Vec::new()
}

pub fn sasl_handshake_request(mechanism: &str) -> Vec<u8> {
    let mut w = Writer::default();
    w.string(mechanism);
    w.buf
}

pub fn sasl_authenticate_request(auth_bytes: &[u8]) -> Vec<u8> {
    let mut w = Writer::default();
    w.bytes(auth_bytes);
    w.buf
}

/// Metadata v8 for the named topics only, never creating them, with their authorized
/// operations.
pub fn metadata_request(topics: &[&str]) -> Vec<u8> {
    let mut w = Writer::default();
    w.array_len(topics.len());
    for t in topics {
        w.string(t);
    }
    w.bool(false) // allow_auto_topic_creation
        .bool(false) // include_cluster_authorized_operations (DescribeCluster says it)
        .bool(true); // include_topic_authorized_operations
    w.buf
}

pub fn describe_cluster_request() -> Vec<u8> {
    let mut w = Writer::default();
    w.bool(true).no_tags();
    w.buf
}

/// DescribeConfigs v1 of one broker (by id; "" = the cluster-wide default), one key.
pub fn describe_configs_request(broker: &str, key: &str) -> Vec<u8> {
    let mut w = Writer::default();
    w.array_len(1)
        .i8(RESOURCE_BROKER)
        .string(broker)
        .array_len(1)
        .string(key)
        .bool(false); // include_synonyms
    w.buf
}

/// CreateTopics v4 with validate_only: the broker checks, creates nothing. Partitions
/// and replication -1: the broker's defaults.
pub fn create_topics_dry_run(topics: &[&str], timeout_ms: i32) -> Vec<u8> {
    let mut w = Writer::default();
    w.array_len(topics.len());
    for t in topics {
        w.string(t).i32(-1).i16(-1).array_len(0).array_len(0);
    }
    w.i32(timeout_ms).bool(true);
    w.buf
}

pub const KEY_GROUP: i8 = 0;
pub const KEY_TRANSACTION: i8 = 1;

pub fn find_coordinator_request(key: &str, key_type: i8) -> Vec<u8> {
    let mut w = Writer::default();
    w.string(key).i8(key_type);
    w.buf
}

pub fn describe_groups_request(group: &str) -> Vec<u8> {
    let mut w = Writer::default();
    w.array_len(1).string(group).bool(true);
    w.buf
}

/// InitProducerId v1 without a transactional id: what an idempotent producer asks.
pub fn init_producer_id_request() -> Vec<u8> {
    let mut w = Writer::default();
    w.nullable_string(None).i32(60_000);
    w.buf
}

/// EndTxn v1 (abort) for a transactional id that has no transaction: the broker checks
/// the right to write it, then answers that it knows no producer for it.
pub fn end_txn_request(transactional_id: &str) -> Vec<u8> {
    let mut w = Writer::default();
    w.string(transactional_id).i64(-1).i16(-1).bool(false);
    w.buf
}

// --- responses --------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiRange {
    pub key: i16,
    pub min: i16,
    pub max: i16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiVersions {
    pub error_code: i16,
    pub apis: Vec<ApiRange>,
}

/// ApiVersions v0 (also what a broker answers in to a version it does not support).
pub fn api_versions_response(body: &[u8]) -> Result<ApiVersions> {
    let mut r = Reader::new(body, "ApiVersions response");
    let error_code = r.i16()?;
    let n = r.array_len(6)?;
    let mut apis = Vec::new();
    for _ in 0..n {
        apis.push(ApiRange {
            key: r.i16()?,
            min: r.i16()?,
            max: r.i16()?,
        });
    }
    // A broker answering a newer request version's body to v0 adds fields: ignored.
    Ok(ApiVersions { error_code, apis })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslHandshake {
    pub error_code: i16,
    pub mechanisms: Vec<String>,
}

pub fn sasl_handshake_response(body: &[u8]) -> Result<SaslHandshake> {
    let mut r = Reader::new(body, "SaslHandshake response");
    let error_code = r.i16()?;
    let n = r.array_len(2)?;
    let mut mechanisms = Vec::new();
    for _ in 0..n {
        mechanisms.push(r.string()?.to_string());
    }
    r.finish()?;
    Ok(SaslHandshake {
        error_code,
        mechanisms,
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslAuthenticate {
    pub error_code: i16,
    pub error_message: Option<String>,
    pub auth_bytes: Vec<u8>,
    pub session_lifetime_ms: i64,
}

pub fn sasl_authenticate_response(body: &[u8]) -> Result<SaslAuthenticate> {
    let mut r = Reader::new(body, "SaslAuthenticate response");
    let error_code = r.i16()?;
    let error_message = r.nullable_string()?.map(str::to_string);
    let auth_bytes = r.nullable_bytes()?.unwrap_or_default().to_vec();
    let session_lifetime_ms = r.i64()?;
    r.finish()?;
    Ok(SaslAuthenticate {
        error_code,
        error_message,
        auth_bytes,
        session_lifetime_ms,
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broker {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMetadata {
    pub error_code: i16,
    pub name: String,
    pub authorized_operations: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    pub brokers: Vec<Broker>,
    pub topics: Vec<TopicMetadata>,
}

/// Metadata v8.
pub fn metadata_response(body: &[u8]) -> Result<Metadata> {
    let mut r = Reader::new(body, "Metadata response");
    r.i32()?; // throttle_time_ms
    let n = r.array_len(12)?;
    let mut brokers = Vec::new();
    for _ in 0..n {
        let node_id = r.i32()?;
        let host = r.string()?.to_string();
        let port = r.i32()?;
        r.nullable_string()?; // rack
        brokers.push(Broker {
            node_id,
            host,
            port,
        });
    }
    r.nullable_string()?; // cluster_id
    r.i32()?; // controller_id
    let n = r.array_len(17)?;
    let mut topics = Vec::new();
    for _ in 0..n {
        let error_code = r.i16()?;
        let name = r.string()?.to_string();
        r.bool()?; // is_internal
        let partitions = r.array_len(30)?;
        for _ in 0..partitions {
            r.i16()?; // error_code
            r.i32()?; // partition_index
            r.i32()?; // leader_id
            r.i32()?; // leader_epoch
            for _ in 0..3 {
                // replica_nodes, isr_nodes, offline_replicas
                let ids = r.array_len(4)?;
                for _ in 0..ids {
                    r.i32()?;
                }
            }
        }
        let authorized_operations = r.i32()?;
        topics.push(TopicMetadata {
            error_code,
            name,
            authorized_operations,
        });
    }
    r.i32()?; // cluster_authorized_operations
    r.finish()?;
    Ok(Metadata { brokers, topics })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribeCluster {
    pub error_code: i16,
    pub error_message: Option<String>,
    pub brokers: Vec<Broker>,
    pub authorized_operations: i32,
}

/// DescribeCluster v0 (flexible).
pub fn describe_cluster_response(body: &[u8]) -> Result<DescribeCluster> {
    let mut r = Reader::new(body, "DescribeCluster response");
    r.i32()?; // throttle_time_ms
    let error_code = r.i16()?;
    let error_message = r.compact_nullable_string()?.map(str::to_string);
    r.compact_string()?; // cluster_id
    r.i32()?; // controller_id
    let n = r.compact_array_len(11)?;
    let mut brokers = Vec::new();
    for _ in 0..n {
        let node_id = r.i32()?;
        let host = r.compact_string()?.to_string();
        let port = r.i32()?;
        r.compact_nullable_string()?; // rack
        r.skip_tags()?;
        brokers.push(Broker {
            node_id,
            host,
            port,
        });
    }
    let authorized_operations = r.i32()?;
    r.skip_tags()?;
    r.finish()?;
    Ok(DescribeCluster {
        error_code,
        error_message,
        brokers,
        authorized_operations,
    })
}

/// DescribeConfigs v1: the error code of the (one) resource asked.
pub fn describe_configs_response(body: &[u8]) -> Result<i16> {
    let mut r = Reader::new(body, "DescribeConfigs response");
    r.i32()?; // throttle_time_ms
    let n = r.array_len(9)?;
    let mut first = None;
    for _ in 0..n {
        let error_code = r.i16()?;
        r.nullable_string()?; // error_message
        r.i8()?; // resource_type
        r.string()?; // resource_name
        let configs = r.array_len(11)?;
        for _ in 0..configs {
            r.string()?; // name
            r.nullable_string()?; // value
            r.bool()?; // read_only
            r.i8()?; // config_source
            r.bool()?; // is_sensitive
            let synonyms = r.array_len(5)?;
            for _ in 0..synonyms {
                r.string()?;
                r.nullable_string()?;
                r.i8()?;
            }
        }
        first.get_or_insert(error_code);
    }
    r.finish()?;
    first.ok_or_else(|| super::wire::Malformed("DescribeConfigs response: no result".into()))
}

/// CreateTopics v4: (name, error code, message) per topic.
pub fn create_topics_response(body: &[u8]) -> Result<Vec<(String, i16, Option<String>)>> {
    let mut r = Reader::new(body, "CreateTopics response");
    r.i32()?; // throttle_time_ms
    let n = r.array_len(6)?;
    let mut out = Vec::new();
    for _ in 0..n {
        let name = r.string()?.to_string();
        let code = r.i16()?;
        let message = r.nullable_string()?.map(str::to_string);
        out.push((name, code, message));
    }
    r.finish()?;
    Ok(out)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coordinator {
    pub error_code: i16,
    pub error_message: Option<String>,
    pub node_id: i32,
    pub host: String,
    pub port: i32,
}

/// FindCoordinator v1/v2.
pub fn find_coordinator_response(body: &[u8]) -> Result<Coordinator> {
    let mut r = Reader::new(body, "FindCoordinator response");
    r.i32()?; // throttle_time_ms
    let error_code = r.i16()?;
    let error_message = r.nullable_string()?.map(str::to_string);
    let node_id = r.i32()?;
    let host = r.string()?.to_string();
    let port = r.i32()?;
    r.finish()?;
    Ok(Coordinator {
        error_code,
        error_message,
        node_id,
        host,
        port,
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub error_code: i16,
    pub group_id: String,
    pub state: String,
    pub authorized_operations: i32,
}

/// DescribeGroups v3: the first group.
pub fn describe_groups_response(body: &[u8]) -> Result<GroupDescription> {
    let mut r = Reader::new(body, "DescribeGroups response");
    r.i32()?; // throttle_time_ms
    let n = r.array_len(20)?;
    let mut first = None;
    for _ in 0..n {
        let error_code = r.i16()?;
        let group_id = r.string()?.to_string();
        let state = r.string()?.to_string();
        r.string()?; // protocol_type
        r.string()?; // protocol_data
        let members = r.array_len(14)?;
        for _ in 0..members {
            r.string()?; // member_id
            r.string()?; // client_id
            r.string()?; // client_host
            r.nullable_bytes()?; // member_metadata
            r.nullable_bytes()?; // member_assignment
        }
        let authorized_operations = r.i32()?;
        first.get_or_insert(GroupDescription {
            error_code,
            group_id,
            state,
            authorized_operations,
        });
    }
    r.finish()?;
    first.ok_or_else(|| super::wire::Malformed("DescribeGroups response: no group".into()))
}

/// InitProducerId v1: the error code.
pub fn init_producer_id_response(body: &[u8]) -> Result<i16> {
    let mut r = Reader::new(body, "InitProducerId response");
    r.i32()?; // throttle_time_ms
    let code = r.i16()?;
    r.i64()?; // producer_id
    r.i16()?; // producer_epoch
    r.finish()?;
    Ok(code)
}

/// EndTxn v1: the error code.
pub fn end_txn_response(body: &[u8]) -> Result<i16> {
    let mut r = Reader::new(body, "EndTxn response");
    r.i32()?; // throttle_time_ms
    let code = r.i16()?;
    r.finish()?;
    Ok(code)
}

/// Decode a response body of `api` with the decoder the doctor uses for it, discarding
/// the result: what the fuzz target and property tests drive.
pub fn decode_any(api: Api, body: &[u8]) -> Result<()> {
    match api.key {
        18 => api_versions_response(body).map(drop),
        17 => sasl_handshake_response(body).map(drop),
        36 => sasl_authenticate_response(body).map(drop),
        3 => metadata_response(body).map(drop),
        60 => describe_cluster_response(body).map(drop),
        32 => describe_configs_response(body).map(drop),
        19 => create_topics_response(body).map(drop),
        10 => find_coordinator_response(body).map(drop),
        15 => describe_groups_response(body).map(drop),
        22 => init_producer_id_response(body).map(drop),
        26 => end_txn_response(body).map(drop),
        _ => Ok(()),
    }
}

/// Every API whose response the doctor decodes.
pub const DECODED: [Api; 11] = [
    API_VERSIONS,
    SASL_HANDSHAKE,
    SASL_AUTHENTICATE,
    METADATA,
    DESCRIBE_CLUSTER,
    DESCRIBE_CONFIGS,
    CREATE_TOPICS,
    FIND_COORDINATOR,
    DESCRIBE_GROUPS,
    INIT_PRODUCER_ID,
    END_TXN,
];
