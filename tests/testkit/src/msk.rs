//! A fake Amazon MSK API (REST-JSON, as the AWS SDK speaks it) on loopback:
//! `GET /v1/clusters/{arn}/bootstrap-brokers`, `GET /api/v2/clusters?clusterNameFilter=`
//! (a prefix match, paginated with `nextToken`), `GET /api/v2/clusters/{arn}`. The ARN
//! arrives percent-encoded as one path segment. Errors carry `X-Amzn-Errortype` and a
//! `{"message": ...}` body. Faults and state sequences can be scripted, and a file can
//! switch access denial on and off from outside the process ([`FakeMsk::deny_while_exists`]).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use crate::http::{self, Request, Response, Server};

/// One cluster the fake knows.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub arn: String,
    pub name: String,
    pub serverless: bool,
    /// States DescribeClusterV2 reports, one per call; the last one sticks.
    pub states: VecDeque<String>,
    pub state_message: Option<String>,
    /// `bootstrapBrokerString...` members of GetBootstrapBrokers, by JSON name.
    pub brokers: Vec<(String, String)>,
    /// Members of `brokers` that GetBootstrapBrokers leaves out until the cluster is
    /// ACTIVE, as while an update enables IAM or public access.
    pub hidden_until_active: Vec<String>,
    last_reported: Option<String>,
}

impl Cluster {
    /// An ACTIVE provisioned cluster with private IAM brokers (3 brokers on 9098).
    pub fn active(name: &str, region: &str) -> Cluster {
        let arn = format!(
            "arn:aws:kafka:{region}:123456789012:cluster/{name}/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0-2"
        );
        let host = |i: u32, port: u32| {
            format!("b-{i}.{name}.abc123.c2.kafka.{region}.amazonaws.com:{port}")
        };
        let list = |port: u32| (1..=3).map(|i| host(i, port)).collect::<Vec<_>>().join(",");
        Cluster {
            arn,
            name: name.to_string(),
            serverless: false,
            states: VecDeque::from(vec!["ACTIVE".to_string()]),
            state_message: None,
            hidden_until_active: Vec::new(),
            last_reported: None,
            brokers: vec![
                ("bootstrapBrokerStringTls".into(), list(9094)),
                ("bootstrapBrokerStringSaslIam".into(), list(9098)),
                ("bootstrapBrokerStringPublicSaslIam".into(), list(9198)),
                (
                    "bootstrapBrokerStringVpcConnectivitySaslIam".into(),
                    (1..=3)
                        .map(|i| {
                            format!(
                                "b-{i}.vpc-{name}.xyz.c2.kafka.{region}.amazonaws.com:{}",
                                14000 + i
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(","),
                ),
                (
                    "bootstrapBrokerStringSaslIamIpv6".into(),
                    (1..=3)
                        .map(|i| {
                            format!("b-{i}.ipv6-{name}.abc123.c2.kafka.{region}.amazonaws.com:9098")
                        })
                        .collect::<Vec<_>>()
                        .join(","),
                ),
            ],
        }
    }

    pub fn with_states(mut self, states: &[&str]) -> Cluster {
        self.states = states.iter().map(|s| s.to_string()).collect();
        self
    }

    /// GetBootstrapBrokers leaves `fields` out until the cluster reports ACTIVE.
    pub fn hiding_until_active(mut self, fields: &[&str]) -> Cluster {
        self.hidden_until_active = fields.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn brokers_field(&self, field: &str) -> Option<&str> {
        self.brokers
            .iter()
            .find(|(k, _)| k == field)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        let state = self
            .states
            .front()
            .cloned()
            .unwrap_or_else(|| "ACTIVE".into());
        let mut v = json!({
            "clusterArn": self.arn,
            "clusterName": self.name,
            "clusterType": if self.serverless { "SERVERLESS" } else { "PROVISIONED" },
            "state": state,
            "currentVersion": "K3AEGXETSR30VB",
            "creationTime": "2026-01-02T03:04:05.678Z",
            "tags": {},
        });
        if let Some(m) = &self.state_message {
            v["stateInfo"] = json!({ "code": "InternalError", "message": m });
        }
        if self.serverless {
            v["serverless"] = json!({ "vpcConfigs": [{ "subnetIds": ["subnet-1"] }], "clientAuthentication": { "sasl": { "iam": { "enabled": true } } } });
        } else {
            v["provisioned"] = json!({ "numberOfBrokerNodes": 3, "brokerNodeGroupInfo": { "instanceType": "kafka.m5.large", "clientSubnets": ["subnet-1"] } });
        }
        v
    }
}

/// A scripted failure for the next call(s) of one operation.
#[derive(Debug, Clone)]
pub struct Fault {
    pub operation: String,
    pub status: u16,
    /// `X-Amzn-Errortype`; empty sends none.
    pub error_type: String,
    /// Raw body to send instead of `{"message": ...}` (malformed JSON tests).
    pub body: String,
}

#[derive(Default)]
struct State {
    clusters: Vec<Cluster>,
    faults: VecDeque<Fault>,
    page_size: usize,
    /// While this file exists, every operation is denied (see `deny_while_exists`).
    deny_file: Option<PathBuf>,
}

pub struct FakeMsk {
    pub server: Server,
    state: Arc<Mutex<State>>,
}

pub const GET_BOOTSTRAP_BROKERS: &str = "GetBootstrapBrokers";
pub const DESCRIBE_CLUSTER_V2: &str = "DescribeClusterV2";
pub const LIST_CLUSTERS_V2: &str = "ListClustersV2";

impl FakeMsk {
    pub fn start() -> FakeMsk {
        Self::start_on("127.0.0.1:0".parse().expect("addr"))
    }

    /// Start on a given address (port 0: any free port), e.g. for the `fake-msk` binary.
    pub fn start_on(addr: std::net::SocketAddr) -> FakeMsk {
        let state = Arc::new(Mutex::new(State {
            page_size: 2,
            ..State::default()
        }));
        let st = state.clone();
        let server = Server::start_on(addr, http::handler(move |req| handle(&st, req)));
        FakeMsk { server, state }
    }

    /// The endpoint to give the agent (`msk.endpoint_url` / `AWS_ENDPOINT_URL_KAFKA`).
    pub fn url(&self) -> String {
        self.server.url()
    }

    pub fn add(&self, cluster: Cluster) -> &Self {
        self.state.lock().expect("state").clusters.push(cluster);
        self
    }

    /// Replace a cluster's bootstrap string field (rediscovery tests).
    pub fn set_brokers(&self, arn: &str, field: &str, value: Option<&str>) {
        let mut st = self.state.lock().expect("state");
        if let Some(c) = st.clusters.iter_mut().find(|c| c.arn == arn) {
            c.brokers.retain(|(k, _)| k != field);
            if let Some(v) = value {
                c.brokers.push((field.to_string(), v.to_string()));
            }
        }
    }

    /// ListClustersV2 page size (default 2, so pagination is exercised).
    pub fn set_page_size(&self, n: usize) {
        self.state.lock().expect("state").page_size = n.max(1);
    }

    /// Fail the next `times` calls of `operation` with an AWS-style error.
    pub fn fail_next(
        &self,
        operation: &str,
        times: usize,
        status: u16,
        error_type: &str,
        message: &str,
    ) {
        let mut st = self.state.lock().expect("state");
        for _ in 0..times {
            st.faults.push_back(Fault {
                operation: operation.to_string(),
                status,
                error_type: error_type.to_string(),
                body: json!({ "message": message }).to_string(),
            });
        }
    }

    /// While `path` exists, answer every (signed) operation as MSK does when the caller's
    /// policy lacks the action: 403 with `X-Amzn-Errortype: AccessDeniedException` and
    /// an IAM "is not authorized to perform" message. Each denied call is logged on
    /// stderr with its Unix time, so a test outside the process (the systemd e2e) can
    /// flip the switch and count the calls.
    pub fn deny_while_exists(&self, path: impl Into<PathBuf>) {
        self.state.lock().expect("state").deny_file = Some(path.into());
    }

    /// Answer the next call of `operation` with a raw body (malformed JSON and the like).
    pub fn answer_next_raw(&self, operation: &str, status: u16, body: &str) {
        self.state.lock().expect("state").faults.push_back(Fault {
            operation: operation.to_string(),
            status,
            error_type: String::new(),
            body: body.to_string(),
        });
    }

    /// Calls seen, as operation names in order.
    pub fn operations(&self) -> Vec<String> {
        self.server
            .requests()
            .iter()
            .map(|r| operation_of(r).0.to_string())
            .collect()
    }
}

fn error(status: u16, error_type: &str, message: &str) -> Response {
    http::response(
        status,
        &[
            ("content-type", "application/json"),
            ("x-amzn-errortype", error_type),
        ],
        json!({ "message": message }).to_string(),
    )
}

/// Which operation a request is, and the decoded cluster ARN if any.
fn operation_of(req: &Request) -> (&'static str, Option<String>) {
    let path = req.path();
    if let Some(rest) = path.strip_prefix("/v1/clusters/") {
        if let Some(arn) = rest.strip_suffix("/bootstrap-brokers") {
            return (GET_BOOTSTRAP_BROKERS, Some(http::decode(arn)));
        }
    }
    if path == "/api/v2/clusters" {
        return (LIST_CLUSTERS_V2, None);
    }
    if let Some(arn) = path.strip_prefix("/api/v2/clusters/") {
        return (DESCRIBE_CLUSTER_V2, Some(http::decode(arn)));
    }
    ("Unknown", None)
}

fn handle(state: &Arc<Mutex<State>>, req: Request) -> Response {
    let (op, arn) = operation_of(&req);
    if req.method != "GET" || op == "Unknown" {
        return error(
            404,
            "NotFoundException",
            &format!("no route for {} {}", req.method, req.target),
        );
    }
    // Real MSK refuses unsigned requests.
    if !req
        .header("authorization")
        .is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256 Credential="))
    {
        return error(403, "UnauthorizedException", "Missing Authentication Token");
    }
    let mut st = state.lock().expect("state");
    if st.deny_file.as_ref().is_some_and(|f| f.exists()) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        eprintln!("fake MSK: denied {op} at {now:.3}");
        let resource = arn.unwrap_or_else(|| "*".into());
        return error(
            403,
            "AccessDeniedException",
            &format!(
                "User: arn:aws:sts::123456789012:assumed-role/ksql/i-0standin is not authorized to perform: kafka:{op} on resource: {resource} because no identity-based policy allows the kafka:{op} action"
            ),
        );
    }
    if let Some(i) = st.faults.iter().position(|f| f.operation == op) {
        let fault = st.faults.remove(i).expect("fault");
        let mut headers = vec![("content-type", "application/json")];
        if !fault.error_type.is_empty() {
            headers.push(("x-amzn-errortype", fault.error_type.as_str()));
        }
        return http::response(fault.status, &headers, fault.body);
    }
    match op {
        LIST_CLUSTERS_V2 => {
            let filter = req.query("clusterNameFilter").unwrap_or_default();
            let start: usize = req
                .query("nextToken")
                .and_then(|t| t.strip_prefix("page-")?.parse().ok())
                .unwrap_or(0);
            let matching: Vec<Value> = st
                .clusters
                .iter_mut()
                .filter(|c| c.name.starts_with(&filter))
                .map(|c| {
                    c.last_reported = c.states.front().cloned();
                    c.json()
                })
                .collect();
            let page: Vec<Value> = matching
                .iter()
                .skip(start)
                .take(st.page_size)
                .cloned()
                .collect();
            let mut body = json!({ "clusterInfoList": page });
            if start + st.page_size < matching.len() {
                body["nextToken"] = json!(format!("page-{}", start + st.page_size));
            }
            http::json(200, &body)
        }
        DESCRIBE_CLUSTER_V2 => {
            let arn = arn.unwrap_or_default();
            match st.clusters.iter_mut().find(|c| c.arn == arn) {
                Some(c) => {
                    let body = json!({ "clusterInfo": c.json() });
                    c.last_reported = c.states.front().cloned();
                    if c.states.len() > 1 {
                        c.states.pop_front();
                    }
                    http::json(200, &body)
                }
                None => error(
                    404,
                    "NotFoundException",
                    &format!("The specified cluster ARN {arn} was not found"),
                ),
            }
        }
        _ => {
            let arn = arn.unwrap_or_default();
            match st.clusters.iter().find(|c| c.arn == arn) {
                Some(c) => {
                    // The state the last DescribeClusterV2 reported.
                    let active = c.last_reported.as_deref().unwrap_or("ACTIVE") == "ACTIVE";
                    let mut body = json!({});
                    for (k, v) in &c.brokers {
                        if active || !c.hidden_until_active.contains(k) {
                            body[k] = json!(v);
                        }
                    }
                    http::json(200, &body)
                }
                None => error(
                    404,
                    "NotFoundException",
                    &format!("The specified cluster ARN {arn} was not found"),
                ),
            }
        }
    }
}
