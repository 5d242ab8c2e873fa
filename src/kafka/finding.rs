//! The lines of a diagnosis: one per connection step of each broker, then one per
//! authorization probe.

use std::time::Duration;

use serde::Serialize;

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
    pub(super) fn step(
        broker: &str,
        step: Step,
        ok: bool,
        took: Duration,
        text: String,
    ) -> Finding {
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
