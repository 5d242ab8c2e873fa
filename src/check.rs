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
use crate::discovery::{self, BrokerAddr};
use crate::exit::{exit_code_of, fail, one_line, ExitCode};
use crate::java;

/// Per-broker DNS and TCP connect timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Free space the state directory needs: a ksqlDB archive, its extracted release, the
/// previous release kept for rollback, and room for Kafka Streams state to start.
pub const MIN_FREE_BYTES: u64 = 2 << 30;
/// How long the cluster may be in a transitional state before the check reports it.
const CLUSTER_WAIT: Duration = Duration::from_secs(2);

/// One line of the checklist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub ok: bool,
    pub text: String,
}

impl Item {
    fn pass(text: impl Into<String>) -> Item {
        Item {
            ok: true,
            text: text.into(),
        }
    }
    fn fail(text: impl Into<String>) -> Item {
        Item {
            ok: false,
            text: text.into(),
        }
    }
    pub fn line(&self) -> String {
        format!("{} {}", if self.ok { "✓" } else { "✗" }, self.text)
    }
}

fn print(item: &Item) {
    println!("{}", item.line());
}

/// Run the checklist.
pub async fn check(config_path: &Path) -> Result<()> {
    let settings = match config::load(config_path) {
        Ok(s) => s,
        Err(e) => {
            print(&Item::fail(format!("config: {}", one_line(&e))));
            return Err(e);
        }
    };
    let mut items = vec![Item::pass(format!(
        "config: {} is valid",
        settings.source.display()
    ))];
    print(&items[0]);
    fn add(item: Item, items: &mut Vec<Item>) {
        print(&item);
        items.push(item);
    }

    add(identity(&settings).await, &mut items);

    let mut quick = settings.clone();
    quick.msk.cluster_wait = CLUSTER_WAIT;
    match discovery::discover(&quick, &crate::progress::Quiet).await {
        Ok(found) => {
            add(
                Item::pass(format!(
                    "cluster {} is {} with IAM authentication ({} {} brokers)",
                    found.cluster_name,
                    found.state,
                    found.brokers.addrs.len(),
                    settings.msk.connectivity.as_str()
                )),
                &mut items,
            );
            let checks = found.brokers.addrs.iter().map(reach);
            for item in futures_util::future::join_all(checks).await {
                add(item, &mut items);
            }
        }
        Err(e) => {
            add(Item::fail(format!("cluster: {}", one_line(&e))), &mut items);
            add(
                Item::fail("brokers: not checked (no broker list without the cluster)"),
                &mut items,
            );
        }
    }

    add(java_item(&settings), &mut items);
    add(disk(&settings.agent.state_dir), &mut items);
    for listener in settings.ksqldb.listeners.split(',') {
        add(listener_free(listener.trim()).await, &mut items);
    }

    let failed: Vec<&Item> = items.iter().filter(|i| !i.ok).collect();
    println!(
        "{} of {} checks passed",
        items.len() - failed.len(),
        items.len()
    );
    if failed.is_empty() {
        Ok(())
    } else {
        Err(fail(
            ExitCode::Unavailable,
            format!("{} of {} checks failed", failed.len(), items.len()),
        ))
    }
}

/// The STS client, from the same credential chain as the MSK client. Its endpoint is
/// AWS's (or `AWS_ENDPOINT_URL_STS`), not `msk.endpoint_url`.
pub async fn sts_client(settings: &Settings) -> aws_sdk_sts::Client {
    let http = discovery::aws_http_client();
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
                _ if !discovery::host_has_ca_certificates() => {
                    return Item::fail(format!(
                        "AWS identity: sts:GetCallerIdentity failed: {}",
                        discovery::NO_CA_CERTIFICATES
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

/// DNS and TCP reach of one broker.
async fn reach(broker: &BrokerAddr) -> Item {
    let host = broker
        .host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let target = (host.as_str(), broker.port);
    let addrs = match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::lookup_host(target)).await
    {
        Ok(Ok(a)) => a.collect::<Vec<_>>(),
        Ok(Err(e)) => {
            return Item::fail(format!(
                "broker {broker}: cannot resolve {}: {e} (VPC DNS settings, or another VPC's private name?)",
                broker.host
            ))
        }
        Err(_) => {
            return Item::fail(format!(
                "broker {broker}: resolving {} timed out after {}s",
                broker.host,
                CONNECT_TIMEOUT.as_secs()
            ))
        }
    };
    let Some(addr) = addrs.first().copied() else {
        return Item::fail(format!("broker {broker}: {} has no address", broker.host));
    };
    let started = Instant::now();
    match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Item::pass(format!(
            "broker {broker} ({}): TCP connect in {} ms",
            addr.ip(),
            started.elapsed().as_millis()
        )),
        Ok(Err(e)) => Item::fail(format!(
            "broker {broker} ({}): TCP connect failed: {e}",
            addr.ip()
        )),
        Err(_) => Item::fail(format!(
            "broker {broker} ({}): no answer within {}s: a security group that does not allow TCP {} from this host is the usual cause",
            addr.ip(),
            CONNECT_TIMEOUT.as_secs(),
            broker.port
        )),
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
    match crate::fsutil::free_space_near(state_dir) {
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

async fn listener_free(listener: &str) -> Item {
    let Ok(url) = url::Url::parse(listener) else {
        return Item::fail(format!("listener {listener}: not a URL"));
    };
    let host = url.host_str().unwrap_or("0.0.0.0").to_string();
    let port = url.port_or_known_default().unwrap_or(8088);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match tokio::net::TcpListener::bind((host, port)).await {
        Ok(_) => Item::pass(format!("listener {listener}: port {port} is free")),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Item::fail(format!(
            "listener {listener}: port {port} is in use (ksqlDB already running, or another service?)"
        )),
        Err(e) => Item::fail(format!("listener {listener}: cannot bind port {port}: {e}")),
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
}
