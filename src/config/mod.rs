//! Configuration: `/etc/ksql-msk/ksql-msk.toml` plus drop-ins in `ksql-msk.d/*.toml`.
//!
//! Each file is parsed into a [`Fragment`] (only the keys it sets, each with the file
//! and line it came from), fragments are merged in order over the schema defaults, and
//! the result is validated once into typed [`Settings`]. Every error names the file,
//! the line, the key and what is wrong, and exits 78.

pub mod edit;
mod fragment;
mod load;
pub mod schema;
mod settings;
mod values;

pub use fragment::{check_kind, config_error, parse_fragment, Entry, Fragment, Origin};
pub use load::{
    config_files, default_value, load, load_merged, resolve_path, writable_by_others, Merged,
    CONFIG_ENV, DEFAULT_CONFIG_PATH, DROPIN_DIR,
};
pub use settings::{
    property_string, AgentSettings, ClusterRef, Connectivity, Heap, IamAuthSettings, KeySource,
    KsqldbSettings, MskSettings, Settings,
};
pub use values::{
    expand_template, is_cluster_name, is_region, major_minor, normalize_fingerprint, parse_size,
    redact_url, ClusterArn, RedactedUrl,
};

#[cfg(test)]
mod tests;
