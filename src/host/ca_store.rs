//! The host's trust store, as both HTTP stacks (the AWS SDK's and reqwest) load it.

/// What every TLS failure on a host without CA certificates says.
pub const NO_CA_CERTIFICATES: &str = "no trusted CA certificates on this host (the system \
    store, or SSL_CERT_FILE / SSL_CERT_DIR if set, holds none): install the ca-certificates package";

/// Whether the host trusts any CA: the store rustls-native-certs finds (SSL_CERT_FILE /
/// SSL_CERT_DIR if set, else the system's), which both the SDK and reqwest load. Read
/// once per process, as the SDK does.
pub fn host_has_ca_certificates() -> bool {
    static ANY: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ANY.get_or_init(|| !rustls_native_certs::load_native_certs().certs.is_empty())
}
