//! Command dispatch: what `main` calls. Each command returns `Result`; errors are
//! printed once, on one line, and mapped to a sysexits code.

use std::path::Path;

use anyhow::Result;

use crate::cli::{Cli, Command, ConfigCommand};
use crate::exit::{exit_code_of, fail, one_line, ExitCode};
use crate::{config, discovery, iam_policy};

/// Run the command line; returns the process exit code.
pub fn main(cli: Cli) -> i32 {
    let journald = crate::logging::init(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ksql-msk: error: cannot start the async runtime: {e}");
            return ExitCode::Software.code();
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(()) => 0,
        Err(err) => {
            let code = exit_code_of(&err);
            let line = one_line(&err);
            if journald {
                tracing::error!(exit_code = code.code(), "{line}");
            }
            eprintln!("ksql-msk: error: {line}");
            code.code()
        }
    }
}

async fn dispatch(cli: Cli) -> Result<()> {
    let path = config::resolve_path(cli.config.as_deref());
    match cli.command {
        Command::Brokers => {
            let settings = config::load(&path)?;
            let found = discovery::discover(&settings).await?;
            println!("{}", found.brokers.raw);
            Ok(())
        }
        Command::IamPolicy => {
            let settings = config::load(&path)?;
            let doc = serde_json::to_string_pretty(&iam_policy::policy(&settings))?;
            println!("{doc}");
            Ok(())
        }
        Command::Config(ConfigCommand::Get { key }) => {
            let merged = config::load_merged(&path)?;
            println!("{}", config::edit::get(&merged, &key)?);
            Ok(())
        }
        Command::Config(ConfigCommand::Set { key, value }) => config_set(&path, &key, &value),
        Command::Run => Err(not_yet("run")),
        Command::Install { dry_run } => install(&path, dry_run).await,
        Command::Check => Err(not_yet("check")),
    }
}

/// `ksql-msk install`: phases 1–5, then exit.
async fn install(path: &Path, dry_run: bool) -> Result<()> {
    let settings = config::load(path)?;
    if dry_run {
        let found = discovery::discover(&settings).await?;
        println!("brokers: {}", found.brokers.raw);
        for line in crate::install::plan(&settings)? {
            println!("{line}");
        }
        return Ok(());
    }
    let _lock =
        crate::lock::acquire(&settings.agent.state_dir, settings.agent.lock_timeout).await?;
    let found = discovery::discover(&settings).await?;
    let installed = crate::install::install_release(&settings, &crate::progress::Quiet).await?;
    // configure (phase 5) is added by the properties work
    let m = &installed.manifest;
    println!(
        "ksqlDB {} {} in {}",
        installed.version,
        if installed.activated {
            "installed and activated"
        } else {
            "already installed and active"
        },
        installed.release_dir.display()
    );
    println!("brokers: {}", found.brokers.raw);
    println!("signed by: {}", m.signer);
    println!(
        "iam auth jar: {}/{} (sha256 {})",
        crate::layout::JAR_DIR,
        m.jar_file,
        m.jar_sha256
    );
    Ok(())
}

fn config_set(path: &Path, key: &str, value: &str) -> Result<()> {
    if let Some(warning) = config::edit::set(path, key, value)? {
        eprintln!("ksql-msk: {warning}");
    }
    Ok(())
}

fn not_yet(command: &str) -> anyhow::Error {
    fail(
        ExitCode::Unavailable,
        format!("`ksql-msk {command}` is not implemented yet in this build"),
    )
}
