//! A local artifact server (S3/GitHub releases stand-in) on [`crate::http::Server`]:
//! GET with Range/206/Content-Range, ETag and If-Range, and scripted faults.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;

use crate::http::{self, Request, Response, Server};

/// Something to do instead of (or while) serving a file, for one request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status and a short body.
    Status(u16),
    /// Send this many bytes of the body, then drop the connection.
    ResetAfter(usize),
    /// Send this many bytes, then send nothing for this long.
    StallAfter(usize, Duration),
    /// Announce `extra` more bytes in Content-Length than are sent, then close.
    ShortBody(u64),
    /// Answer 200 with the whole file even when a Range was asked for.
    IgnoreRange,
    /// Wait this long before answering at all (no status line, no headers).
    Hang(Duration),
    /// Send the body in chunks of this size with this pause between them.
    Drip(usize, Duration),
    /// Answer 302 with this Location.
    Redirect(String),
}

struct File {
    body: Bytes,
    etag: String,
}

#[derive(Default)]
struct State {
    files: HashMap<String, File>,
    once: HashMap<String, VecDeque<Fault>>,
    always: HashMap<String, Fault>,
}

pub struct ArtifactServer {
    pub server: Server,
    state: Arc<Mutex<State>>,
}

impl Default for ArtifactServer {
    fn default() -> Self {
        Self::start()
    }
}

impl ArtifactServer {
    pub fn start() -> ArtifactServer {
        Self::start_on("127.0.0.1:0".parse().expect("addr"))
    }

    /// Start on a given address (port 0: any free port), e.g. a network namespace's.
    pub fn start_on(addr: std::net::SocketAddr) -> ArtifactServer {
        let state = Arc::new(Mutex::new(State::default()));
        let s = state.clone();
        let handler: http::Handler = Arc::new(move |req: Request| {
            let s = s.clone();
            Box::pin(async move {
                let hang = {
                    let mut st = s.lock().expect("state");
                    let path = req.path().to_string();
                    match st.once.get(&path).and_then(|q| q.front()) {
                        Some(Fault::Hang(d)) => {
                            let d = *d;
                            st.once.get_mut(&path).and_then(|q| q.pop_front());
                            Some(d)
                        }
                        _ => None,
                    }
                };
                if let Some(d) = hang {
                    tokio::time::sleep(d).await;
                }
                serve(&s, req)
            })
        });
        ArtifactServer {
            server: Server::start_on(addr, handler),
            state,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url())
    }

    /// Serve `body` at `path` (e.g. "/archive/0.29/confluent-ksqldb-0.29.0.tar.gz").
    /// The ETag changes with the content.
    pub fn put(&self, path: &str, body: impl Into<Bytes>) -> String {
        use sha2::Digest;
        let body = body.into();
        let etag = format!("\"{}\"", hex::encode(&sha2::Sha256::digest(&body)[..8]));
        self.state
            .lock()
            .expect("state")
            .files
            .insert(path.to_string(), File { body, etag });
        self.url(path)
    }

    pub fn remove(&self, path: &str) {
        self.state.lock().expect("state").files.remove(path);
    }

    /// Apply `fault` to the next request for `path` (queued: one per request).
    pub fn fault_next(&self, path: &str, fault: Fault) {
        self.state
            .lock()
            .expect("state")
            .once
            .entry(path.to_string())
            .or_default()
            .push_back(fault);
    }

    /// Apply `fault` to every request for `path` (after queued ones).
    pub fn fault_always(&self, path: &str, fault: Fault) {
        self.state
            .lock()
            .expect("state")
            .always
            .insert(path.to_string(), fault);
    }

    pub fn clear_faults(&self) {
        let mut s = self.state.lock().expect("state");
        s.once.clear();
        s.always.clear();
    }

    /// Requests seen for `path`, in order.
    pub fn requests_for(&self, path: &str) -> Vec<Request> {
        self.server
            .requests()
            .into_iter()
            .filter(|r| r.path() == path)
            .collect()
    }
}

fn serve(state: &Mutex<State>, req: Request) -> Response {
    let path = req.path().to_string();
    let (file, fault) = {
        let mut s = state.lock().expect("state");
        let fault = s
            .once
            .get_mut(&path)
            .and_then(|q| q.pop_front())
            .or_else(|| s.always.get(&path).cloned());
        let file = s.files.get(&path).map(|f| (f.body.clone(), f.etag.clone()));
        (file, fault)
    };
    if let Some(Fault::Status(code)) = fault {
        return http::response(code, &[], format!("injected HTTP {code}\n"));
    }
    if let Some(Fault::Redirect(location)) = &fault {
        return http::response(302, &[("location", location)], "");
    }
    let Some((body, etag)) = file else {
        return http::response(404, &[], "<Error><Code>NoSuchKey</Code></Error>");
    };
    if req.method != "GET" && req.method != "HEAD" {
        return http::response(405, &[], "");
    }
    let len = body.len() as u64;
    let mut start = 0u64;
    let mut partial = false;
    let range = req
        .header("range")
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'));
    let if_range_ok = req.header("if-range").is_none_or(|v| v == etag);
    if let (Some(r), true, false) = (
        range,
        if_range_ok,
        matches!(fault, Some(Fault::IgnoreRange)),
    ) {
        if let Ok(n) = r.parse::<u64>() {
            if n >= len {
                return http::response(416, &[("content-range", &format!("bytes */{len}"))], "");
            }
            start = n;
            partial = true;
        }
    }
    let slice = body.slice(start as usize..);
    let mut headers: Vec<(String, String)> = vec![
        ("etag".into(), etag),
        ("accept-ranges".into(), "bytes".into()),
        (
            "last-modified".into(),
            "Tue, 01 Jul 2025 10:00:00 GMT".into(),
        ),
        ("content-type".into(), "application/octet-stream".into()),
    ];
    let declared = match &fault {
        Some(Fault::ShortBody(extra)) => slice.len() as u64 + extra,
        _ => slice.len() as u64,
    };
    headers.push(("content-length".into(), declared.to_string()));
    if partial {
        headers.push((
            "content-range".into(),
            format!("bytes {start}-{}/{len}", len - 1),
        ));
    }
    let mut builder = hyper::Response::builder().status(if partial { 206 } else { 200 });
    for (k, v) in &headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    let body = match fault {
        None
        | Some(Fault::IgnoreRange)
        | Some(Fault::ShortBody(_))
        | Some(Fault::Status(_))
        | Some(Fault::Redirect(_))
        | Some(Fault::Hang(_)) => chunks(slice, 64 << 10, Duration::ZERO, None),
        Some(Fault::ResetAfter(n)) => chunks(
            slice.slice(..n.min(slice.len())),
            64 << 10,
            Duration::ZERO,
            Some(Tail::Reset),
        ),
        Some(Fault::StallAfter(n, d)) => chunks(
            slice.slice(..n.min(slice.len())),
            64 << 10,
            Duration::ZERO,
            Some(Tail::Stall(d)),
        ),
        Some(Fault::Drip(size, d)) => chunks(slice, size.max(1), d, None),
    };
    builder.body(body).expect("response")
}

enum Tail {
    Reset,
    Stall(Duration),
}

/// A body sent in chunks with pauses, optionally ending in a reset or a stall.
fn chunks(data: Bytes, size: usize, pause: Duration, tail: Option<Tail>) -> http::Body {
    let stream = futures_util::stream::unfold(
        (data, 0usize, tail, true),
        move |(data, pos, tail, first)| async move {
            if pos < data.len() {
                if !first && !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
                let end = (pos + size).min(data.len());
                let chunk = data.slice(pos..end);
                return Some((Ok(Frame::data(chunk)), (data, end, tail, false)));
            }
            match tail {
                None => None,
                Some(Tail::Reset) => Some((
                    Err(std::io::Error::other("injected reset")),
                    (data, pos, None, false),
                )),
                Some(Tail::Stall(d)) => {
                    tokio::time::sleep(d).await;
                    Some((
                        Err(std::io::Error::other("injected stall ended")),
                        (data, pos, None, false),
                    ))
                }
            }
        },
    );
    StreamBody::new(stream).boxed()
}
