//! Command dispatch: what `main` calls. Each command returns `Result`; errors are
//! printed once, on one line, and mapped to a sysexits code.

use std::ffi::OsString;
use std::path::Path;

use anyhow::Result;

use crate::cli::args::{AuthCommand, Cli, Command, ConfigCommand, MetastoreCommand};
use crate::exit::{exit_code_of, one_line, ExitCode};
use crate::{config, msk::discovery, msk::iam_policy};

/// Run the command line; returns the process exit code.
/// Threads for blocking work (status snapshots' fsync, hashing, unpacking, file I/O):
/// an agent needs a few; tokio's default of 512 would let a slow disk grow the agent by
/// hundreds of threads. With the 2 workers and the main thread this bounds the agent's
/// runtime threads (tests/it/soak.rs checks it).
pub const MAX_BLOCKING_THREADS: usize = 8;

pub fn main(cli: Cli) -> i32 {
    if let Command::Ksql { args } = cli.command {
        return ksql(cli.config.as_deref(), args);
    }
    crate::host::output::install_panic_hook();
    if !matches!(cli.command, Command::Run) {
        // `ksql-msk iam-policy | head` must end quietly, as other CLI tools do, not panic
        // on EPIPE. The daemon keeps Rust's default (ignored), so a restarted journald
        // cannot kill it.
        // SAFETY: setting a signal disposition before any thread is started (neither std
        // nor rustix sets one without `unsafe`).
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    } else {
        crate::service::run::one_malloc_arena();
    }
    let journald = crate::cli::logging::init(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            crate::errln!("ksql-msk: error: cannot start the async runtime: {e}");
            return ExitCode::Software.code();
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(()) => 0,
        Err(err) => {
            let code = exit_code_of(&err);
            let line = one_line(&err);
            if journald {
                // stderr goes to the journal too: say it once, at priority err.
                tracing::error!(exit_code = code.code(), "{line}");
            } else {
                // Best-effort: an unwritable stderr must not turn this exit code into a
                // panic's 101.
                crate::errln!("ksql-msk: error: {line}");
            }
            code.code()
        }
    }
}

/// `ksql ARGS` (`/usr/bin/ksql`, a link to the agent) and `ksql-msk ksql ARGS`: replace
/// this process with the active release's CLI ([`crate::cli::ksql_cli`]). Returns only on
/// failure, with its exit code, having said why on one line. No async runtime and no
/// logging set up: this is on the path of every start of the CLI.
pub fn ksql(config: Option<&Path>, args: Vec<OsString>) -> i32 {
    crate::host::output::install_panic_hook();
    // The CLI gets the default SIGPIPE disposition (exec keeps an ignored signal ignored,
    // and Rust's runtime ignores SIGPIPE).
    // SAFETY: setting a signal disposition before any thread is started.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let path = config::resolve_path(config);
    match crate::cli::ksql_cli::exec(&path, args) {
        Ok(never) => match never {},
        Err(err) => {
            crate::errln!("ksql-msk: error: {}", one_line(&err));
            exit_code_of(&err).code()
        }
    }
}

async fn dispatch(cli: Cli) -> Result<()> {
    let path = config::resolve_path(cli.config.as_deref());
    match cli.command {
        Command::Brokers => {
            let settings = config::load(&path)?;
            let found = discovery::discover(&settings, &crate::progress::Quiet).await?;
            crate::outln!("{}", found.brokers.raw)
        }
        Command::IamPolicy { explain } => print_iam_policy(&path, explain).await,
        Command::Config(ConfigCommand::Get { key }) => {
            let merged = config::load_merged(&path)?;
            crate::outln!("{}", config::edit::get(&merged, &key)?)
        }
        Command::Config(ConfigCommand::Set { key, value }) => config_set(&path, &key, &value),
        Command::Run => {
            crate::service::run::run(&path, crate::cli::logging::wants_journal(cli.log_format))
                .await
        }
        Command::Install { dry_run } => install(&path, dry_run).await,
        Command::Check { json } => crate::cli::check::check(&path, json).await,
        Command::Reload => crate::outln!("{}", crate::service::control::reload()?),
        Command::Status { json } => crate::service::status::report::status(&path, json),
        // `main` takes this path before the runtime starts; the same exec here.
        Command::Ksql { args } => {
            crate::cli::ksql_cli::exec(&path, args).map(|never| match never {})
        }
        Command::Rollback { clear } => {
            let done = if clear {
                crate::service::rollback::clear(&path).await?
            } else {
                crate::service::rollback::rollback(&path).await?
            };
            crate::outln!("{done}")
        }
        Command::Auth(AuthCommand::Ensure) => auth_ensure(&path),
        Command::Auth(AuthCommand::Rotate) => auth_rotate(&path),
        Command::Metastore(MetastoreCommand::Backup { file }) => {
            let settings = config::load(&path)?;
            let written = crate::ksqldb::metastore::backup_to(&settings, file.as_deref())?;
            crate::outln!("{}", written.display())
        }
        Command::Metastore(MetastoreCommand::Restore {
            file,
            skip_incompatible_commands,
        }) => {
            let outcome =
                crate::service::restore::restore(&path, &file, skip_incompatible_commands)?;
            crate::outln!("{outcome}")
        }
        Command::Verify => verify(&path).await,
    }
}

/// `ksql-msk iam-policy [--explain]`.
async fn print_iam_policy(path: &Path, explain: bool) -> Result<()> {
    let settings = config::load(path)?;
    let (target, note) = iam_policy::target(&settings).await;
    if let Some(note) = note {
        crate::errln!("ksql-msk: note: {note}");
    }
    if explain {
        crate::out!("{}", iam_policy::explain(&settings, &target))
    } else {
        let doc = serde_json::to_string_pretty(&iam_policy::policy(&settings, &target))?;
        crate::outln!("{doc}")
    }
}

/// `ksql-msk auth ensure`.
fn auth_ensure(path: &Path) -> Result<()> {
    let settings = config::load(path)?;
    let what = match (
        settings.ksqldb.auth,
        crate::ksqldb::auth::ensure(&settings)?,
    ) {
        (config::RestAuth::None, _) => "ksqldb.auth is \"none\": no credential needed",
        (_, true) => "created",
        (_, false) => "present",
    };
    crate::outln!(
        "{}: {what}",
        crate::ksqldb::auth::password_path(&settings).display()
    )
}

/// `ksql-msk auth rotate`: a new credential, then ksqlDB restarted through the agent.
fn auth_rotate(path: &Path) -> Result<()> {
    let settings = config::load(path)?;
    crate::ksqldb::auth::rotate(&settings)?;
    let written = format!(
        "{}: new credential written",
        crate::ksqldb::auth::password_path(&settings).display()
    );
    match crate::service::control::reload() {
        Ok(outcome) => crate::outln!("{written}; {outcome}"),
        Err(e) if exit_code_of(&e) == ExitCode::Unavailable => crate::outln!(
            "{written}; no running agent to restart ksqlDB ({}): it takes effect at the next start",
            one_line(&e)
        ),
        Err(e) => Err(e.context(format!("{written}, but restarting ksqlDB failed"))),
    }
}

/// `ksql-msk verify`: the active release, then the exporter's jar.
async fn verify(path: &Path) -> Result<()> {
    let settings = config::load(path)?;
    crate::outln!(
        "{}",
        crate::release::integrity::verify_active(&settings).await?
    )?;
    match crate::ksqldb::exporter::verify(&settings)? {
        Some(line) => crate::outln!("{line}"),
        None => Ok(()),
    }
}

/// `ksql-msk install`: phases 1–5, then exit. 69 (one line) when the configured version
/// is held back after its upgrade failed: the release it was rolled back to stays active.
async fn install(path: &Path, dry_run: bool) -> Result<()> {
    if dry_run {
        return crate::service::pipeline::dry_run(path).await;
    }
    let p = crate::service::pipeline::prepare(path, &crate::progress::Quiet).await?;
    if let Some(failed) = &p.upgrade.held_back {
        // An image-baking script must not read this as the configured version installed.
        return Err(crate::exit::fail(
            ExitCode::Unavailable,
            format!(
                "ksqlDB {} is held back: its upgrade failed ({}) and was rolled back, so {} \
                 stays active in {}; set another ksqldb.version to try again",
                failed.version,
                failed.reason,
                p.installed.version,
                p.release_dir().display()
            ),
        ));
    }
    let m = &p.installed.manifest;
    crate::outln!(
        "ksqlDB {} {} in {}",
        p.installed.version,
        if p.installed.activated {
            "installed and activated"
        } else {
            "already installed and active"
        },
        p.release_dir().display()
    )?;
    crate::outln!("brokers: {}", p.discovered.brokers.raw)?;
    crate::outln!("signed by: {}", m.signer)?;
    crate::outln!(
        "iam auth jar: {}/{} (sha256 {})",
        crate::host::layout::JAR_DIR,
        m.jar_file,
        m.jar_sha256
    )?;
    if let Some(e) = &p.exporter {
        crate::outln!(
            "prometheus exporter: {} (sha256 {})",
            e.jar.display(),
            e.sha256
        )?;
    }
    crate::outln!(
        "{}: {}",
        p.properties_path().display(),
        if p.configured.changed {
            "written"
        } else {
            "up to date"
        }
    )
}

fn config_set(path: &Path, key: &str, value: &str) -> Result<()> {
    if let Some(warning) = config::edit::set(path, key, value)? {
        crate::errln!("ksql-msk: {warning}");
    }
    Ok(())
}
