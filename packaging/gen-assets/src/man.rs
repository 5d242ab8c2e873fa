//! The man pages. `ksql-msk(1)` and one page per subcommand are clap_mangen's (NAME,
//! SYNOPSIS, DESCRIPTION, OPTIONS, SUBCOMMANDS, from `ksql_msk::cli::args::Cli`) with FILES,
//! ENVIRONMENT, EXIT STATUS, EXAMPLES and SEE ALSO added from the tables below, page by
//! page; `ksql-msk.toml(5)` is written from the config schema (`schema::KEYS`: every
//! key with its kind, default and doc), so neither can drift from the code. A
//! subcommand without an entry in [`extras`] fails the generation: its page would
//! lack those sections.

use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};
use clap_mangen::roff::{bold, italic, roman, Inline, Roff};
use clap_mangen::Man;
use ksql_msk::config::schema::{Key, Kind, KEYS, PROPERTIES, SECTIONS};
use ksql_msk::exit::{ExitCode, USAGE};

/// Writes `OUT/man1/ksql-msk.1`, `OUT/man1/ksql-msk-<sub>.1` (named as clap_mangen
/// names them, so its SUBCOMMANDS references resolve) and `OUT/man5/ksql-msk.toml.5`.
pub fn write(cmd: &clap::Command, out: &Path) -> Result<()> {
    let version = cmd.get_version().unwrap_or_default().to_owned();
    let source = format!("{} {version}", cmd.get_name());
    let man1 = out.join("man1");
    fs::create_dir_all(&man1).with_context(|| format!("creating {}", man1.display()))?;
    let mut cmd = cmd.clone().disable_help_subcommand(true);
    cmd.build();
    write_command_pages(&cmd, &man1, &source)?;
    let man5 = out.join("man5");
    fs::create_dir_all(&man5).with_context(|| format!("creating {}", man5.display()))?;
    let path = man5.join(format!("{CONFIG_PAGE}.5"));
    fs::write(&path, config_page(&source)).with_context(|| format!("writing {}", path.display()))
}

/// The name of the config file's page in section 5.
const CONFIG_PAGE: &str = "ksql-msk.toml";

/// The `.TH` date: none (the pages are built reproducibly), spelt as an empty quoted
/// argument. roff drops an empty argument from a control line, which shifted the
/// source into the date's place and the manual into the source's.
const NO_DATE: &str = "\"\"";

fn write_command_pages(cmd: &clap::Command, dir: &Path, source: &str) -> Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_command_pages(sub, dir, source)?;
    }
    let man = Man::new(cmd.clone()).date(NO_DATE).source(source);
    let path = dir.join(man.get_filename());
    let page =
        command_page(cmd, &man).with_context(|| format!("rendering {}", man.get_filename()))?;
    fs::write(&path, page).with_context(|| format!("writing {}", path.display()))
}

/// The page's key in [`extras`]: "" for ksql-msk itself, "config-get" for
/// ksql-msk-config-get(1).
fn page_id(cmd: &clap::Command) -> String {
    let name = cmd.get_display_name().unwrap_or_else(|| cmd.get_name());
    name.strip_prefix("ksql-msk")
        .unwrap_or(name)
        .trim_start_matches('-')
        .to_owned()
}

/// clap_mangen's sections in its own order, then ours, then VERSION as clap_mangen ends.
fn command_page(cmd: &clap::Command, man: &Man) -> Result<Vec<u8>> {
    let id = page_id(cmd);
    let Some(extras) = extras(&id) else {
        bail!(
            "no FILES/ENVIRONMENT/EXIT STATUS/EXAMPLES for the subcommand {id:?}: add it to \
             packaging/gen-assets/src/man.rs's extras()"
        );
    };
    let mut page = Page::default();
    page.clap(|w| man.render_title(w))?;
    // No hyphenation: paths, keys and variable names are not words to break.
    let mut nh = Roff::new();
    nh.control("nh", []);
    page.roff(&nh);
    page.clap(|w| man.render_name_section(w))?;
    page.clap(|w| man.render_synopsis_section(w))?;
    page.clap(|w| man.render_description_section(w))?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        page.clap(|w| man.render_options_section(w))?;
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        page.clap(|w| man.render_subcommands_section(w))?;
    }
    if cmd.get_after_long_help().is_some() || cmd.get_after_help().is_some() {
        page.clap(|w| man.render_extra_section(w))?;
    }
    page.roff(&extras.render()?);
    if cmd
        .get_version()
        .or_else(|| cmd.get_long_version())
        .is_some()
    {
        page.clap(|w| man.render_version_section(w))?;
    }
    Ok(page.bytes)
}

/// A page assembled from pieces that each start with roff's apostrophe preamble (as
/// every clap_mangen `render_*` writes it): the page keeps the first.
#[derive(Default)]
struct Page {
    bytes: Vec<u8>,
}

impl Page {
    fn preamble() -> String {
        Roff::new().render()
    }

    fn clap(&mut self, f: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<()> {
        let mut piece = Vec::new();
        f(&mut piece)?;
        self.push(&piece);
        Ok(())
    }

    fn roff(&mut self, roff: &Roff) {
        self.push(roff.render().as_bytes());
    }

    fn push(&mut self, piece: &[u8]) {
        let preamble = Self::preamble();
        if self.bytes.is_empty() {
            self.bytes.extend_from_slice(preamble.as_bytes());
        }
        self.bytes
            .extend_from_slice(piece.strip_prefix(preamble.as_bytes()).unwrap_or(piece));
    }
}

// --- what each page adds -------------------------------------------------------------

/// The sections added to one command's page; entries name rows of [`FILES`] and [`ENV`].
struct Extras {
    files: Vec<&'static str>,
    env: Vec<&'static str>,
    /// Exit codes and what they mean for this command ("" = the general meaning).
    exit: Vec<(i32, &'static str)>,
    /// What it shows, and the command lines.
    examples: Vec<(&'static str, &'static str)>,
    /// Pages besides ksql-msk(1) and ksql-msk.toml(5), which every page names.
    see_also: Vec<&'static str>,
}

const CONFIG_FILES: [&str; 2] = [MAIN_CONFIG, DROPINS];
const MAIN_CONFIG: &str = "/etc/ksql-msk/ksql-msk.toml";
const DROPINS: &str = "/etc/ksql-msk/ksql-msk.d/*.toml";
const SYSCONFIG: &str = "/etc/sysconfig/ksql-msk";
const STATE_DIR: &str = "/var/lib/ksql-msk";
const CURRENT: &str = "/var/lib/ksql-msk/current";
const RELEASES: &str = "/var/lib/ksql-msk/releases/";
const CACHE: &str = "/var/lib/ksql-msk/cache/";
const TRUST: &str = "/var/lib/ksql-msk/trust.toml";
const SOCKET: &str = "/run/ksql-msk/control.sock";
const STATUS_FILE: &str = "/var/lib/ksql-msk/status.json";
const UPGRADE_RECORD: &str = "/var/lib/ksql-msk/upgrade.toml";
const METASTORE: &str = "/var/lib/ksql-msk/metastore/";
const UPGRADES: &str = "/var/lib/ksql-msk/upgrades/";
const ROLLBACK_DROPIN: &str = "/etc/ksql-msk/ksql-msk.d/90-rollback.toml";
const PASSWORD: &str = "/etc/ksql-msk/ksqldb.password";
const UNIT: &str = "/usr/lib/systemd/system/ksql-msk.service";
const KSQL_LINK: &str = "/usr/bin/ksql";
const EXAMPLE_DROPIN: &str = "/usr/share/doc/ksql-msk/ksql-msk.d-example.toml";

/// Every file a page may list, with what it is.
const FILES: &[(&str, &str)] = &[
    (MAIN_CONFIG, "The configuration, see ksql-msk.toml(5). --config or KSQL_MSK_CONFIG names another file; its drop-ins are then read from ksql-msk.d/ beside it."),
    (DROPINS, "Drop-ins, read after the main file in lexical order; a later file wins key by key. Names starting with a dot are ignored."),
    (EXAMPLE_DROPIN, "An example drop-in to copy."),
    (SYSCONFIG, "The service's environment (the unit's EnvironmentFile=): AWS_REGION, HTTPS_PROXY, NO_PROXY, KSQL_MSK_LOG. systemd reads it when the service starts: a change needs systemctl restart ksql-msk, a reload does not re-read it."),
    (STATE_DIR, "The state directory (agent.state_dir), the ksql user's: what follows, ksqlDB's state store (streams/) and its LOG_DIR (logs/, agent.log_dir). A ksql-msk that changes it holds its .lock."),
    (CURRENT, "Symbolic link to the active release, switched atomically."),
    (RELEASES, "Verified, unpacked ksqlDB releases, one directory per version; etc/ksqldb/ksql-server.properties in each is what ksqlDB reads, and etc/ksqldb/ksql-msk-log4j.properties its log4j configuration (generated from the release's log4j.properties with ksqldb.log_level and ksqldb.loggers). After a switch the previous release is kept, older ones are removed."),
    (CACHE, "Downloads, resumed after an interruption and removed once installed."),
    (TRUST, "The signing key and jar hash trusted on first use, when ksqldb.trusted_fingerprints or iam_auth.sha256 is empty."),
    (STATUS_FILE, "The running agent's state (release, brokers, ksqlDB's health and restarts), rewritten atomically on every change, mode 0640 group ksql; ksql-msk status reads it. Its fields are documented in /usr/share/doc/ksql-msk/STATUS.md."),
    (METASTORE, "ksql.metastore.backup.location: ksqlDB's own backup of its command topic, backup__confluent-ksql-<service id>_command_topic_<epoch ms>, one record per line. Keep nothing else there: with its command topic missing, ksqlDB 0.23.1 and later take any file there for a backup and do not create the topic."),
    (UPGRADES, "<from>-to-<to>/: the command-topic backup as it was before each version switch (upgrade, automatic rollback, ksql-msk rollback); the last 8 are kept."),
    (UPGRADE_RECORD, "The last ksqlDB version that became ready, and an upgrade that failed (never ready within agent.start_timeout, or more than agent.restart_limit failures within agent.restart_window) and was rolled back: that version is not installed again until ksqldb.version changes."),
    (ROLLBACK_DROPIN, "Written by ksql-msk rollback, removed by ksql-msk rollback --clear: sets ksqldb.version to the previous kept release."),
    (SOCKET, "The running agent's control socket ($RUNTIME_DIRECTORY/control.sock), there while the service runs: ksql-msk reload asks it for a reload and waits for the outcome."),
    (KSQL_LINK, "A link to ksql-msk: run under this name, ksql-msk is ksql-msk ksql with all its arguments."),
    (PASSWORD, "ksqlDB's REST API credential with ksqldb.auth = \"basic\" (Jetty's user: password,role format; 0640 root:ksql; beside the main config file). ksql-msk auth ensure creates it, ksql-msk auth rotate replaces it."),
    (UNIT, "The systemd unit: Type=notify, User=ksql, ExecStart=ksql-msk run, ExecReload=ksql-msk reload, RestartPreventExitStatus=78 65. Override it with systemctl edit ksql-msk."),
];

/// Every environment variable a page may list: its names (one row for a family) and
/// what it does. The AWS ones are read by the AWS SDK's default chain, as the AWS CLI
/// reads them.
const ENV: &[(&[&str], &str)] = &[
    (&["KSQL_MSK_CONFIG"], "The config file when --config is not given (default /etc/ksql-msk/ksql-msk.toml)."),
    (&["KSQL_MSK_LOG"], "The agent's log filter in tracing's EnvFilter syntax: info (the default), debug, or per module such as info,aws_config=debug."),
    (&["KSQL_MSK_LOG_FORMAT"], "auto, journald or stderr, as --log-format."),
    (&["RUNTIME_DIRECTORY"], "Set by systemd (RuntimeDirectory=ksql-msk): where run listens on control.sock and where reload finds it. Unset, reload looks in /run/ksql-msk."),
    (&["MAINPID"], "Set by systemd for ExecReload=: with no control socket to talk to, reload sends SIGHUP to this process instead (an agent that cannot report; the outcome is in the journal only)."),
    (&["TERM", "COLORTERM", "COLUMNS", "LINES"], "ksql: the terminal and its size, passed on to the CLI. Of the caller's environment the CLI gets only these, LANG, LANGUAGE, LC_* and TZ: the code it runs is the service user's, so credentials, tokens and AWS keys stay out (JAVA_HOME, KSQL_JVM_PERFORMANCE_OPTS, LOG_DIR and PATH=/usr/local/bin:/usr/bin:/bin are set by ksql itself)."),
    (&["XDG_RUNTIME_DIR"], "ksql: the CLI's LOG_DIR (its file log) is ksql-msk/ in this directory, a login session's own; unset, /tmp/ksql-msk-UID, which must then be a directory of that user that nobody else can write."),
    (&["JAVA_HOME"], "The Java that runs ksqlDB when ksqldb.java_home is empty; else java on PATH or /etc/alternatives/java."),
    (&["AWS_REGION", "AWS_DEFAULT_REGION"], "The region when neither msk.region nor the cluster ARN gives it; then the profile, then the instance metadata."),
    (&["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"], "Static credentials, ahead of the profile and the instance role."),
    (&["AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"], "The profile to use and the files it is read from (default ~/.aws/config and ~/.aws/credentials)."),
    (&["AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_ROLE_SESSION_NAME"], "Credentials from a web identity token (a role assumed with it)."),
    (&["AWS_EC2_METADATA_DISABLED", "AWS_EC2_METADATA_SERVICE_ENDPOINT", "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE"], "The instance metadata service (IMDSv2) that gives the instance role's credentials, the region and this host's address: true turns it off; another endpoint, or IPv6."),
    (&["AWS_ENDPOINT_URL_KAFKA"], "The MSK API endpoint (e.g. a VPC interface endpoint) when msk.endpoint_url is empty."),
    (&["AWS_ENDPOINT_URL_STS"], "The STS endpoint of check's AWS identity line (and of the Kafka doctor's question why the brokers refused authentication)."),
    (&["SSL_CERT_FILE", "SSL_CERT_DIR"], "The CA certificates check and the running agent's Kafka doctor trust for the brokers' TLS instead of the system store (MSK's certificates chain to Amazon Trust Services, which the system store has)."),
    (&["HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY"], "The proxy for the downloads (archive, signature, key, jar) and the AWS API calls (MSK, and STS in check), in upper or lower case: HTTPS_PROXY for https URLs, HTTP_PROXY for http ones. NO_PROXY lists the names (with their subdomains), addresses and CIDR ranges reached direct; nothing else is, loopback included, so an msk.endpoint_url or a mirror on this host needs 127.0.0.1 or localhost there. The instance metadata and the health check never use the proxy. ksqlDB gets these variables too: keep 169.254.169.254 in NO_PROXY for it."),
    (&["LANG", "LC_ALL", "TZ"], "Passed on to ksqlDB, as are LANGUAGE, the other LC_* variables, the proxy variables and the AWS variables its IAM module reads; nothing else of the agent's environment is. Without LANG, LC_ALL or LC_CTYPE, ksqlDB gets LANG=C.UTF-8. ksqldb.env adds to them and wins over them."),
];

const CLI_ENV: [&str; 3] = ["KSQL_MSK_CONFIG", "KSQL_MSK_LOG", "KSQL_MSK_LOG_FORMAT"];
/// What the AWS calls read (credentials, region, endpoints).
const AWS_ENV: [&str; 7] = [
    "AWS_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_PROFILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_EC2_METADATA_DISABLED",
    "AWS_ENDPOINT_URL_KAFKA",
    "HTTPS_PROXY",
];

/// The general meaning of each exit code, from `ksql_msk::exit` (a new [`ExitCode`]
/// does not compile here until it is described).
fn exit_meaning(code: i32) -> Option<&'static str> {
    let meaning = |c: ExitCode| {
        match c {
        ExitCode::Data => "EX_DATAERR: data refused: a bad signature, a hash that does not match, a hostile archive entry, an installed file that differs from its manifest. The unit does not restart on it (RestartPreventExitStatus=).",
        ExitCode::Unavailable => "EX_UNAVAILABLE: something needed is not there or not allowed: the cluster is not found, IAM denies an action, a URL answers 404, no ksqlDB is installed, ksqlDB fails to start or exits.",
        ExitCode::Software => "EX_SOFTWARE: a bug or an unexpected local failure (a panic included).",
        ExitCode::Io => "EX_IOERR: local I/O failed: a full disk, permissions, a standard output that cannot be written.",
        ExitCode::Temporary => "EX_TEMPFAIL: the network gave up, or a wait ran out (msk.cluster_wait, agent.lock_timeout, agent.restart_limit); trying later may work, and systemd retries.",
        ExitCode::NoPerm => "EX_NOPERM: this user may not do it: ksql run as root (refused before anything of the release runs), or by someone not in the group owning the configuration and the state directory (ksql).",
        ExitCode::Config => "EX_CONFIG: the configuration is invalid; one line names the file, line, key and problem. The unit does not restart on it (RestartPreventExitStatus=).",
    }
    };
    let all = [
        ExitCode::Data,
        ExitCode::Unavailable,
        ExitCode::Software,
        ExitCode::Io,
        ExitCode::Temporary,
        ExitCode::NoPerm,
        ExitCode::Config,
    ];
    match code {
        0 => Some("Success."),
        USAGE => Some("EX_USAGE: the command line itself is wrong (an unknown subcommand or option, a missing argument)."),
        _ => all.into_iter().find(|c| c.code() == code).map(meaning),
    }
}

/// The codes of a command that can fail in every way the agent can.
const ALL_CODES: [i32; 8] = [0, 64, 65, 69, 70, 74, 75, 78];
/// ksql-msk(1)'s: those, and `ksql`'s refusal (77).
const ROOT_CODES: [i32; 9] = [0, 64, 65, 69, 70, 74, 75, 77, 78];

fn general(codes: &[i32]) -> Vec<(i32, &'static str)> {
    codes.iter().map(|&c| (c, "")).collect()
}

/// Replace the meaning of `code` in `exit` by `text`.
fn with(
    mut exit: Vec<(i32, &'static str)>,
    code: i32,
    text: &'static str,
) -> Vec<(i32, &'static str)> {
    for row in exit.iter_mut().filter(|(c, _)| *c == code) {
        row.1 = text;
    }
    exit
}

const STATE_FILES: [&str; 6] = [STATE_DIR, CURRENT, RELEASES, CACHE, TRUST, UPGRADE_RECORD];

/// The added sections of each page, by [`page_id`]; `None`: a page nobody wrote yet.
fn extras(id: &str) -> Option<Extras> {
    let cfg = CONFIG_FILES.to_vec();
    let cli_env = CLI_ENV.to_vec();
    let cat = |parts: &[&[&'static str]]| parts.concat();
    Some(match id {
        "" => Extras {
            files: FILES.iter().map(|(f, _)| *f).collect(),
            env: ENV.iter().map(|(names, _)| names[0]).collect(),
            exit: general(&ROOT_CODES),
            examples: vec![
                ("Name the cluster, print the IAM policy for the instance role, check the host, start the service and follow its log:",
                 "sudo ksql-msk config set msk.cluster_arn \\\n  arn:aws:kafka:eu-west-1:123456789012:cluster/demo/0b1c2d3e-4f5a-6b7c-8d9e-0f1a2b3c4d5e-2\nsudo ksql-msk iam-policy > ksql-msk-policy.json\nsudo ksql-msk check\nsudo systemctl enable --now ksql-msk\njournalctl -u ksql-msk -f"),
                ("The same with a drop-in (configuration management, EC2 user data), which keeps the packaged file untouched:",
                 "sudo install -m 0640 -g ksql /dev/stdin /etc/ksql-msk/ksql-msk.d/50-cluster.toml <<'EOF'\n[msk]\ncluster_name = \"demo\"\n[properties]\n\"ksql.service.id\" = \"demo_\"\nEOF\nsudo systemctl enable --now ksql-msk"),
                ("Apply a config change (returns once ksqlDB is healthy again, fails if the change is refused):",
                 "sudo ksql-msk config set ksqldb.version 0.29.0\nsudo systemctl reload ksql-msk"),
                ("Bake an AMI: install everything in the image build, start nothing:",
                 "sudo ksql-msk install"),
            ],
            see_also: vec!["systemctl(1)", "journalctl(1)", "systemd.exec(5)"],
        },
        "run" => Extras {
            files: cat(&[&cfg, &[SYSCONFIG], &STATE_FILES, &[SOCKET, UNIT]]),
            env: cat(&[&cli_env, &["RUNTIME_DIRECTORY", "JAVA_HOME"], &AWS_ENV, &["AWS_ENDPOINT_URL_STS", "SSL_CERT_FILE", "LANG"]]),
            exit: with(
                with(general(&ALL_CODES), 0, "Stopped by SIGTERM (systemctl stop), ksqlDB stopped cleanly."),
                75,
                "EX_TEMPFAIL: the network gave up, the cluster did not become usable within msk.cluster_wait, or ksqlDB failed more than agent.restart_limit times within agent.restart_window; systemd restarts the service.",
            ),
            examples: vec![
                ("What the service runs; start it and see its phase in the status line:",
                 "sudo systemctl start ksql-msk\nsystemctl status ksql-msk"),
                ("In the foreground as the service user, with the agent's debug log on stderr:",
                 "sudo -u ksql env KSQL_MSK_LOG=debug ksql-msk --log-format stderr run"),
                ("Why ksqlDB waits for Kafka, as the agent's Kafka doctor found it (it runs only while ksqlDB says Kafka is unhealthy, at most once a minute):",
                 "journalctl -u ksql-msk MESSAGE_ID=32dafb062518454daaa9ad6fa6938e0f"),
            ],
            see_also: vec!["ksql-msk-reload(1)", "ksql-msk-install(1)", "systemctl(1)", "journalctl(1)"],
        },
        "install" => Extras {
            files: cat(&[&cfg, &STATE_FILES]),
            env: cat(&[&cli_env, &AWS_ENV]),
            exit: with(
                general(&ALL_CODES),
                69,
                "EX_UNAVAILABLE: as for every command (cluster not found, access denied, a 404); also when the configured ksqldb.version is held back because its upgrade failed and was rolled back (upgrade.toml): the release it was rolled back to stays active, and one line says so. Set another ksqldb.version to try again.",
            ),
            examples: vec![
                ("What install would change in ksql-server.properties, as a unified diff:",
                 "sudo ksql-msk install --dry-run"),
                ("In an image build: download, verify, unpack and configure, then exit; the first boot only starts ksqlDB:",
                 "sudo ksql-msk install"),
            ],
            see_also: vec!["ksql-msk-run(1)", "ksql-msk-verify(1)"],
        },
        "brokers" => Extras {
            files: cfg,
            env: cat(&[&cli_env, &AWS_ENV[..AWS_ENV.len() - 1]]),
            exit: general(&[0, 64, 69, 70, 74, 75, 78]),
            examples: vec![(
                "The broker string for a Kafka client on this host:",
                "kafka-topics.sh --bootstrap-server \"$(ksql-msk brokers)\" \\\n  --command-config client-iam.properties --list",
            )],
            see_also: vec!["ksql-msk-check(1)"],
        },
        "check" => Extras {
            files: cat(&[&cfg, &[STATE_DIR]]),
            env: cat(&[&cli_env, &["JAVA_HOME"], &AWS_ENV, &["AWS_ENDPOINT_URL_STS", "SSL_CERT_FILE"]]),
            exit: with(
                with(general(&[0, 64, 69, 70, 74, 78]), 0, "Every item of the checklist passed."),
                69,
                "Some item failed (a broker step, an IAM action Kafka denies, ...); its line says what to fix.",
            ),
            examples: vec![
                ("The checklist as the service user, before the first start:",
                 "sudo -u ksql ksql-msk check"),
                ("The IAM actions Kafka denies, with their resources and iam-policy statements:",
                 "ksql-msk check --json | jq '.checks[].kafka | select(.ok == false and .action)'"),
                ("A candidate config before it goes live:",
                 "ksql-msk --config /tmp/candidate/ksql-msk.toml check"),
            ],
            see_also: vec!["ksql-msk-iam-policy(1)", "ksql-msk-brokers(1)"],
        },
        "config" => Extras {
            files: cfg,
            env: cli_env,
            exit: general(&[0, 64, 70, 74, 78]),
            examples: vec![(
                "Read a value, change it, apply the change:",
                "ksql-msk config get ksqldb.version\nsudo ksql-msk config set ksqldb.version 0.29.0\nsudo systemctl reload ksql-msk",
            )],
            see_also: vec!["ksql-msk-config-get(1)", "ksql-msk-config-set(1)"],
        },
        "config-get" => Extras {
            files: cfg,
            env: cli_env,
            exit: with(
                general(&[0, 64, 70, 74, 78]),
                78,
                "EX_CONFIG: KEY is not a config key, or a config file is invalid.",
            ),
            examples: vec![
                ("The effective value, after the drop-ins (an unset key prints its default):",
                 "ksql-msk config get ksqldb.version"),
                ("A ksql-server.properties entry of [properties]:",
                 "ksql-msk config get properties.ksql.service.id"),
            ],
            see_also: vec!["ksql-msk-config-set(1)"],
        },
        "config-set" => Extras {
            files: vec![MAIN_CONFIG, DROPINS],
            env: cli_env,
            exit: with(
                general(&[0, 64, 70, 74, 78]),
                78,
                "EX_CONFIG: KEY is not a config key, VALUE is not of its kind, or the configuration would not load with it; the file is left as it was.",
            ),
            examples: vec![
                ("Change a value in the main file (comments and layout kept) and apply it:",
                 "sudo ksql-msk config set ksqldb.version 0.29.0\nsudo systemctl reload ksql-msk"),
                ("A list, as TOML:",
                 "sudo ksql-msk config set iam_auth.policy_topics '[\"orders\", \"payments*\"]'"),
            ],
            see_also: vec!["ksql-msk-config-get(1)"],
        },
        "iam-policy" => Extras {
            files: cfg,
            env: cat(&[&cli_env, &AWS_ENV[..AWS_ENV.len() - 1]]),
            exit: general(&[0, 64, 70, 74, 78]),
            examples: vec![
                ("Attach the policy to the instance role, from a machine allowed to edit IAM:",
                 "ksql-msk iam-policy > ksql-msk-policy.json\naws iam put-role-policy --role-name ksql-server-role \\\n  --policy-name ksql-msk --policy-document file://ksql-msk-policy.json"),
                ("With iam_auth.role_arn, the two policies apart:",
                 "ksql-msk iam-policy | jq .instance_role\nksql-msk iam-policy | jq .assumed_role.policy"),
                ("Why each action is needed:",
                 "ksql-msk iam-policy --explain"),
            ],
            see_also: vec!["ksql-msk-check(1)"],
        },
        "reload" => Extras {
            files: vec![SOCKET, UNIT],
            env: cat(&[&["RUNTIME_DIRECTORY", "MAINPID"], &cli_env]),
            exit: with(
                with(
                    with(
                        with(
                            general(&ALL_CODES),
                            0,
                            "The reload is done (a restarted ksqlDB is healthy again); its one-line result is on standard output, control characters escaped. A reload that failed exits with the agent's code for the failure (65, 69, 74, 75 or 78) and its one-line reason; ksqlDB keeps running as it was.",
                        ),
                        65,
                        "EX_DATAERR: what listens on the control socket is not the agent (SO_PEERCRED: another uid than the owner of the runtime directory, another pid than MAINPID, or without MAINPID a process not running this ksql-msk executable); nothing was sent to it. Or a reload that failed for a reason of this class.",
                    ),
                    69,
                    "EX_UNAVAILABLE: no agent listens on the control socket (the service is not running), or the reload failed for a reason of this class.",
                ),
                75,
                "EX_TEMPFAIL: the agent did not take the connection, the request or send a line within 10 seconds (it says working every 2 seconds while a reload runs); one line says so. Or a reload that failed for a reason of this class.",
            ),
            examples: vec![
                ("What systemctl reload runs; a refused change fails the job:",
                 "sudo systemctl reload ksql-msk\njournalctl -u ksql-msk -n 5"),
                ("By hand, with the outcome on the terminal:",
                 "sudo ksql-msk reload"),
            ],
            see_also: vec!["ksql-msk-run(1)", "systemctl(1)"],
        },
        "ksql" => Extras {
            files: cat(&[&[KSQL_LINK], &cfg, &[CURRENT, RELEASES]]),
            env: cat(&[&cli_env, &["TERM", "JAVA_HOME", "XDG_RUNTIME_DIR"]]),
            exit: with(
                with(
                    with(
                        with(
                            general(&[0, 64, 65, 69, 70, 74, 77, 78]),
                            0,
                            "Whatever the CLI exits with: ksql-msk has replaced itself with it. The codes below are ksql-msk's own, before the CLI starts, each with one line on standard error.",
                        ),
                        77,
                        "EX_NOPERM: run as root, refused before anything of the release is read or run: the release's bin/ksql belongs to the service user, and as root it would run in root's session on root's terminal (where TIOCSTI can type into root's shell). Run it as a member of group ksql, or as the service user on a terminal of its own: runuser -u ksql --pty -- ksql. Also for a user not in group ksql, with the usermod line to fix it.",
                    ),
                    65,
                    "EX_DATAERR: current does not point into releases/, or the release there is a symlink; nothing is run.",
                ),
                69,
                "EX_UNAVAILABLE: no release is installed yet, or it has no executable bin/ksql.",
            ),
            examples: vec![
                ("Let an operator use the CLI without sudo (once; it takes effect at their next login):",
                 "sudo usermod -aG ksql ec2-user"),
                ("This host's ksqlDB, as the walkthrough ends:",
                 "ksql
ksql> SHOW TOPICS;"),
                ("Another server, and a statement without the prompt:",
                 "ksql -e 'SHOW STREAMS;' http://10.0.1.17:8088"),
            ],
            see_also: vec!["ksql-msk-install(1)", "ksql-msk-verify(1)"],
        },
        "rollback" => Extras {
            files: cat(&[&cfg, &[ROLLBACK_DROPIN, CURRENT, RELEASES, UPGRADE_RECORD, UPGRADES, SOCKET]]),
            env: cat(&[&["RUNTIME_DIRECTORY"], &cli_env]),
            exit: with(
                with(
                    with(
                        with(
                            general(&ALL_CODES),
                            0,
                            "Done: the running agent reloaded and runs the previous release (or, with --clear, the configured version; also when there was nothing to clear).",
                        ),
                        65,
                        "EX_DATAERR: the previous release fails verification (its manifest, signer or a file differs); nothing was written.",
                    ),
                    69,
                    "EX_UNAVAILABLE: no previous release is kept (only the active one is installed), or the command already rolled back (clear it first); or the agent's reload failed for a reason of this class.",
                ),
                75,
                "EX_TEMPFAIL: the drop-in was written (or removed) but the service is not running; the change applies when it next starts.",
            ),
            examples: vec![
                ("Back to the release before the last upgrade, then to the configured version again:",
                 "sudo ksql-msk rollback\nksql-msk config get ksqldb.version\nsudo ksql-msk rollback --clear"),
            ],
            see_also: vec!["ksql-msk-reload(1)", "ksql-msk-verify(1)", "ksql-msk-run(1)"],
        },
        "verify" => Extras {
            files: cat(&[&cfg, &[CURRENT, RELEASES]]),
            env: cli_env,
            exit: with(
                with(
                    general(&[0, 64, 65, 69, 70, 74, 75, 78]),
                    65,
                    "EX_DATAERR: a file of the active release differs from its manifest (changed, missing or added), or the Prometheus exporter jar from its pin.",
                ),
                69,
                "EX_UNAVAILABLE: no release is installed.",
            ),
            examples: vec![(
                "Re-hash the active release:",
                "sudo -u ksql ksql-msk verify",
            )],
            see_also: vec!["ksql-msk-install(1)"],
        },
        "status" => Extras {
            files: cat(&[&cfg, &[STATUS_FILE, CURRENT, RELEASES]]),
            env: cli_env,
            exit: with(
                with(
                    with(
                        general(&[0, 64, 69, 70, 74, 78]),
                        0,
                        "The report was printed, whether the service runs or not (a state file that cannot be used shows as unknown).",
                    ),
                    69,
                    "EX_UNAVAILABLE: nothing is installed and the agent has written no state yet; the report is printed all the same.",
                ),
                74,
                "EX_IOERR: the config or the state directory cannot be read: ksql-msk status is for root and members of group ksql.",
            ),
            examples: vec![
                ("One screen of facts, as a member of group ksql (sudo usermod -aG ksql $USER):",
                 "ksql-msk status"),
                ("The JSON document, for scripts:",
                 "ksql-msk status --json | jq -r .ksqldb.health.condition"),
                ("What the Kafka doctor found while ksqlDB waits for Kafka (the denied IAM action, its resource and iam-policy statement):",
                 "ksql-msk status --json | jq .kafka.diagnosis"),
            ],
            see_also: vec!["ksql-msk-verify(1)", "systemctl(1)"],
        },
        "metastore" | "metastore-backup" => Extras {
            files: vec![MAIN_CONFIG, METASTORE, UPGRADES],
            env: cli_env,
            exit: with(
                with(
                    general(&[0, 64, 65, 69, 70, 74, 78]),
                    65,
                    "EX_DATAERR: the newest backup is not one ksqlDB wrote (a line that is not a JSON string, a colon and a JSON object, or larger than 256 MiB); nothing was written.",
                ),
                69,
                "EX_UNAVAILABLE: ksqlDB has written no backup for the ksql.service.id in effect yet.",
            ),
            examples: vec![(
                "Keep a copy of ksqlDB's command-topic backup (the newest file, whole records only):",
                "sudo ksql-msk metastore backup /root/ksql-metastore-$(date +%F)",
            )],
            see_also: vec!["ksql-msk-status(1)", "ksql-msk-rollback(1)"],
        },
        "metastore-restore" => Extras {
            files: vec![MAIN_CONFIG, METASTORE, UPGRADES, SOCKET],
            env: cli_env,
            exit: with(
                with(
                    with(
                        with(
                            general(&[0, 64, 65, 69, 70, 74, 75, 77, 78]),
                            65,
                            "EX_DATAERR: FILE is not a command-topic backup (missing, not a regular file, empty, larger than 256 MiB, a line that is not a JSON string, a colon and a JSON object, or a last line cut short), or the restore tool failed (its last lines are in the message, the whole transcript in the journal); ksqlDB was started again.",
                        ),
                        69,
                        "EX_UNAVAILABLE: the service is not running (a restore goes through it), or the release has no bin/ksql-restore-command-topic.",
                    ),
                    75,
                    "EX_TEMPFAIL: another ksql-msk metastore restore runs (it holds /var/lib/ksql-msk/restore.lock), or the restore tool took longer than 10 minutes and was killed.",
                ),
                77,
                "EX_NOPERM: not run as root.",
            ),
            examples: vec![
                (
                    "Go back to the command topic as it was before an upgrade (stop ksqlDB on the other hosts of this ksql.service.id first):",
                    "sudo ksql-msk metastore restore /var/lib/ksql-msk/upgrades/0.28.2-to-0.29.0/backup__confluent-ksql-default__command_topic_1639500000000",
                ),
                (
                    "After a rollback that ended DEGRADED: drop what the newer version wrote from the current backup:",
                    "sudo ksql-msk metastore backup /root/metastore && sudo ksql-msk metastore restore --skip-incompatible-commands /root/metastore",
                ),
            ],
            see_also: vec!["ksql-msk-status(1)", "ksql-msk-rollback(1)"],
        },
        "auth" => Extras {
            files: vec![MAIN_CONFIG, PASSWORD, UNIT],
            env: cli_env,
            exit: general(&[0, 64, 69, 70, 74, 78]),
            examples: vec![(
                "Replace the REST API credential; ksqlDB restarts with it:",
                "sudo ksql-msk auth rotate",
            )],
            see_also: vec!["ksql-msk-auth-ensure(1)", "ksql-msk-auth-rotate(1)"],
        },
        "auth-ensure" => Extras {
            files: vec![MAIN_CONFIG, PASSWORD, UNIT],
            env: cli_env,
            exit: with(
                general(&[0, 64, 70, 74, 78]),
                78,
                "EX_CONFIG: the config is invalid, or the password file is unreadable, malformed or cannot be written (not root).",
            ),
            examples: vec![(
                "What the unit runs before each start (as root, ExecStartPre=+):",
                "sudo ksql-msk auth ensure",
            )],
            see_also: vec!["ksql-msk-auth-rotate(1)"],
        },
        "auth-rotate" => Extras {
            files: vec![MAIN_CONFIG, PASSWORD, SOCKET],
            env: cat(&[&["RUNTIME_DIRECTORY"], &cli_env]),
            exit: with(
                general(&ALL_CODES),
                78,
                "EX_CONFIG: ksqldb.auth is \"none\", the config is invalid, or the password file cannot be written (not root).",
            ),
            examples: vec![(
                "New credential, ksqlDB restarted with it, then use it:",
                "sudo ksql-msk auth rotate\nsudo ksql-msk ksql",
            )],
            see_also: vec!["ksql-msk-reload(1)", "ksql-msk-auth-ensure(1)"],
        },
        _ => return None,
    })
}

impl Extras {
    fn render(&self) -> Result<Roff> {
        let mut r = Roff::new();
        r.control("SH", ["FILES"]);
        for file in &self.files {
            let Some((_, what)) = FILES.iter().find(|(f, _)| f == file) else {
                bail!("{file}: not in FILES");
            };
            r.control("TP", []);
            r.text([italic(*file)]);
            r.text([roman(*what)]);
        }
        r.control("SH", ["ENVIRONMENT"]);
        for var in &self.env {
            let Some((names, what)) = ENV.iter().find(|(names, _)| names[0] == *var) else {
                bail!("{var}: not the first name of a row of ENV");
            };
            r.control("TP", []);
            r.text(joined(names.iter().map(|n| bold(*n)), ", "));
            r.text([roman(*what)]);
        }
        r.control("SH", ["EXIT STATUS"]);
        for (code, text) in &self.exit {
            let text = match *text {
                "" => exit_meaning(*code)
                    .with_context(|| format!("exit code {code} has no general meaning"))?,
                t => t,
            };
            r.control("TP", []);
            r.text([bold(code.to_string())]);
            r.text([roman(text)]);
        }
        r.control("SH", ["EXAMPLES"]);
        for (what, lines) in &self.examples {
            r.control("PP", []);
            r.text([roman(*what)]);
            example(&mut r, lines);
        }
        let mut see_also = vec!["ksql-msk(1)", "ksql-msk.toml(5)"];
        see_also.extend(&self.see_also);
        see_also_section(&mut r, &see_also);
        Ok(r)
    }
}

/// A command example: lines as typed, in a literal block.
fn example(r: &mut Roff, lines: &str) {
    r.control("PP", []);
    r.control("RS", ["4"]);
    r.control("EX", []);
    for line in lines.lines() {
        r.text([roman(line)]);
    }
    r.control("EE", []);
    r.control("RE", []);
}

/// `name(section)` references, each name in bold.
fn see_also_section(r: &mut Roff, pages: &[&str]) {
    r.control("SH", ["SEE ALSO"]);
    let mut line = Vec::new();
    for (i, page) in pages.iter().enumerate() {
        let (name, section) = page.split_once('(').unwrap_or((page, ""));
        if i > 0 {
            line.push(roman(", "));
        }
        line.push(bold(name));
        if !section.is_empty() {
            line.push(roman(format!("({section}")));
        }
    }
    r.text(line);
}

fn joined(items: impl Iterator<Item = Inline>, sep: &str) -> Vec<Inline> {
    let mut out = Vec::new();
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(roman(sep));
        }
        out.push(item);
    }
    out
}

/// Text with `code` spans (as the schema's docs write them) in bold.
fn with_code(text: &str) -> Vec<Inline> {
    text.split('`')
        .enumerate()
        .filter(|(_, part)| !part.is_empty())
        .map(|(i, part)| if i % 2 == 1 { bold(part) } else { roman(part) })
        .collect()
}

// --- ksql-msk.toml(5) ----------------------------------------------------------------

/// One line about each section of the config, above its keys.
fn section_intro(section: &str) -> Option<&'static str> {
    Some(match section {
        "msk" => "Which MSK cluster, and how to reach it and its API.",
        "ksqldb" => "The ksqlDB release, where it comes from, who must have signed it, and how it runs.",
        "iam_auth" => "The aws-msk-iam-auth jar that lets ksqlDB authenticate to the brokers with IAM, and the IAM settings.",
        "agent" => "The agent itself: its state directory, health check, timeouts and restart policy.",
        "metrics" => "Metrics: the agent's own state as a Prometheus textfile, JMX, and ksqlDB's JMX metrics through the Prometheus JMX exporter.",
        _ => return None,
    })
}

/// How values of a kind are written, for the kinds that need more than
/// [`Kind::describe`] says; `None` for the others.
fn kind_syntax(kind: Kind) -> Option<&'static str> {
    match kind {
        Kind::Duration => Some("Durations are strings of numbers with units, added up: \"90s\", \"10m\", \"1h 30m\" (units from ms, s, m, h to d, w and more)."),
        Kind::Size => Some("Sizes are strings of a number of bytes with an optional unit k, m, g or t (powers of 1024): \"4096\", \"512m\", \"4g\"."),
        Kind::StrList => Some("Lists are TOML arrays of strings: [\"a\", \"b\"]."),
        Kind::OneOf(_) => Some("Where a key takes one of a set of words, its entry names them."),
        Kind::StrTable => Some("Tables of strings are TOML inline tables, env = { NAME = \"value\" }, or tables of their own, [ksqldb.env] with one NAME = \"value\" a line; a name with dots is quoted, \"io.confluent.ksql\" = \"DEBUG\"."),
        Kind::Str | Kind::Bool | Kind::Int => None,
    }
}

/// The VALUE TYPES paragraph: the syntax of each kind the schema uses, once.
fn value_types() -> String {
    let mut seen: Vec<&str> = Vec::new();
    for key in KEYS {
        if let Some(text) = kind_syntax(key.kind) {
            if !seen.contains(&text) {
                seen.push(text);
            }
        }
    }
    let mut text =
        "Values are TOML: strings in double quotes, true or false, integers without quotes."
            .to_owned();
    for s in seen {
        text.push(' ');
        text.push_str(s);
    }
    text
}

fn config_page(source: &str) -> String {
    let mut r = Roff::new();
    r.control(
        "TH",
        [CONFIG_PAGE, "5", NO_DATE, source, "File Formats Manual"],
    );
    r.control("nh", []);
    r.control("SH", ["NAME"]);
    r.text([roman(format!(
        "{CONFIG_PAGE} - configuration of ksql-msk, the agent that runs ksqlDB against Amazon MSK"
    ))]);
    r.control("SH", ["SYNOPSIS"]);
    r.text([italic("/etc/ksql-msk/ksql-msk.toml")]);
    r.control("br", []);
    r.text([italic("/etc/ksql-msk/ksql-msk.d/*.toml")]);
    r.control("SH", ["DESCRIPTION"]);
    r.text(with_code(
        "ksql-msk reads its settings from TOML files. Every key has a working default except the \
         cluster: set `msk.cluster_arn` or `msk.cluster_name`. The packaged file lists every key \
         with its default and what it does; this page is generated from the same schema the \
         agent validates against, so it names every key there is.",
    ));
    r.control("PP", []);
    r.text(with_code(
        "A key outside the schema, a value of the wrong kind or an unknown section is an error: \
         one line naming the file, line, key and problem, and exit status 78. Check a change with \
         `ksql-msk check`, edit from scripts with `ksql-msk config set KEY VALUE` (it refuses a \
         change that would leave the configuration unloadable), and apply it with \
         `systemctl reload ksql-msk`.",
    ));
    r.control("PP", []);
    r.text(with_code(
        "Keep the files, their directory and ksql-msk.d/ writable by root alone (the package \
         installs ksql-msk.toml root:ksql 0640): run as root, ksql-msk refuses (exit 78) a config \
         file that its group or others can write or that another user owns; run as another user, \
         it warns.",
    ));

    r.control("SH", ["DROP-INS AND MERGE ORDER"]);
    r.text(with_code(
        "The main file is /etc/ksql-msk/ksql-msk.toml, or the file named by `--config` or \
         `KSQL_MSK_CONFIG`. After it, every `*.toml` in the ksql-msk.d/ directory beside it is \
         read, in lexical order of the file names (so 10-base.toml before 50-cluster.toml); \
         names starting with a dot and other suffixes (editor backups such as x.toml~ or \
         .x.toml.swp) are ignored.",
    ));
    r.control("PP", []);
    r.text(with_code(
        "The files are merged key by key over the defaults: a key set in a later file wins, a \
         key it does not set keeps the earlier value. `[properties]` entries and the entries of a \
         table of strings (`ksqldb.env`) merge one by one the same way. `ksql-msk config get` shows the merged value; `ksql-msk config set` edits \
         the main file only, so a drop-in that sets the same key still wins.",
    ));

    r.control("SH", ["VALUE TYPES"]);
    r.text([roman(value_types())]);

    r.control("SH", ["URL TEMPLATES"]);
    r.text(with_code(
        "In `ksqldb.archive_url`, `ksqldb.signature_url`, `ksqldb.key_url` and \
         `iam_auth.jar_url`, `{version}` is the section's version and `{major_minor}` its first \
         two parts (0.29 for 0.29.0); in `signature_url`, `{archive_url}` is the expanded \
         archive URL. A `user:password@` in a URL is never logged or stored.",
    ));

    for section in SECTIONS {
        r.control("SH", [format!("[{section}]").as_str()]);
        r.text([roman(section_intro(section).unwrap_or_default())]);
        for key in KEYS.iter().filter(|k| k.section == *section) {
            key_entry(&mut r, key);
        }
    }

    r.control("SH", [format!("[{PROPERTIES}]").as_str()]);
    r.text(with_code(
        "Extra ksql-server.properties entries for ksqlDB, one `\"name\" = value` a line; a \
         value is a string, integer, float or boolean and is written as it reads. Quote names \
         with dots. The entries win over everything the agent sets itself: the brokers, \
         `security.protocol`, the SASL and IAM settings, `listeners`, \
         `ksql.advertised.listener`, `ksql.streams.state.dir` and the replication settings sized \
         to the cluster. Removing an entry removes it from the properties file again (the file \
         is rendered from the release's pristine copy every time).",
    ));
    r.control("PP", []);
    r.text(with_code(
        "`ksql-msk config get properties.NAME` prints an entry; `ksql-msk config set \
         properties.NAME VALUE` sets one in the main file.",
    ));
    example(
        &mut r,
        "[properties]\n\"ksql.service.id\" = \"analytics_\"\n\"ksql.streams.num.stream.threads\" = 4",
    );

    r.control("SH", ["EXAMPLES"]);
    r.text([roman(
        "A drop-in, /etc/ksql-msk/ksql-msk.d/50-cluster.toml, naming the cluster and the \
         release and joining the ksqlDB cluster analytics_:",
    )]);
    example(
        &mut r,
        "[msk]\ncluster_arn = \"arn:aws:kafka:us-east-1:123456789012:cluster/analytics/0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b-7\"\n\n[ksqldb]\nversion = \"0.29.0\"\nheap = \"6g\"\n\n[properties]\n\"ksql.service.id\" = \"analytics_\"",
    );
    r.control("PP", []);
    r.text([roman(
        "A mirror in a bucket of one's own, for a private subnet without NAT:",
    )]);
    example(
        &mut r,
        "[ksqldb]\narchive_url = \"https://my-mirror.s3.amazonaws.com/ksqldb/confluent-ksqldb-{version}.tar.gz\"\nkey_url = \"https://my-mirror.s3.amazonaws.com/ksqldb/archive.key\"\n\n[iam_auth]\njar_url = \"https://my-mirror.s3.amazonaws.com/aws-msk-iam-auth-{version}-all.jar\"",
    );

    r.control("SH", ["FILES"]);
    for file in [MAIN_CONFIG, DROPINS, EXAMPLE_DROPIN, TRUST] {
        if let Some((_, what)) = FILES.iter().find(|(f, _)| *f == file) {
            r.control("TP", []);
            r.text([italic(file)]);
            r.text([roman(*what)]);
        }
    }
    see_also_section(
        &mut r,
        &[
            "ksql-msk(1)",
            "ksql-msk-config(1)",
            "ksql-msk-check(1)",
            "ksql-msk-reload(1)",
        ],
    );
    r.render()
}

/// Defaults longer than this go below the entry, where a line may overflow: a URL
/// has no place to break.
const LONG_DEFAULT: usize = 48;

/// `name = default`, then what it means and its kind (a long default last, alone).
fn key_entry(r: &mut Roff, key: &Key) {
    r.control("TP", []);
    let long = key.default.len() > LONG_DEFAULT;
    if long {
        r.text([bold(key.name)]);
    } else {
        r.text([bold(key.name), roman(" = "), roman(key.default)]);
    }
    r.text(with_code(&key.doc()));
    r.control("br", []);
    r.text([italic(format!("Type: {}.", key.kind.describe()))]);
    if long {
        r.control("br", []);
        r.text([italic("Default:")]);
        r.control("EX", []);
        r.text([roman(key.default)]);
        r.control("EE", []);
    }
}
