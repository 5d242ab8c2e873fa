//! Stand-ins for everything ksql-msk talks to, speaking the real wire formats, for the
//! integration tests and the sandbox. Never part of the shipped binary.

pub mod http;
pub mod imds;
pub mod msk;
pub mod sts;
