//! Exit codes (sysexits) and the error type that carries one.
//!
//! Library code returns `anyhow::Result`; where a failure has a known class it is
//! wrapped in [`Coded`] (usually through [`ResultExt::or_exit`] or [`fail`]), and
//! `main` walks the chain once to pick the process exit code.

use std::fmt::Display;

/// Process exit codes, from sysexits.h.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// EX_DATAERR: signature, hash or tar entry refused.
    Data = 65,
    /// EX_UNAVAILABLE: cluster not found, access denied, 404, not implemented.
    Unavailable = 69,
    /// EX_SOFTWARE: a bug or an unexpected local failure.
    Software = 70,
    /// EX_IOERR: local I/O failed (disk full, permissions).
    Io = 74,
    /// EX_TEMPFAIL: the network gave up; trying later may work.
    Temporary = 75,
    /// EX_NOPERM: the invoking user may not do this (`ksql` outside group `ksql`).
    NoPerm = 77,
    /// EX_CONFIG: invalid configuration.
    Config = 78,
}

/// EX_USAGE: the command line itself is wrong (clap's own errors).
pub const USAGE: i32 = 64;

impl ExitCode {
    pub fn code(self) -> i32 {
        self as i32
    }

    /// The inverse of [`ExitCode::code`] (a code another ksql-msk process reported);
    /// anything else is EX_SOFTWARE.
    pub fn from_code(code: i32) -> ExitCode {
        match code {
            65 => ExitCode::Data,
            69 => ExitCode::Unavailable,
            74 => ExitCode::Io,
            75 => ExitCode::Temporary,
            77 => ExitCode::NoPerm,
            78 => ExitCode::Config,
            _ => ExitCode::Software,
        }
    }
}

/// An error with an exit code attached. Its message is the whole one-line story
/// for the top of the chain; causes below it add detail.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Coded {
    pub code: ExitCode,
    pub message: String,
}

/// A new error of class `code`.
pub fn fail(code: ExitCode, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Coded {
        code,
        message: message.into(),
    })
}

/// Attach an exit code (and a message) to any error.
pub trait ResultExt<T> {
    fn or_exit(self, code: ExitCode, message: impl Display) -> anyhow::Result<T>;
    fn or_exit_with<M: Display>(
        self,
        code: ExitCode,
        message: impl FnOnce() -> M,
    ) -> anyhow::Result<T>;
}

impl<T, E> ResultExt<T> for Result<T, E>
where
    E: Into<anyhow::Error>,
{
    fn or_exit(self, code: ExitCode, message: impl Display) -> anyhow::Result<T> {
        self.map_err(|e| {
            e.into().context(Coded {
                code,
                message: message.to_string(),
            })
        })
    }

    fn or_exit_with<M: Display>(
        self,
        code: ExitCode,
        message: impl FnOnce() -> M,
    ) -> anyhow::Result<T> {
        self.map_err(|e| {
            e.into().context(Coded {
                code,
                message: message().to_string(),
            })
        })
    }
}

/// The exit code for an error: the outermost [`Coded`] in its chain, else EX_SOFTWARE.
/// An I/O error with no class is EX_IOERR.
pub fn exit_code_of(err: &anyhow::Error) -> ExitCode {
    if let Some(coded) = err.downcast_ref::<Coded>() {
        return coded.code;
    }
    for cause in err.chain() {
        if let Some(coded) = cause.downcast_ref::<Coded>() {
            return coded.code;
        }
    }
    if err.chain().any(|c| c.is::<std::io::Error>()) {
        return ExitCode::Io;
    }
    ExitCode::Software
}

/// The whole cause chain on one line: `outer: cause: root cause`.
pub fn one_line(err: &anyhow::Error) -> String {
    join_causes(err.chain())
}

/// [`one_line`] for any error and its `source()` chain: SDK errors carry their cause
/// (connection refused, no credentials) down there, and their Debug form, which
/// `aws_smithy_types`' `DisplayErrorContext` appends, is not for operators.
pub fn cause_chain(err: &(dyn std::error::Error + 'static)) -> String {
    join_causes(std::iter::successors(Some(err), |e| e.source()))
}

/// Multi-line text (the SDK's credential chain report: "Attempted:" then one provider
/// a line) as one line: lines joined with "; ", or a space after a line ending in ':'.
fn single_line(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if !out.is_empty() {
            out.push_str(if out.ends_with(':') { " " } else { "; " });
        }
        out.push_str(line);
    }
    out
}

fn join_causes<'a>(causes: impl Iterator<Item = &'a (dyn std::error::Error + 'static)>) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in causes {
        let text = single_line(&cause.to_string());
        // anyhow repeats nothing, but SDK errors often wrap the same text twice.
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_line_causes_become_one_line() {
        assert_eq!(
            single_line("no credentials. Attempted:\n  Environment: not set\n  Profile: none\n"),
            "no credentials. Attempted: Environment: not set; Profile: none"
        );
        assert_eq!(single_line("one line"), "one line");
    }

    #[test]
    fn code_found_below_context() {
        let err: anyhow::Result<()> =
            Err(fail(ExitCode::Data, "bad signature")).map_err(|e| e.context("installing"));
        let err = err.unwrap_err();
        assert_eq!(exit_code_of(&err), ExitCode::Data);
        assert_eq!(one_line(&err), "installing: bad signature");
    }

    #[test]
    fn or_exit_wraps_cause() {
        let r: Result<(), std::io::Error> = Err(std::io::Error::other("disk on fire"));
        let err = r.or_exit(ExitCode::Temporary, "fetching x").unwrap_err();
        assert_eq!(exit_code_of(&err), ExitCode::Temporary);
        assert_eq!(one_line(&err), "fetching x: disk on fire");
    }

    #[test]
    fn codes_round_trip() {
        for c in [
            ExitCode::Data,
            ExitCode::Unavailable,
            ExitCode::Software,
            ExitCode::Io,
            ExitCode::Temporary,
            ExitCode::NoPerm,
            ExitCode::Config,
        ] {
            assert_eq!(ExitCode::from_code(c.code()), c);
        }
        assert_eq!(ExitCode::from_code(USAGE), ExitCode::Software);
    }

    #[test]
    fn plain_io_is_ioerr() {
        let err = anyhow::Error::new(std::io::Error::other("x")).context("writing y");
        assert_eq!(exit_code_of(&err), ExitCode::Io);
    }
}
