//! This host's private IPv4 address for `ksql.advertised.listener`, from the EC2
//! instance metadata through the AWS SDK's IMDSv2 client (session token, retries of
//! 5xx and expired tokens). Honours the SDK's environment variables:
//! `AWS_EC2_METADATA_SERVICE_ENDPOINT` (tests point it at a fake) and
//! `AWS_EC2_METADATA_DISABLED=true`.

use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::{Context, Result};
use aws_config::imds;
use aws_config::provider_config::ProviderConfig;

pub const DEFAULT_ENDPOINT: &str = "http://169.254.169.254";
pub const ENDPOINT_ENV: &str = "AWS_EC2_METADATA_SERVICE_ENDPOINT";
pub const DISABLED_ENV: &str = "AWS_EC2_METADATA_DISABLED";
/// The session token lives one minute: it serves the one request made with it.
const TOKEN_TTL: Duration = Duration::from_secs(60);
const LOCAL_IPV4: &str = "/latest/meta-data/local-ipv4";

/// Where IMDS is according to the environment, or `None` when it is disabled.
pub fn endpoint() -> Option<String> {
    endpoint_from(
        std::env::var(DISABLED_ENV).ok().as_deref(),
        std::env::var(ENDPOINT_ENV).ok().as_deref(),
    )
}

/// [`endpoint`] from the two variables' values.
pub fn endpoint_from(disabled: Option<&str>, endpoint: Option<&str>) -> Option<String> {
    if disabled.is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        return None;
    }
    let endpoint = endpoint
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .unwrap_or(DEFAULT_ENDPOINT);
    Some(endpoint.trim_end_matches('/').to_string())
}

/// This instance's private IPv4 address from IMDS at `endpoint`: a token PUT, then the
/// GET with the token. Short timeouts: off EC2 nothing answers and we must not hang.
/// Direct, never through a proxy: link-local, a proxy cannot reach it.
pub async fn local_ipv4_at(endpoint: &str) -> Result<Ipv4Addr> {
    let direct = aws_smithy_http_client::Builder::new().build_http();
    let client = imds::Client::builder()
        .configure(&ProviderConfig::without_region().with_http_client(direct))
        .endpoint(endpoint)
        .map_err(|e| anyhow::anyhow!("IMDS endpoint {endpoint}: {e}"))?
        .token_ttl(TOKEN_TTL)
        .connect_timeout(Duration::from_secs(1))
        .read_timeout(Duration::from_secs(2))
        .operation_timeout(Duration::from_secs(5))
        .build();
    let url = format!("{endpoint}{LOCAL_IPV4}");
    let body = client
        .get(LOCAL_IPV4)
        .await
        .map_err(|e| anyhow::anyhow!("GET {url}: {}", crate::exit::cause_chain(&e)))?;
    let body = body.as_ref().trim();
    // The address ends up in ksql-server.properties: accept nothing but an address.
    body.parse()
        .with_context(|| format!("GET {url}: {body:?} is not an IPv4 address"))
}

/// This host's private IPv4 address from the IMDS at `endpoint` (see [`endpoint`]), or
/// `None` (with a warning) when IMDS is disabled or does not answer.
pub async fn local_ipv4(endpoint: Option<&str>) -> Option<Ipv4Addr> {
    let Some(endpoint) = endpoint else {
        tracing::warn!("{DISABLED_ENV}=true: cannot learn this host's address from IMDS");
        return None;
    };
    match local_ipv4_at(endpoint).await {
        Ok(ip) => Some(ip),
        Err(err) => {
            tracing::warn!(
                "instance metadata unavailable ({}); this host's address is unknown",
                crate::exit::one_line(&err)
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ksql_msk_testkit::imds::FakeImds;

    #[test]
    fn endpoint_from_environment_values() {
        assert_eq!(endpoint_from(None, None).as_deref(), Some(DEFAULT_ENDPOINT));
        assert_eq!(endpoint_from(Some("TRUE"), Some("http://x")), None);
        assert_eq!(
            endpoint_from(Some("false"), Some(" http://127.0.0.1:9/ ")).as_deref(),
            Some("http://127.0.0.1:9")
        );
        assert_eq!(
            endpoint_from(None, Some("")).as_deref(),
            Some(DEFAULT_ENDPOINT)
        );
    }

    #[tokio::test]
    async fn disabled_means_no_address_and_no_request() {
        assert_eq!(local_ipv4(None).await, None);
    }

    #[tokio::test]
    async fn reads_local_ipv4_with_a_token() {
        let fake = FakeImds::start("eu-west-1", "10.1.2.3");
        let ip = local_ipv4_at(&fake.url()).await.unwrap();
        assert_eq!(ip, Ipv4Addr::new(10, 1, 2, 3));
    }

    #[tokio::test]
    async fn refuses_what_is_not_an_address() {
        let fake = FakeImds::start("eu-west-1", "10.1.2.3\nlisteners=evil");
        let err = local_ipv4_at(&fake.url()).await.unwrap_err();
        assert!(
            format!("{err:#}").contains("is not an IPv4 address"),
            "{err:#}"
        );
    }

    #[tokio::test]
    async fn unreachable_endpoint_fails_fast() {
        // A bound but never-accepting port would hang; a closed port refuses at once.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let start = std::time::Instant::now();
        assert!(local_ipv4_at(&format!("http://127.0.0.1:{port}"))
            .await
            .is_err());
        assert!(start.elapsed() < Duration::from_secs(3));
    }
}
