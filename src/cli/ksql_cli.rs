//! `ksql` on the PATH (`/usr/bin/ksql`, a link to the agent, and `ksql-msk ksql`): the
//! active release's own CLI, `bin/ksql`, started with the Java, `JAVA_HOME` and GC
//! options the server gets ([`launch::java_env`]) and pointed at this host's listener.
//!
//! It runs as the invoking user, who must be able to read the config and the release:
//! a member of the group that owns them (`ksql`; the operator adds users with
//! `usermod -aG ksql USER`). Nothing is left in between: the agent `exec`s the script,
//! so the terminal and signals go straight to the CLI.
//!
//! Never as root ([`refuse_root`]): the release belongs to the service user, who (and so
//! a compromised ksqlDB) can rewrite `bin/ksql` at will. Run as root, that code would
//! be root's, in root's session on root's terminal, where `TIOCSTI` lets it type
//! commands into root's shell that run after the CLI exits. Switching to the service
//! user does not help without a terminal of its own (`runuser -u` without `--pty` keeps
//! root's), so root is told how to run it instead, before any of the release is looked at.
//!
//! The environment is an allow-list for every caller ([`cli_env`]): the code it starts
//! is the service user's, so the caller's credentials, tokens and AWS keys stay out.
//! Not the server's either: `KSQL_HEAP_OPTS` (the CLI keeps its release default),
//! `LOG_DIR` (the CLI's file log goes to a private directory of the user, since
//! `ksql-run-class` creates `LOG_DIR` and the user cannot write the state directory),
//! `[ksqldb] env` and `jvm_opts` (they may hold the server's secrets or a JMX port the
//! CLI would then try to bind as well).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::ffi::{OsStr, OsString};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::config::{self, Settings};
use crate::exit::{fail, ExitCode};
use crate::ksqldb::java;
use crate::release::integrity::{self, Active};
use crate::service::supervise::launch;

/// The CLI's script inside a release.
pub const PROGRAM: &str = "bin/ksql";

/// The group named in the refusal when the group of the denied path cannot be looked up
/// (the package's sysusers.d file creates it with the `ksql` user).
pub const DEFAULT_GROUP: &str = "ksql";

/// Everything `ksql` runs: the script, its arguments and its whole environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliLaunch {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub env: Vec<(String, String)>,
}

/// Run the active release's CLI with `args` (replaces this process). Returns only on
/// failure: 77 for root ([`refuse_root`]) and for a user who may not read the config or
/// the release, 69 when no release is installed, 78 for a bad config.
pub fn exec(config_path: &Path, args: Vec<OsString>) -> Result<Infallible> {
    let launch = prepare(config_path, args)?;
    let mut cmd = std::process::Command::new(&launch.program);
    cmd.args(&launch.args)
        .env_clear()
        .envs(launch.env.iter().map(|(k, v)| (k, v)));
    let err = cmd.exec();
    Err(fail(
        ExitCode::Unavailable,
        format!("cannot run {}: {err}", launch.program.display()),
    ))
}

/// The one line for root (real or effective uid 0), before anything of the release is
/// read or run: how to run the CLI instead. 77 (EX_NOPERM), as for a user outside the
/// group: in both cases the answer is to run it as someone who may.
pub fn refuse_root() -> Result<()> {
    if !rustix::process::getuid().is_root() && !rustix::process::geteuid().is_root() {
        return Ok(());
    }
    Err(fail(
        ExitCode::NoPerm,
        format!(
            "ksql does not run as root: the release's {PROGRAM} belongs to the service user, \
             and as root it would run in root's session on root's terminal; run it as a \
             member of group {DEFAULT_GROUP} (sudo usermod -aG {DEFAULT_GROUP} USER, then log \
             in again), or as the service user on a terminal of its own: runuser -u \
             {DEFAULT_GROUP} --pty -- ksql"
        ),
    ))
}

/// Work out what [`exec`] runs.
pub fn prepare(config_path: &Path, args: Vec<OsString>) -> Result<CliLaunch> {
    refuse_root()?;
    readable(config_path)?;
    let settings = config::load(config_path)?;
    let active = active_release(&settings)?;
    let program = active.dir.join(PROGRAM);
    match std::fs::metadata(&program) {
        Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => {}
        Ok(_) => {
            return Err(fail(
                ExitCode::Unavailable,
                format!(
                    "{} is not an executable file (ksqlDB {})",
                    program.display(),
                    active.version
                ),
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Err(refusal(&program, &active.dir))
        }
        Err(e) => {
            return Err(fail(
                ExitCode::Unavailable,
                format!(
                    "ksqlDB {} has no CLI: {}: {e}",
                    active.version,
                    program.display()
                ),
            ))
        }
    }
    let home = java::find_java_home(settings.ksqldb.java_home.as_deref())?;
    let java = java::identify(&home)?;
    let performance_opts = java::performance_opts(&active.version, &java);
    let mut own = launch::java_env(&java.home, performance_opts.as_deref());
    own.push((
        "LOG_DIR".to_string(),
        log_dir()?.to_string_lossy().into_owned(),
    ));
    Ok(CliLaunch {
        program,
        args: cli_args(args, &settings)?,
        env: cli_env(launch::agent_env(), own),
    })
}

/// The release `current` names, or why there is none to run.
fn active_release(settings: &Settings) -> Result<Active> {
    match integrity::active(settings) {
        Ok(Some(active)) => Ok(active),
        Ok(None) => Err(fail(
            ExitCode::Unavailable,
            format!(
                "no ksqlDB release is installed yet ({} does not exist): start the service \
                 (systemctl start ksql-msk) or run ksql-msk install",
                settings.current_link().display()
            ),
        )),
        Err(e) if permission_denied(&e) => {
            Err(refusal(&settings.current_link(), &settings.agent.state_dir))
        }
        Err(e) => Err(e),
    }
}

/// Open `path` to see that this user may read it (the config is 0640 root:ksql).
fn readable(path: &Path) -> Result<()> {
    match std::fs::File::open(path) {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            Err(refusal(path, path.parent().unwrap_or(path)))
        }
        // Loading the config says what else is wrong, with its own words.
        _ => Ok(()),
    }
}

fn permission_denied(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::PermissionDenied)
    })
}

/// The one line for a user who may not read `path`: which group to join and how. The
/// group is the one owning `path` (or `owner_of`, when `path` itself cannot be looked
/// at), so it is right whatever the host named it.
fn refusal(path: &Path, owner_of: &Path) -> anyhow::Error {
    let gid = std::fs::metadata(path)
        .or_else(|_| std::fs::metadata(owner_of))
        .map(|m| m.gid())
        .ok();
    let group = gid
        .and_then(group_name)
        .unwrap_or_else(|| DEFAULT_GROUP.to_string());
    let uid = rustix::process::getuid().as_raw();
    let user = user_name(uid).unwrap_or_else(|| "$USER".to_string());
    let again = if user_in_group(&user, &group) {
        format!(
            "{user} is in group {group}, but this session started before that: log in again \
             (or run newgrp {group})"
        )
    } else {
        format!("add yourself with: sudo usermod -aG {group} {user}, then log in again")
    };
    fail(
        ExitCode::NoPerm,
        format!(
            "permission denied: {}: ksql runs for root and members of group {group}; {again}",
            path.display()
        ),
    )
}

/// The name of `gid` in /etc/group (the refusal's advice only: a group known only to
/// NSS gets the default name).
fn group_name(gid: u32) -> Option<String> {
    name_of_id("/etc/group", gid)
}

/// The name of `uid` in /etc/passwd, else `$USER` (the refusal's advice only).
fn user_name(uid: u32) -> Option<String> {
    name_of_id("/etc/passwd", uid).or_else(|| std::env::var("USER").ok())
}

/// The first field of the line of `db` (`/etc/passwd` or `/etc/group` format) whose
/// third field is `id`.
fn name_of_id(db: &str, id: u32) -> Option<String> {
    let text = std::fs::read_to_string(db).ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        (f.nth(1)?.parse::<u32>().ok()? == id).then(|| name.to_string())
    })
}

/// Whether /etc/group lists `user` in `group` (added, but not in this session's groups).
fn user_in_group(user: &str, group: &str) -> bool {
    std::fs::read_to_string("/etc/group").is_ok_and(|text| {
        text.lines().any(|l| {
            let f: Vec<&str> = l.split(':').collect();
            f.len() == 4 && f[0] == group && f[3].split(',').any(|m| m == user)
        })
    })
}

/// The CLI's arguments: the user's, then this host's server URL unless they name one
/// (or ask for help or the version, which need none), then, for this host's server
/// with `ksqldb.auth = "basic"`, its credential. A server the user names gets none:
/// this host's credential is not sent elsewhere.
pub fn cli_args(args: Vec<OsString>, settings: &Settings) -> Result<Vec<OsString>> {
    let mut out = args;
    if names_server(&out) || asks_help(&out) {
        return Ok(out);
    }
    if let Some(url) = server_url(&settings.ksqldb.listeners) {
        out.push(url.into());
    }
    if !names_user(&out) {
        out.extend(credentials(settings)?);
    }
    Ok(out)
}

/// The operator's credential for this host's REST API (`ksqldb.auth = "basic"`; none
/// with "none"): `--user NAME --password PASSWORD`, read from the password file, which
/// root and group ksql can read. The ksql CLI takes the password only as an argument
/// or at a terminal prompt (no file, no environment variable), so it is on the CLI's
/// command line, which other local users can read in /proc while it runs unless /proc
/// is mounted with hidepid (README, "REST API access"); a user who passes `--user`
/// (or `-u`) is prompted by the CLI instead.
pub fn credentials(settings: &Settings) -> Result<Vec<OsString>> {
    Ok(match crate::ksqldb::auth::credential(settings)? {
        Some(c) => vec![
            "--user".into(),
            c.user.clone().into(),
            "--password".into(),
            c.password().into(),
        ],
        None => Vec::new(),
    })
}

/// Whether the user's arguments already give a user name (`--user`, `-u`).
fn names_user(args: &[OsString]) -> bool {
    args.iter().any(|a| {
        let a = a.to_string_lossy();
        a == "-u" || a == "--user" || a.starts_with("--user=")
    })
}

/// Whether the user's arguments already name a server: a positional `http(s)://` URL.
pub fn names_server(args: &[OsString]) -> bool {
    args.iter().any(|a| {
        let a = a.to_string_lossy().to_ascii_lowercase();
        a.starts_with("http://") || a.starts_with("https://")
    })
}

fn asks_help(args: &[OsString]) -> bool {
    args.iter()
        .take_while(|a| a.as_os_str() != OsStr::new("--"))
        .any(|a| ["-h", "--help", "--version"].iter().any(|f| a == f))
}

/// The URL of this host's first `http`/`https` listener in `ksqldb.listeners`, a
/// wildcard address replaced by loopback (`0.0.0.0` → `127.0.0.1`, `[::]` → `[::1]`).
pub fn server_url(listeners: &str) -> Option<String> {
    listeners.split(',').map(str::trim).find_map(|l| {
        let url = url::Url::parse(l).ok()?;
        if !matches!(url.scheme(), "http" | "https") {
            return None;
        }
        let host = match url.host()? {
            url::Host::Ipv4(a) if a.is_unspecified() => "127.0.0.1".to_string(),
            url::Host::Ipv6(a) if a.is_unspecified() => "[::1]".to_string(),
            url::Host::Ipv6(a) => format!("[{a}]"),
            url::Host::Ipv4(a) => a.to_string(),
            url::Host::Domain(d) => d.to_string(),
        };
        let port = url.port_or_known_default()?;
        Some(format!("{}://{host}:{port}", url.scheme()))
    })
}

/// What passes from the caller's environment to the CLI, for every caller: the
/// terminal (`TERM`, `COLORTERM`), its size (`COLUMNS`, `LINES`), the locale (`LANG`,
/// `LANGUAGE`, `LC_*`) and the time zone (`TZ`). Nothing else: the code it starts is the
/// service user's, and the caller's environment may hold credentials, tokens and AWS
/// keys. (Proxy variables stay out too: they may carry a password, and Java does not
/// read them.)
fn passes_to_cli(name: &str) -> bool {
    matches!(
        name,
        "TERM" | "COLORTERM" | "COLUMNS" | "LINES" | "LANG" | "LANGUAGE" | "TZ"
    ) || name.starts_with("LC_")
}

/// `PATH` for the CLI's scripts: the system's, not the caller's.
pub const CLI_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The CLI's environment, sorted by name: the allow-listed part of the caller's
/// ([`passes_to_cli`]), `LANG` defaulted as for the server, then `own`
/// ([`launch::java_env`] and `LOG_DIR`) over it, with `PATH` fixed to [`CLI_PATH`].
pub fn cli_env(
    inherited: impl IntoIterator<Item = (String, String)>,
    own: Vec<(String, String)>,
) -> Vec<(String, String)> {
    let mut env: BTreeMap<String, String> = inherited
        .into_iter()
        .filter(|(k, _)| passes_to_cli(k))
        .collect();
    launch::default_lang(&mut env);
    env.extend(own);
    env.insert("PATH".into(), CLI_PATH.into());
    env.into_iter().collect()
}

/// A directory only the CLI's user can write, for its `LOG_DIR`: `$XDG_RUNTIME_DIR/ksql-msk`
/// (a login session's), else `<tmp>/ksql-msk-<uid>`. An existing one must be a real
/// directory of that user that nobody else may write (in /tmp anyone could have made it
/// first, or left a link there).
fn log_dir() -> Result<PathBuf> {
    let euid = rustix::process::geteuid().as_raw();
    let runtime = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|d| d.is_absolute() && private_to(d, euid).is_ok());
    let dir = match runtime {
        Some(d) => d.join("ksql-msk"),
        None => std::env::temp_dir().join(format!("ksql-msk-{euid}")),
    };
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(e)
                .with_context(|| format!("creating the CLI's log directory {}", dir.display()))
        }
    }
    private_to(&dir, euid).map_err(|why| {
        fail(
            ExitCode::Io,
            format!(
                "{}: {why}; it would hold the CLI's log: remove it and run ksql again",
                dir.display()
            ),
        )
    })?;
    Ok(dir)
}

/// `Ok` when `dir` (not followed if a link) is a directory owned by `uid` that its group
/// and others cannot write.
fn private_to(dir: &Path, uid: u32) -> std::result::Result<(), String> {
    let meta = std::fs::symlink_metadata(dir).map_err(|e| e.to_string())?;
    if !meta.is_dir() {
        return Err("not a directory".into());
    }
    if meta.uid() != uid {
        return Err(format!("owned by uid {}, not {uid}", meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "writable by others (mode {:04o})",
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_server_url_is_the_first_http_listener_with_wildcards_on_loopback() {
        assert_eq!(
            server_url("http://0.0.0.0:8088").as_deref(),
            Some("http://127.0.0.1:8088")
        );
        assert_eq!(
            server_url("http://[::]:8089").as_deref(),
            Some("http://[::1]:8089")
        );
        assert_eq!(
            server_url("https://10.0.0.5:8443, http://0.0.0.0:8088").as_deref(),
            Some("https://10.0.0.5:8443")
        );
        assert_eq!(
            server_url("ftp://x:1,http://ksql.internal").as_deref(),
            Some("http://ksql.internal:80")
        );
        assert_eq!(server_url("ftp://x:1"), None);
    }

    #[test]
    fn a_url_or_a_help_flag_in_the_arguments_keeps_the_default_out() {
        assert!(names_server(&os(&[
            "--execute",
            "SHOW TOPICS;",
            "HTTP://h:1"
        ])));
        assert!(!names_server(&os(&["-e", "SELECT 'see http://x' FROM s;"])));
        assert!(asks_help(&os(&["--help"])));
        assert!(asks_help(&os(&["-u", "me", "--version"])));
        assert!(!asks_help(&os(&["--", "--help"])));
    }

    #[test]
    fn the_cli_env_is_an_allow_list_of_terminal_locale_and_time_zone() {
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let env = cli_env(
            pairs(&[
                ("TERM", "xterm-256color"),
                ("COLUMNS", "120"),
                ("LC_TIME", "en_GB.UTF-8"),
                ("TZ", "Europe/Berlin"),
                ("HOME", "/home/op"),
                ("PATH", "/home/op/bin:/usr/bin"),
                ("AWS_SECRET_ACCESS_KEY", "marker-secret"),
                ("GITHUB_TOKEN", "marker-token"),
                ("HTTPS_PROXY", "http://u:pw@proxy:3128"),
                ("KSQL_OPTS", "-Dpassword=marker"),
                ("JAVA_HOME", "/usr/lib/jvm/other"),
                ("KSQL_MSK_CONFIG", "/etc/x.toml"),
                ("NOTIFY_SOCKET", "/run/n"),
                ("LD_PRELOAD", "/tmp/x.so"),
            ]),
            pairs(&[
                ("JAVA_HOME", "/jdk"),
                ("PATH", "/from/java_env"),
                ("LOG_DIR", "/run/user/1000/ksql-msk"),
            ]),
        );
        assert_eq!(
            env,
            pairs(&[
                ("COLUMNS", "120"),
                ("JAVA_HOME", "/jdk"),
                ("LANG", launch::DEFAULT_LANG),
                ("LC_TIME", "en_GB.UTF-8"),
                ("LOG_DIR", "/run/user/1000/ksql-msk"),
                ("PATH", CLI_PATH),
                ("TERM", "xterm-256color"),
                ("TZ", "Europe/Berlin"),
            ])
        );
    }

    #[test]
    fn a_shared_log_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let euid = rustix::process::geteuid().as_raw();
        assert!(private_to(dir.path(), euid).is_ok());
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(private_to(dir.path(), euid)
            .unwrap_err()
            .contains("writable"));
        assert!(private_to(dir.path(), euid + 1)
            .unwrap_err()
            .contains("owned by"));
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("/", &link).unwrap();
        assert_eq!(private_to(&link, euid).unwrap_err(), "not a directory");
    }
}
