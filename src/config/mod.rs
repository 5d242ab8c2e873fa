//! Configuration: `/etc/ksql-msk/ksql-msk.toml` plus drop-ins in `ksql-msk.d/*.toml`.
//!
//! Each file is parsed into a [`Fragment`] (only the keys it sets, each with the file
//! and line it came from), fragments are merged in order over the schema defaults, and
//! the result is validated once into typed [`Settings`]. Every error names the file,
//! the line, the key and what is wrong, and exits 78.
//!
//! - A drop-in is a `*.toml` file whose name does not start with a dot; anything else
//!   in `ksql-msk.d/` (editor lock, swap and backup files, READMEs) is ignored.
//! - Who may change the configuration: run as root (e.g. `ksql-msk install`), the agent
//!   acts on it with root's powers, so a config file, its directory or the drop-in
//!   directory that its group or others can write, or that belongs to a user other than
//!   root, is refused with 78. Run as another user (the service runs as `ksql`), the
//!   same finding is a warning on stderr: that process can do no more than its user.
//!   A sticky world-writable directory (such as /tmp) is accepted for the main file,
//!   not for the drop-ins (others could add one).
//! - URL values must not hold control characters; `file://` key URLs must be absolute.
//!   Configured URLs are [`ConfigUrl`]s, whose `Display` and `Debug` hide
//!   `user:password@` (as [`redact_url`] / [`RedactedUrl`] do for text); the real URL
//!   is had only from [`ConfigUrl::expose`], where the request is made. What is stored
//!   (manifest, trust.toml, the download cache) holds the redacted form, so changing
//!   only the password of a mirror URL is not a different input.
//! - Keys are named in code by the constants of [`schema::keys`], never by strings.

pub mod edit;
mod fragment;
mod load;
mod merge;
pub mod schema;
pub(crate) mod secrets;
mod settings;
mod types;
mod values;

pub use fragment::{check_kind, config_error, parse_fragment, Entry, Fragment, Origin};
pub use load::{
    config_files, load, load_merged, load_with_version, resolve_path, writable_by_others,
    CONFIG_ENV, DEFAULT_CONFIG_PATH, DROPIN_DIR,
};
pub use merge::{default_value, Merged};
pub use settings::{
    is_env_name, is_logger_name, log_level, property_string, table_entry_problem, AgentSettings,
    ClusterRef, Connectivity, EnvVars, Heap, IamAuthSettings, KeySource, KsqldbSettings,
    MetricsSettings, MskSettings, RestAuth, Settings, AGENT_ENV, LOG_LEVELS,
};
pub use types::{ConfigUrl, Fingerprint, Sha256Digest};
pub use values::{
    expand_template, is_cluster_name, is_region, is_version, major_minor, normalize_fingerprint,
    parse_size, redact_url, ClusterArn, RedactedUrl,
};

#[cfg(test)]
mod tests;
