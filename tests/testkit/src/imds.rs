//! A fake EC2 instance metadata service (IMDSv2): token PUT, then GETs with the token.
//! Point the agent at it with `AWS_EC2_METADATA_SERVICE_ENDPOINT`. The instance role's
//! credentials can be replaced while it runs ([`FakeImds::set_credentials`]), as IMDS
//! rotates them; a Kafka test broker that should accept them is told the same
//! ([`crate::kafka::KafkaCluster::trust_credentials`]).

use std::sync::{Arc, Mutex};

use serde_json::json;

use crate::http::{self, Server};

pub const TOKEN: &str = "AQAEAFake-imds-token==";
pub const ROLE: &str = "ksql-msk-test-role";
pub const ACCESS_KEY_ID: &str = "ASIAFAKEIMDSKEY00001";
pub const SECRET_ACCESS_KEY: &str = "imdsFakeSecretAccessKey/DoNotLeak0000000";
pub const SESSION_TOKEN: &str = "IQoJb3JpZ2luFakeImdsSessionTokenDoNotLeak";

/// The instance role's temporary credentials, as IMDS serves them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub token: String,
    /// ISO 8601, e.g. `2099-01-01T00:00:00Z`.
    pub expiration: String,
}

impl Default for Credentials {
    /// The constants above, valid until 2099.
    fn default() -> Credentials {
        Credentials {
            access_key_id: ACCESS_KEY_ID.into(),
            secret_access_key: SECRET_ACCESS_KEY.into(),
            token: SESSION_TOKEN.into(),
            expiration: "2099-01-01T00:00:00Z".into(),
        }
    }
}

pub struct FakeImds {
    pub server: Server,
    credentials: Arc<Mutex<Credentials>>,
}

impl FakeImds {
    pub fn start(region: &str, local_ipv4: &str) -> FakeImds {
        Self::start_on("127.0.0.1:0".parse().expect("addr"), region, local_ipv4)
    }

    /// Start on a given address, e.g. 169.254.169.254:80 in a network namespace.
    pub fn start_on(addr: std::net::SocketAddr, region: &str, local_ipv4: &str) -> FakeImds {
        let region = region.to_string();
        let ip = local_ipv4.to_string();
        let credentials = Arc::new(Mutex::new(Credentials::default()));
        let served = credentials.clone();
        let server = Server::start_on(
            addr,
            http::handler(move |req| {
                let path = req.path().to_string();
                if req.method == "PUT" && path == "/latest/api/token" {
                    if req.header("x-aws-ec2-metadata-token-ttl-seconds").is_none() {
                        return http::response(400, &[], "missing TTL");
                    }
                    return http::response(
                        200,
                        &[("x-aws-ec2-metadata-token-ttl-seconds", "21600")],
                        TOKEN,
                    );
                }
                if req.header("x-aws-ec2-metadata-token") != Some(TOKEN) {
                    return http::response(401, &[], "");
                }
                let text = |s: String| http::response(200, &[("content-type", "text/plain")], s);
                match path.as_str() {
                    "/latest/meta-data/placement/region" => text(region.clone()),
                    "/latest/meta-data/local-ipv4" => text(ip.clone()),
                    "/latest/meta-data/instance-id" => text("i-0123456789abcdef0".into()),
                    "/latest/dynamic/instance-identity/document" => text(
                        json!({
                            "accountId": "123456789012",
                            "region": region,
                            "privateIp": ip,
                            "instanceId": "i-0123456789abcdef0",
                            "instanceType": "m6i.large",
                            "availabilityZone": format!("{region}a"),
                        })
                        .to_string(),
                    ),
                    "/latest/meta-data/iam/security-credentials/"
                    | "/latest/meta-data/iam/security-credentials" => text(ROLE.into()),
                    p if p == format!("/latest/meta-data/iam/security-credentials/{ROLE}") => {
                        let c = served.lock().expect("credentials").clone();
                        text(
                            json!({
                                "Code": "Success",
                                "LastUpdated": "2026-11-25T00:00:00Z",
                                "Type": "AWS-HMAC",
                                "AccessKeyId": c.access_key_id,
                                "SecretAccessKey": c.secret_access_key,
                                "Token": c.token,
                                "Expiration": c.expiration,
                            })
                            .to_string(),
                        )
                    }
                    _ => http::response(404, &[], "Not Found"),
                }
            }),
        );
        FakeImds {
            server,
            credentials,
        }
    }

    /// What the instance role's credentials are now.
    pub fn credentials(&self) -> Credentials {
        self.credentials.lock().expect("credentials").clone()
    }

    /// Serve other credentials from now on (a rotation).
    pub fn set_credentials(&self, credentials: Credentials) {
        *self.credentials.lock().expect("credentials") = credentials;
    }

    pub fn url(&self) -> String {
        self.server.url()
    }
}
