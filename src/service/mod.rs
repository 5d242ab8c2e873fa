//! The agent as a systemd service, its core: phases 1–5 (`pipeline`), supervising
//! ksqlDB (`supervise`, `run`), sd_notify, the control socket, upgrades and rollback,
//! and the status it records.

pub(crate) mod control;
pub(crate) mod notify;
pub(crate) mod pipeline;
pub(crate) mod restore;
pub(crate) mod rollback;
pub(crate) mod run;
pub(crate) mod status;
pub(crate) mod supervise;
pub(crate) mod upgrade;
