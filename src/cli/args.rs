//! The command line (DESIGN.md, "Command line"). Kept in the library so packaging can
//! generate the man page and shell completions from the same definition.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum, ValueHint};

#[derive(Debug, Parser)]
#[command(
    name = "ksql-msk",
    version,
    about = "Run ksqlDB against Amazon MSK with IAM authentication",
    long_about = "Discovers an Amazon MSK cluster's IAM bootstrap brokers, installs a \
                  signature-verified ksqlDB release with the aws-msk-iam-auth jar, patches \
                  ksql-server.properties and supervises ksqlDB under systemd."
)]
pub struct Cli {
    /// Config file [default: /etc/ksql-msk/ksql-msk.toml]; drop-ins are read from
    /// ksql-msk.d/ beside it.
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        value_hint = ValueHint::FilePath,
        env = "KSQL_MSK_CONFIG"
    )]
    pub config: Option<PathBuf>,

    /// Where the agent's own log goes: journald when stderr is the journal, else stderr.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t = LogFormat::Auto,
        env = "KSQL_MSK_LOG_FORMAT"
    )]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Auto,
    Journald,
    Stderr,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Discover, install, configure and supervise ksqlDB (the systemd service runs this).
    Run,
    /// Discover, fetch, verify, unpack and configure ksqlDB, then exit.
    Install {
        /// Show what would change in ksql-server.properties as a unified diff; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print the cluster's IAM bootstrap broker string.
    Brokers,
    /// Preflight checklist: config, AWS identity, cluster, per broker DNS, TCP, TLS, SASL
    /// AWS_MSK_IAM and authentication, the IAM actions ksqlDB needs, Java, disk, ports.
    Check {
        /// Print the checklist as one JSON document instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Read or edit the config file in place (comments and layout kept).
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print the least-privilege IAM policy (JSON) for the configured cluster.
    #[command(
        long_about = "Print the least-privilege IAM policy (JSON) for the configured \
        cluster. Without iam_auth.role_arn it is one policy document for the instance role. \
        With it, one JSON object holding two: \"instance_role\" (discovery and \
        sts:AssumeRole on that role) and \"assumed_role\": {\"role_arn\", \"policy\"} (the \
        kafka-cluster statements ksqlDB needs); `jq .instance_role` and \
        `jq .assumed_role.policy` split them. ARNs use the region's partition (aws, aws-cn, \
        aws-us-gov). With only msk.cluster_name the cluster's ARN is looked up through the \
        MSK API (ListClustersV2); if that fails, account and cluster id (and the region if \
        unknown) are wildcards and one note on stderr says why."
    )]
    IamPolicy {
        /// Instead of the JSON, print each statement's resources and why each action is
        /// needed.
        #[arg(long)]
        explain: bool,
    },
    /// Ask the running agent to reload (phases 1–5 again) and wait for the outcome; what
    /// `systemctl reload ksql-msk` runs.
    #[command(
        long_about = "Ask the running agent to reload and wait for the outcome: phases 1–5 \
        run again, and ksqlDB is restarted only if what it runs changed (release, properties, \
        environment, brokers); a restart is done when the new ksqlDB is healthy. Exits 0 with \
        the agent's one-line result, or with the agent's exit code and reason when the reload \
        failed (ksqlDB then keeps running as it was). Talks to the agent over \
        $RUNTIME_DIRECTORY/control.sock (/run/ksql-msk/control.sock); this is what the \
        unit's ExecReload= runs."
    )]
    Reload,
    /// Run the active ksqlDB release's CLI (bin/ksql) against this host's server; what
    /// /usr/bin/ksql runs.
    #[command(
        disable_help_flag = true,
        long_about = "Run the active ksqlDB release's own CLI (bin/ksql) with the Java, \
        JAVA_HOME and GC options the server gets, connected to this host's listener (the first \
        http(s) listener in ksqldb.listeners, a wildcard address replaced by loopback) unless \
        ARGS name a server URL. /usr/bin/ksql, a link to ksql-msk, does the same with all its \
        arguments. It runs as the invoking user, who must be root or a member of the group \
        owning the config and the state directory (ksql: sudo usermod -aG ksql USER, then \
        log in again); anyone else gets one line and exit 77. The CLI's own log goes to \
        $XDG_RUNTIME_DIR/ksql-msk (else /tmp/ksql-msk-UID). Exit 69 when no release is \
        installed yet, 78 for a bad config; otherwise the CLI's own exit code (the agent \
        execs it and is gone)."
    )]
    Ksql {
        /// Passed to the CLI as they are (`ksql-msk ksql --help` shows the CLI's own help).
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "ARGS"
        )]
        args: Vec<std::ffi::OsString>,
    },
    /// Switch to the previous kept release and restart ksqlDB through the running
    /// service; `--clear` returns to the configured version.
    #[command(
        long_about = "Switch to the previous kept release (the one the last upgrade \
        replaced) by hand: the release is verified like `ksql-msk verify`, then \
        ksql-msk.d/90-rollback.toml is written beside the config file, setting \
        ksqldb.version to it (so `config get ksqldb.version` shows it and restarts keep it), \
        and the running agent reloads, restarting ksqlDB. `--clear` removes the drop-in and \
        reloads: back to the configured version. Run as root. Exit codes: 0 done; 69 no \
        previous release (or already rolled back: --clear first); 65 the previous release \
        fails verification (nothing written); 75 the drop-in was written or removed but the \
        service is not running (it takes effect at the next start); else the agent's reload \
        outcome."
    )]
    Rollback {
        /// Remove the rollback drop-in and return to the configured version.
        #[arg(long)]
        clear: bool,
    },
    /// Re-hash every file of the active release against its manifest and, with
    /// `[metrics] prometheus_port` set, the exporter jar against its pin (exit 65 on any
    /// difference, 69 when nothing is installed).
    Verify,
    /// Show the active and kept releases, signer, IAM jar, brokers, ksqlDB's health and
    /// restarts, from the agent's state file and what is on disk.
    #[command(
        long_about = "Show what the agent knows: the active release (version, archive \
        SHA-256, signer, pinned or trust on first use, when verified), the releases kept \
        beside it, the IAM jar, the brokers as last discovered and when, the cluster, \
        ksqlDB's pid, uptime and health condition, restarts in the current window, the \
        last failure and the config files in effect. Read from the state file the running \
        agent writes (<state_dir>/status.json, readable by group ksql) and from the state \
        directory; works while the service is stopped, and then says so. Exits 0 when it \
        could report, 69 when nothing is installed and the agent never ran, 74 when the \
        files cannot be read (not root and not in group ksql). docs/STATUS.md documents \
        every field of --json."
    )]
    Status {
        /// Print the stable JSON document (docs/STATUS.md) instead of the summary.
        #[arg(long)]
        json: bool,
    },
    /// ksqlDB's REST API credential (ksqldb.auth = "basic"): create or rotate it.
    #[command(subcommand)]
    Auth(AuthCommand),
    /// ksqlDB's command-topic backup (ksql.metastore.backup.location).
    #[command(subcommand)]
    Metastore(MetastoreCommand),
}

/// `ksql-msk metastore`: ksqlDB's command-topic backup in <state_dir>/metastore.
#[derive(Debug, Subcommand)]
pub enum MetastoreCommand {
    /// Copy the newest command-topic backup of the service id in effect to FILE (default:
    /// its own name in the current directory), atomically, 0640, group of the config;
    /// every line is checked to be a record (a JSON string, `:`, a JSON object) and a
    /// line ksqlDB is still writing is left out. Prints the file written.
    Backup {
        /// Where to write the copy.
        file: Option<std::path::PathBuf>,
    },
    /// Restore ksqlDB's command topic from FILE (a backup: every line a record) through
    /// the running service: ksqlDB stopped, the release's own
    /// bin/ksql-restore-command-topic run as the service user with the rendered
    /// properties, the earlier backup files set aside, ksqlDB started again. Root only;
    /// one restore at a time. Stop ksqlDB on the other hosts of this service id first.
    Restore {
        /// The backup to restore (e.g. one `metastore backup` wrote, or a copy in
        /// <state_dir>/upgrades/).
        file: std::path::PathBuf,
        /// Drop commands this ksqlDB version cannot read (and clean up their queries'
        /// internal topics and state), as the tool's --skip-incompatible-commands does.
        #[arg(short = 's', long)]
        skip_incompatible_commands: bool,
    },
}

/// `ksql-msk auth`: the REST API credential in /etc/ksql-msk/ksqldb.password.
#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Create the password file with a random credential if ksqldb.auth is "basic" and
    /// it is missing (0640, root and the config file's group); an existing one is only
    /// checked. Run as root: the unit's ExecStartPre=+ and ExecReload=+ do. Never prints
    /// the password.
    Ensure,
    /// Replace the credential with a new random one, then ask the running agent to
    /// reload, which restarts ksqlDB with it (done when ksqlDB is healthy again; the
    /// old password stops working). Run as root. Never prints the password.
    Rotate,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective value of KEY (e.g. ksqldb.version, properties.ksql.service.id).
    Get { key: String },
    /// Set KEY to VALUE in the main config file; the value is checked before writing.
    /// VALUE may start with `-` (`config set ksqldb.jvm_opts "-Xss2m"`).
    Set {
        key: String,
        #[arg(allow_hyphen_values = true)]
        value: String,
    },
}
