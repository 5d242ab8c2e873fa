//! The HTTP policy of downloads: which redirects are followed, which failures are worth
//! another attempt, and the `Content-Range` arithmetic of resumes.

use reqwest::header::{self, HeaderMap};
use reqwest::StatusCode;

use crate::config::{redact_url, ConfigUrl};
use crate::exit::{fail, ExitCode};

/// How one attempt ended, when it did not complete.
pub(super) enum AttemptError {
    /// Worth another attempt (network trouble, 408/429/5xx, short body, stall).
    Retry(anyhow::Error),
    /// Will not get better (404, 403, local I/O).
    Fatal(anyhow::Error),
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

/// A redirect to a scheme the agent does not download from (`ftp:`, `file:`, ...).
#[derive(Debug, thiserror::Error)]
#[error("redirected to {0}, which is not an http or https URL")]
struct UnsupportedScheme(String);

/// Follow up to `MAX_REDIRECTS` redirects to any host, but never from https back to
/// http: a mirror may move, yet a TLS download should stay TLS. (The signature and the
/// jar pin protect the bytes either way; a key fetched in the clear is what this guards.)
pub(super) fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let from_tls = attempt.previous().iter().any(|u| u.scheme() == "https");
        // A Location may carry credentials too: only its redacted form is kept.
        if !matches!(attempt.url().scheme(), "http" | "https") {
            let to = redact_url(attempt.url().as_str());
            attempt.error(UnsupportedScheme(to))
        } else if from_tls && attempt.url().scheme() != "https" {
            let to = redact_url(attempt.url().as_str());
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
pub(super) fn classify(url: &ConfigUrl, e: reqwest::Error) -> AttemptError {
    if e.is_redirect() {
        // `redirect_policy` refused: a downgrade, or a loop or too long a chain.
        let downgrade = std::iter::successors(std::error::Error::source(&e), |s| s.source())
            .find_map(|s| s.downcast_ref::<Downgrade>());
        let unsupported = std::iter::successors(std::error::Error::source(&e), |s| s.source())
            .find_map(|s| s.downcast_ref::<UnsupportedScheme>());
        if let Some(UnsupportedScheme(to)) = unsupported {
            return AttemptError::Fatal(fail(
                ExitCode::Unavailable,
                format!("{url}: redirected to {to}, which is not an http or https URL"),
            ));
        }
        if let Some(Downgrade(to)) = downgrade {
            return AttemptError::Fatal(fail(
                ExitCode::Unavailable,
                format!("{url}: redirected from https to {to}; refusing to leave TLS"),
            ));
        }
        // A loop stays a loop: retrying it only burns the download deadline.
        let at = e
            .url()
            .map(|u| format!(" (last at {})", redact_url(u.as_str())))
            .unwrap_or_default();
        return AttemptError::Fatal(fail(
            ExitCode::Unavailable,
            format!("{url}: redirect loop or more than {MAX_REDIRECTS} redirects{at}"),
        ));
    }
    // reqwest's Display names the URL it was given; the callers name the redacted one.
    let chain = crate::exit::one_line(&anyhow::Error::new(e.without_url()));
    if chain.contains("certificate") {
        // A host that trusts no CA at all needs its store, not a private CA.
        let fix = if crate::host::ca_store::host_has_ca_certificates() {
            "set agent.extra_ca for a private CA"
        } else {
            crate::host::ca_store::NO_CA_CERTIFICATES
        };
        return AttemptError::Fatal(fail(
            ExitCode::Unavailable,
            format!("{url}: TLS certificate not trusted ({chain}); {fix}"),
        ));
    }
    AttemptError::Retry(anyhow::anyhow!("{chain}"))
}

/// Where the body of a response goes, by its status.
pub(super) enum Start {
    /// The rest of the partial file, from the offset asked for.
    Resume,
    /// The whole file, from byte 0.
    Whole,
    /// The partial file is of no use (a wrong range, a refused one): drop it, try again.
    Over(anyhow::Error),
}

/// What a response's status means for a download that asked to resume at
/// `resume_from` (0: asked for the whole file). Errors say whether another attempt can
/// help: 408, 429 and 5xx can; a redirect the client did not follow (its Location is not
/// an http(s) URL), 404 and the rest cannot.
pub(super) fn start_at(
    url: &ConfigUrl,
    status: StatusCode,
    headers: &HeaderMap,
    resume_from: u64,
) -> Result<Start, AttemptError> {
    let fatal = |message: String| AttemptError::Fatal(fail(ExitCode::Unavailable, message));
    match status {
        StatusCode::PARTIAL_CONTENT if resume_from > 0 => match content_range_start(headers) {
            Some(start) if start == resume_from => Ok(Start::Resume),
            other => Ok(Start::Over(anyhow::anyhow!(
                "asked for bytes from {resume_from}, server sent a range starting at {other:?}; starting over"
            ))),
        },
        StatusCode::OK | StatusCode::PARTIAL_CONTENT => Ok(Start::Whole),
        StatusCode::RANGE_NOT_SATISFIABLE => Ok(Start::Over(anyhow::anyhow!(
            "the server refused to resume at byte {resume_from} (HTTP 416); starting over"
        ))),
        s if s == StatusCode::REQUEST_TIMEOUT
            || s == StatusCode::TOO_MANY_REQUESTS
            || s.is_server_error() =>
        {
            Err(AttemptError::Retry(anyhow::anyhow!("HTTP {s} from {url}")))
        }
        s if s.is_redirection() => {
            let to = headers
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map_or_else(|| "nowhere".to_string(), redact_url);
            Err(fatal(format!(
                "{url}: redirected to {to}, which is not an http or https URL (HTTP {})",
                s.as_u16()
            )))
        }
        s if s == StatusCode::NOT_FOUND || s == StatusCode::GONE => Err(fatal(format!(
            "{url} not found (HTTP {}): check the version and URL in the config",
            s.as_u16()
        ))),
        s => Err(fatal(format!("{url}: HTTP {s}"))),
    }
}

/// `Content-Range: bytes 100-199/200` → 100.
fn content_range_start(headers: &HeaderMap) -> Option<u64> {
    let v = headers.get(header::CONTENT_RANGE)?.to_str().ok()?;
    let range = v.strip_prefix("bytes ")?.split('/').next()?;
    range.split('-').next()?.trim().parse().ok()
}

/// `Content-Range: bytes 100-199/200` → 200.
pub(super) fn content_range_total(headers: &HeaderMap) -> Option<u64> {
    let v = headers.get(header::CONTENT_RANGE)?.to_str().ok()?;
    v.rsplit('/').next()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_parts() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_RANGE, "bytes 100-199/200".parse().unwrap());
        assert_eq!(content_range_start(&h), Some(100));
        assert_eq!(content_range_total(&h), Some(200));
    }
}
