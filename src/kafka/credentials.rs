//! The credentials the doctor signs with, from the chain ksqlDB's IAM module uses (the
//! AWS default chain: environment, profile, IMDS), through STS AssumeRole for
//! `iam_auth.role_arn` as the jar's `awsRoleArn` does (session name
//! `aws-msk-iam-auth`, the jar's default). And why the broker refused them: MSK says
//! only "Access denied", so the reason is found here, with STS.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sts::operation::assume_role::AssumeRoleError;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeDeserializationInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

use super::client::Signer;
use super::finding::{Finding, Step};
use crate::config::Settings;
use crate::msk::iam_policy::Target;

/// The bound of resolving credentials (IMDS, AssumeRole) and of the STS call.
const CREDENTIALS_TIMEOUT: Duration = Duration::from_secs(10);
/// The role session name of `iam_auth.role_arn` (aws-msk-iam-auth's default).
pub const ROLE_SESSION_NAME: &str = "aws-msk-iam-auth";
/// Clock difference to STS above which signatures are refused (SigV4's 5 minutes).
const SKEW_LIMIT: Duration = Duration::from_secs(300);

async fn sdk_config(settings: &Settings) -> aws_config::SdkConfig {
    let mut loader =
        aws_config::defaults(BehaviorVersion::latest()).http_client(crate::msk::aws_http::client());
    if let Some(region) = &settings.msk.region {
        loader = loader.region(Region::new(region.clone()));
    }
    loader.load().await
}

/// Credentials and region to sign with, or the one line saying why there are none.
pub async fn signer(settings: &Settings) -> Result<Signer, String> {
    let sdk = sdk_config(settings).await;
    let Some(base) = sdk.credentials_provider() else {
        return Err("no AWS credentials provider configured".into());
    };
    let provider: SharedCredentialsProvider = match &settings.iam_auth.role_arn {
        None => base,
        Some(role) => SharedCredentialsProvider::new(
            aws_config::sts::AssumeRoleProvider::builder(role.clone())
                .session_name(ROLE_SESSION_NAME)
                .configure(&sdk)
                .build()
                .await,
        ),
    };
    let via = match &settings.iam_auth.role_arn {
        Some(role) => format!(" (assuming iam_auth.role_arn {role})"),
        None => String::new(),
    };
    let credentials =
        match tokio::time::timeout(CREDENTIALS_TIMEOUT, provider.provide_credentials()).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                if let Some(refused) = settings
                    .iam_auth
                    .role_arn
                    .as_deref()
                    .and_then(|role| assume_role_refused(role, &e))
                {
                    return Err(refused);
                }
                return Err(format!(
                    "no AWS credentials to sign with{via}: {}",
                    crate::exit::cause_chain(&e)
                ));
            }
            Err(_) => {
                return Err(format!(
                    "no AWS credentials to sign with{via}: none within {}s (IMDS unreachable?)",
                    CREDENTIALS_TIMEOUT.as_secs()
                ))
            }
        };
    Ok(Signer {
        credentials,
        fallback_region: settings
            .msk
            .region
            .clone()
            .or_else(|| sdk.region().map(|r| r.to_string())),
    })
}

/// STS's own refusal of AssumeRole for `role` (its code and message), when that is why
/// there are no credentials; None for anything else (unreachable STS, no base credentials).
fn assume_role_refused(role: &str, e: &CredentialsError) -> Option<String> {
    let sdk = std::error::Error::source(e)?.downcast_ref::<SdkError<AssumeRoleError>>()?;
    let SdkError::ServiceError(refusal) = sdk else {
        return None;
    };
    let err = refusal.err();
    Some(format!(
        "iam_auth.role_arn {role}: STS refused to assume it ({}: {}); the instance role needs sts:AssumeRole on it (`ksql-msk iam-policy` statement KsqlDbAssumeRole) and the role's trust policy must allow the instance role",
        err.code().unwrap_or("error"),
        err.message().unwrap_or("no message"),
    ))
}

/// Keeps the `Date` header of STS's answer: the clock to compare with.
#[derive(Debug, Default, Clone)]
struct ServerDate(Arc<Mutex<Option<String>>>);

impl Intercept for ServerDate {
    fn name(&self) -> &'static str {
        "ServerDate"
    }
    fn read_before_deserialization(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(date) = context.response().headers().get("date") {
            if let Ok(mut slot) = self.0.lock() {
                *slot = Some(date.to_string());
            }
        }
        Ok(())
    }
}

/// The local clock's offset from a server's HTTP `Date`, if it is beyond SigV4's limit.
fn skew(server_date: &str, local: SystemTime) -> Option<(Duration, bool)> {
    let server = aws_smithy_types::DateTime::from_str(
        server_date,
        aws_smithy_types::date_time::Format::HttpDate,
    )
    .ok()?;
    let server = SystemTime::try_from(server).ok()?;
    let (off, ahead) = match local.duration_since(server) {
        Ok(d) => (d, true),
        Err(e) => (e.duration(), false),
    };
    (off > SKEW_LIMIT).then_some((off, ahead))
}

/// The finding for a broker's "Access denied": expired or invalid credentials, a
/// skewed clock, or (credentials and clock fine) `kafka-cluster:Connect` denied for
/// the identity STS names.
pub async fn explain_denial(
    settings: &Settings,
    target: &Target,
    message: &str,
    signer: Option<&Signer>,
) -> Finding {
    let started = Instant::now();
    let mut f = Finding {
        ok: false,
        step: Step::Authentication,
        broker: None,
        action: None,
        resource: None,
        sid: None,
        text: String::new(),
        millis: 0,
    };
    let Some(signer) = signer else {
        f.text = format!("the brokers refused authentication ({message})");
        return f;
    };
    let key = signer.credentials.access_key_id();
    if let Some(expiry) = signer.credentials.expiry() {
        if expiry <= SystemTime::now() {
            f.text = format!(
                "the credentials (access key {key}) have expired: the brokers refused them ({message})"
            );
            return f;
        }
    }
    let (answer, server_date) = caller_identity(settings, signer).await;
    f.millis = started.elapsed().as_millis() as u64;
    if let Some((off, ahead)) = server_date
        .as_deref()
        .and_then(|d| skew(d, SystemTime::now()))
    {
        f.text = format!(
            "clock skew: this host's clock is {}s {} STS's ({}); signatures are refused beyond 5 minutes: fix time sync (chrony) ({message})",
            off.as_secs(),
            if ahead { "ahead of" } else { "behind" },
            server_date.unwrap_or_default()
        );
        return f;
    }
    match answer {
        Ok(Ok(out)) => connect_denied(settings, target, &mut f, out.arn().unwrap_or("?"), message),
        Ok(Err(SdkError::ServiceError(e))) => {
            let code = e.err().code().unwrap_or("error");
            let text = e.err().message().unwrap_or("");
            let kind = match code {
                "ExpiredToken" | "ExpiredTokenException" => "expired credentials",
                "InvalidClientTokenId"
                | "SignatureDoesNotMatch"
                | "AccessDenied"
                | "UnrecognizedClientException" => "invalid credentials",
                _ => "credentials STS does not accept",
            };
            f.text = format!(
                "{kind} (access key {key}): STS GetCallerIdentity says {code}: {text}; the brokers refused them too ({message})"
            );
        }
        Ok(Err(e)) => {
            f.text = format!(
                "the brokers refused authentication ({message}); STS could not be asked who the credentials belong to: {}",
                crate::exit::cause_chain(&e)
            );
        }
        Err(_) => {
            f.text = format!(
                "the brokers refused authentication ({message}); STS did not answer within {}s",
                CREDENTIALS_TIMEOUT.as_secs()
            );
        }
    }
    f
}

type CallerIdentity = Result<
    Result<
        aws_sdk_sts::operation::get_caller_identity::GetCallerIdentityOutput,
        SdkError<aws_sdk_sts::operation::get_caller_identity::GetCallerIdentityError>,
    >,
    tokio::time::error::Elapsed,
>;

/// STS GetCallerIdentity with the signer's credentials (bounded), and the `Date` of
/// STS's answer when there was one.
async fn caller_identity(settings: &Settings, signer: &Signer) -> (CallerIdentity, Option<String>) {
    let sdk = sdk_config(settings).await;
    let conf = aws_sdk_sts::config::Builder::from(&sdk)
        .credentials_provider(SharedCredentialsProvider::new(signer.credentials.clone()))
        .build();
    let sts = aws_sdk_sts::Client::from_conf(conf);
    let date = ServerDate::default();
    let asked = sts
        .get_caller_identity()
        .customize()
        .interceptor(date.clone())
        .send();
    let answer = tokio::time::timeout(CREDENTIALS_TIMEOUT, asked).await;
    let server_date = date.0.lock().ok().and_then(|d| d.clone());
    (answer, server_date)
}

/// Credentials and clock are fine: the policy lacks `kafka-cluster:Connect` for `who`.
fn connect_denied(settings: &Settings, target: &Target, f: &mut Finding, who: &str, message: &str) {
    let connect = "kafka-cluster:Connect";
    let cluster = target.cluster();
    let sid = crate::msk::iam_policy::granting_sid(settings, target, connect, &cluster);
    f.text = format!(
        "IAM denies {connect} on {cluster} for {who}: grant it with `ksql-msk iam-policy` statement {} (or an explicit Deny, SCP or permission boundary refuses it) ({message})",
        sid.unwrap_or("(none: not in iam-policy)")
    );
    f.action = Some(connect.into());
    f.resource = Some(cluster);
    f.sid = sid.map(str::to_string);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skew_beyond_five_minutes() {
        let server = "Mon, 07 Dec 2026 17:00:00 GMT";
        let at = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        let base = 1_796_662_800; // 2026-12-07T17:00:00Z
        assert_eq!(skew(server, at(base + 60)), None);
        assert_eq!(
            skew(server, at(base + 3600)),
            Some((Duration::from_secs(3600), true))
        );
        assert_eq!(
            skew(server, at(base - 600)),
            Some((Duration::from_secs(600), false))
        );
        assert_eq!(skew("garbage", at(base)), None);
    }
}
