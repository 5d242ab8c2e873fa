//! `ksql-msk check`: a preflight checklist, one ✓/✗ line per item, for an operator who
//! wants to know why ksqlDB would not come up before starting it. Exit 0 only when every
//! item passes; 78 when the config is invalid; 69 otherwise.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};

use crate::config::{self, Settings};
use crate::exit::{exit_code_of, fail, one_line, ExitCode};
use crate::host::ca_store;
use crate::ksqldb::java;
use crate::msk::discovery;

/// Free space the state directory needs: a ksqlDB archive, its extracted release, the
/// previous release kept for rollback, and room for Kafka Streams state to start.
pub const MIN_FREE_BYTES: u64 = 2 << 30;
/// How long check waits for a CREATING cluster (at most `msk.cluster_wait`): a preflight
/// check reports the state instead of waiting the service's 30 minutes, and says so.
const CLUSTER_WAIT: Duration = Duration::from_secs(2);

/// One line of the checklist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub ok: bool,
    pub text: String,
    /// A Kafka doctor finding: its action, resource and statement for `--json`.
    pub kafka: Option<crate::kafka::Finding>,
}

impl Item {
    fn pass(text: impl Into<String>) -> Item {
        Item {
            ok: true,
            text: text.into(),
            kafka: None,
        }
    }
    fn fail(text: impl Into<String>) -> Item {
        Item {
            ok: false,
            text: text.into(),
            kafka: None,
        }
    }
    fn kafka(finding: crate::kafka::Finding) -> Item {
        Item {
            ok: finding.ok,
            text: finding.line(),
            kafka: Some(finding),
        }
    }
    fn json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({ "ok": self.ok, "text": self.text });
        if let Some(f) = &self.kafka {
            v["kafka"] = serde_json::to_value(f).unwrap_or_default();
        }
        v
    }
    pub fn line(&self) -> String {
        format!("{} {}", if self.ok { "✓" } else { "✗" }, self.text)
    }
}

/// One checklist line on stdout (none with `--json`, which prints the whole list at the
/// end); stdout that cannot be written ends the check with 74.
fn print(item: &Item) -> Result<()> {
    if JSON.load(std::sync::atomic::Ordering::Relaxed) {
        return Ok(());
    }
    crate::outln!("{}", item.line())
}

/// `check --json`: lines are collected, not printed.
static JSON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Run the checklist. The AWS SDK's own log events below ERROR are dropped while it
/// runs: a failing credential provider logs a WARN with a Debug dump of the error
/// before the checklist, and the checklist's own line already says it in one line.
/// `KSQL_MSK_LOG` still decides, when set.
pub async fn check(config_path: &Path, json: bool) -> Result<()> {
    JSON.store(json, std::sync::atomic::Ordering::Relaxed);
    use tracing::instrument::WithSubscriber;
    use tracing_subscriber::layer::SubscriberExt;
    let filter = tracing_subscriber::EnvFilter::try_from_env("KSQL_MSK_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(
            "info,aws_config=error,aws_runtime=error,aws_smithy_runtime=error,aws_smithy_runtime_api=error,aws_sdk_sts=error,aws_sdk_kafka=error",
        )
    });
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .with_ansi(false)
        // On, a failed write is eprintln!ed, which panics on a full stderr.
        .log_internal_errors(false);
    let quiet = tracing_subscriber::registry().with(filter).with(fmt);
    checklist(config_path).with_subscriber(quiet).await
}

async fn checklist(config_path: &Path) -> Result<()> {
    let settings = match config::load(config_path) {
        Ok(s) => s,
        Err(e) => {
            // The config error is the story (78), also when stdout is broken.
            let item = Item::fail(format!("config: {}", one_line(&e)));
            let _ = print(&item);
            if JSON.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = print_json(&[item]);
            }
            return Err(e);
        }
    };
    let mut items = Items(Vec::new());
    items.add(Item::pass(format!(
        "config: {} is valid",
        settings.source.display()
    )))?;
    items.add(identity(&settings).await)?;
    cluster_checks(&settings, &mut items).await?;
    items.add(java_item(&settings))?;
    items.add(disk(&settings.agent.state_dir))?;
    for item in artifact_hosts(&settings).await {
        items.add(item)?;
    }
    let internal = settings.ksqldb.internal_listener.iter().map(String::as_str);
    for listener in settings.ksqldb.listeners.split(',').chain(internal) {
        items.add(listener_free(listener.trim(), &settings.agent.state_dir).await)?;
    }
    for item in metrics_items(&settings).await {
        items.add(item)?;
    }
    items.add(rest_api_item(&settings))?;
    if let Some(item) = memory_item(&settings) {
        items.add(item)?;
    }
    // A warning, not a failure: the upgrade may be what the operator wants.
    if let Some(note) =
        crate::service::pipeline::current_release_version(&settings).and_then(|from| {
            crate::ksqldb::metastore::version_change_note(
                &settings,
                &from,
                &settings.ksqldb.version,
            )
        })
    {
        items.add(Item::pass(format!("warning: {note}")))?;
    }

    let items = items.0;
    let failed: Vec<&Item> = items.iter().filter(|i| !i.ok).collect();
    if JSON.load(std::sync::atomic::Ordering::Relaxed) {
        print_json(&items)?;
    } else {
        crate::outln!(
            "{} of {} checks passed",
            items.len() - failed.len(),
            items.len()
        )?;
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(fail(
            ExitCode::Unavailable,
            format!("{} of {} checks failed", failed.len(), items.len()),
        ))
    }
}

/// `check --json`: `{"ok", "passed", "total", "checks": [{"ok", "text", "kafka"?}]}`.
fn print_json(items: &[Item]) -> Result<()> {
    let passed = items.iter().filter(|i| i.ok).count();
    let doc = serde_json::json!({
        "ok": passed == items.len(),
        "passed": passed,
        "total": items.len(),
        "checks": items.iter().map(Item::json).collect::<Vec<_>>(),
    });
    crate::outln!("{}", serde_json::to_string_pretty(&doc)?)
}

/// The checklist so far; each item is printed as it is added.
struct Items(Vec<Item>);

/// The memory plan and how RocksDB is held. Warnings, not failures: an explicit heap
/// wins, even one that does not fit, and ksqlDB runs with RocksDB unbounded. A configured
/// setter jar that is missing fails. `None`: the memory is unknown.
fn memory_item(settings: &Settings) -> Option<Item> {
    use crate::ksqldb::memory::RocksDb;
    let plan = crate::ksqldb::java::settings_memory_plan(settings);
    let rocksdb = match crate::ksqldb::java::host_rocksdb(settings, plan.as_ref()) {
        Err(e) => return Some(Item::fail(crate::exit::one_line(&e))),
        Ok(r) => r,
    };
    let plan = plan?;
    let note = crate::ksqldb::memory::rocksdb_note(&plan, &rocksdb);
    let unbounded = matches!(rocksdb, RocksDb::NoJar(_) | RocksDb::UnknownMemory);
    Some(if plan.exceeds_memory() || unbounded {
        Item::pass(format!("warning: {note}"))
    } else {
        Item::pass(note)
    })
}

impl Items {
    fn add(&mut self, item: Item) -> Result<()> {
        print(&item)?;
        self.0.push(item);
        Ok(())
    }
}

/// The cluster (discovered with check's shorter wait), then the Kafka doctor on each broker.
async fn cluster_checks(settings: &Settings, items: &mut Items) -> Result<()> {
    let mut quick = settings.clone();
    quick.msk.cluster_wait = CLUSTER_WAIT.min(settings.msk.cluster_wait);
    match discovery::discover(&quick, &crate::progress::Quiet).await {
        Ok(found) => {
            items.add(Item::pass(format!(
                "cluster {} is {} with IAM authentication ({} {} brokers)",
                found.cluster_name,
                found.state,
                found.brokers.addrs.len(),
                settings.msk.connectivity.as_str()
            )))?;
            match crate::config::ClusterArn::parse(&found.cluster_arn) {
                Ok(arn) => {
                    let diagnosis =
                        crate::kafka::diagnose(settings, &arn, &found.brokers.addrs).await;
                    for finding in diagnosis.findings {
                        items.add(Item::kafka(finding))?;
                    }
                }
                Err(e) => {
                    items.add(Item::fail(format!("Kafka: MSK returned a cluster ARN {e}")))?
                }
            }
        }
        Err(e) => {
            let text = one_line(&e);
            // Discovery names msk.cluster_wait as the bound it gave up at; check's is
            // its own, shorter one.
            let text = match text.strip_suffix(" (msk.cluster_wait)") {
                Some(head) => format!(
                    "{head} (check waits at most {}; `ksql-msk run` waits up to msk.cluster_wait = {})",
                    humantime::format_duration(quick.msk.cluster_wait),
                    humantime::format_duration(settings.msk.cluster_wait)
                ),
                None => text,
            };
            items.add(Item::fail(format!("cluster: {text}")))?;
            items.add(Item::fail(
                "brokers: not checked (no broker list without the cluster)",
            ))?;
        }
    }
    Ok(())
}

/// Who may use ksqlDB's REST API (`ksqldb.auth`): an open API on the network fails.
fn rest_api_item(settings: &Settings) -> Item {
    if let Some(problem) = crate::ksqldb::auth::open_api_problem(settings) {
        return Item::fail(format!("REST API: {problem}"));
    }
    match settings.ksqldb.auth {
        config::RestAuth::None => {
            Item::pass("REST API: no authentication, listening on loopback only")
        }
        config::RestAuth::Basic => {
            let path = crate::ksqldb::auth::password_path(settings);
            match crate::ksqldb::auth::read_credential(&path) {
                Ok(Some(c)) => Item::pass(format!(
                    "REST API: HTTP basic authentication, user {} in {}",
                    c.user,
                    path.display()
                )),
                Ok(None) => Item::pass(format!(
                    "REST API: HTTP basic authentication; {} is created at the next start",
                    path.display()
                )),
                Err(e) => Item::fail(format!("REST API: {}", one_line(&e))),
            }
        }
    }
}

/// The STS client, from the same credential chain as the MSK client. Its endpoint is
/// AWS's (or `AWS_ENDPOINT_URL_STS`), not `msk.endpoint_url`.
pub async fn sts_client(settings: &Settings) -> aws_sdk_sts::Client {
    let http = crate::msk::aws_http::client();
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        .operation_timeout(Duration::from_secs(30))
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .retry_config(RetryConfig::standard().with_max_attempts(2))
        .timeout_config(timeouts);
    if let Some(region) = &settings.msk.region {
        loader = loader.region(Region::new(region.clone()));
    }
    aws_sdk_sts::Client::new(&loader.load().await)
}

async fn identity(settings: &Settings) -> Item {
    let client = sts_client(settings).await;
    match client.get_caller_identity().send().await {
        Ok(out) => Item::pass(format!(
            "AWS identity: {} (account {})",
            out.arn().unwrap_or("?"),
            out.account().unwrap_or("?")
        )),
        Err(e) => {
            let why = match &e {
                SdkError::ServiceError(_) => format!(
                    "{}: {}",
                    e.code().unwrap_or("error"),
                    e.message().unwrap_or("")
                ),
                // Not a credentials problem: no TLS connection can be trusted.
                _ if !ca_store::host_has_ca_certificates() => {
                    return Item::fail(format!(
                        "AWS identity: sts:GetCallerIdentity failed: {}",
                        ca_store::NO_CA_CERTIFICATES
                    ))
                }
                _ => crate::exit::cause_chain(&e),
            };
            Item::fail(format!(
                "AWS identity: sts:GetCallerIdentity failed ({why}); the agent needs credentials (an instance role)"
            ))
        }
    }
}

fn java_item(settings: &Settings) -> Item {
    let version = &settings.ksqldb.version;
    match java::jvm_for(settings, version) {
        Ok(jvm) => Item::pass(format!(
            "Java {} ({}) at {}: runs ksqlDB {version}{} and aws-msk-iam-auth {}",
            jvm.java.major,
            jvm.java.version,
            jvm.java.home.display(),
            if jvm.performance_opts.is_some() {
                " (with G1 instead of its CMS defaults)"
            } else {
                ""
            },
            settings.iam_auth.version
        )),
        Err(e) => {
            let kind = if exit_code_of(&e) == ExitCode::Config {
                ""
            } else {
                "cannot run: "
            };
            Item::fail(format!("Java: {kind}{}", one_line(&e)))
        }
    }
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

fn disk(state_dir: &Path) -> Item {
    match crate::host::free_space_near(state_dir) {
        Ok((free, on)) if free >= MIN_FREE_BYTES => Item::pass(format!(
            "disk: {} free for {} (on {})",
            gib(free),
            state_dir.display(),
            on.display()
        )),
        Ok((free, on)) => Item::fail(format!(
            "disk: only {} free for {} (on {}); ksqlDB needs at least {}",
            gib(free),
            state_dir.display(),
            on.display(),
            gib(MIN_FREE_BYTES)
        )),
        Err(e) => Item::fail(format!("disk: {}", one_line(&e))),
    }
}

/// How long one artifact probe may take, connect and first answer together.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// One line per artifact host: can this host reach it, through the configured proxy?
/// Each URL of the host is asked for its first byte (GET with `Range: bytes=0-0`, which
/// every server and mirror answers, unlike HEAD on some), with the fetch client.
async fn artifact_hosts(settings: &Settings) -> Vec<Item> {
    let mut urls = vec![
        settings.ksqldb.archive_url.clone(),
        settings.ksqldb.signature_url.clone(),
    ];
    if let config::KeySource::Url(u) = &settings.ksqldb.key {
        urls.push(u.clone());
    }
    urls.push(settings.iam_auth.jar_url.clone());
    if settings.metrics.prometheus_port.is_some() {
        urls.push(settings.metrics.exporter_url.clone());
    }
    let fetcher = match crate::release::fetch::Fetcher::new(settings) {
        Ok(f) => f,
        Err(e) => return vec![Item::fail(format!("artifact hosts: {}", one_line(&e)))],
    };
    // Hosts in the order their first URL is configured.
    let mut hosts: Vec<(String, Vec<config::ConfigUrl>)> = Vec::new();
    for url in urls {
        let Some(host) = host_of(&url) else { continue };
        match hosts.iter_mut().find(|(h, _)| *h == host) {
            Some((_, list)) => list.push(url),
            None => hosts.push((host, vec![url])),
        }
    }
    let probes = hosts
        .iter()
        .map(|(host, urls)| probe_host(fetcher.client(), host, urls));
    futures_util::future::join_all(probes).await
}

fn host_of(url: &config::ConfigUrl) -> Option<String> {
    let parsed = url::Url::parse(url.expose()).ok()?;
    let host = parsed.host_str()?.to_string();
    Some(match parsed.port() {
        Some(port) => format!("{host}:{port}"),
        None => host,
    })
}

async fn probe_host(client: &reqwest::Client, host: &str, urls: &[config::ConfigUrl]) -> Item {
    let started = Instant::now();
    for url in urls {
        let sent = client
            .get(url.expose())
            .header(reqwest::header::RANGE, "bytes=0-0")
            .timeout(PROBE_TIMEOUT)
            .send()
            .await;
        match sent {
            Ok(resp) if resp.status().is_success() => {}
            Ok(resp) => {
                return Item::fail(format!(
                    "artifact host {host}: {url} answers HTTP {}",
                    resp.status().as_u16()
                ))
            }
            Err(e) => {
                let chain = crate::exit::cause_chain(&e);
                // The route is fine when TLS is what failed: no NAT hint then.
                if url.expose().starts_with("https:") && !ca_store::host_has_ca_certificates() {
                    return Item::fail(format!(
                        "artifact host {host}: {url}: {}",
                        ca_store::NO_CA_CERTIFICATES
                    ));
                }
                if chain.contains("certificate") {
                    return Item::fail(format!(
                        "artifact host {host}: {url}: {chain}; a mirror or TLS-inspecting proxy with its own CA needs agent.extra_ca"
                    ));
                }
                let how = if e.is_timeout() {
                    format!("no answer within {}s", PROBE_TIMEOUT.as_secs())
                } else {
                    format!("cannot fetch: {chain}")
                };
                return Item::fail(format!(
                    "artifact host {host}: {url}: {how}; a private subnet needs a route out (a NAT gateway), a proxy (HTTPS_PROXY in /etc/sysconfig/ksql-msk), or a mirror (e.g. in S3 behind a gateway endpoint) named in the config"
                ));
            }
        }
    }
    Item::pass(format!(
        "artifact host {host}: {} URL{} answer in {} ms",
        urls.len(),
        if urls.len() == 1 { "" } else { "s" },
        started.elapsed().as_millis()
    ))
}

async fn listener_free(listener: &str, state_dir: &Path) -> Item {
    let Ok(url) = url::Url::parse(listener) else {
        return Item::fail(format!("listener {listener}: not a URL"));
    };
    let host = url.host_str().unwrap_or("0.0.0.0").to_string();
    let port = url.port_or_known_default().unwrap_or(8088);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    port_free(&format!("listener {listener}"), host, port, state_dir).await
}

/// Can ksqlDB bind `host:port` (`what` names it), or does this service's ksqlDB already?
async fn port_free(what: &str, host: &str, port: u16, state_dir: &Path) -> Item {
    match tokio::net::TcpListener::bind((host, port)).await {
        Ok(_) => Item::pass(format!("{what}: port {port} is free")),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => match holder::of_port(port) {
            Some(h) if h.is_our_ksqldb(state_dir) => Item::pass(format!(
                "{what}: port {port} is held by this service's ksqlDB (pid {})",
                h.pid
            )),
            Some(h) => Item::fail(format!(
                "{what}: port {port} is in use by pid {} ({}), not by this service's ksqlDB",
                h.pid, h.command
            )),
            None => Item::fail(format!(
                "{what}: port {port} is in use (by a process this user cannot see: ksqlDB already running, or another service?)"
            )),
        },
        Err(e) => Item::fail(format!("{what}: cannot bind port {port}: {e}")),
    }
}

/// `[metrics]`: the JMX and exporter ports are free (or ksqlDB's), the rules readable.
async fn metrics_items(settings: &Settings) -> Vec<Item> {
    let m = &settings.metrics;
    let state = &settings.agent.state_dir;
    let mut items = Vec::new();
    if let Some(port) = m.jmx_port {
        items.push(port_free("metrics.jmx_port", crate::ksqldb::jmx::HOST, port, state).await);
    }
    if let Some(port) = m.prometheus_port {
        let bind = m.prometheus_bind.to_string();
        items.push(port_free("metrics.prometheus_port", &bind, port, state).await);
        items.push(
            match crate::ksqldb::exporter::check_rules(&m.prometheus_rules) {
                Ok(()) => Item::pass(format!(
                    "metrics.prometheus_rules: {} is readable",
                    m.prometheus_rules.display()
                )),
                Err(e) => Item::fail(one_line(&e)),
            },
        );
    }
    items
}

/// Who holds a listening TCP port, from /proc: the socket's inode in /proc/net/tcp{,6},
/// then the process with a descriptor on that socket.
mod holder {
    use std::path::Path;

    pub struct Holder {
        pub pid: u32,
        pub args: Vec<String>,
        pub command: String,
    }

    impl Holder {
        /// This service's ksqlDB runs `<state_dir>/releases/<v>/bin/ksql-server-start`
        /// (which execs java) with the release's properties file: an argument under the
        /// state directory's releases says so, whatever the process became after exec.
        pub fn is_our_ksqldb(&self, state_dir: &Path) -> bool {
            let mut roots = vec![state_dir.to_path_buf()];
            if let Ok(real) = state_dir.canonicalize() {
                roots.push(real);
            }
            self.args.iter().skip(1).any(|arg| {
                roots.iter().any(|root| {
                    Path::new(arg)
                        .strip_prefix(root.join("releases"))
                        .is_ok_and(|rest| rest.components().count() > 1)
                })
            })
        }
    }

    pub fn of_port(port: u16) -> Option<Holder> {
        let inodes: Vec<String> = ["/proc/net/tcp", "/proc/net/tcp6"]
            .iter()
            .filter_map(|f| std::fs::read_to_string(f).ok())
            .flat_map(|text| listening_inodes(&text, port))
            .collect();
        if inodes.is_empty() {
            return None;
        }
        let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            // Another user's descriptors are not readable: skipped, not an error.
            let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
                continue;
            };
            let holds = fds.flatten().any(|fd| {
                std::fs::read_link(fd.path())
                    .is_ok_and(|l| wanted.iter().any(|w| l.as_os_str() == w.as_str()))
            });
            if holds {
                let raw = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
                let args: Vec<String> = raw
                    .split(|b| *b == 0)
                    .filter(|a| !a.is_empty())
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect();
                let command = args.first().cloned().unwrap_or_else(|| "?".into());
                return Some(Holder { pid, args, command });
            }
        }
        None
    }

    /// Inodes of the sockets listening (state 0A) on `port` in a /proc/net/tcp table.
    pub fn listening_inodes(table: &str, port: u16) -> Vec<String> {
        table
            .lines()
            .skip(1)
            .filter_map(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                let local_port = f.get(1)?.rsplit(':').next()?;
                let listening = *f.get(3)? == "0A";
                (listening && u16::from_str_radix(local_port, 16).ok()? == port)
                    .then(|| f.get(9).map(|s| s.to_string()))
                    .flatten()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        assert_eq!(Item::pass("a").line(), "✓ a");
        assert_eq!(Item::fail("b").line(), "✗ b");
    }

    #[test]
    fn listening_inodes_of_a_port() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:1F98 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0\n   1: 0100007F:1F98 0100007F:9C40 01 00000000:00000000 00:00000000 00000000  1000        0 4343 1 0\n";
        assert_eq!(holder::listening_inodes(table, 8088), vec!["4242"]);
        assert!(holder::listening_inodes(table, 8089).is_empty());
    }
}
