//! Writes the man pages and the shell completions of `ksql-msk` into a directory, from
//! the same clap definition the binary parses (`ksql_msk::cli::args::Cli`) and the config
//! schema (`ksql_msk::config::schema`). `build-rpm` runs it; nothing of it is shipped
//! but its output:
//!
//! ```text
//! OUT/man1/ksql-msk.1            (plus one page per subcommand: ksql-msk-run.1, ...)
//! OUT/man5/ksql-msk.toml.5       (the config file, every key of the schema)
//! OUT/completions/ksql-msk.bash
//! OUT/completions/_ksql-msk      (zsh)
//! OUT/completions/ksql-msk.fish
//! ```

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::CommandFactory;

mod completions;
mod man;

fn main() -> Result<()> {
    let mut args = std::env::args_os().skip(1);
    let (Some(out), None) = (args.next(), args.next()) else {
        bail!("usage: gen-assets OUT_DIR");
    };
    let out = PathBuf::from(out);
    let cmd = ksql_msk::cli::args::Cli::command();
    man::write(&cmd, &out)?;
    completions::write(cmd, &out.join("completions"))?;
    Ok(())
}
