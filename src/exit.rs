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
    /// EX_CONFIG: invalid configuration.
    Config = 78,
}

impl ExitCode {
    pub fn code(self) -> i32 {
        self as i32
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
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string().replace('\n', " ");
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
    fn plain_io_is_ioerr() {
        let err = anyhow::Error::new(std::io::Error::other("x")).context("writing y");
        assert_eq!(exit_code_of(&err), ExitCode::Io);
    }
}
