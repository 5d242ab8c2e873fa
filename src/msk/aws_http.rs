//! The HTTP client of the AWS SDK clients (MSK in discovery, STS in `check`, and the
//! SDK's credential and region providers that they load).
//!
//! Proxies: `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` (each in upper or
//! lower case), read by the same hyper-util matcher as reqwest reads them for the
//! downloads, so both follow one set of rules: `NO_PROXY` holds names (which cover
//! their subdomains), addresses and CIDR ranges (`*` covers every name, but no
//! address), and nothing is exempt unless it lists it, loopback included. One exception, as for the agent's own IMDS client:
//! the instance metadata (link-local addresses, AWS's `fd00:ec2::/32`, and the endpoint
//! `AWS_EC2_METADATA_SERVICE_ENDPOINT` names) is always reached direct. A proxy cannot
//! reach this instance's metadata, and one that answered with its own host's would
//! hand the agent another machine's credentials.

use std::net::IpAddr;

use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
use aws_smithy_http_client::{Builder, Connector};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::{
    RuntimeComponents, RuntimeComponentsBuilder,
};
use aws_smithy_types::config_bag::ConfigBag;

use crate::host::ca_store::host_has_ca_certificates;

const TLS: tls::Provider = tls::Provider::Rustls(CryptoMode::Ring);

/// The SDK's HTTP client: rustls with the host's CAs, through the proxy the
/// environment names (see the module doc). On a host without CA certificates the SDK
/// asserts in its first connection (a panic in debug builds), so it gets an explicitly
/// empty store instead: plain-http endpoints (loopback, VPC proxies) still work, and a
/// TLS handshake fails like any untrusted certificate.
pub fn client() -> SharedHttpClient {
    let context = if host_has_ca_certificates() {
        TlsContext::builder().build()
    } else {
        TlsContext::builder()
            .with_trust_store(TrustStore::empty())
            .build()
    };
    // `build` cannot fail in 1.x (it only moves its inputs). A client without TLS
    // refuses https with an error instead of asserting.
    let Ok(context) = context else {
        return Builder::new().build_http();
    };
    let direct = Builder::new()
        .tls_provider(TLS)
        .tls_context(context.clone())
        .build_https();
    // What `Builder::build_https` does, plus the proxy, which that builder does not
    // offer: the connector gets the operation's timeouts and the runtime's sleep. (Not
    // its time source, which only times connector calls for telemetry and cannot be
    // set from outside the crate: the system clock, which the runtime uses too.)
    let proxied = Builder::new().build_with_connector_fn(move |settings, components| {
        let mut builder = Connector::builder();
        builder.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            builder.set_sleep_impl(components.sleep_impl());
        }
        builder
            .proxy_config(ProxyConfig::from_env())
            .tls_provider(TLS)
            .tls_context(context.clone())
            .build()
    });
    SharedHttpClient::new(Split {
        direct,
        proxied,
        imds: crate::msk::imds::endpoint().and_then(|e| Origin::of(&e)),
    })
}

/// Scheme, host and port of a URL, to compare endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: url::Host,
    port: Option<u16>,
}

impl Origin {
    fn of(url: &str) -> Option<Origin> {
        let url = url::Url::parse(url).ok()?;
        Some(Origin {
            scheme: url.scheme().to_string(),
            host: url.host()?.to_owned(),
            port: url.port_or_known_default(),
        })
    }
}

/// Whether a request to `uri` bypasses the proxy whatever the environment says: the
/// instance metadata and the other link-local credential endpoints (ECS, EKS Pod
/// Identity) at their addresses, or IMDS at `imds`, where the environment moved it.
fn always_direct(uri: &str, imds: Option<&Origin>) -> bool {
    let Some(origin) = Origin::of(uri) else {
        return false;
    };
    if imds == Some(&origin) {
        return true;
    }
    let ip: IpAddr = match origin.host {
        url::Host::Ipv4(v4) => v4.into(),
        url::Host::Ipv6(v6) => v6.into(),
        url::Host::Domain(_) => return false,
    };
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            // fe80::/10, AWS's fd00:ec2::/32 (IMDS fd00:ec2::254 and the container
            // endpoints), and a link-local IPv4 address in IPv6 form.
            (s[0] & 0xffc0) == 0xfe80
                || (s[0], s[1]) == (0xfd00, 0x0ec2)
                || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_link_local())
        }
    }
}

/// The proxied client, but the instance metadata on a direct one (see
/// [`always_direct`]). Each keeps its own connectors and connection pool.
#[derive(Debug)]
struct Split {
    direct: SharedHttpClient,
    proxied: SharedHttpClient,
    imds: Option<Origin>,
}

impl HttpClient for Split {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(SplitConnector {
            direct: self.direct.http_connector(settings, components),
            proxied: self.proxied.http_connector(settings, components),
            imds: self.imds.clone(),
        })
    }

    fn validate_base_client_config(
        &self,
        components: &RuntimeComponentsBuilder,
        cfg: &ConfigBag,
    ) -> Result<(), BoxError> {
        self.direct.validate_base_client_config(components, cfg)?;
        self.proxied.validate_base_client_config(components, cfg)
    }

    fn validate_final_config(
        &self,
        components: &RuntimeComponents,
        cfg: &ConfigBag,
    ) -> Result<(), BoxError> {
        self.direct.validate_final_config(components, cfg)?;
        self.proxied.validate_final_config(components, cfg)
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        self.proxied.connector_metadata()
    }
}

#[derive(Debug)]
struct SplitConnector {
    direct: SharedHttpConnector,
    proxied: SharedHttpConnector,
    imds: Option<Origin>,
}

impl HttpConnector for SplitConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        if always_direct(request.uri(), self.imds.as_ref()) {
            self.direct.call(request)
        } else {
            self.proxied.call(request)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_metadata_and_link_local_endpoints_are_always_direct() {
        for uri in [
            "http://169.254.169.254/latest/api/token",
            "http://169.254.170.2/v2/credentials/x",
            "http://169.254.170.23/v1/credentials",
            "http://[fd00:ec2::254]/latest/api/token",
            "http://[fd00:ec2::23]/v1/credentials",
            "http://[fe80::1]:8080/",
            "http://[::ffff:169.254.169.254]/",
        ] {
            assert!(always_direct(uri, None), "{uri}");
        }
        for uri in [
            "https://kafka.eu-west-1.amazonaws.com/v1/clusters",
            "https://sts.eu-west-1.amazonaws.com/",
            "http://127.0.0.1:8080/",
            "http://169.254.169.254.nip.io/",
            "http://10.0.0.1/",
            "http://[fd00:ec3::1]/",
            "not a url",
        ] {
            assert!(!always_direct(uri, None), "{uri}");
        }
    }

    #[test]
    fn a_moved_imds_endpoint_is_direct_on_its_scheme_host_and_port_only() {
        let imds = Origin::of("http://127.0.0.1:4567").unwrap();
        assert!(always_direct(
            "http://127.0.0.1:4567/latest/api/token",
            Some(&imds)
        ));
        for uri in [
            "http://127.0.0.1:4568/latest/api/token",
            "https://127.0.0.1:4567/",
            "http://localhost:4567/",
        ] {
            assert!(!always_direct(uri, Some(&imds)), "{uri}");
        }
        let default_port = Origin::of("http://imds.example").unwrap();
        assert!(always_direct(
            "http://imds.example:80/x",
            Some(&default_port)
        ));
    }
}
