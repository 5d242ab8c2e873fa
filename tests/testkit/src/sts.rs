//! A fake AWS STS (Query protocol): `POST /` with a form body
//! `Action=GetCallerIdentity&Version=2011-06-15`, answered in XML. Point the agent at it
//! with `AWS_ENDPOINT_URL_STS`. Errors are `<ErrorResponse>` documents; they can be
//! scripted with [`FakeSts::fail_next`].

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use crate::http::{self, Server};

pub const ACCOUNT: &str = "123456789012";
pub const ARN: &str =
    "arn:aws:sts::123456789012:assumed-role/ksql-msk-test-role/i-0123456789abcdef0";
pub const USER_ID: &str = "AROAFAKEROLEID000001:i-0123456789abcdef0";

type Faults = Arc<Mutex<VecDeque<(u16, String, String)>>>;

pub struct FakeSts {
    pub server: Server,
    faults: Faults,
    date: Arc<Mutex<Option<String>>>,
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
            let answer = answer(&req, &f);
            match date {
                Some(date) => with_date(answer, &date),
                None => answer,
            }
        }));
        FakeSts {
            server,
            faults,
            date,
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

fn answer(req: &http::Request, f: &Faults) -> http::Response {
    {
        {
            if let Some((status, code, message)) = f.lock().expect("faults").pop_front() {
                return error(status, &code, &message);
            }
            let body = String::from_utf8_lossy(&req.body).into_owned();
            let form: Vec<(String, String)> = body
                .split('&')
                .filter_map(|p| p.split_once('='))
                .map(|(k, v)| (http::decode(k), http::decode(v)))
                .collect();
            let action = form
                .iter()
                .find(|(k, _)| k == "Action")
                .map(|(_, v)| v.as_str());
            match action {
                Some("GetCallerIdentity") => http::response(
                    200,
                    &[("content-type", "text/xml")],
                    format!(
                        "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n  <GetCallerIdentityResult>\n    <Arn>{ARN}</Arn>\n    <UserId>{USER_ID}</UserId>\n    <Account>{ACCOUNT}</Account>\n  </GetCallerIdentityResult>\n  <ResponseMetadata>\n    <RequestId>01234567-89ab-cdef-0123-456789abcdef</RequestId>\n  </ResponseMetadata>\n</GetCallerIdentityResponse>\n"
                    ),
                ),
                other => error(400, "InvalidAction", &format!("Could not find operation {other:?}")),
            }
        }
    }
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
}
