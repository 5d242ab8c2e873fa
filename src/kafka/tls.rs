//! TLS to a broker: rustls with the ring provider (what the AWS SDK already links) and
//! the host's trust store (rustls-native-certs: `SSL_CERT_FILE` / `SSL_CERT_DIR` when
//! set, else the system's). MSK's certificates chain to Amazon Trust Services, which
//! Amazon Linux's ca-certificates holds. This is the agent's view: ksqlDB's JVM uses
//! its own trust store.

use std::sync::Arc;

use tokio_rustls::rustls::{self, pki_types::ServerName, CertificateError, ClientConfig};

/// The client config, built once per process (loading the store reads files).
pub fn config() -> Result<Arc<ClientConfig>, String> {
    static CONFIG: std::sync::OnceLock<Result<Arc<ClientConfig>, String>> =
        std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(crate::host::ca_store::NO_CA_CERTIFICATES.to_string());
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS setup: {e}"))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Ok(Arc::new(config))
        })
        .clone()
}

pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.to_string())
        .map_err(|e| format!("{host:?} is not a TLS server name: {e}"))
}

/// One line saying why a handshake failed, told apart by what rustls saw.
pub fn explain(e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    if let Some(err) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        return match err {
            rustls::Error::InvalidCertificate(c) => certificate(c),
            rustls::Error::InvalidMessage(_) => format!(
                "the broker answered with something that is not TLS ({err}): a plaintext listener, or not a Kafka TLS port"
            ),
            rustls::Error::AlertReceived(alert) => format!(
                "TLS handshake failure: the broker refused it with alert {alert:?} (no common protocol version or cipher)"
            ),
            rustls::Error::PeerIncompatible(_) | rustls::Error::PeerMisbehaved(_) => {
                format!("TLS handshake failure: {err}")
            }
            other => format!("TLS handshake failed: {other}"),
        };
    }
    match e.kind() {
        ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset | ErrorKind::BrokenPipe => {
            "the broker closed the connection during the TLS handshake: plain TCP where TLS was expected (a PLAINTEXT listener closes on a ClientHello), or not a Kafka TLS port".to_string()
        }
        _ => format!("TLS handshake failed: {e}"),
    }
}

fn certificate(c: &CertificateError) -> String {
    match c {
        CertificateError::UnknownIssuer => "the broker's certificate is not trusted by this host (unknown issuer; the host's CA store, or SSL_CERT_FILE if set, lacks its CA)".to_string(),
        CertificateError::BadSignature => "the broker's certificate is not trusted by this host: it names a CA this host trusts, but that CA did not sign it".to_string(),
        CertificateError::NotValidForName => {
            "the broker's certificate is for another host name".to_string()
        }
        CertificateError::NotValidForNameContext { expected, presented } => format!(
            "the broker's certificate is for another host: expected {expected:?}, the certificate names {}",
            presented.join(", ")
        ),
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            format!("the broker's certificate has expired ({c:?}; or this host's clock is wrong)")
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => format!(
            "the broker's certificate is not valid yet ({c:?}; this host's clock may be behind)"
        ),
        other => format!("the broker's certificate is refused: {other:?}"),
    }
}
