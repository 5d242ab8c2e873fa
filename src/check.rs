//! `ksql-msk check`: the preflight checklist.

use std::path::Path;

use anyhow::Result;

pub async fn check(_config_path: &Path) -> Result<()> {
    Err(crate::exit::fail(
        crate::exit::ExitCode::Unavailable,
        "`ksql-msk check` is not implemented yet in this build",
    ))
}
