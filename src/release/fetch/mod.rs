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

mod cache;
mod growth;
mod policy;

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use reqwest::header;
use reqwest::StatusCode;

use crate::config::{ConfigUrl, Settings};
use crate::exit::{fail, ExitCode};
use crate::host;
use crate::progress::Progress;

use cache::{cache_path, discard, meta_path, part_path, Validator};
pub use growth::Growth;
use growth::GrowthGuard;
use policy::{classify, content_range_total, redirect_policy, AttemptError, Start};

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

/// Bytes received from the network by this process, every download and attempt
/// together (what `ksql_msk_download_bytes_total` reports).
static DOWNLOADED: AtomicU64 = AtomicU64::new(0);

/// [`DOWNLOADED`]: bytes this process has downloaded so far.
pub fn downloaded_bytes() -> u64 {
    DOWNLOADED.load(Ordering::Relaxed)
}

/// A completed download.
#[derive(Debug, Clone)]
pub struct Download {
    pub path: PathBuf,
    pub size: u64,
}

/// Downloads with the agent's settings (timeouts, proxies, extra CA).
pub struct Fetcher {
    client: reqwest::Client,
    cache_dir: PathBuf,
    download_timeout: Duration,
    stall_timeout: Duration,
    /// Some download of this fetcher's came, whole or in part, from an earlier run's
    /// cache (which a power cut can tear): see [`Fetcher::used_cache`].
    used_cache: AtomicBool,
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
            used_cache: AtomicBool::new(false),
        })
    }

    /// The HTTP client downloads use (proxies, extra CA, redirect policy): `check`
    /// probes the artifact hosts through it.
    pub(crate) fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Whether any download since the last [`Fetcher::start_over`] reused a completed file or
    /// resumed a partial one from the cache. A verification failure of such bytes may be
    /// the cache's fault, not the mirror's: worth fetching everything whole once more.
    pub fn used_cache(&self) -> bool {
        self.used_cache.load(Ordering::Relaxed)
    }

    /// Forget these URLs' downloads: the completed file, a partial one and its sidecar
    /// (once installed, or after what came in failed verification).
    pub fn forget(&self, urls: &[ConfigUrl]) {
        for url in urls {
            discard(&cache_path(&self.cache_dir, &url.redacted()));
        }
    }

    /// [`Fetcher::forget`] these downloads, and that the cache was used: what is fetched
    /// next comes whole from the network.
    pub fn start_over(&self, urls: &[ConfigUrl]) {
        self.forget(urls);
        self.used_cache.store(false, Ordering::Relaxed);
    }

    /// Download `url` into the cache (or reuse a completed download there). `name` is
    /// what progress lines call it.
    pub async fn fetch(
        &self,
        url: &ConfigUrl,
        name: &str,
        progress: &dyn Progress,
    ) -> Result<Download> {
        self.fetch_inner(url, name, progress, None).await
    }

    /// [`Fetcher::fetch`], publishing its progress through the cache file in `growth`
    /// so that a [`Follower`] can consume the bytes while they arrive.
    pub async fn fetch_growing(
        &self,
        url: &ConfigUrl,
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
        url: &ConfigUrl,
        name: &str,
        progress: &dyn Progress,
        growth: Option<&Growth>,
    ) -> Result<Download> {
        // A real directory: a symlink planted as `cache` would send downloads elsewhere.
        host::ensure_dir(&self.cache_dir, 0o755)?;
        // Named by the redacted URL: no trace of a password in the cache.
        let path = cache_path(&self.cache_dir, &url.redacted());
        match fs::symlink_metadata(&path) {
            Ok(meta) if !meta.is_file() => {
                tracing::warn!(
                    "{}: not a regular file (planted?): removed, downloading afresh",
                    path.display()
                );
                let _ = fs::remove_file(&path);
            }
            _ => {}
        }
        if let Some(meta) = fs::symlink_metadata(&path).ok().filter(|m| m.is_file()) {
            tracing::info!(
                "{name}: using {} already downloaded from {url}",
                path.display()
            );
            self.used_cache.store(true, Ordering::Relaxed);
            return Ok(Download {
                path,
                size: meta.len(),
            });
        }
        let deadline = Instant::now() + self.download_timeout;
        let mut failures = 0u32;
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let before = file_len(&part_path(&path));
            let outcome = tokio::time::timeout_at(
                deadline.into(),
                self.attempt(url, name, &path, progress, growth),
            )
            .await;
            let err = match outcome {
                Ok(Ok(size)) => return Ok(Download { path, size }),
                Ok(Err(AttemptError::Fatal(e))) => return Err(e),
                Ok(Err(AttemptError::Retry(e))) => e,
                Err(_) => anyhow::anyhow!("download still incomplete at the deadline"),
            };
            let after = file_len(&part_path(&path));
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
        url: &ConfigUrl,
        name: &str,
        path: &Path,
        progress: &dyn Progress,
        growth: Option<&Growth>,
    ) -> std::result::Result<u64, AttemptError> {
        let part = part_path(path);
        let meta = meta_path(path);
        let (response, resume_from) = self.send(url, &part, &meta).await?;
        let status = response.status();
        let offset = match policy::start_at(url, status, response.headers(), resume_from)? {
            Start::Resume => {
                tracing::info!("{name}: resuming at byte {resume_from} ({url})");
                self.used_cache.store(true, Ordering::Relaxed);
                resume_from
            }
            Start::Whole => {
                if resume_from > 0 {
                    tracing::info!(
                        "{name}: the server sent the whole file (it ignored the range or the file changed); starting over ({url})"
                    );
                }
                0
            }
            Start::Over(why) => {
                let _ = fs::remove_file(&part);
                return Err(AttemptError::Retry(why));
            }
        };
        let total = match status {
            StatusCode::PARTIAL_CONTENT => content_range_total(response.headers()),
            _ => response.content_length(),
        };
        if let Some(total) = total {
            host::check_space(&self.cache_dir, total.saturating_sub(offset))
                .map_err(AttemptError::Fatal)?;
        }
        let mut file = self.open_part(url, &part, &meta, offset, response.headers(), growth)?;
        if let Some(g) = growth {
            g.opened(&part, offset, total);
        }
        if offset == 0 {
            match total {
                Some(t) => tracing::info!("{name}: downloading {url} ({})", mb(t)),
                None => tracing::info!("{name}: downloading {url}"),
            }
        }
        let started = Instant::now();
        let body = Body {
            url,
            name,
            part: &part,
            total,
            progress,
            growth,
        };
        let end = self.stream(response, &mut file, offset, &body).await?;
        self.complete(file, &part, path, &meta)
            .map_err(AttemptError::Fatal)?;
        let elapsed = started.elapsed();
        let rate = rate(end - offset, elapsed);
        progress.transfer(name, end, Some(end), rate);
        tracing::info!(
            "{name}: downloaded {} in {:.1}s ({:.1} MB/s)",
            mb(end),
            elapsed.as_secs_f64(),
            rate / 1e6
        );
        Ok(end)
    }

    /// Send the request, asking for the rest of `part` when its sidecar says which
    /// version of the file it holds. Returns the response and the offset asked for.
    async fn send(
        &self,
        url: &ConfigUrl,
        part: &Path,
        meta: &Path,
    ) -> std::result::Result<(reqwest::Response, u64), AttemptError> {
        let have = file_len(part);
        let validator = host::read_state_text(meta, host::StateFile::CacheMeta)
            .ok()
            .flatten()
            .map(|t| Validator::parse(&t))
            .filter(|v| v.url == url.redacted() && v.if_range().is_some());
        let mut request = self.client.get(url.expose());
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
        match tokio::time::timeout(self.stall_timeout, request.send()).await {
            Ok(r) => Ok((r.map_err(|e| classify(url, e))?, resume_from)),
            Err(_) => Err(AttemptError::Retry(anyhow::anyhow!(
                "no response for {} (agent.stall_timeout)",
                humantime::format_duration(self.stall_timeout)
            ))),
        }
    }

    /// Open the partial file to write from `offset`: appended to when resuming, else
    /// created afresh after its sidecar (so that a crash mid-body leaves a resumable
    /// pair). Never through a link planted at the name (O_EXCL, O_NOFOLLOW).
    fn open_part(
        &self,
        url: &ConfigUrl,
        part: &Path,
        meta: &Path,
        offset: u64,
        headers: &header::HeaderMap,
        growth: Option<&Growth>,
    ) -> std::result::Result<File, AttemptError> {
        let fatal = AttemptError::Fatal;
        // Through the cache directory's handle: a link swapped in for `cache/` meanwhile
        // does not redirect the file either.
        let cache = host::Dir::open(&self.cache_dir).map_err(fatal)?;
        let name = part.file_name().unwrap_or_default();
        if offset > 0 {
            return cache.open_append(name).map_err(fatal);
        }
        // A follower must learn that the file starts over before it goes away.
        if let Some(g) = growth {
            g.restart();
        }
        let _ = fs::remove_file(part);
        // The sidecar keeps the redacted URL: a password never lands on disk.
        let validator = Validator::from_headers(&url.redacted(), headers);
        if validator.if_range().is_some() {
            host::write_atomic(meta, validator.render().as_bytes(), 0o644).map_err(fatal)?;
        } else {
            let _ = fs::remove_file(meta);
        }
        cache.create_new(name, 0o644).map_err(fatal)
    }

    /// Write the response body into `file` from `offset` on, reporting progress, until
    /// it ends; a stall, a slow drip or a body longer or shorter than announced is
    /// worth another attempt. Returns the offset reached (the file's size).
    async fn stream(
        &self,
        mut response: reqwest::Response,
        file: &mut File,
        mut offset: u64,
        body: &Body<'_>,
    ) -> std::result::Result<u64, AttemptError> {
        let Body {
            url,
            name,
            part,
            total,
            progress,
            growth,
        } = *body;
        let fatal = AttemptError::Fatal;
        let mut out = BufWriter::with_capacity(WRITE_BUF, file);
        let mut pace = Pace::new(offset);
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
            DOWNLOADED.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            if let Some(g) = growth {
                // What is in the file, not in the buffer, is what a follower may read.
                g.written(offset - out.buffer().len() as u64);
            }
            let now = Instant::now();
            if let Some(moved) = pace.stalled(now, offset, self.stall_timeout) {
                let _ = out.flush();
                return Err(AttemptError::Retry(anyhow::anyhow!(
                    "only {moved} bytes in {} at byte {offset}, less than {} KiB (agent.stall_timeout)",
                    humantime::format_duration(self.stall_timeout),
                    STALL_MIN_BYTES >> 10
                )));
            }
            if total.is_some_and(|t| offset > t) {
                drop(out);
                let _ = fs::remove_file(part);
                return Err(AttemptError::Retry(anyhow::anyhow!(
                    "the server sent more bytes than announced; starting over"
                )));
            }
            pace.report(now, offset, name, total, progress);
        }
        out.flush()
            .with_context(|| format!("writing {}", part.display()))
            .map_err(fatal)?;
        drop(out);
        if let Some(g) = growth {
            g.written(offset);
        }
        match total {
            Some(t) if offset < t => Err(AttemptError::Retry(anyhow::anyhow!(
                "connection closed at byte {offset} of {t}"
            ))),
            _ => Ok(offset),
        }
    }

    /// The whole file is in `part`: make it durable and give it its cache name.
    fn complete(&self, file: File, part: &Path, path: &Path, meta: &Path) -> Result<()> {
        file.sync_all()
            .with_context(|| format!("syncing {}", part.display()))?;
        drop(file);
        fs::rename(part, path)
            .with_context(|| format!("renaming {} to {}", part.display(), path.display()))?;
        let _ = fs::remove_file(meta);
        host::sync_dir(&self.cache_dir)
    }
}

/// What [`Fetcher::stream`] writes, and where it reports.
#[derive(Clone, Copy)]
struct Body<'a> {
    url: &'a ConfigUrl,
    name: &'a str,
    part: &'a Path,
    total: Option<u64>,
    progress: &'a dyn Progress,
    growth: Option<&'a Growth>,
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

/// The size of the regular file at `path`; 0 for anything else (a symlink planted at a
/// partial download is not resumed from, and is replaced when the download starts over).
fn file_len(path: &Path) -> u64 {
    fs::symlink_metadata(path)
        .ok()
        .filter(|m| m.is_file())
        .map_or(0, |m| m.len())
}

/// How a download moves: stalls, and progress reports at their pace.
struct Pace {
    started: Instant,
    start_offset: u64,
    last_log: Instant,
    last_report: Instant,
    /// Since when, and from which byte, the current stall window counts.
    window: (Instant, u64),
}

impl Pace {
    fn new(offset: u64) -> Pace {
        let started = Instant::now();
        Pace {
            started,
            start_offset: offset,
            last_log: started,
            last_report: started - REPORT_EVERY,
            window: (started, offset),
        }
    }

    /// A server that drips a few bytes now and then never goes silent, but it stalls
    /// all the same: less than STALL_MIN_BYTES per stall_timeout counts as a stall.
    /// `Some(bytes moved)` when the window that just ended was one.
    fn stalled(&mut self, now: Instant, offset: u64, stall_timeout: Duration) -> Option<u64> {
        if now.duration_since(self.window.0) < stall_timeout {
            return None;
        }
        let moved = offset - self.window.1;
        if moved < STALL_MIN_BYTES {
            return Some(moved);
        }
        self.window = (now, offset);
        None
    }

    /// Progress to `progress` every REPORT_EVERY, to the log every LOG_EVERY.
    fn report(
        &mut self,
        now: Instant,
        offset: u64,
        name: &str,
        total: Option<u64>,
        progress: &dyn Progress,
    ) {
        if now.duration_since(self.last_report) < REPORT_EVERY {
            return;
        }
        self.last_report = now;
        let rate = rate(offset - self.start_offset, now.duration_since(self.started));
        progress.transfer(name, offset, total, rate);
        if now.duration_since(self.last_log) >= LOG_EVERY {
            self.last_log = now;
            log_progress(name, offset, total, rate);
        }
    }
}
