//! The Kafka doctor: a small Kafka client that asks the brokers what ksqlDB will meet
//! (DNS, TCP, TLS, SASL `AWS_MSK_IAM`, authentication, then side-effect-free
//! authorization probes) and names each failure: the step, or the IAM action, the
//! resource ARN and the `ksql-msk iam-policy` statement (Sid) that grants it.
//!
//! - `wire`, `messages`: framing and the fixed request versions; hand-written, bounded
//!   decoders (why: `wire`'s module doc).
//! - `tls`, `sasl_iam`, `client`: one authenticated connection.
//! - `probes`: what ksqlDB needs (the plan) and how each need is asked.
//! - `finding`: the lines of a diagnosis; `doctor`: [`diagnose`], all of the above in turn.
//!
//! Used by `ksql-msk check` ([`diagnose`]) and by the supervisor while ksqlDB says
//! Kafka is unhealthy.

mod client;
mod credentials;
mod doctor;
mod finding;
mod messages;
mod probes;
mod sasl_iam;
mod tls;
pub mod wire;

#[cfg(test)]
mod tests;

pub use doctor::diagnose;
pub use finding::{Diagnosis, Finding, Step};
pub use messages::{decode_any, Api, DECODED};
