//! Stand-ins for everything ksql-msk talks to, speaking the real wire formats, for the
//! integration tests and the sandbox. Never part of the shipped binary.

pub mod artifacts;
pub mod hostile;
pub mod http;
pub mod imds;
pub mod kafka;
pub mod kafka_standin;
pub mod msk;
pub mod proxy;
pub mod signing;
pub mod standins;
pub mod sts;
pub mod tarball;
