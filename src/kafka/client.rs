//! One authenticated connection to one broker: DNS, TCP, TLS, ApiVersions, SASL
//! handshake `AWS_MSK_IAM`, SaslAuthenticate; then requests. Every step is bounded by
//! [`STEP_TIMEOUT`] and ends in a [`Finding`] line that names what failed.

use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::Credentials;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::messages::{self, code, Api, ApiRange};
use super::wire::{self, MAX_FRAME};
use super::{sasl_iam, Finding, Step};
use crate::discovery::BrokerAddr;

/// The bound of each step (DNS, TCP, TLS, each request): a silent peer (a security
/// group dropping packets, a black-hole port) costs at most this per step.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(3);
/// The mechanism MSK's IAM listeners offer.
pub const MECHANISM: &str = "AWS_MSK_IAM";
pub const CLIENT_ID: &str = "ksql-msk-doctor";

/// What signing needs: the credentials and the region to sign for when the host name
/// carries none.
#[derive(Clone)]
pub struct Signer {
    pub credentials: Credentials,
    pub fallback_region: Option<String>,
}

impl Signer {
    fn region_for<'a>(&'a self, host: &'a str) -> Option<&'a str> {
        sasl_iam::region_in_host(host).or(self.fallback_region.as_deref())
    }
}

pub struct Conn {
    stream: TlsStream<TcpStream>,
    next_id: i32,
    versions: Vec<ApiRange>,
    pub broker: BrokerAddr,
}

/// How authentication failed, for the doctor to explain once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    /// SASL_AUTHENTICATION_FAILED with the broker's message.
    Denied(String),
    Other,
}

/// Connect to one broker and authenticate: the step lines, and the connection when
/// every step passed.
pub async fn connect(
    broker: &BrokerAddr,
    signer: Result<&Signer, &str>,
) -> (Vec<Finding>, Option<Conn>, Option<AuthFailure>) {
    let mut lines = Vec::new();
    let name = broker.to_string();
    let host = broker
        .host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let line = |step: Step, ok: bool, started: Instant, text: String| {
        Finding::step(&name, step, ok, started.elapsed(), text)
    };

    // DNS
    let started = Instant::now();
    let addrs = match tokio::time::timeout(
        STEP_TIMEOUT,
        tokio::net::lookup_host((host.as_str(), broker.port)),
    )
    .await
    {
        Ok(Ok(a)) => a.collect::<Vec<_>>(),
        Ok(Err(e)) => {
            lines.push(line(
                Step::Dns,
                false,
                started,
                format!(
                    "cannot resolve {host}: {e} (VPC DNS settings, or another VPC's private name?)"
                ),
            ));
            return (lines, None, None);
        }
        Err(_) => {
            lines.push(line(
                Step::Dns,
                false,
                started,
                format!(
                    "resolving {host} timed out after {}s",
                    STEP_TIMEOUT.as_secs()
                ),
            ));
            return (lines, None, None);
        }
    };
    let Some(addr) = addrs.first().copied() else {
        lines.push(line(
            Step::Dns,
            false,
            started,
            format!("{host} has no address"),
        ));
        return (lines, None, None);
    };
    lines.push(line(
        Step::Dns,
        true,
        started,
        format!("{host} is {}", addr.ip()),
    ));

    // TCP
    let started = Instant::now();
    let tcp = match tokio::time::timeout(STEP_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            lines.push(line(
                Step::Tcp,
                false,
                started,
                format!("connect to {addr} failed: {e}"),
            ));
            return (lines, None, None);
        }
        Err(_) => {
            lines.push(line(Step::Tcp, false, started, format!(
                "no answer within {}s from {addr}: the MSK cluster's security group must allow inbound TCP {} from this instance's security group (or its address)",
                STEP_TIMEOUT.as_secs(), broker.port
            )));
            return (lines, None, None);
        }
    };
    let _ = tcp.set_nodelay(true);
    lines.push(line(
        Step::Tcp,
        true,
        started,
        format!("connected to {addr}"),
    ));

    // TLS
    let started = Instant::now();
    let tls = match super::tls::config().and_then(|c| Ok((c, super::tls::server_name(&host)?))) {
        Ok((config, server)) => {
            let connector = tokio_rustls::TlsConnector::from(config);
            match tokio::time::timeout(STEP_TIMEOUT, connector.connect(server, tcp)).await {
                Ok(Ok(s)) => Ok(s),
                Ok(Err(e)) => Err(super::tls::explain(&e)),
                Err(_) => Err(format!(
                    "no TLS answer within {}s: the port accepts TCP but says nothing (not a Kafka TLS listener, or a black hole)",
                    STEP_TIMEOUT.as_secs()
                )),
            }
        }
        Err(e) => Err(e),
    };
    let stream = match tls {
        Ok(s) => s,
        Err(text) => {
            lines.push(line(Step::Tls, false, started, text));
            return (lines, None, None);
        }
    };
    let (_, session) = stream.get_ref();
    let version = session
        .protocol_version()
        .map(|v| format!("{v:?}"))
        .unwrap_or_default();
    lines.push(line(
        Step::Tls,
        true,
        started,
        format!(
            "{} with a certificate trusted for {host}",
            version.replace('_', ".")
        ),
    ));
    let mut conn = Conn {
        stream,
        next_id: 1,
        versions: Vec::new(),
        broker: broker.clone(),
    };

    // SASL handshake (ApiVersions first, as Kafka's clients do).
    let started = Instant::now();
    let handshake = async {
        let v = conn
            .request(messages::API_VERSIONS, &messages::api_versions_request())
            .await?;
        let v = messages::api_versions_response(&v).map_err(|e| e.to_string())?;
        if v.error_code != code::NONE {
            return Err(format!(
                "ApiVersions answered {}",
                messages::error_name(v.error_code)
            ));
        }
        conn.versions = v.apis;
        let h = conn
            .request(
                messages::SASL_HANDSHAKE,
                &messages::sasl_handshake_request(MECHANISM),
            )
            .await?;
        messages::sasl_handshake_response(&h).map_err(|e| e.to_string())
    };
    let h = match handshake.await {
        Ok(h) => h,
        Err(e) => {
            lines.push(line(Step::Sasl, false, started, e));
            return (lines, None, None);
        }
    };
    if h.error_code == code::UNSUPPORTED_SASL_MECHANISM {
        let offered = if h.mechanisms.is_empty() {
            "none".to_string()
        } else {
            h.mechanisms.join(", ")
        };
        lines.push(line(Step::Sasl, false, started, format!(
            "AWS_MSK_IAM is not offered (this listener offers {offered}): IAM access control is not enabled on this cluster, or this is not its IAM port (9098 private, 9198 public)"
        )));
        return (lines, None, None);
    }
    if h.error_code == code::ILLEGAL_SASL_STATE {
        lines.push(line(Step::Sasl, false, started, "AWS_MSK_IAM is not offered (this listener does not use SASL: a TLS-only or plaintext listener): IAM access control is not enabled on this cluster, or this is not its IAM port (9098 private, 9198 public)".to_string()));
        return (lines, None, None);
    }
    if h.error_code != code::NONE {
        lines.push(line(
            Step::Sasl,
            false,
            started,
            format!(
                "SaslHandshake answered {}",
                messages::error_name(h.error_code)
            ),
        ));
        return (lines, None, None);
    }
    lines.push(line(
        Step::Sasl,
        true,
        started,
        "AWS_MSK_IAM offered".into(),
    ));

    // Authentication
    let started = Instant::now();
    let signer = match signer {
        Ok(s) => s,
        Err(why) => {
            lines.push(line(Step::Authentication, false, started, why.to_string()));
            return (lines, None, Some(AuthFailure::Other));
        }
    };
    let Some(region) = signer.region_for(&host) else {
        lines.push(line(Step::Authentication, false, started, format!(
            "no region to sign for: {host} names none and neither msk.region nor the AWS default chain gives one"
        )));
        return (lines, None, Some(AuthFailure::Other));
    };
    let user_agent = format!("ksql-msk/{}", env!("CARGO_PKG_VERSION"));
    let payload = match sasl_iam::payload(
        &host,
        region,
        &signer.credentials,
        SystemTime::now(),
        &user_agent,
    ) {
        Ok(p) => p,
        Err(e) => {
            lines.push(line(Step::Authentication, false, started, e));
            return (lines, None, Some(AuthFailure::Other));
        }
    };
    let answer = async {
        let a = conn
            .request(
                messages::SASL_AUTHENTICATE,
                &messages::sasl_authenticate_request(&payload),
            )
            .await?;
        messages::sasl_authenticate_response(&a).map_err(|e| e.to_string())
    };
    match answer.await {
        Ok(a) if a.error_code == code::NONE => {
            lines.push(line(
                Step::Authentication,
                true,
                started,
                format!("signed for {region} and accepted"),
            ));
            (lines, Some(conn), None)
        }
        Ok(a) if a.error_code == code::SASL_AUTHENTICATION_FAILED => {
            let message = a.error_message.unwrap_or_default();
            lines.push(line(
                Step::Authentication,
                false,
                started,
                format!("the broker refused the signed payload: {message}"),
            ));
            (lines, None, Some(AuthFailure::Denied(message)))
        }
        Ok(a) => {
            lines.push(line(
                Step::Authentication,
                false,
                started,
                format!(
                    "SaslAuthenticate answered {}: {}",
                    messages::error_name(a.error_code),
                    a.error_message.unwrap_or_default()
                ),
            ));
            (lines, None, Some(AuthFailure::Other))
        }
        Err(e) => {
            lines.push(line(Step::Authentication, false, started, e));
            (lines, None, Some(AuthFailure::Other))
        }
    }
}

impl Conn {
    /// Whether the broker takes `api` at the version we send (ApiVersions' ranges).
    pub fn supports(&self, api: Api) -> bool {
        self.versions
            .iter()
            .any(|r| r.key == api.key && r.min <= api.version && api.version <= r.max)
    }

    /// Send one request and read its response body, bounded by [`STEP_TIMEOUT`].
    pub async fn request(&mut self, api: Api, body: &[u8]) -> Result<Vec<u8>, String> {
        if api.key != messages::API_VERSIONS.key && !self.versions.is_empty() && !self.supports(api)
        {
            return Err(format!(
                "the broker does not support {} v{} (Kafka older than 2.8?)",
                api.name, api.version
            ));
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let frame = wire::frame(api.key, api.version, api.flexible, id, CLIENT_ID, body);
        let exchange = async {
            self.stream.write_all(&frame).await?;
            self.stream.flush().await?;
            let mut prefix = [0u8; 4];
            self.stream.read_exact(&mut prefix).await?;
            let size = wire::frame_size(prefix).map_err(std::io::Error::other)?;
            // Bounded by MAX_FRAME, read in full before decoding.
            let mut buf = vec![0u8; size.min(MAX_FRAME)];
            self.stream.read_exact(&mut buf).await?;
            Ok::<_, std::io::Error>(buf)
        };
        let buf = match tokio::time::timeout(STEP_TIMEOUT, exchange).await {
            Ok(Ok(buf)) => buf,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(format!(
                    "the broker closed the connection instead of answering {}",
                    api.name
                ))
            }
            Ok(Err(e)) => return Err(format!("{}: {e}", api.name)),
            Err(_) => {
                return Err(format!(
                    "no answer to {} within {}s",
                    api.name,
                    STEP_TIMEOUT.as_secs()
                ))
            }
        };
        // ApiVersions answers with header v0 even in flexible versions.
        let flexible_header = api.flexible && api.key != messages::API_VERSIONS.key;
        wire::response_body(&buf, id, flexible_header)
            .map(<[u8]>::to_vec)
            .map_err(|e| format!("{}: {e}", api.name))
    }
}
