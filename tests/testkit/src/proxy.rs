//! A forward HTTP proxy on loopback, as `HTTP_PROXY` / `HTTPS_PROXY` name it: an
//! absolute-form request (`GET http://host:port/path`) is forwarded, a `CONNECT
//! host:port` is tunnelled. Only to the destinations a test routes with
//! [`Proxy::route`]: anything else is answered 502 without a connection, so nothing
//! leaves loopback, and a destination only the proxy knows (a closed loopback port)
//! shows that a client really went through it. Every request is recorded.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use crate::http::{response, AcceptLoop, Response};

/// A request as the proxy received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// The request target as sent: an absolute URI, or `host:port` for CONNECT.
    pub target: String,
    /// The `Proxy-Authorization` header, if any.
    pub authorization: Option<String>,
}

type Routes = Arc<Mutex<HashMap<String, SocketAddr>>>;

pub struct Proxy {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    routes: Routes,
    _accept: AcceptLoop,
}

impl Proxy {
    pub fn start() -> Proxy {
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let routes: Routes = Arc::default();
        let (s, r) = (seen.clone(), routes.clone());
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let accept = AcceptLoop::start(loopback, move |stream| {
            let (seen, routes) = (s.clone(), r.clone());
            async move {
                let service = service_fn(move |req| {
                    let (seen, routes) = (seen.clone(), routes.clone());
                    async move { Ok::<_, Infallible>(serve(req, &seen, &routes).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            }
        });
        Proxy {
            addr: accept.addr,
            seen,
            routes,
            _accept: accept,
        }
    }

    /// Send what is addressed to `authority` (`host:port`, the port always given) to
    /// `to`, whether as a forwarded request or a tunnel.
    pub fn route(&self, authority: &str, to: SocketAddr) -> &Self {
        self.routes
            .lock()
            .expect("routes")
            .insert(authority.to_ascii_lowercase(), to);
        self
    }

    /// The value for `HTTP_PROXY` / `HTTPS_PROXY`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request seen so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("seen").clone()
    }
}

fn bad_gateway(why: String) -> Response {
    response(502, &[("content-type", "text/plain")], why)
}

async fn serve(
    req: hyper::Request<Incoming>,
    seen: &Mutex<Vec<Seen>>,
    routes: &Mutex<HashMap<String, SocketAddr>>,
) -> Response {
    let connect = req.method() == hyper::Method::CONNECT;
    seen.lock().expect("seen").push(Seen {
        method: req.method().to_string(),
        target: req.uri().to_string(),
        authorization: req
            .headers()
            .get("proxy-authorization")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
    });
    let uri = req.uri();
    let default_port = if uri.scheme_str() == Some("https") {
        443
    } else {
        80
    };
    let Some(host) = uri.host() else {
        return bad_gateway(format!("not a proxy request: {uri}"));
    };
    let authority = format!("{host}:{}", uri.port_u16().unwrap_or(default_port));
    let Some(backend) = routes
        .lock()
        .expect("routes")
        .get(&authority.to_ascii_lowercase())
        .copied()
    else {
        return bad_gateway(format!("no route to {authority}"));
    };
    if connect {
        tokio::spawn(async move {
            let Ok(upgraded) = hyper::upgrade::on(req).await else {
                return;
            };
            let Ok(mut tcp) = tokio::net::TcpStream::connect(backend).await else {
                return;
            };
            let mut client = TokioIo::new(upgraded);
            let _ = tokio::io::copy_bidirectional(&mut client, &mut tcp).await;
        });
        return hyper::Response::new(
            Empty::new()
                .map_err(|never: Infallible| match never {})
                .boxed(),
        );
    }
    let tcp = match tokio::net::TcpStream::connect(backend).await {
        Ok(tcp) => tcp,
        Err(e) => return bad_gateway(format!("{authority} ({backend}): {e}")),
    };
    let (mut sender, conn) = match hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await {
        Ok(pair) => pair,
        Err(e) => return bad_gateway(format!("{authority}: {e}")),
    };
    tokio::spawn(conn);
    let (mut parts, body) = req.into_parts();
    // On to the origin in origin form, without the hop-by-hop proxy headers.
    let origin = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    parts.uri = match origin.parse() {
        Ok(uri) => uri,
        Err(e) => return bad_gateway(format!("{origin}: {e}")),
    };
    parts.headers.remove("proxy-authorization");
    parts.headers.remove("proxy-connection");
    match sender
        .send_request(hyper::Request::from_parts(parts, body))
        .await
    {
        Ok(resp) => resp.map(|b| b.map_err(std::io::Error::other).boxed()),
        Err(e) => bad_gateway(format!("{authority}: {e}")),
    }
}
