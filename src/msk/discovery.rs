//! MSK broker discovery (DESIGN.md phase 2): resolve the cluster, wait for it to be
//! usable, and read its IAM bootstrap broker string for the configured connectivity.

use std::fmt;
use std::time::{Duration, Instant};

use anyhow::Result;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_kafka::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kafka::types::{Cluster, ClusterState, ClusterType};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use tracing::{info, warn};

use crate::config::{ClusterRef, Connectivity, MskSettings, Settings};
use crate::exit::{fail, ExitCode};
use crate::host::ca_store::{host_has_ca_certificates, NO_CA_CERTIFICATES};
use crate::progress::Progress;

/// What discovery found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    pub cluster_arn: String,
    pub cluster_name: String,
    pub serverless: bool,
    /// The state MSK reported (ACTIVE, or a state in which it serves clients).
    pub state: String,
    pub brokers: Brokers,
}

/// A validated bootstrap broker list, kept in MSK's order with its original text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Brokers {
    pub raw: String,
    pub addrs: Vec<BrokerAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BrokerAddr {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for BrokerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl Brokers {
    /// Parse and validate `host:port[,host:port...]` as MSK returns it. The string ends
    /// up in ksql-server.properties, so anything odd is refused here.
    pub fn parse(raw: &str) -> std::result::Result<Brokers, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err("empty broker string".into());
        }
        if raw.len() > 64 * 1024 {
            return Err(format!("broker string is {} bytes long", raw.len()));
        }
        let mut addrs = Vec::new();
        for part in raw.split(',') {
            let part = part.trim();
            let (host, port) = part
                .rsplit_once(':')
                .ok_or_else(|| format!("{part:?} is not host:port"))?;
            let port: u16 = port
                .parse()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("{part:?}: bad port {port:?}"))?;
            let host_ok = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'))
            {
                v6.parse::<std::net::Ipv6Addr>().is_ok()
            } else {
                !host.is_empty()
                    && host.len() <= 253
                    && host.split('.').all(|l| {
                        !l.is_empty()
                            && l.len() <= 63
                            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    })
            };
            if !host_ok {
                return Err(format!("{part:?}: {host:?} is not a host name or address"));
            }
            addrs.push(BrokerAddr {
                host: host.to_string(),
                port,
            });
        }
        Ok(Brokers {
            raw: raw.to_string(),
            addrs,
        })
    }

    /// The brokers as a sorted set, for comparing two discoveries.
    pub fn as_set(&self) -> std::collections::BTreeSet<BrokerAddr> {
        self.addrs.iter().cloned().collect()
    }
}

/// The MSK client, from the AWS default chain plus our settings. The SDK's standard
/// retry (throttling, 5xx, transient network errors) is set here deliberately and we do
/// not retry API calls again on top of it. An https endpoint on a host without CA
/// certificates is refused here, before the retries, with the reason.
pub async fn kafka_client(msk: &MskSettings) -> Result<aws_sdk_kafka::Client> {
    let endpoint = msk.endpoint_url.as_ref();
    let plain_http = endpoint.is_some_and(|u| {
        u.expose()
            .get(..7)
            .is_some_and(|s| s.eq_ignore_ascii_case("http://"))
    });
    if !plain_http && !host_has_ca_certificates() {
        // The shown form: a `user:password@` in the endpoint stays hidden.
        let what = endpoint.map_or("the MSK API (https)".to_string(), |u| u.to_string());
        return Err(fail(
            ExitCode::Unavailable,
            format!("{what}: {NO_CA_CERTIFICATES}"),
        ));
    }
    let http = crate::msk::aws_http::client();
    let retry = RetryConfig::standard()
        .with_max_attempts(msk.api_max_attempts)
        .with_initial_backoff(Duration::from_millis(500))
        .with_max_backoff(Duration::from_secs(20));
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        .operation_attempt_timeout(Duration::from_secs(20))
        .operation_timeout(Duration::from_secs(120))
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .retry_config(retry)
        .timeout_config(timeouts);
    if let Some(region) = &msk.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(url) = &msk.endpoint_url {
        loader = loader.endpoint_url(url.expose());
    }
    let conf = loader.load().await;
    if conf.region().is_none() {
        return Err(fail(
            ExitCode::Config,
            "msk.region: no AWS region: set msk.region (or AWS_REGION), use a cluster ARN, or run on EC2 where IMDS tells the region",
        ));
    }
    Ok(aws_sdk_kafka::Client::new(&conf))
}

/// Turn an SDK error into a one-line error with the right exit code. `action` is the IAM
/// action the call needs; `what` says what we were doing.
fn api_error<E>(err: SdkError<E, HttpResponse>, action: &str, what: &str) -> anyhow::Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let detail = crate::exit::cause_chain(&err);
    if !matches!(err, SdkError::ServiceError(_)) {
        return transport_error(&err, &detail, action, what);
    }
    let code = err.code().unwrap_or("");
    let status = err.raw_response().map(|r| r.status().as_u16());
    if code.is_empty() && status.is_some_and(|s| s == 429 || s >= 500) {
        // A proxy's or load balancer's page instead of the API's JSON: the SDK retried it
        // as the status says; still failing is as temporary as any 5xx. Its body (HTML)
        // is not for the one error line.
        let status = status.unwrap_or_default();
        return fail(
            ExitCode::Temporary,
            format!("{what}: MSK API still failing after retries (HTTP {status} without an AWS error body)"),
        );
    }
    if code.is_empty() {
        // A service "error" without an error type: the body did not parse.
        return fail(
            ExitCode::Unavailable,
            format!("{what}: unreadable MSK API response: {detail}"),
        );
    }
    service_error(code, err.message().unwrap_or(""), action, what)
}

/// The API was not reached, or its answer not read: timeouts, connections, credentials.
fn transport_error<E, R>(
    err: &SdkError<E, R>,
    detail: &str,
    action: &str,
    what: &str,
) -> anyhow::Error {
    match err {
        SdkError::TimeoutError(_) => fail(
            ExitCode::Temporary,
            format!("{what}: MSK API timed out ({action})"),
        ),
        SdkError::DispatchFailure(_) if detail.contains("credential") => fail(
            ExitCode::Unavailable,
            format!("{what}: no AWS credentials ({detail}); give the instance a role or set AWS credentials"),
        ),
        SdkError::DispatchFailure(_) => fail(
            ExitCode::Temporary,
            format!("{what}: cannot reach the MSK API: {detail}"),
        ),
        SdkError::ResponseError(_) => fail(
            ExitCode::Unavailable,
            format!("{what}: unreadable MSK API response: {detail}"),
        ),
        _ if detail.contains("credential") => fail(
            ExitCode::Unavailable,
            format!("{what}: no AWS credentials ({detail}); give the instance a role or set AWS credentials"),
        ),
        _ => fail(ExitCode::Software, format!("{what}: {detail}")),
    }
}

/// The API answered with the error `code` and `message`.
fn service_error(code: &str, message: &str, action: &str, what: &str) -> anyhow::Error {
    let msg = if message.is_empty() { code } else { message };
    match code {
        "AccessDeniedException"
        | "ForbiddenException"
        | "UnauthorizedException"
        | "AccessDenied" => {
            let who = principal_in(message)
                .map(|p| format!("role {p}"))
                .unwrap_or_else(|| "the agent's AWS identity (instance role)".into());
            fail(
                ExitCode::Unavailable,
                format!("{what}: access denied: {who} may not call {action} ({msg}); see `ksql-msk iam-policy`"),
            )
        }
        "NotFoundException" => fail(ExitCode::Unavailable, format!("{what}: not found: {msg}")),
        "TooManyRequestsException"
        | "ThrottlingException"
        | "ServiceUnavailableException"
        | "InternalServerErrorException" => fail(
            ExitCode::Temporary,
            format!("{what}: MSK API still failing after retries ({code}: {msg})"),
        ),
        _ => fail(
            ExitCode::Unavailable,
            format!("{what}: {action} failed ({code}: {msg})"),
        ),
    }
}

/// The principal in an AWS "User: arn:... is not authorized" message.
fn principal_in(message: &str) -> Option<&str> {
    let start = message.find("User: ")? + "User: ".len();
    let rest = &message[start..];
    let end = rest.find(" is not authorized").unwrap_or(rest.len());
    let principal = rest[..end].trim();
    principal.starts_with("arn:").then_some(principal)
}

fn state_of(cluster: &Cluster) -> String {
    cluster
        .state()
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|| "UNKNOWN".into())
}

/// What a cluster state means for ksqlDB, after MSK's "Understand MSK Provisioned
/// cluster states": only a CREATING cluster has no brokers to talk to yet. During
/// UPDATING, MAINTENANCE, HEALING and REBOOTING_BROKER clients still produce and
/// consume, so waiting for ACTIVE would keep ksqlDB down for the length of, say, a
/// version upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StateKind {
    Active,
    /// Changing, but serving clients.
    Serving,
    /// Will become usable by itself: wait.
    Creating,
    /// FAILED, DELETING, unknown: give up.
    Unusable,
}

fn kind_of(state: Option<&ClusterState>) -> StateKind {
    match state {
        Some(ClusterState::Active) => StateKind::Active,
        Some(
            ClusterState::Updating
            | ClusterState::Maintenance
            | ClusterState::Healing
            | ClusterState::RebootingBroker,
        ) => StateKind::Serving,
        Some(ClusterState::Creating) => StateKind::Creating,
        _ => StateKind::Unusable,
    }
}

/// Find the cluster by ARN (DescribeClusterV2) or by exact name (ListClustersV2, whose
/// filter is a prefix match, so every page is searched for the exact name).
pub(crate) async fn resolve(
    client: &aws_sdk_kafka::Client,
    cluster: &ClusterRef,
    region: &str,
) -> Result<Cluster> {
    match cluster {
        ClusterRef::Arn(arn) => describe(client, &arn.arn).await,
        ClusterRef::Name(name) => {
            let mut token: Option<String> = None;
            let mut siblings = Vec::new();
            loop {
                let page = client
                    .list_clusters_v2()
                    .cluster_name_filter(name)
                    .set_next_token(token.clone())
                    .send()
                    .await
                    .map_err(|e| {
                        api_error(
                            e,
                            "kafka:ListClustersV2",
                            &format!("looking up cluster {name:?}"),
                        )
                    })?;
                for c in page.cluster_info_list() {
                    match c.cluster_name() {
                        Some(n) if n == name => return Ok(c.clone()),
                        Some(n) => siblings.push(n.to_string()),
                        None => {}
                    }
                }
                token = page
                    .next_token()
                    .filter(|t| !t.is_empty())
                    .map(str::to_string);
                if token.is_none() {
                    break;
                }
            }
            let hint = if siblings.is_empty() {
                String::new()
            } else {
                format!(" (similar names: {})", siblings.join(", "))
            };
            Err(fail(
                ExitCode::Unavailable,
                format!("msk.cluster_name: no MSK cluster named {name:?} in {region}{hint}"),
            ))
        }
    }
}

async fn describe(client: &aws_sdk_kafka::Client, arn: &str) -> Result<Cluster> {
    let out = client
        .describe_cluster_v2()
        .cluster_arn(arn)
        .send()
        .await
        .map_err(|e| {
            api_error(
                e,
                "kafka:DescribeClusterV2",
                &format!("describing cluster {arn}"),
            )
        })?;
    out.cluster_info().cloned().ok_or_else(|| {
        fail(
            ExitCode::Unavailable,
            format!("describing cluster {arn}: empty response"),
        )
    })
}

/// The longest pause between two DescribeClusterV2 calls while waiting for a CREATING
/// cluster (at most 3 calls a minute).
const CREATING_POLL_MAX: Duration = Duration::from_secs(20);

/// The first and the longest pause between DescribeClusterV2 calls while waiting up to
/// `bound`: often relative to a short bound (tests), every 5–20 s for the default 30 m.
/// A cluster that becomes ACTIVE is noticed within CREATING_POLL_MAX, which leaves the
/// rest of a minute for starting ksqlDB (the healing bound, docs/RELIABILITY.md).
fn poll_delays(bound: Duration) -> (Duration, Duration) {
    let first = (bound / 60).clamp(Duration::from_millis(100), Duration::from_secs(5));
    (first, CREATING_POLL_MAX.min(bound / 4).max(first))
}

/// The bootstrap brokers of the cluster `arn` (ACTIVE or serving) for the configured
/// connectivity, with the field they came from; or, while a serving cluster lacks
/// them, what it lacks (to wait for it). An ACTIVE cluster without them is an error.
async fn brokers_now(
    client: &aws_sdk_kafka::Client,
    arn: &str,
    state: &str,
    kind: StateKind,
    msk: &MskSettings,
) -> Result<std::result::Result<(String, &'static str), String>> {
    let out = client
        .get_bootstrap_brokers()
        .cluster_arn(arn)
        .send()
        .await
        .map_err(|e| {
            api_error(
                e,
                "kafka:GetBootstrapBrokers",
                &format!("getting bootstrap brokers of {arn}"),
            )
        })?;
    let (raw, field, missing) = pick_brokers(&out, msk.connectivity, msk.ipv6);
    match raw.filter(|s| !s.trim().is_empty()) {
        Some(raw) => {
            if kind == StateKind::Serving {
                info!(
                    cluster = %arn,
                    state = %state,
                    "cluster is {state}; MSK clusters serve clients in this state, so not waiting for ACTIVE"
                );
            }
            Ok(Ok((raw.to_string(), field)))
        }
        None if kind == StateKind::Active => Err(fail(
            ExitCode::Unavailable,
            format!(
                "cluster {arn} has no {field}: {missing} (msk.connectivity = {:?})",
                msk.connectivity.as_str()
            ),
        )),
        None => Ok(Err(format!(" and has no {field} yet"))),
    }
}

/// Wait until the cluster serves clients and has the broker string for `msk`'s
/// connectivity, polling with capped backoff up to `msk.cluster_wait`. A cluster that
/// is changing (UPDATING...) but already has the string is used at once; one that
/// lacks it may be having IAM or public access enabled by that very update, so it is
/// waited for like a CREATING one.
async fn wait_for_brokers(
    client: &aws_sdk_kafka::Client,
    mut cluster: Cluster,
    msk: &MskSettings,
    progress: &dyn Progress,
) -> Result<(Cluster, String, &'static str)> {
    let bound = msk.cluster_wait;
    let started = Instant::now();
    let (mut delay, max_delay) = poll_delays(bound);
    loop {
        let arn = cluster.cluster_arn().unwrap_or_default().to_string();
        let state = state_of(&cluster);
        let kind = kind_of(cluster.state());
        // Why we are still waiting, for the log and for the give-up message.
        let lacking = match kind {
            StateKind::Unusable => {
                let why = cluster
                    .state_info()
                    .and_then(|i| i.message().or(i.code()))
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default();
                return Err(fail(
                    ExitCode::Unavailable,
                    format!("cluster {arn} is {state}{why}"),
                ));
            }
            StateKind::Creating => String::new(),
            StateKind::Active | StateKind::Serving => {
                match brokers_now(client, &arn, &state, kind, msk).await? {
                    Ok((raw, field)) => return Ok((cluster, raw, field)),
                    Err(lacking) => lacking,
                }
            }
        };
        let waited = started.elapsed();
        if waited >= bound {
            return Err(fail(
                ExitCode::Temporary,
                format!(
                    "cluster {arn} is still {state}{lacking} after {} (msk.cluster_wait)",
                    humantime::format_duration(Duration::from_secs(waited.as_secs()))
                ),
            ));
        }
        // A changing STATUS also extends systemd's start timeout: the wait is
        // bounded by msk.cluster_wait, not by TimeoutStartSec.
        progress.phase(&format!(
            "waiting for cluster {}: {state}{lacking} ({}s of {})",
            cluster.cluster_name().unwrap_or_default(),
            waited.as_secs(),
            humantime::format_duration(bound)
        ));
        info!(
            cluster = %arn,
            state = %state,
            "cluster is {state}{lacking}; waiting (waited {}s of {})",
            waited.as_secs(),
            humantime::format_duration(bound)
        );
        tokio::time::sleep(
            delay
                .min(bound.saturating_sub(waited))
                .max(Duration::from_millis(10)),
        )
        .await;
        delay = (delay * 2).min(max_delay);
        cluster = describe(client, &arn).await?;
    }
}

/// The bootstrap string field for a connectivity, and what to say when it is missing.
fn pick_brokers(
    out: &aws_sdk_kafka::operation::get_bootstrap_brokers::GetBootstrapBrokersOutput,
    connectivity: Connectivity,
    ipv6: bool,
) -> (Option<&str>, &'static str, &'static str) {
    match (connectivity, ipv6) {
        (Connectivity::Private, false) => (
            out.bootstrap_broker_string_sasl_iam(),
            "BootstrapBrokerStringSaslIam",
            "IAM authentication is not enabled on the cluster",
        ),
        (Connectivity::Private, true) => (
            out.bootstrap_broker_string_sasl_iam_ipv6(),
            "BootstrapBrokerStringSaslIamIpv6",
            "IAM authentication over IPv6 is not enabled on the cluster (dual-stack network type)",
        ),
        (Connectivity::Public, _) => (
            out.bootstrap_broker_string_public_sasl_iam(),
            "BootstrapBrokerStringPublicSaslIam",
            "public access with IAM authentication is not enabled on the cluster",
        ),
        (Connectivity::Vpc, _) => (
            out.bootstrap_broker_string_vpc_connectivity_sasl_iam(),
            "BootstrapBrokerStringVpcConnectivitySaslIam",
            "multi-VPC private connectivity with IAM authentication is not enabled on the cluster",
        ),
    }
}

/// DESIGN.md phase 2.
pub async fn discover(settings: &Settings, progress: &dyn Progress) -> Result<Discovered> {
    let client = kafka_client(&settings.msk).await?;
    discover_with(&client, settings, progress).await
}

/// The MSK client of a long-running agent, kept across rediscoveries: building one
/// walks the credential chain and may call IMDS. A client is built again when the
/// settings it was built from (region, endpoint, attempts) change on a reload.
#[derive(Clone, Default)]
pub struct ClientCache(
    std::sync::Arc<tokio::sync::Mutex<Option<(ClientKey, aws_sdk_kafka::Client)>>>,
);

/// What a client is built from.
#[derive(Clone, PartialEq, Eq)]
struct ClientKey {
    region: Option<String>,
    endpoint: Option<String>,
    max_attempts: u32,
}

impl ClientCache {
    /// Phase 2 with the cached client (built first if the settings changed).
    pub async fn discover(&self, settings: &Settings) -> Result<Discovered> {
        let msk = &settings.msk;
        let key = ClientKey {
            region: msk.region.clone(),
            endpoint: msk.endpoint_url.as_ref().map(|u| u.expose().to_string()),
            max_attempts: msk.api_max_attempts,
        };
        let client = {
            let mut slot = self.0.lock().await;
            match slot.as_ref() {
                Some((k, client)) if *k == key => client.clone(),
                _ => {
                    let client = kafka_client(msk).await?;
                    *slot = Some((key, client.clone()));
                    client
                }
            }
        };
        discover_with(&client, settings, &crate::progress::Quiet).await
    }
}

/// Phase 2 with a given client (rediscovery reuses one).
pub async fn discover_with(
    client: &aws_sdk_kafka::Client,
    settings: &Settings,
    progress: &dyn Progress,
) -> Result<Discovered> {
    let msk = &settings.msk;
    let region = client
        .config()
        .region()
        .map(|r| r.to_string())
        .unwrap_or_else(|| "the configured region".into());
    let cluster = resolve(client, &msk.cluster, &region).await?;
    let (cluster, raw, field) = wait_for_brokers(client, cluster, msk, progress).await?;
    let arn = cluster.cluster_arn().unwrap_or_default().to_string();
    let name = cluster.cluster_name().unwrap_or_default().to_string();
    let serverless = matches!(cluster.cluster_type(), Some(ClusterType::Serverless));
    let state = state_of(&cluster);
    let brokers = Brokers::parse(&raw).map_err(|e| {
        fail(
            ExitCode::Unavailable,
            format!("cluster {arn}: MSK returned an invalid {field}: {e}"),
        )
    })?;
    let expected_port = match msk.connectivity {
        Connectivity::Private => Some(9098),
        Connectivity::Public => Some(9198),
        Connectivity::Vpc => None,
    };
    if let Some(port) = expected_port {
        if brokers.addrs.iter().any(|b| b.port != port) {
            warn!(brokers = %brokers.raw, "IAM brokers usually listen on port {port}; using what MSK returned");
        }
    }
    info!(
        cluster = %arn,
        brokers = %brokers.raw,
        count = brokers.addrs.len(),
        serverless,
        "discovered {} IAM bootstrap brokers of {name}",
        brokers.addrs.len()
    );
    Ok(Discovered {
        cluster_arn: arn,
        cluster_name: name,
        serverless,
        state,
        brokers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_that_becomes_active_is_noticed_within_20s() {
        let s = Duration::from_secs;
        // The default msk.cluster_wait: 5 s, then doubling up to 20 s (3 calls a minute).
        assert_eq!(poll_delays(s(30 * 60)), (s(5), s(20)));
        assert_eq!(poll_delays(s(2 * 3600)), (s(5), s(20)));
        // Short bounds (check's 2 s, tests) poll a quarter of the bound at most.
        assert_eq!(
            poll_delays(s(2)),
            (Duration::from_millis(100), Duration::from_millis(500))
        );
        assert_eq!(poll_delays(s(60)), (Duration::from_secs(1), s(15)));
    }

    #[test]
    fn broker_strings() {
        let b = Brokers::parse("b-1.demo.abc.c2.kafka.eu-west-1.amazonaws.com:9098,b-2.demo.abc.c2.kafka.eu-west-1.amazonaws.com:9098").unwrap();
        assert_eq!(b.addrs.len(), 2);
        assert_eq!(b.addrs[1].port, 9098);
        assert!(Brokers::parse("[2001:db8::1]:9098").is_ok());
        for bad in [
            "",
            "host",
            "host:0",
            "host:99999",
            "ho st:9098",
            "a:1,,b:2",
            "x;rm -rf:9098",
            "a\nb:9098",
            "[zz]:1",
        ] {
            assert!(Brokers::parse(bad).is_err(), "{bad:?}");
        }
        let a = Brokers::parse("a:1,b:2").unwrap();
        let b = Brokers::parse("b:2, a:1").unwrap();
        assert_eq!(a.as_set(), b.as_set());
    }

    #[test]
    fn principal_from_message() {
        let m = "User: arn:aws:sts::123456789012:assumed-role/ksql/i-0abc is not authorized to perform: kafka:GetBootstrapBrokers on resource: x";
        assert_eq!(
            principal_in(m),
            Some("arn:aws:sts::123456789012:assumed-role/ksql/i-0abc")
        );
        assert_eq!(principal_in("nope"), None);
    }
}
