//! Writes the man page and the shell completions of `ksql-msk` into a directory, from
//! the same clap definition the binary parses (`ksql_msk::cli::Cli`). `build-rpm` runs
//! it; nothing of it is shipped but its output:
//!
//! ```text
//! OUT/man1/ksql-msk.1            (plus one page per subcommand: ksql-msk-run.1, ...)
//! OUT/completions/ksql-msk.bash
//! OUT/completions/_ksql-msk      (zsh)
//! OUT/completions/ksql-msk.fish
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::CommandFactory;

mod completions;

fn main() -> Result<()> {
    let mut args = std::env::args_os().skip(1);
    let (Some(out), None) = (args.next(), args.next()) else {
        bail!("usage: gen-assets OUT_DIR");
    };
    let out = PathBuf::from(out);
    let cmd = ksql_msk::cli::Cli::command();
    write_man_pages(&cmd, &out.join("man1"))?;
    completions::write(cmd, &out.join("completions"))?;
    Ok(())
}

/// `ksql-msk.1` and one page per subcommand (`ksql-msk-config-set.1`, ...), as
/// clap_mangen names them so the SEE ALSO references resolve.
fn write_man_pages(cmd: &clap::Command, dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    clap_mangen::generate_to(cmd.clone(), dir)
        .with_context(|| format!("writing man pages into {}", dir.display()))?;
    Ok(())
}
