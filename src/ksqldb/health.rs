//! Is ksqlDB usable? `GET agent.health_url`: ksqlDB's `/healthcheck` answers 200 with
//! `{"isHealthy":bool,...}` (the body decides), and 503 while it is still starting.
//! A `/info` URL is read as cp-ansible does: `KsqlServerInfo.serverStatus == "RUNNING"`.
//!
//! ksqlDB runs its Kafka check inside the `/healthcheck` request (an admin-client
//! `describeTopics` of the command topic with a 30 s timeout), so while the brokers are
//! unreachable that request takes 30 s or more. A timed-out `/healthcheck` is therefore
//! followed by `GET /info` on the same server, which ksqlDB answers from memory: when it
//! answers, ksqlDB is alive and waiting for Kafka, not hung (DESIGN.md: an MSK outage
//! must never get ksqlDB killed).

use std::time::Duration;

use anyhow::{Context, Result};

use crate::config::ConfigUrl;

/// What one probe found. The supervisor answers each differently (DESIGN.md phase 6):
/// an unhealthy ksqlDB is left running, one that gives no answer at all may be hung.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Healthy,
    /// It answered `isHealthy: false`: these of its checks fail (`kafka` when it cannot
    /// reach the brokers); empty when the answer named none.
    Unhealthy {
        failing: Vec<String>,
        /// Why, when the answer itself does not say (see [`probe_alive`]).
        why: Option<String>,
    },
    /// It answered, but is not ready (503 while starting, another status, a body that
    /// is not a health report), with a short reason for STATUS and the log.
    NotReady(String),
    /// No answer at all: refused, timed out, the connection broke.
    NoAnswer(String),
}

impl Health {
    #[cfg(test)]
    pub fn is_healthy(&self) -> bool {
        matches!(self, Health::Healthy)
    }

    /// A short reason for STATUS and the log; empty for a healthy answer.
    pub fn reason(&self) -> String {
        match self {
            Health::Healthy => String::new(),
            Health::Unhealthy { why: Some(why), .. } => why.clone(),
            Health::Unhealthy { failing, .. } if failing.is_empty() => {
                "ksqlDB reports itself unhealthy".into()
            }
            Health::Unhealthy { failing, .. } => {
                format!("ksqlDB reports unhealthy: {}", failing.join(", "))
            }
            Health::NotReady(why) | Health::NoAnswer(why) => why.clone(),
        }
    }
}

/// An HTTP client for probes: short timeouts, never through a proxy.
pub fn client(timeout: Duration) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(timeout)
        .timeout(timeout)
        .pool_max_idle_per_host(1)
        .build()
        .context("building the health check HTTP client")
}

/// Read a health response.
pub fn judge(status: u16, body: &[u8]) -> Health {
    if status == 503 {
        return Health::NotReady("ksqlDB is still starting (503)".into());
    }
    if status == 401 {
        return Health::NotReady(
            "ksqlDB refused the health check's credentials (401): with ksqldb.auth = \"basic\" the agent sends the user in ksqldb.password; with \"none\" ksqlDB should not ask for one".into(),
        );
    }
    if status != 200 {
        return Health::NotReady(format!("health check answered HTTP {status}"));
    }
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Health::NotReady("health check answered with unreadable JSON".into());
    };
    if let Some(healthy) = v.get("isHealthy").and_then(|h| h.as_bool()) {
        if healthy {
            return Health::Healthy;
        }
        let failing: Vec<String> = v
            .get("details")
            .and_then(|d| d.as_object())
            .map(|d| {
                d.iter()
                    .filter(|(_, s)| s.get("isHealthy").and_then(|h| h.as_bool()) == Some(false))
                    .map(|(k, _)| k.clone())
                    .collect()
            })
            .unwrap_or_default();
        return Health::Unhealthy { failing, why: None };
    }
    match v
        .pointer("/KsqlServerInfo/serverStatus")
        .and_then(|s| s.as_str())
    {
        Some("RUNNING") => Health::Healthy,
        Some(other) => Health::NotReady(format!("ksqlDB server status is {other}")),
        None => Health::NotReady("health check answer has no isHealthy".into()),
    }
}

/// One probe of `url`. What it says ends up in STATUS and the journal: reqwest's errors
/// lose the URL they would name, credentials and all. `auth`: the REST API credential
/// ([`crate::ksqldb::auth::credential`]) with `ksqldb.auth = "basic"`, sent as HTTP basic
/// authentication: ksqlDB 0.23–0.28 authenticate `/healthcheck` too (0.29 exempts it),
/// and `/info` always.
pub async fn probe(
    client: &reqwest::Client,
    url: &ConfigUrl,
    auth: Option<&crate::ksqldb::auth::Credential>,
) -> Health {
    let mut request = client.get(url.expose());
    if let Some(c) = auth {
        // reqwest marks the header sensitive: it is never in a Debug dump.
        request = request.basic_auth(&c.user, Some(c.password()));
    }
    let resp = match request.send().await {
        Ok(r) => r,
        Err(e) if e.is_connect() => {
            return Health::NoAnswer("ksqlDB is not listening".into());
        }
        Err(e) if e.is_timeout() => return Health::NoAnswer(TIMED_OUT.into()),
        Err(e) => return Health::NoAnswer(format!("health check failed: {}", e.without_url())),
    };
    let status = resp.status().as_u16();
    match resp.bytes().await {
        Ok(body) => judge(status, &body),
        Err(e) if e.is_timeout() => Health::NoAnswer(TIMED_OUT.into()),
        Err(e) => Health::NoAnswer(format!("health check body: {}", e.without_url())),
    }
}

const TIMED_OUT: &str = "health check timed out";

/// `/info` beside a `/healthcheck` URL (same scheme, credentials, host and port); none
/// for another health URL.
fn info_url(url: &ConfigUrl) -> Option<ConfigUrl> {
    let mut u = url::Url::parse(url.expose()).ok()?;
    if u.path() != "/healthcheck" {
        return None;
    }
    u.set_path("/info");
    u.set_query(None);
    ConfigUrl::parse(u.as_str()).ok()
}

/// What [`probe_alive`] lists instead of ksqlDB's `commandRunner` check when `/info` says
/// the command runner is `DEGRADED` (not `ERROR`, a stuck command, which clears by
/// itself). ksqlDB's HealthCheckAgent gives both as `commandRunner: false`.
pub const COMMAND_RUNNER_DEGRADED: &str = "commandRunner=DEGRADED";

/// `serverStatus` of ksqlDB's `/info` (RUNNING, ERROR or DEGRADED; since 0.12).
async fn server_status(
    client: &reqwest::Client,
    info: &ConfigUrl,
    auth: Option<&crate::ksqldb::auth::Credential>,
) -> Option<String> {
    let mut request = client.get(info.expose());
    if let Some(c) = auth {
        request = request.basic_auth(&c.user, Some(c.password()));
    }
    let resp = request.send().await.ok()?;
    if resp.status().as_u16() != 200 {
        return None;
    }
    // Bounded: a few hundred bytes from ksqlDB.
    let body = resp.bytes().await.ok()?;
    if body.len() > 64 << 10 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
    v.pointer("/KsqlServerInfo/serverStatus")?
        .as_str()
        .map(str::to_string)
}

/// The command runner fails while Kafka does not: ask `/info` whether it is DEGRADED.
fn command_runner_alone(failing: &[String]) -> bool {
    failing.iter().any(|c| c == "commandRunner") && !failing.iter().any(|c| c == "kafka")
}

/// `health` with its `commandRunner` named [`COMMAND_RUNNER_DEGRADED`] when only the
/// command runner fails and `/info` says DEGRADED.
async fn name_degraded(
    client: &reqwest::Client,
    url: &ConfigUrl,
    auth: Option<&crate::ksqldb::auth::Credential>,
    health: Health,
) -> Health {
    let Health::Unhealthy { mut failing, why } = health else {
        return health;
    };
    if command_runner_alone(&failing) {
        let info = info_url(url);
        let status = match &info {
            Some(info) => server_status(client, info, auth).await,
            None => None,
        };
        if status.as_deref() == Some("DEGRADED") {
            for c in failing.iter_mut().filter(|c| *c == "commandRunner") {
                *c = COMMAND_RUNNER_DEGRADED.to_string();
            }
        }
    }
    Health::Unhealthy { failing, why }
}

/// [`probe`], and when `/healthcheck` timed out, whether ksqlDB still answers `/info`:
/// then it is waiting for its Kafka check (reported as the `kafka` check failing), not
/// hung. When only its command runner fails, whether `/info` says it is DEGRADED.
pub async fn probe_alive(
    client: &reqwest::Client,
    url: &ConfigUrl,
    auth: Option<&crate::ksqldb::auth::Credential>,
) -> Health {
    let health = probe(client, url, auth).await;
    if matches!(&health, Health::Unhealthy { .. }) {
        return name_degraded(client, url, auth, health).await;
    }
    if !matches!(&health, Health::NoAnswer(why) if why == TIMED_OUT) {
        return health;
    }
    let Some(info) = info_url(url) else {
        return health;
    };
    match probe(client, &info, auth).await {
        Health::NoAnswer(_) => health,
        _ => Health::Unhealthy {
            failing: vec!["kafka".into()],
            why: Some(
                "its /healthcheck does not answer in time while /info does: its Kafka check is waiting for the brokers".into(),
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies() {
        assert_eq!(
            judge(200, br#"{"isHealthy":true,"details":{}}"#),
            Health::Healthy
        );
        let h = judge(
            200,
            br#"{"isHealthy":false,"details":{"kafka":{"isHealthy":false},"metastore":{"isHealthy":true}}}"#,
        );
        assert_eq!(
            h,
            Health::Unhealthy {
                failing: vec!["kafka".into()],
                why: None
            }
        );
        assert_eq!(h.reason(), "ksqlDB reports unhealthy: kafka");
        assert!(!judge(503, br#"{"error_code":50302}"#).is_healthy());
        assert!(judge(
            200,
            br#"{"KsqlServerInfo":{"version":"0.29.0","serverStatus":"RUNNING"}}"#
        )
        .is_healthy());
        assert!(!judge(200, b"not json").is_healthy());
        assert!(!judge(500, b"{}").is_healthy());
    }

    #[test]
    fn info_beside_healthcheck() {
        let u = |s: &str| ConfigUrl::parse(s).unwrap();
        assert_eq!(
            info_url(&u("http://127.0.0.1:8088/healthcheck")).map(|u| u.expose().to_string()),
            Some("http://127.0.0.1:8088/info".into())
        );
        assert_eq!(
            info_url(&u("https://u:p@h:8443/healthcheck?x=1")).map(|u| u.expose().to_string()),
            Some("https://u:p@h:8443/info".into())
        );
        assert!(info_url(&u("http://127.0.0.1:8088/info")).is_none());
    }
}
