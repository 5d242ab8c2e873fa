//! One authenticated connection to one broker: DNS, TCP, TLS, ApiVersions, SASL
//! handshake `AWS_MSK_IAM`, SaslAuthenticate; then requests. Every step is bounded by
//! [`STEP_TIMEOUT`] and ends in a [`Finding`] line that names what failed.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::Credentials;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::finding::{Finding, Step};
use super::messages::{self, code, Api, ApiRange};
use super::sasl_iam;
use super::wire::{self, MAX_FRAME};
use crate::msk::discovery::BrokerAddr;

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
    let at = At::new(broker);
    let Some(addr) = keep(&mut lines, resolve(&at).await) else {
        return (lines, None, None);
    };
    let Some(tcp) = keep(&mut lines, tcp_connect(&at, addr).await) else {
        return (lines, None, None);
    };
    let Some(stream) = keep(&mut lines, tls_handshake(&at, tcp).await) else {
        return (lines, None, None);
    };
    let mut conn = Conn {
        stream,
        next_id: 1,
        versions: Vec::new(),
        broker: broker.clone(),
    };
    let Some(()) = keep(&mut lines, sasl_handshake(&at, &mut conn).await) else {
        return (lines, None, None);
    };
    // Without credentials there is nothing to send: the diagnosis says why once.
    let Ok(signer) = signer else {
        return (lines, None, None);
    };
    match authenticate(&at, &mut conn, signer).await {
        Ok(line) => {
            lines.push(line);
            (lines, Some(conn), None)
        }
        Err((line, failure)) => {
            lines.push(line);
            (lines, None, Some(failure))
        }
    }
}

/// A step's line, and what the next step needs when it passed.
type StepResult<T> = Result<(Finding, T), Finding>;

/// Keep the step's line; what it gave when it passed.
fn keep<T>(lines: &mut Vec<Finding>, result: StepResult<T>) -> Option<T> {
    match result {
        Ok((line, value)) => {
            lines.push(line);
            Some(value)
        }
        Err(line) => {
            lines.push(line);
            None
        }
    }
}

/// The broker a connection's lines are about.
struct At {
    name: String,
    /// Without an IPv6 literal's brackets.
    host: String,
    port: u16,
}

impl At {
    fn new(broker: &BrokerAddr) -> At {
        At {
            name: broker.to_string(),
            host: broker
                .host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port: broker.port,
        }
    }

    fn line(&self, step: Step, ok: bool, started: Instant, text: String) -> Finding {
        Finding::step(&self.name, step, ok, started.elapsed(), text)
    }
}

async fn resolve(at: &At) -> StepResult<SocketAddr> {
    let started = Instant::now();
    let host = &at.host;
    let fail = |text: String| at.line(Step::Dns, false, started, text);
    let lookup = tokio::net::lookup_host((host.as_str(), at.port));
    let addrs = match tokio::time::timeout(STEP_TIMEOUT, lookup).await {
        Ok(Ok(a)) => a.collect::<Vec<_>>(),
        Ok(Err(e)) => {
            return Err(fail(format!(
                "cannot resolve {host}: {e} (VPC DNS settings, or another VPC's private name?)"
            )))
        }
        Err(_) => {
            return Err(fail(format!(
                "resolving {host} timed out after {}s",
                STEP_TIMEOUT.as_secs()
            )))
        }
    };
    let Some(addr) = addrs.first().copied() else {
        return Err(fail(format!("{host} has no address")));
    };
    let text = format!("{host} is {}", addr.ip());
    Ok((at.line(Step::Dns, true, started, text), addr))
}

async fn tcp_connect(at: &At, addr: SocketAddr) -> StepResult<TcpStream> {
    let started = Instant::now();
    let fail = |text: String| at.line(Step::Tcp, false, started, text);
    let tcp = match tokio::time::timeout(STEP_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(fail(format!("connect to {addr} failed: {e}"))),
        // Dropped packets, not a refusal: what a security group does.
        Err(_) => return Err(fail(format!(
            "no answer within {}s from {addr}: the MSK cluster's security group must allow inbound TCP {} from this instance's security group (or its address)",
            STEP_TIMEOUT.as_secs(), at.port
        ))),
    };
    let _ = tcp.set_nodelay(true);
    let text = format!("connected to {addr}");
    Ok((at.line(Step::Tcp, true, started, text), tcp))
}

async fn tls_handshake(at: &At, tcp: TcpStream) -> StepResult<TlsStream<TcpStream>> {
    let started = Instant::now();
    let host = &at.host;
    let setup = super::tls::config().and_then(|c| Ok((c, super::tls::server_name(host)?)));
    let tls = match setup {
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
    let stream = tls.map_err(|text| at.line(Step::Tls, false, started, text))?;
    let (_, session) = stream.get_ref();
    let version = session
        .protocol_version()
        .map(|v| format!("{v:?}"))
        .unwrap_or_default();
    let text = format!(
        "{} with a certificate trusted for {host}",
        version.replace('_', ".")
    );
    Ok((at.line(Step::Tls, true, started, text), stream))
}

/// What a listener without `AWS_MSK_IAM` is, in one line.
const NOT_IAM: &str = "IAM access control is not enabled on this cluster, or this is not its IAM port (9098 private, 9198 public)";

/// ApiVersions (as Kafka's clients do first), then SaslHandshake `AWS_MSK_IAM`.
async fn sasl_handshake(at: &At, conn: &mut Conn) -> StepResult<()> {
    let started = Instant::now();
    let fail = |text: String| at.line(Step::Sasl, false, started, text);
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
    let h = handshake.await.map_err(fail)?;
    match h.error_code {
        code::NONE => Ok((
            at.line(Step::Sasl, true, started, "AWS_MSK_IAM offered".into()),
            (),
        )),
        code::UNSUPPORTED_SASL_MECHANISM => {
            let offered = if h.mechanisms.is_empty() {
                "none".to_string()
            } else {
                h.mechanisms.join(", ")
            };
            Err(fail(format!(
                "AWS_MSK_IAM is not offered (this listener offers {offered}): {NOT_IAM}"
            )))
        }
        code::ILLEGAL_SASL_STATE => Err(fail(format!(
            "AWS_MSK_IAM is not offered (this listener does not use SASL: a TLS-only or plaintext listener): {NOT_IAM}"
        ))),
        other => Err(fail(format!(
            "SaslHandshake answered {}",
            messages::error_name(other)
        ))),
    }
}

/// One SaslAuthenticate with the signed `AWS_MSK_IAM` payload.
async fn authenticate(
    at: &At,
    conn: &mut Conn,
    signer: &Signer,
) -> Result<Finding, (Finding, AuthFailure)> {
    let started = Instant::now();
    let host = &at.host;
    let fail =
        |text: String, why: AuthFailure| (at.line(Step::Authentication, false, started, text), why);
    let Some(region) = signer.region_for(host) else {
        return Err(fail(format!(
            "no region to sign for: {host} names none and neither msk.region nor the AWS default chain gives one"
        ), AuthFailure::Other));
    };
    let user_agent = format!("ksql-msk/{}", env!("CARGO_PKG_VERSION"));
    let credentials = &signer.credentials;
    let payload = sasl_iam::payload(host, region, credentials, SystemTime::now(), &user_agent)
        .map_err(|e| fail(e, AuthFailure::Other))?;
    let answer = async {
        let a = conn
            .request(
                messages::SASL_AUTHENTICATE,
                &messages::sasl_authenticate_request(&payload),
            )
            .await?;
        messages::sasl_authenticate_response(&a).map_err(|e| e.to_string())
    };
    let a = answer.await.map_err(|e| fail(e, AuthFailure::Other))?;
    match a.error_code {
        code::NONE => Ok(at.line(
            Step::Authentication,
            true,
            started,
            format!("signed for {region} and accepted"),
        )),
        code::SASL_AUTHENTICATION_FAILED => {
            let message = a.error_message.unwrap_or_default();
            let text = format!("the broker refused the signed payload: {message}");
            Err(fail(text, AuthFailure::Denied(message)))
        }
        other => Err(fail(
            format!(
                "SaslAuthenticate answered {}: {}",
                messages::error_name(other),
                a.error_message.unwrap_or_default()
            ),
            AuthFailure::Other,
        )),
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
