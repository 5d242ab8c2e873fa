//! The Kafka doctor: a small Kafka client that asks the brokers what ksqlDB will meet
//! (DNS, TCP, TLS, SASL `AWS_MSK_IAM`, authentication, then side-effect-free
//! authorization probes) and names each failure: the step, or the IAM action, the
//! resource ARN and the `ksql-msk iam-policy` statement (Sid) that grants it.
//!
//! - `wire`, `messages`: framing and the fixed request versions; hand-written, bounded
//!   decoders (why: `wire`'s module doc).
//! - `tls`, `sasl_iam`, `client`: one authenticated connection.
//! - `probes`: what ksqlDB needs (the plan) and how each need is asked.
//!
//! Used by `ksql-msk check` ([`diagnose`]) and by the supervisor while ksqlDB says
//! Kafka is unhealthy.

mod client;
mod credentials;
mod messages;
mod probes;
mod sasl_iam;
mod tls;
pub mod wire;

#[cfg(test)]
mod tests;

use std::time::Duration;

use serde::Serialize;

use crate::config::{ClusterArn, Settings};
use crate::discovery::BrokerAddr;

pub use messages::{decode_any, Api, DECODED};

/// The step of a broker connection a line is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    Dns,
    Tcp,
    Tls,
    Sasl,
    Authentication,
    Authorization,
}

impl Step {
    pub fn label(self) -> &'static str {
        match self {
            Step::Dns => "DNS",
            Step::Tcp => "TCP",
            Step::Tls => "TLS",
            Step::Sasl => "SASL",
            Step::Authentication => "authentication",
            Step::Authorization => "authorization",
        }
    }
}

/// One line of the diagnosis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub ok: bool,
    pub step: Step,
    /// The broker (`host:port`) a connection step is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker: Option<String>,
    /// The IAM action (`kafka-cluster:...`) an authorization finding is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// The resource ARN it was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// The `ksql-msk iam-policy` statement that grants it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    pub text: String,
    pub millis: u64,
}

impl Finding {
    fn step(broker: &str, step: Step, ok: bool, took: Duration, text: String) -> Finding {
        Finding {
            ok,
            step,
            broker: Some(broker.to_string()),
            action: None,
            resource: None,
            sid: None,
            text,
            millis: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// The checklist line, without the ✓/✗ mark.
    pub fn line(&self) -> String {
        let what = match &self.broker {
            Some(b) => format!("broker {b}: {}", self.step.label()),
            None => format!("Kafka {}", self.step.label()),
        };
        format!("{what}: {} ({} ms)", self.text, self.millis)
    }
}

/// All findings, in order: each broker's connection steps, then authorization.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Diagnosis {
    pub findings: Vec<Finding>,
}

impl Diagnosis {
    pub fn ok(&self) -> bool {
        self.findings.iter().all(|f| f.ok)
    }
    pub fn first_failure(&self) -> Option<&Finding> {
        self.findings.iter().find(|f| !f.ok)
    }
}

/// Ask the brokers. Never fails: every problem is a finding.
pub async fn diagnose(
    settings: &Settings,
    cluster: &ClusterArn,
    brokers: &[BrokerAddr],
) -> Diagnosis {
    let signer = credentials::signer(settings).await;
    let signer_ref = signer.as_ref().map_err(String::as_str);
    let connects = brokers.iter().map(|b| client::connect(b, signer_ref));
    let results = futures_util::future::join_all(connects).await;
    let mut findings = Vec::new();
    let mut conns = Vec::new();
    let mut denied = None;
    for (lines, conn, failure) in results {
        findings.extend(lines);
        if let Some(c) = conn {
            conns.push(c);
        }
        if let Some(client::AuthFailure::Denied(message)) = failure {
            denied.get_or_insert(message);
        }
    }
    let target = crate::iam_policy::Target::exact(cluster);
    if let Some(message) = denied {
        findings.push(
            credentials::explain_denial(settings, &target, &message, signer.as_ref().ok()).await,
        );
    }
    if !conns.is_empty() {
        findings.extend(probes::run(settings, &target, &mut conns, signer_ref).await);
    }
    Diagnosis { findings }
}
