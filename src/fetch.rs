//! Downloads into `<state_dir>/cache/`: retries with capped exponential backoff under an
//! overall deadline, a stall timeout, and HTTP Range resume of partial files.
//!
//! Transport security is not what makes the artifacts trustworthy (the signature and
//! the pinned hashes are), so a partial file is never fsynced while it grows: a torn
//! tail after a crash is caught by verification, and a failed verification deletes the
//! cached file. Completed files are fsynced and renamed into place.
//!
//! The archive is consumed while it downloads: `fetch_growing` publishes how far the
//! cache file has been written in a [`Growth`], and a [`Follower`] reads the file up to
//! there, so verify + unpack run on the bytes as they arrive instead of after the whole
//! download (one pass; the second read hits the page cache). Retries and Range resumes
//! only append to the file, which a follower does not notice; a restart from byte 0 does
//! change what it has already read, so the follower then fails with [`Restarted`] and the
//! caller unpacks again from the completed file.

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use reqwest::header::{self, HeaderMap};
use reqwest::StatusCode;
use sha2::{Digest, Sha256};

use crate::config::Settings;
use crate::exit::{fail, ExitCode};
use crate::fsutil;
use crate::progress::Progress;

/// Least progress per `agent.stall_timeout` that is not a stall.
const STALL_MIN_BYTES: u64 = 16 << 10;
/// Log a progress line at most this often per download.
const LOG_EVERY: Duration = Duration::from_secs(5);
/// Report to the `Progress` sink at most this often per download.
const REPORT_EVERY: Duration = Duration::from_millis(500);
const BACKOFF_FIRST: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(15);
/// Buffered writes to the page cache: big enough that syscalls do not show.
const WRITE_BUF: usize = 1 << 20;

/// A completed download.
#[derive(Debug, Clone)]
pub struct Download {
    pub url: String,
    pub path: PathBuf,
    pub size: u64,
}

/// Where a URL's download lives in the cache: a short hash of the URL keeps two
/// versions (or two hosts) with the same file name apart.
fn cache_path(cache_dir: &Path, url: &str) -> PathBuf {
    let digest = hex::encode(&Sha256::digest(url.as_bytes())[..6]);
    let base = url
        .split(['?', '#'])
        .next()
        .unwrap_or(url)
        .rsplit('/')
        .find(|s| !s.is_empty() && !s.bytes().all(|b| b == b'.'))
        .unwrap_or("download");
    let base: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_+".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    cache_dir.join(format!("{digest}-{base}"))
}

fn part_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".part");
    PathBuf::from(p)
}

fn meta_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".part.meta");
    PathBuf::from(p)
}

/// What the server said about the partial file's content: sent back as `If-Range`, so a
/// changed file is sent whole (200) instead of a mismatched tail.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Validator {
    url: String,
    etag: Option<String>,
    last_modified: Option<String>,
}

impl Validator {
    fn from_headers(url: &str, headers: &HeaderMap) -> Validator {
        let get = |name: header::HeaderName| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        Validator {
            url: url.to_string(),
            // A weak ETag may not be used in If-Range (RFC 9110 13.1.5).
            etag: get(header::ETAG).filter(|e| !e.starts_with("W/")),
            last_modified: get(header::LAST_MODIFIED),
        }
    }

    fn if_range(&self) -> Option<&str> {
        self.etag.as_deref().or(self.last_modified.as_deref())
    }

    fn render(&self) -> String {
        let mut s = format!("url {}\n", self.url);
        if let Some(e) = &self.etag {
            s.push_str(&format!("etag {e}\n"));
        }
        if let Some(l) = &self.last_modified {
            s.push_str(&format!("last-modified {l}\n"));
        }
        s
    }

    fn parse(text: &str) -> Validator {
        let mut v = Validator::default();
        for line in text.lines() {
            match line.split_once(' ') {
                Some(("url", u)) => v.url = u.to_string(),
                Some(("etag", e)) => v.etag = Some(e.to_string()),
                Some(("last-modified", l)) => v.last_modified = Some(l.to_string()),
                _ => {}
            }
        }
        v
    }
}

/// How one attempt ended, when it did not complete.
enum AttemptError {
    /// Worth another attempt (network trouble, 408/429/5xx, short body, stall).
    Retry(anyhow::Error),
    /// Will not get better (404, 403, local I/O).
    Fatal(anyhow::Error),
}

/// How far a download has been written into its cache file, shared between the
/// downloader (async) and one [`Follower`] (a blocking thread).
#[derive(Clone, Default)]
pub struct Growth(Arc<(Mutex<GrowthState>, Condvar)>);

#[derive(Default)]
struct GrowthState {
    /// The file the bytes are in: the `.part` file while downloading, the cache file
    /// once complete. `None` between a restart and the new file's creation.
    file: Option<PathBuf>,
    /// Bumped whenever the download starts over from byte 0.
    generation: u32,
    /// Bytes of `file` that are written (not merely buffered).
    written: u64,
    /// The whole size, once the server said it.
    total: Option<u64>,
    /// Set when the download completed (`Ok`) or was given up (`Err`, one line).
    end: Option<std::result::Result<(), String>>,
    /// The generation the follower opened, once it did.
    followed: Option<u32>,
}

impl Growth {
    fn state(&self) -> MutexGuard<'_, GrowthState> {
        // A poisoned lock only means a panic elsewhere: the counters stay usable.
        self.0 .0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn update(&self, f: impl FnOnce(&mut GrowthState)) {
        f(&mut self.state());
        self.0 .1.notify_all();
    }

    /// The download starts over from byte 0: what a follower read is void. Called
    /// before the old `.part` file is removed.
    fn restart(&self) {
        self.update(|s| {
            s.generation += 1;
            s.file = None;
            s.written = 0;
        });
    }

    fn opened(&self, part: &Path, written: u64, total: Option<u64>) {
        self.update(|s| {
            s.file = Some(part.to_path_buf());
            s.written = written;
            s.total = total;
        });
    }

    fn written(&self, written: u64) {
        let mut s = self.state();
        if s.written != written {
            s.written = written;
            drop(s);
            self.0 .1.notify_all();
        }
    }

    fn finish(&self, path: &Path, size: u64) {
        self.update(|s| {
            s.file = Some(path.to_path_buf());
            s.written = size;
            s.total = Some(size);
            s.end = Some(Ok(()));
        });
    }

    fn fail(&self, why: String) {
        self.update(|s| {
            if s.end.is_none() {
                s.end = Some(Err(why));
            }
        });
    }

    /// Block until the server announced the size (or the download ended); `None` when
    /// it never says.
    pub fn wait_total(&self) -> Option<u64> {
        let mut s = self.state();
        while s.total.is_none() && s.end.is_none() {
            s = self.0 .1.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        s.total
    }

    /// Did the download start over from byte 0 after the follower began reading? Then
    /// what it read is void, and the complete file must be read again.
    pub fn restarted_under_follower(&self) -> bool {
        let s = self.state();
        s.followed.is_some_and(|g| g != s.generation)
    }

    /// A reader of the download's bytes as they are written.
    pub fn follower(&self) -> Follower {
        Follower {
            growth: self.clone(),
            file: None,
            generation: 0,
            pos: 0,
        }
    }
}

/// Fails the [`Growth`] if the download future is dropped before it ended, so that a
/// follower never waits for bytes that will not come.
struct GrowthGuard<'a>(&'a Growth);

impl Drop for GrowthGuard<'_> {
    fn drop(&mut self) {
        self.0.fail("the download was abandoned".into());
    }
}

/// The error a [`Follower`] returns when the download started over from byte 0 after it
/// had begun reading: its bytes so far may not be the file's.
#[derive(Debug, thiserror::Error)]
#[error("the download started over while it was being unpacked")]
pub struct Restarted;

/// Reads a download while it grows: blocks at the written end until more is written,
/// returns end of file once the download completed, and an error when it was given up
/// (the download's own error is the one to report) or started over ([`Restarted`]).
pub struct Follower {
    growth: Growth,
    file: Option<File>,
    generation: u32,
    pos: u64,
}

impl Read for Follower {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let cv = &self.growth.0 .1;
        let mut s = self.growth.state();
        loop {
            if self.file.is_some() && s.generation != self.generation {
                return Err(std::io::Error::other(Restarted));
            }
            if let Some(Err(why)) = &s.end {
                return Err(std::io::Error::other(format!("download failed: {why}")));
            }
            if self.file.is_none() {
                if let Some(path) = &s.file {
                    // Opened under the lock: the downloader bumps the generation (which
                    // takes the lock) before it removes or replaces this file.
                    match File::open(path) {
                        Ok(f) => {
                            self.file = Some(f);
                            self.generation = s.generation;
                            s.followed = Some(s.generation);
                            continue;
                        }
                        // Renamed to its final name just now: the next state names it.
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            if let Some(f) = &self.file {
                let avail = s.written.saturating_sub(self.pos);
                if avail > 0 {
                    drop(s);
                    let want = buf.len().min(usize::try_from(avail).unwrap_or(usize::MAX));
                    let n = f.read_at(&mut buf[..want], self.pos)?;
                    if n == 0 {
                        // Shorter than published: it was replaced under us.
                        return Err(std::io::Error::other(Restarted));
                    }
                    self.pos += n as u64;
                    return Ok(n);
                }
                if matches!(s.end, Some(Ok(()))) {
                    return Ok(0);
                }
            }
            s = cv
                .wait_timeout(s, Duration::from_millis(100))
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }
}

/// Downloads with the agent's settings (timeouts, proxies, extra CA).
pub struct Fetcher {
    client: reqwest::Client,
    cache_dir: PathBuf,
    download_timeout: Duration,
    stall_timeout: Duration,
}

impl Fetcher {
    pub fn new(settings: &Settings) -> Result<Fetcher> {
        // Proxies: reqwest reads HTTPS_PROXY/HTTP_PROXY/ALL_PROXY/NO_PROXY (either case)
        // unless `.no_proxy()` is called, which it is not.
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("ksql-msk/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(settings.agent.stall_timeout.min(Duration::from_secs(30)))
            .tcp_keepalive(Duration::from_secs(30))
            .redirect(redirect_policy());
        if let Some(ca) = &settings.agent.extra_ca {
            let pem = fs::read(ca).map_err(|e| {
                fail(
                    ExitCode::Config,
                    format!("agent.extra_ca: cannot read {}: {e}", ca.display()),
                )
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                fail(
                    ExitCode::Config,
                    format!("agent.extra_ca: {} is not a PEM bundle: {e}", ca.display()),
                )
            })?;
            if certs.is_empty() {
                return Err(fail(
                    ExitCode::Config,
                    format!("agent.extra_ca: {} holds no certificate", ca.display()),
                ));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder.build().context("setting up the HTTP client")?;
        Ok(Fetcher {
            client,
            cache_dir: settings.cache_dir(),
            download_timeout: settings.agent.download_timeout,
            stall_timeout: settings.agent.stall_timeout,
        })
    }

    /// Forget these URLs' downloads: the completed file, a partial one and its sidecar
    /// (once installed, or after what came in failed verification).
    pub fn forget<S: AsRef<str>>(&self, urls: &[S]) {
        for url in urls {
            discard(&cache_path(&self.cache_dir, url.as_ref()));
        }
    }

    /// Download `url` into the cache (or reuse a completed download there). `name` is
    /// what progress lines call it.
    pub async fn fetch(&self, url: &str, name: &str, progress: &dyn Progress) -> Result<Download> {
        self.fetch_inner(url, name, progress, None).await
    }

    /// [`Fetcher::fetch`], publishing its progress through the cache file in `growth`
    /// so that a [`Follower`] can consume the bytes while they arrive.
    pub async fn fetch_growing(
        &self,
        url: &str,
        name: &str,
        progress: &dyn Progress,
        growth: &Growth,
    ) -> Result<Download> {
        let guard = GrowthGuard(growth);
        let result = self.fetch_inner(url, name, progress, Some(growth)).await;
        match &result {
            Ok(d) => growth.finish(&d.path, d.size),
            Err(e) => growth.fail(crate::exit::one_line(e)),
        }
        drop(guard);
        result
    }

    async fn fetch_inner(
        &self,
        url: &str,
        name: &str,
        progress: &dyn Progress,
        growth: Option<&Growth>,
    ) -> Result<Download> {
        fs::create_dir_all(&self.cache_dir)
            .with_context(|| format!("creating {}", self.cache_dir.display()))?;
        let path = cache_path(&self.cache_dir, url);
        if let Ok(meta) = fs::metadata(&path) {
            tracing::info!(
                "{name}: using {} already downloaded from {url}",
                path.display()
            );
            return Ok(Download {
                url: url.to_string(),
                path,
                size: meta.len(),
            });
        }
        let deadline = Instant::now() + self.download_timeout;
        let mut failures = 0u32;
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let before = fs::metadata(part_path(&path)).map(|m| m.len()).unwrap_or(0);
            let outcome = tokio::time::timeout_at(
                deadline.into(),
                self.attempt(url, name, &path, progress, growth),
            )
            .await;
            let err = match outcome {
                Ok(Ok(size)) => {
                    return Ok(Download {
                        url: url.to_string(),
                        path,
                        size,
                    })
                }
                Ok(Err(AttemptError::Fatal(e))) => return Err(e),
                Ok(Err(AttemptError::Retry(e))) => e,
                Err(_) => anyhow::anyhow!("download still incomplete at the deadline"),
            };
            let after = fs::metadata(part_path(&path)).map(|m| m.len()).unwrap_or(0);
            // An attempt that moved bytes resets the backoff: a flaky but working
            // connection keeps going until the deadline.
            failures = if after > before { 1 } else { failures + 1 };
            let backoff = BACKOFF_FIRST
                .saturating_mul(1u32 << failures.min(10).saturating_sub(1))
                .min(BACKOFF_MAX);
            let now = Instant::now();
            if now + backoff >= deadline {
                return Err(fail(
                    ExitCode::Temporary,
                    format!(
                        "giving up on {url} after {attempts} attempts within {} (agent.download_timeout): {}",
                        humantime::format_duration(self.download_timeout),
                        crate::exit::one_line(&err)
                    ),
                ));
            }
            tracing::warn!(
                "{name}: {}; retrying in {:.1}s ({url})",
                crate::exit::one_line(&err),
                backoff.as_secs_f64()
            );
            tokio::time::sleep(backoff).await;
        }
    }

    /// One request: resume the partial file if there is one. Returns the final size.
    async fn attempt(
        &self,
        url: &str,
        name: &str,
        path: &Path,
        progress: &dyn Progress,
        growth: Option<&Growth>,
    ) -> std::result::Result<u64, AttemptError> {
        let part = part_path(path);
        let meta = meta_path(path);
        let fatal = |e: anyhow::Error| AttemptError::Fatal(e);
        let have = fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
        let validator = fs::read_to_string(&meta)
            .ok()
            .map(|t| Validator::parse(&t))
            .filter(|v| v.url == url && v.if_range().is_some());
        let mut request = self.client.get(url);
        let resume_from = match (&validator, have) {
            (Some(v), n) if n > 0 => {
                request = request
                    .header(header::RANGE, format!("bytes={n}-"))
                    .header(header::IF_RANGE, v.if_range().unwrap_or_default());
                n
            }
            _ => 0,
        };
        // A server that accepts the connection but never answers is a stall too.
        let mut response = match tokio::time::timeout(self.stall_timeout, request.send()).await {
            Ok(r) => r.map_err(|e| classify(url, e))?,
            Err(_) => {
                return Err(AttemptError::Retry(anyhow::anyhow!(
                    "no response for {} (agent.stall_timeout)",
                    humantime::format_duration(self.stall_timeout)
                )))
            }
        };
        let status = response.status();
        let mut offset = match status {
            StatusCode::PARTIAL_CONTENT if resume_from > 0 => {
                match content_range_start(response.headers()) {
                    Some(start) if start == resume_from => {
                        tracing::info!("{name}: resuming at byte {resume_from} ({url})");
                        resume_from
                    }
                    other => {
                        let _ = fs::remove_file(&part);
                        return Err(AttemptError::Retry(anyhow::anyhow!(
                            "asked for bytes from {resume_from}, server sent a range starting at {other:?}; starting over"
                        )));
                    }
                }
            }
            StatusCode::OK | StatusCode::PARTIAL_CONTENT => {
                if resume_from > 0 {
                    tracing::info!(
                        "{name}: the server sent the whole file (it ignored the range or the file changed); starting over ({url})"
                    );
                }
                0
            }
            StatusCode::RANGE_NOT_SATISFIABLE => {
                let _ = fs::remove_file(&part);
                return Err(AttemptError::Retry(anyhow::anyhow!(
                    "the server refused to resume at byte {resume_from} (HTTP 416); starting over"
                )));
            }
            s if s == StatusCode::REQUEST_TIMEOUT
                || s == StatusCode::TOO_MANY_REQUESTS
                || s.is_server_error() =>
            {
                return Err(AttemptError::Retry(anyhow::anyhow!("HTTP {s} from {url}")));
            }
            s if s == StatusCode::NOT_FOUND || s == StatusCode::GONE => {
                return Err(fatal(fail(
                    ExitCode::Unavailable,
                    format!(
                        "{url} not found (HTTP {}): check the version and URL in the config",
                        s.as_u16()
                    ),
                )));
            }
            s => {
                return Err(fatal(fail(
                    ExitCode::Unavailable,
                    format!("{url}: HTTP {s}"),
                )));
            }
        };
        let total = match status {
            StatusCode::PARTIAL_CONTENT => content_range_total(response.headers()),
            _ => response.content_length(),
        };
        if let Some(total) = total {
            check_space(&self.cache_dir, total.saturating_sub(offset)).map_err(fatal)?;
        }
        let validator = Validator::from_headers(url, response.headers());
        let mut file = if offset == 0 {
            // A follower must learn that the file starts over before it goes away.
            if let Some(g) = growth {
                g.restart();
            }
            // Sidecar first, so that a crash mid-body leaves a resumable pair.
            let _ = fs::remove_file(&part);
            if validator.if_range().is_some() {
                fsutil::write_atomic(&meta, validator.render().as_bytes(), 0o644).map_err(fatal)?;
            } else {
                let _ = fs::remove_file(&meta);
            }
            File::create(&part)
        } else {
            OpenOptions::new().append(true).open(&part)
        }
        .with_context(|| format!("opening {}", part.display()))
        .map_err(fatal)?;
        if let Some(g) = growth {
            g.opened(&part, offset, total);
        }
        let mut out = BufWriter::with_capacity(WRITE_BUF, &mut file);

        let started = Instant::now();
        let start_offset = offset;
        let mut last_log = started;
        let mut last_report = started - REPORT_EVERY;
        // A server that drips a few bytes now and then never goes silent, but it stalls
        // all the same: less than STALL_MIN_BYTES per stall_timeout counts as a stall.
        let mut window = (started, offset);
        if offset == 0 {
            match total {
                Some(t) => tracing::info!("{name}: downloading {url} ({})", mb(t)),
                None => tracing::info!("{name}: downloading {url}"),
            }
        }
        loop {
            let chunk = match tokio::time::timeout(self.stall_timeout, response.chunk()).await {
                Err(_) => {
                    let _ = out.flush();
                    return Err(AttemptError::Retry(anyhow::anyhow!(
                        "no data for {} at byte {offset} (agent.stall_timeout)",
                        humantime::format_duration(self.stall_timeout)
                    )));
                }
                Ok(Err(e)) => {
                    let _ = out.flush();
                    return Err(classify(url, e));
                }
                Ok(Ok(None)) => break,
                Ok(Ok(Some(chunk))) => chunk,
            };
            out.write_all(&chunk)
                .with_context(|| format!("writing {}", part.display()))
                .map_err(fatal)?;
            offset += chunk.len() as u64;
            if let Some(g) = growth {
                // What is in the file, not in the buffer, is what a follower may read.
                g.written(offset - out.buffer().len() as u64);
            }
            let now = Instant::now();
            if now.duration_since(window.0) >= self.stall_timeout {
                let moved = offset - window.1;
                if moved < STALL_MIN_BYTES {
                    let _ = out.flush();
                    return Err(AttemptError::Retry(anyhow::anyhow!(
                        "only {moved} bytes in {} at byte {offset}, less than {} KiB (agent.stall_timeout)",
                        humantime::format_duration(self.stall_timeout),
                        STALL_MIN_BYTES >> 10
                    )));
                }
                window = (now, offset);
            }
            if total.is_some_and(|t| offset > t) {
                drop(out);
                let _ = fs::remove_file(&part);
                return Err(AttemptError::Retry(anyhow::anyhow!(
                    "the server sent more bytes than announced; starting over"
                )));
            }
            if now.duration_since(last_report) >= REPORT_EVERY {
                last_report = now;
                let rate = rate(offset - start_offset, now.duration_since(started));
                progress.transfer(name, offset, total, rate);
                if now.duration_since(last_log) >= LOG_EVERY {
                    last_log = now;
                    log_progress(name, offset, total, rate);
                }
            }
        }
        out.flush()
            .with_context(|| format!("writing {}", part.display()))
            .map_err(fatal)?;
        drop(out);
        if let Some(g) = growth {
            g.written(offset);
        }
        if let Some(t) = total {
            if offset < t {
                return Err(AttemptError::Retry(anyhow::anyhow!(
                    "connection closed at byte {offset} of {t}"
                )));
            }
        }
        file.sync_all()
            .with_context(|| format!("syncing {}", part.display()))
            .map_err(fatal)?;
        drop(file);
        fs::rename(&part, path)
            .with_context(|| format!("renaming {} to {}", part.display(), path.display()))
            .map_err(fatal)?;
        let _ = fs::remove_file(&meta);
        fsutil::sync_dir(&self.cache_dir).map_err(fatal)?;
        let elapsed = started.elapsed();
        let rate = rate(offset - start_offset, elapsed);
        progress.transfer(name, offset, Some(offset), rate);
        tracing::info!(
            "{name}: downloaded {} in {:.1}s ({:.1} MB/s)",
            mb(offset),
            elapsed.as_secs_f64(),
            rate / 1e6
        );
        Ok(offset)
    }
}

fn rate(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / elapsed.as_secs_f64().max(1e-3)
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

fn log_progress(name: &str, done: u64, total: Option<u64>, rate: f64) {
    match total {
        Some(t) if t > 0 => tracing::info!(
            "{name}: {:.0}% ({} of {}) at {:.1} MB/s",
            done as f64 * 100.0 / t as f64,
            mb(done),
            mb(t),
            rate / 1e6
        ),
        _ => tracing::info!("{name}: {} at {:.1} MB/s", mb(done), rate / 1e6),
    }
}

/// Most redirects one download follows.
const MAX_REDIRECTS: usize = 10;

/// A redirect chain that went from https to a plain-text URL.
#[derive(Debug, thiserror::Error)]
#[error("redirected from https to {0}")]
struct Downgrade(String);

#[derive(Debug, thiserror::Error)]
#[error("more than {MAX_REDIRECTS} redirects")]
struct TooManyRedirects;

/// Follow up to `MAX_REDIRECTS` redirects to any host, but never from https back to
/// http: a mirror may move, yet a TLS download should stay TLS. (The signature and the
/// jar pin protect the bytes either way; a key fetched in the clear is what this guards.)
fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let from_tls = attempt.previous().iter().any(|u| u.scheme() == "https");
        if from_tls && attempt.url().scheme() != "https" {
            let to = attempt.url().to_string();
            attempt.error(Downgrade(to))
        } else if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error(TooManyRedirects)
        } else {
            attempt.follow()
        }
    })
}

/// Sort a transport error: certificate problems do not fix themselves; everything else
/// on the wire (refused, reset, timed out, cut short) may.
fn classify(url: &str, e: reqwest::Error) -> AttemptError {
    if e.is_redirect() {
        // `redirect_policy` refused: a downgrade, or a loop or too long a chain.
        let downgrade = std::iter::successors(std::error::Error::source(&e), |s| s.source())
            .find_map(|s| s.downcast_ref::<Downgrade>());
        if let Some(Downgrade(to)) = downgrade {
            return AttemptError::Fatal(fail(
                ExitCode::Unavailable,
                format!("{url}: redirected from https to {to}; refusing to leave TLS"),
            ));
        }
        // A loop stays a loop: retrying it only burns the download deadline.
        let at = e
            .url()
            .map(|u| format!(" (last at {u})"))
            .unwrap_or_default();
        return AttemptError::Fatal(fail(
            ExitCode::Unavailable,
            format!("{url}: redirect loop or more than {MAX_REDIRECTS} redirects{at}"),
        ));
    }
    let chain = crate::exit::one_line(&anyhow::Error::new(e));
    if chain.contains("certificate") {
        return AttemptError::Fatal(fail(
            ExitCode::Unavailable,
            format!(
                "{url}: TLS certificate not trusted ({chain}); set agent.extra_ca for a private CA"
            ),
        ));
    }
    AttemptError::Retry(anyhow::anyhow!("{chain}"))
}

/// `Content-Range: bytes 100-199/200` → 100.
fn content_range_start(headers: &HeaderMap) -> Option<u64> {
    let v = headers.get(header::CONTENT_RANGE)?.to_str().ok()?;
    let range = v.strip_prefix("bytes ")?.split('/').next()?;
    range.split('-').next()?.trim().parse().ok()
}

/// `Content-Range: bytes 100-199/200` → 200.
fn content_range_total(headers: &HeaderMap) -> Option<u64> {
    let v = headers.get(header::CONTENT_RANGE)?.to_str().ok()?;
    v.rsplit('/').next()?.trim().parse().ok()
}

/// Bytes free to an unprivileged writer in the file system holding `dir`.
pub fn free_space(dir: &Path) -> Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .with_context(|| format!("{} contains a NUL byte", dir.display()))?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a valid C string and `st` is a properly sized out-parameter.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("statvfs {}", dir.display()));
    }
    // SAFETY: statvfs returned 0, so it filled `st`.
    let st = unsafe { st.assume_init() };
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Fail with EX_IOERR before writing `need` bytes into `dir` when they do not fit.
pub fn check_space(dir: &Path, need: u64) -> Result<()> {
    let free = free_space(dir)?;
    if need > free {
        return Err(fail(
            ExitCode::Io,
            format!(
                "not enough disk space in {}: need {} MB, {} MB free",
                dir.display(),
                need.div_ceil(1_000_000),
                free / 1_000_000
            ),
        ));
    }
    Ok(())
}

/// Remove a cached download, its partial file and sidecar.
fn discard(path: &Path) {
    for p in [path.to_path_buf(), part_path(path), meta_path(path)] {
        match fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!("cannot remove {}: {e}", p.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_names_differ_per_url_and_keep_the_file_name() {
        let dir = Path::new("/c");
        let a = cache_path(dir, "https://h/a/confluent-ksqldb-0.29.0.tar.gz");
        let b = cache_path(dir, "https://h/b/confluent-ksqldb-0.29.0.tar.gz");
        assert_ne!(a, b);
        assert!(a
            .to_string_lossy()
            .ends_with("-confluent-ksqldb-0.29.0.tar.gz"));
        let q = cache_path(dir, "https://h/x/../?a=b");
        assert!(!q.to_string_lossy().contains(".."), "{}", q.display());
    }

    #[test]
    fn validator_round_trips_and_prefers_strong_etag() {
        let mut h = HeaderMap::new();
        h.insert(header::ETAG, "\"abc\"".parse().unwrap());
        h.insert(
            header::LAST_MODIFIED,
            "Tue, 01 Jul 2025 10:00:00 GMT".parse().unwrap(),
        );
        let v = Validator::from_headers("http://x/y", &h);
        assert_eq!(v.if_range(), Some("\"abc\""));
        assert_eq!(Validator::parse(&v.render()), v);
        h.insert(header::ETAG, "W/\"weak\"".parse().unwrap());
        let v = Validator::from_headers("http://x/y", &h);
        assert_eq!(v.if_range(), Some("Tue, 01 Jul 2025 10:00:00 GMT"));
    }

    #[test]
    fn space_check_names_dir_and_numbers() {
        let dir = tempfile::tempdir().unwrap();
        check_space(dir.path(), 1).unwrap();
        let err = check_space(dir.path(), u64::MAX / 2).unwrap_err();
        assert_eq!(crate::exit::exit_code_of(&err), ExitCode::Io);
        let msg = err.to_string();
        assert!(
            msg.contains(&dir.path().display().to_string()) && msg.contains("MB free"),
            "{msg}"
        );
    }

    #[test]
    fn follower_reads_while_growing_and_stops_on_restart_or_failure() {
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("a.part");
        let done = dir.path().join("a");

        // Grows in two steps, then completes under its final name.
        let g = Growth::default();
        fs::write(&part, b"hello ").unwrap();
        g.opened(&part, 6, Some(11));
        let reader = {
            let g = g.clone();
            std::thread::spawn(move || {
                let mut out = Vec::new();
                g.follower().read_to_end(&mut out).map(|_| out)
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        OpenOptions::new()
            .append(true)
            .open(&part)
            .unwrap()
            .write_all(b"world")
            .unwrap();
        g.written(11);
        fs::rename(&part, &done).unwrap();
        g.finish(&done, 11);
        assert_eq!(reader.join().unwrap().unwrap(), b"hello world");
        assert!(!g.restarted_under_follower());

        // Starts over after the follower read: its bytes are void.
        let g = Growth::default();
        fs::write(&part, b"old bytes").unwrap();
        g.opened(&part, 9, None);
        let mut f = g.follower();
        let mut buf = [0u8; 4];
        assert_eq!(f.read(&mut buf).unwrap(), 4);
        g.restart();
        let err = f.read(&mut buf).unwrap_err();
        assert!(err.get_ref().is_some_and(|e| e.is::<Restarted>()), "{err}");
        assert!(g.restarted_under_follower());

        // Given up: the follower does not wait forever.
        let g = Growth::default();
        g.opened(&part, 0, None);
        let mut f = g.follower();
        g.fail("HTTP 404".into());
        assert!(f
            .read(&mut buf)
            .unwrap_err()
            .to_string()
            .contains("HTTP 404"));
        // Abandoned (the download future dropped): likewise.
        let g = Growth::default();
        drop(GrowthGuard(&g));
        assert!(g.follower().read(&mut buf).is_err());
        assert_eq!(g.wait_total(), None);
    }

    #[test]
    fn content_range_parts() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_RANGE, "bytes 100-199/200".parse().unwrap());
        assert_eq!(content_range_start(&h), Some(100));
        assert_eq!(content_range_total(&h), Some(200));
    }
}
