//! A fake AWS STS (Query protocol): `POST /` with a form body
//! `Action=GetCallerIdentity&Version=2011-06-15` or `Action=AssumeRole&RoleArn=..&
//! RoleSessionName=..`, answered in XML. Point the agent at it with
//! `AWS_ENDPOINT_URL_STS`. Errors are `<ErrorResponse>` documents; they can be
//! scripted with [`FakeSts::fail_next`]. Every call's form is kept ([`FakeSts::calls`]).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use crate::http::{self, Server};

pub const ACCOUNT: &str = "123456789012";
pub const ARN: &str =
    "arn:aws:sts::123456789012:assumed-role/ksql-msk-test-role/i-0123456789abcdef0";
pub const USER_ID: &str = "AROAFAKEROLEID000001:i-0123456789abcdef0";

/// The credentials AssumeRole hands out for any role: not the instance role's
/// ([`crate::imds::Credentials::default`]), so a broker can be told to trust only these.
pub fn assumed_role_credentials() -> crate::imds::Credentials {
    crate::imds::Credentials {
        access_key_id: "ASIAFAKEASSUMEDROLE1".into(),
        secret_access_key: "assumedRoleFakeSecretAccessKey/DoNotLeak0".into(),
        token: "IQoJb3JpZ2luFakeAssumedRoleSessionTokenDoNotLeak".into(),
        expiration: "2099-01-01T00:00:00Z".into(),
    }
}

type Faults = Arc<Mutex<VecDeque<(u16, String, String)>>>;
/// Errors for every call of one action, until replaced: (action, (status, code, message)).
type ActionFaults = Arc<Mutex<Vec<(String, (u16, String, String))>>>;
/// Each request's form fields (decoded), in order of arrival.
type Calls = Arc<Mutex<Vec<Vec<(String, String)>>>>;

pub struct FakeSts {
    pub server: Server,
    faults: Faults,
    date: Arc<Mutex<Option<String>>>,
    calls: Calls,
    action_faults: ActionFaults,
}

fn error(status: u16, code: &str, message: &str) -> http::Response {
    http::response(
        status,
        &[("content-type", "text/xml")],
        format!(
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n  <Error>\n    <Type>Sender</Type>\n    <Code>{code}</Code>\n    <Message>{message}</Message>\n  </Error>\n  <RequestId>4f1d7c3e-fake-4a1b-9c2d-000000000001</RequestId>\n</ErrorResponse>\n"
        ),
    )
}

impl FakeSts {
    pub fn start() -> FakeSts {
        let faults: Faults = Arc::default();
        let f = faults.clone();
        let date: Arc<Mutex<Option<String>>> = Arc::default();
        let d = date.clone();
        let calls: Calls = Arc::default();
        let c = calls.clone();
        let action_faults: ActionFaults = Arc::default();
        let a = action_faults.clone();
        let server = Server::start(http::handler(move |req| {
            if req.method != "POST" {
                return error(405, "InvalidAction", "STS takes POST");
            }
            if !req
                .header("authorization")
                .is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256 Credential="))
            {
                return error(
                    403,
                    "MissingAuthenticationToken",
                    "Request is missing Authentication Token",
                );
            }
            let date = d.lock().expect("date").clone();
            let form = form(&req);
            c.lock().expect("calls").push(form.clone());
            let answer = answer(&form, &f, &a);
            match date {
                Some(date) => with_date(answer, &date),
                None => answer,
            }
        }));
        FakeSts {
            server,
            faults,
            date,
            calls,
            action_faults,
        }
    }

    /// Answer with this HTTP `Date` (e.g. an hour off the test's clock: a skewed
    /// clock as STS sees it); None: the server's own.
    pub fn set_date(&self, date: Option<&str>) {
        *self.date.lock().expect("date") = date.map(str::to_string);
    }
}

fn with_date(mut response: http::Response, date: &str) -> http::Response {
    if let Ok(value) = date.parse() {
        response.headers_mut().insert("date", value);
    }
    response
}

fn form(req: &http::Request) -> Vec<(String, String)> {
    String::from_utf8_lossy(&req.body)
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (http::decode(k), http::decode(v)))
        .collect()
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// XML text: the values echoed back come from the request.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn answer(form: &[(String, String)], f: &Faults, a: &ActionFaults) -> http::Response {
    if let Some((status, code, message)) = f.lock().expect("faults").pop_front() {
        return error(status, &code, &message);
    }
    let action = field(form, "Action");
    let always = a.lock().expect("action faults");
    if let Some((_, (status, code, message))) = always
        .iter()
        .find(|(name, _)| Some(name.as_str()) == action)
    {
        return error(*status, code, message);
    }
    drop(always);
    match action {
        Some("GetCallerIdentity") => http::response(
            200,
            &[("content-type", "text/xml")],
            format!(
                "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n  <GetCallerIdentityResult>\n    <Arn>{ARN}</Arn>\n    <UserId>{USER_ID}</UserId>\n    <Account>{ACCOUNT}</Account>\n  </GetCallerIdentityResult>\n  <ResponseMetadata>\n    <RequestId>01234567-89ab-cdef-0123-456789abcdef</RequestId>\n  </ResponseMetadata>\n</GetCallerIdentityResponse>\n"
            ),
        ),
        Some("AssumeRole") => assume_role(form),
        other => error(400, "InvalidAction", &format!("Could not find operation {other:?}")),
    }
}

/// AssumeRole as the STS API reference shows it (API_AssumeRole, "Examples"): the
/// request's `RoleArn` and `RoleSessionName` (2-64 of `[\w+=,.@-]`), the answer an
/// `<AssumeRoleResponse>` with `AssumeRoleResult` holding `AssumedRoleUser` (`Arn`
/// `arn:aws:sts::<account>:assumed-role/<role name>/<session>`, `AssumedRoleId`) and
/// `Credentials` (`AccessKeyId`, `SecretAccessKey`, `SessionToken`, `Expiration`).
fn assume_role(form: &[(String, String)]) -> http::Response {
    let (Some(role_arn), Some(session)) = (field(form, "RoleArn"), field(form, "RoleSessionName"))
    else {
        return error(
            400,
            "MissingParameter",
            "AssumeRole needs RoleArn and RoleSessionName",
        );
    };
    let session_ok = (2..=64).contains(&session.len())
        && session
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c));
    let role_name = role_arn
        .strip_prefix("arn:aws:iam::")
        .and_then(|r| r.split_once(":role/"))
        .map(|(_, name)| name.rsplit('/').next().unwrap_or(name));
    let (Some(role_name), true) = (role_name, session_ok) else {
        return error(
            400,
            "ValidationError",
            &escape(&format!(
                "invalid RoleArn {role_arn:?} or RoleSessionName {session:?}"
            )),
        );
    };
    let c = assumed_role_credentials();
    http::response(
        200,
        &[("content-type", "text/xml")],
        format!(
            "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n  <AssumeRoleResult>\n    <AssumedRoleUser>\n      <Arn>arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{session}</Arn>\n      <AssumedRoleId>AROAFAKEASSUMEDROLE01:{session}</AssumedRoleId>\n    </AssumedRoleUser>\n    <Credentials>\n      <AccessKeyId>{key}</AccessKeyId>\n      <SecretAccessKey>{secret}</SecretAccessKey>\n      <SessionToken>{token}</SessionToken>\n      <Expiration>{expiration}</Expiration>\n    </Credentials>\n  </AssumeRoleResult>\n  <ResponseMetadata>\n    <RequestId>c6104cbe-af31-11e0-8154-000000000002</RequestId>\n  </ResponseMetadata>\n</AssumeRoleResponse>\n",
            role = escape(role_name),
            session = escape(session),
            key = c.access_key_id,
            secret = c.secret_access_key,
            token = c.token,
            expiration = c.expiration,
        ),
    )
}

impl FakeSts {
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Answer the next call with an STS error (e.g. 403 `InvalidClientTokenId`).
    pub fn fail_next(&self, status: u16, code: &str, message: &str) {
        self.faults.lock().expect("faults").push_back((
            status,
            code.to_string(),
            message.to_string(),
        ));
    }

    /// Answer every call of `action` (e.g. `AssumeRole`) with this STS error, from now on.
    pub fn fail_action(&self, action: &str, status: u16, code: &str, message: &str) {
        let mut faults = self.action_faults.lock().expect("action faults");
        faults.retain(|(name, _)| name != action);
        faults.push((
            action.to_string(),
            (status, code.to_string(), message.to_string()),
        ));
    }

    /// The form of every request so far (e.g. `[("Action", "AssumeRole"), ("RoleArn", ..)]`).
    pub fn calls(&self) -> Vec<Vec<(String, String)>> {
        self.calls.lock().expect("calls").clone()
    }
}
