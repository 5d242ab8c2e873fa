//! Files on the host, done so that nothing planted under the state directory can
//! redirect them (docs/RELIABILITY.md, "Planted links and the state directory").
//!
//! The `ksql` user can write everything under the state directory, and root runs
//! commands over it. So every path under it is resolved beneath the held handle of the
//! state directory ([`held`]), one component at a time, no link followed; a write never
//! opens an existing name ([`atomic`]); what root makes there is handed over through
//! its own descriptors ([`handover`]); and a state file is read one bounded, checked
//! way ([`statefile`]).

mod atomic;
mod dir;
mod handover;
mod held;
mod make;
mod space;
mod statefile;
#[cfg(test)]
pub(crate) mod tests;

pub use atomic::{ensure_dir, sync_dir, write_atomic};
pub use dir::{Dir, Kind};
pub use handover::adopt_state_dir;
#[cfg(test)]
pub use handover::SERVICE_UMASK;
pub use held::{current_target, parent_dir};
pub use space::{check_space, free_space_near};
pub use statefile::{open_state_file, read_state, read_state_file, read_state_text, StateFile};
pub(crate) mod ca_store;
pub mod failpoint;
pub(crate) mod journal;
pub mod layout;
pub(crate) mod lock;
pub(crate) mod output;
