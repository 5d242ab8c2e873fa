//! The AWS API calls (MSK in discovery, STS in `check`) through the proxy that
//! `HTTP_PROXY` / `HTTPS_PROXY` name, as the downloads go: each endpoint is a loopback
//! port nothing listens on, which only the test proxy can reach. `NO_PROXY` sends a
//! call direct; the instance metadata never goes through the proxy.

use ksql_msk_testkit::hostile::{TestCa, TlsFront};
use ksql_msk_testkit::imds::{self, FakeImds};
use ksql_msk_testkit::msk::{Cluster, FakeMsk, GET_BOOTSTRAP_BROKERS};
use ksql_msk_testkit::proxy::Proxy;
use ksql_msk_testkit::sts::FakeSts;

use crate::support::fixture::{free_port, Fixture};
use crate::support::{Host, REGION};

const BROKERS: &str = "bootstrapBrokerStringSaslIam";

fn host_with_endpoint(c: &Cluster, endpoint: &str) -> Host {
    let host = Host::new();
    host.write_config(&format!(
        "[msk]\ncluster_arn = \"{}\"\nregion = \"{REGION}\"\nendpoint_url = \"{endpoint}\"\ncluster_wait = \"3s\"\napi_max_attempts = 1\n",
        c.arn
    ));
    host
}

#[test]
fn the_msk_api_goes_through_http_proxy() {
    let msk = FakeMsk::start();
    let c = Cluster::active("demo", REGION);
    msk.add(c.clone());
    let closed = free_port();
    let authority = format!("127.0.0.1:{closed}");
    let proxy = Proxy::start();
    proxy.route(&authority, msk.server.addr);
    let mut host = host_with_endpoint(&c, &format!("http://{authority}"));

    let out = host.run(&["brokers"]);
    assert_eq!(out.code, 75, "no proxy, nothing listens there: {out:?}");

    host.env("HTTP_PROXY", &proxy.url());
    let out = host.run(&["brokers"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout.trim(), c.brokers_field(BROKERS).unwrap());
    let seen = proxy.seen();
    assert!(
        seen.iter()
            .any(|s| s.method == "GET" && s.target.starts_with(&format!("http://{authority}/"))),
        "the proxy was asked for the MSK API: {seen:?}"
    );
    assert_eq!(
        msk.operations().last().map(String::as_str),
        Some(GET_BOOTSTRAP_BROKERS)
    );
    let req = msk.server.requests().pop().unwrap();
    assert_eq!(req.header("host"), Some(authority.as_str()), "{req:?}");

    // The lower-case spelling works as well (as for the downloads).
    host.unset_env("HTTP_PROXY").env("http_proxy", &proxy.url());
    let before = proxy.seen().len();
    let out = host.run(&["brokers"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(proxy.seen().len() > before, "{:?}", proxy.seen());
}

#[test]
fn no_proxy_sends_the_msk_api_direct() {
    let msk = FakeMsk::start();
    let c = Cluster::active("demo", REGION);
    msk.add(c.clone());
    // A proxy that knows no route: whatever it is asked fails with 502.
    let proxy = Proxy::start();
    let mut host = host_with_endpoint(&c, &msk.url());
    host.env("HTTP_PROXY", &proxy.url())
        .env("HTTPS_PROXY", &proxy.url());

    // Loopback is not exempt by itself (reqwest's downloads do not exempt it either).
    let out = host.run(&["brokers"]);
    assert_eq!(out.code, 75, "{out:?}");
    assert!(!proxy.seen().is_empty(), "{out:?}");

    for no_proxy in ["127.0.0.1", "localhost, 127.0.0.0/8"] {
        let before = proxy.seen().len();
        host.env("NO_PROXY", no_proxy);
        let out = host.run(&["brokers"]);
        assert_eq!(out.code, 0, "NO_PROXY={no_proxy}: {out:?}");
        assert_eq!(out.stdout.trim(), c.brokers_field(BROKERS).unwrap());
        assert_eq!(proxy.seen().len(), before, "NO_PROXY={no_proxy}");
    }
}

/// The usual case: an https endpoint through `HTTPS_PROXY`, tunnelled with CONNECT, the
/// TLS end to end with the endpoint (the proxy sees only the tunnel).
#[test]
fn an_https_msk_api_is_tunnelled_through_https_proxy() {
    let msk = FakeMsk::start();
    let c = Cluster::active("demo", REGION);
    msk.add(c.clone());
    let mut host = Host::new();
    let ca = TestCa::generate(&host.dir.path().join("ca"));
    let tls = TlsFront::start(&ca, msk.server.addr);
    let closed = free_port();
    let authority = format!("127.0.0.1:{closed}");
    let proxy = Proxy::start();
    proxy.route(&authority, tls.addr);
    host.write_config(&format!(
        "[msk]\ncluster_arn = \"{}\"\nregion = \"{REGION}\"\nendpoint_url = \"https://{authority}\"\ncluster_wait = \"3s\"\napi_max_attempts = 1\n",
        c.arn
    ));
    let no_dir = host.dir.path().join("none").display().to_string();
    host.env("SSL_CERT_FILE", &ca.ca_pem.display().to_string())
        .env("SSL_CERT_DIR", &no_dir);

    let out = host.run(&["brokers"]);
    assert_eq!(out.code, 75, "no proxy, nothing listens there: {out:?}");

    // HTTP_PROXY is for http:// only: the https endpoint stays direct.
    host.env("HTTP_PROXY", &proxy.url());
    let out = host.run(&["brokers"]);
    assert_eq!(out.code, 75, "{out:?}");
    assert!(proxy.seen().is_empty(), "{:?}", proxy.seen());

    host.unset_env("HTTP_PROXY")
        .env("HTTPS_PROXY", &proxy.url());
    let out = host.run(&["brokers"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout.trim(), c.brokers_field(BROKERS).unwrap());
    let seen = proxy.seen();
    assert!(
        seen.iter()
            .all(|s| s.method == "CONNECT" && s.target == authority),
        "only a tunnel to {authority}: {seen:?}"
    );
    assert!(!seen.is_empty());
    assert!(msk
        .operations()
        .contains(&GET_BOOTSTRAP_BROKERS.to_string()));
}

/// Credentials in the proxy URL go to the proxy, as
/// Proxy-Authorization, and not to the API.
#[test]
fn proxy_credentials_in_the_url_authenticate_to_the_proxy() {
    let msk = FakeMsk::start();
    let c = Cluster::active("demo", REGION);
    msk.add(c.clone());
    let closed = free_port();
    let authority = format!("127.0.0.1:{closed}");
    let proxy = Proxy::start();
    proxy.route(&authority, msk.server.addr);
    let mut host = host_with_endpoint(&c, &format!("http://{authority}"));
    let url = proxy.url().replace("http://", "http://agent:s%40cret@");
    host.env("HTTP_PROXY", &url);
    let out = host.run(&["brokers"]);
    assert_eq!(out.code, 0, "{out:?}");
    // base64("agent:s@cret")
    let expected = "Basic YWdlbnQ6c0BjcmV0";
    assert!(
        proxy
            .seen()
            .iter()
            .all(|s| s.authorization.as_deref() == Some(expected)),
        "{:?}",
        proxy.seen()
    );
    assert!(
        msk.server
            .requests()
            .iter()
            .all(|r| r.header("proxy-authorization").is_none()),
        "the proxy's credentials stop at the proxy"
    );
    assert!(!out.stderr.contains("s@cret") && !out.stderr.contains("s%40cret"));
}

/// The SDK's instance metadata calls (region, credentials) go direct whatever the proxy
/// variables say, as the agent's own IMDS client does: a proxy cannot reach this
/// instance's metadata, and answering with its own would be worse.
#[test]
fn instance_metadata_never_goes_through_the_proxy() {
    let msk = FakeMsk::start();
    let c = Cluster::active("demo", REGION);
    msk.add(c.clone());
    let imds = FakeImds::start(REGION, "10.1.2.3");
    let closed = free_port();
    let authority = format!("127.0.0.1:{closed}");
    let proxy = Proxy::start();
    proxy.route(&authority, msk.server.addr);
    let mut host = Host::new();
    // No region and no keys in the config or environment: both come from IMDS.
    host.write_config(&format!(
        "[msk]\ncluster_name = \"{}\"\nendpoint_url = \"http://{authority}\"\ncluster_wait = \"3s\"\napi_max_attempts = 1\n",
        c.name
    ));
    host.unset_env("AWS_ACCESS_KEY_ID")
        .unset_env("AWS_SECRET_ACCESS_KEY")
        .env("AWS_EC2_METADATA_DISABLED", "false")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds.url())
        .env("HTTP_PROXY", &proxy.url())
        .env("HTTPS_PROXY", &proxy.url());
    let out = host.run(&["brokers"]);
    assert_eq!(out.code, 0, "{out:?}");
    let seen = proxy.seen();
    assert!(
        seen.iter()
            .all(|s| s.target.starts_with(&format!("http://{authority}/"))),
        "only the MSK API went through the proxy: {seen:?}"
    );
    assert!(!seen.is_empty());
    let auth = msk.server.requests()[0]
        .header("authorization")
        .unwrap()
        .to_string();
    assert!(
        auth.contains(&format!("Credential={}/", imds::ACCESS_KEY_ID)),
        "{auth}"
    );
    let paths: Vec<String> = imds
        .server
        .requests()
        .iter()
        .map(|r| r.path().to_string())
        .collect();
    assert!(
        paths
            .iter()
            .any(|p| p.starts_with("/latest/meta-data/iam/")),
        "{paths:?}"
    );
}

/// `check` asks STS through the proxy too, next to MSK and the artifact hosts.
#[test]
fn check_calls_sts_and_msk_through_the_proxy() {
    let sts = FakeSts::start();
    let mut fx = Fixture::new("");
    let broker = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    fx.msk.set_brokers(
        &fx.cluster.arn,
        BROKERS,
        Some(&broker.local_addr().unwrap().to_string()),
    );
    let (msk_at, sts_at) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let proxy = Proxy::start();
    proxy
        .route(&msk_at, fx.msk.server.addr)
        .route(&sts_at, sts.server.addr)
        .route(&fx.art.server.addr.to_string(), fx.art.server.addr);
    fx.host.write_dropin(
        "60-proxied.toml",
        &format!("[msk]\nendpoint_url = \"http://{msk_at}\"\n"),
    );
    fx.host
        .env("AWS_ENDPOINT_URL_STS", &format!("http://{sts_at}"))
        .env("HTTP_PROXY", &proxy.url());
    let out = fx.host.run(&["check"]);
    // The broker is a bare listener: the Kafka doctor's TLS step fails (Kafka is not
    // HTTP and never goes through the proxy); everything else passes.
    assert_eq!(out.code, 69, "{out:?}");
    assert!(
        out.stdout
            .lines()
            .filter(|l| l.starts_with('✗'))
            .all(|l| l.starts_with("✗ broker ") && l.contains(": TLS: ")),
        "{out:?}"
    );
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with('✓') && l.contains("AWS identity: arn:aws:sts::")),
        "{out:?}"
    );
    let seen = proxy.seen();
    for at in [&msk_at, &sts_at] {
        assert!(
            seen.iter()
                .any(|s| s.target.starts_with(&format!("http://{at}/"))),
            "{at} through the proxy: {seen:?}"
        );
    }
}
