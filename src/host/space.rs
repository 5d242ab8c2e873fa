//! Free space, checked before a download or an unpack rather than found missing halfway.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::exit::{fail, ExitCode};

/// Bytes free to an unprivileged writer in the file system holding `dir`.
pub fn free_space(dir: &Path) -> Result<u64> {
    let st = rustix::fs::statvfs(dir)
        .map_err(std::io::Error::from)
        .with_context(|| format!("statvfs {}", dir.display()))?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// [`free_space`] for a path that may not exist yet (`check` runs before the first
/// install): measured on its nearest existing ancestor, which is returned too.
pub fn free_space_near(path: &Path) -> Result<(u64, PathBuf)> {
    let mut p = path;
    while !p.exists() {
        p = p.parent().unwrap_or(Path::new("/"));
    }
    Ok((free_space(p)?, p.to_path_buf()))
}

/// Fail with EX_IOERR before writing `need` bytes into `dir` when they do not fit.
pub fn check_space(dir: &Path, need: u64) -> Result<()> {
    let free = free_space(dir)?;
    if need > free {
        return Err(fail(
            ExitCode::Io,
            format!(
                "not enough disk space in {}: need {} MB, {} MB free",
                dir.display(),
                need.div_ceil(1_000_000),
                free / 1_000_000
            ),
        ));
    }
    Ok(())
}
