//! The `AWS_MSK_IAM` SASL payload, as aws-msk-iam-auth makes it
//! (`internals/AWS4SignedPayloadGenerator.java`, `AuthenticationRequestParams.java`,
//! README "Details"): a flat JSON object of lowercase keys holding a SigV4 presigned
//! `GET https://<broker host>/?Action=kafka-cluster%3AConnect` for service
//! `kafka-cluster`, valid for 15 minutes, signed with the host the client dialled.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use serde_json::{Map, Value};

/// `AuthenticationRequestParams.VERSION_1`.
pub const VERSION: &str = "2020_10_22";
/// The signing name (service) of the payload.
pub const SERVICE: &str = "kafka-cluster";
/// How long the signature is valid (the jar's 900 s).
pub const EXPIRES: Duration = Duration::from_secs(900);

/// The region a broker's host name carries (`b-1.demo.abc123.c2.kafka.us-east-1.amazonaws.com`),
/// as the jar's `RegionUtils.extractRegionFromHost` finds it; None for other names.
pub fn region_in_host(host: &str) -> Option<&str> {
    host.split('.').find(|label| looks_like_region(label))
}

fn looks_like_region(label: &str) -> bool {
    // geo-[gov-]direction-N: us-east-1, us-gov-west-1, ap-southeast-2, il-central-1.
    let parts: Vec<&str> = label.split('-').collect();
    if parts.len() < 3 || parts.len() > 4 {
        return false;
    }
    let Some((last, head)) = parts.split_last() else {
        return false;
    };
    !last.is_empty()
        && last.bytes().all(|b| b.is_ascii_digit())
        && ["us", "eu", "ap", "ca", "sa", "me", "af", "il", "mx", "cn"].contains(&head[0])
        && head
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
}

/// The JSON payload for `host`, signed at `now` with `credentials` for `region`.
pub fn payload(
    host: &str,
    region: &str,
    credentials: &Credentials,
    now: SystemTime,
    user_agent: &str,
) -> Result<Vec<u8>, String> {
    let identity: Identity = credentials.clone().into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    // Required with QueryParams: aws-sigv4 expects it (presigning).
    settings.expires_in = Some(EXPIRES);
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SERVICE)
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| format!("signing the AWS_MSK_IAM payload: {e}"))?
        .into();
    let uri = format!("https://{host}/?Action=kafka-cluster%3AConnect");
    let request = SignableRequest::new("GET", uri, std::iter::empty(), SignableBody::Bytes(&[]))
        .map_err(|e| format!("signing the AWS_MSK_IAM payload for host {host:?}: {e}"))?;
    let (instructions, _) = sign(request, &params)
        .map_err(|e| format!("signing the AWS_MSK_IAM payload: {e}"))?
        .into_parts();
    let mut map = Map::new();
    map.insert("version".into(), VERSION.into());
    map.insert("host".into(), host.into());
    map.insert("user-agent".into(), user_agent.into());
    map.insert("action".into(), "kafka-cluster:Connect".into());
    for (key, value) in instructions.params() {
        map.insert(key.to_ascii_lowercase(), Value::String(value.to_string()));
    }
    serde_json::to_vec(&Value::Object(map)).map_err(|e| format!("AWS_MSK_IAM payload: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_in_msk_host_names() {
        assert_eq!(
            region_in_host("b-1.demo.abc123.c2.kafka.us-east-1.amazonaws.com"),
            Some("us-east-1")
        );
        assert_eq!(
            region_in_host("b-2.x.y.c3.kafka.us-gov-west-1.amazonaws.com"),
            Some("us-gov-west-1")
        );
        assert_eq!(region_in_host("localhost"), None);
        assert_eq!(region_in_host("b-1.my-kafka-1.internal"), None);
    }

    #[test]
    fn payload_has_the_jar_keys() {
        let creds = Credentials::new("AKIDEXAMPLE", "secret", Some("token".into()), None, "test");
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let p = payload("localhost", "eu-west-1", &creds, at, "ksql-msk/test").unwrap();
        let v: Value = serde_json::from_slice(&p).unwrap();
        assert_eq!(v["version"], "2020_10_22");
        assert_eq!(v["host"], "localhost");
        assert_eq!(v["action"], "kafka-cluster:Connect");
        assert_eq!(v["x-amz-algorithm"], "AWS4-HMAC-SHA256");
        assert_eq!(
            v["x-amz-credential"],
            "AKIDEXAMPLE/20231114/eu-west-1/kafka-cluster/aws4_request"
        );
        assert_eq!(v["x-amz-date"], "20231114T221320Z");
        assert_eq!(v["x-amz-expires"], "900");
        assert_eq!(v["x-amz-signedheaders"], "host");
        assert_eq!(v["x-amz-security-token"], "token");
        assert_eq!(v["x-amz-signature"].as_str().unwrap().len(), 64);
    }
}
