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

    /// A line about the cluster as a whole (no broker).
    pub(super) fn cluster(step: Step, ok: bool, took: Duration, text: String) -> Finding {
        Finding {
            broker: None,
            ..Finding::step("", step, ok, took, text)
        }
    }

    /// One short line for STATUS and the journal: what is wrong, without the advice and
    /// with ARNs cut to their resource (`cluster/demo/…`, `topic/demo/…/name`):
    /// `IAM denies kafka-cluster:Connect on cluster/demo/1a2b… for arn:aws:sts::…`.
    pub fn summary(&self) -> String {
        const ADVICE: [&str; 3] = [
            ": grant it with",
            ": `ksql-msk iam-policy`",
            ": no `ksql-msk",
        ];
        let mut text = self.text.as_str();
        for cut in ADVICE {
            if let Some(at) = text.find(cut) {
                text = &text[..at];
            }
        }
        let text = short_arns(text);
        let line = match &self.broker {
            Some(b) => format!("broker {b}: {}: {text}", self.step.label()),
            None => text,
        };
        let mut line = line.replace(['\n', '\r'], " ");
        if line.chars().count() > SUMMARY_CHARS {
            line = line.chars().take(SUMMARY_CHARS - 1).collect::<String>() + "…";
        }
        line
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

    /// What to tell an operator first: the first failure about the cluster as a whole
    /// (why the brokers refused authentication: the denied Connect with the identity,
    /// expired credentials, a skewed clock; or a denied action), else the first failure
    /// of a broker's steps (DNS, TCP, TLS, SASL).
    pub fn cause(&self) -> Option<&Finding> {
        self.findings
            .iter()
            .find(|f| !f.ok && f.broker.is_none())
            .or_else(|| self.first_failure())
    }
}

/// The longest [`Finding::summary`] (systemd shows STATUS on one line).
const SUMMARY_CHARS: usize = 240;

/// `arn:aws:kafka:<region>:<account>:cluster/…` → `cluster/…` (the account and region
/// are the cluster's own, shown elsewhere).
fn short_arns(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("arn:aws:kafka:") {
        out.push_str(&rest[..at]);
        let arn = &rest[at..];
        let end = arn.find([' ', ',', ')']).unwrap_or(arn.len());
        let resource = arn[..end].splitn(6, ':').nth(5).unwrap_or(&arn[..end]);
        out.push_str(resource);
        rest = &arn[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denied(text: &str) -> Finding {
        Finding {
            ok: false,
            step: Step::Authorization,
            broker: None,
            action: Some("kafka-cluster:DescribeTopic".into()),
            resource: None,
            sid: None,
            text: text.into(),
            millis: 3,
        }
    }

    #[test]
    fn the_cause_is_the_cluster_wide_explanation_before_a_brokers_line() {
        let mut refused = denied("the broker refused the signed payload: [x]: Access denied");
        refused.step = Step::Authentication;
        refused.broker = Some("b-1:9098".into());
        let why =
            denied("IAM denies kafka-cluster:Connect on arn:aws:kafka:r:1:cluster/c/u for me");
        let ok = Finding {
            ok: true,
            ..refused.clone()
        };
        let d = Diagnosis {
            findings: vec![ok.clone(), refused.clone(), why.clone()],
        };
        assert_eq!(d.first_failure(), Some(&refused));
        assert_eq!(d.cause(), Some(&why));
        let d = Diagnosis {
            findings: vec![ok.clone(), refused.clone()],
        };
        assert_eq!(d.cause(), Some(&refused));
        let d = Diagnosis { findings: vec![ok] };
        assert_eq!(d.cause(), None);
    }

    #[test]
    fn summary_drops_the_advice_and_shortens_arns() {
        let f = denied("IAM denies kafka-cluster:DescribeTopic on arn:aws:kafka:us-east-1:123456789012:topic/demo/abc-1/_confluent-ksql-x_command_topic (command topic): `ksql-msk iam-policy` statement KsqlDbInternalTopics grants it (Metadata answered TOPIC_AUTHORIZATION_FAILED)");
        assert_eq!(
            f.summary(),
            "IAM denies kafka-cluster:DescribeTopic on topic/demo/abc-1/_confluent-ksql-x_command_topic (command topic)"
        );
        let f = denied("IAM denies kafka-cluster:Connect on arn:aws:kafka:us-east-1:123456789012:cluster/demo/abc-1 for arn:aws:sts::123456789012:assumed-role/ksql-msk/i-0: grant it with `ksql-msk iam-policy` statement KsqlDbConnect (or …)");
        assert_eq!(
            f.summary(),
            "IAM denies kafka-cluster:Connect on cluster/demo/abc-1 for arn:aws:sts::123456789012:assumed-role/ksql-msk/i-0"
        );
    }

    #[test]
    fn summary_of_a_step_names_the_broker_and_stays_one_short_line() {
        let mut f = denied(&format!("a\nb {}", "x".repeat(500)));
        f.broker = Some("b-1:9098".into());
        f.step = Step::Tls;
        let s = f.summary();
        assert!(s.starts_with("broker b-1:9098: TLS: a b x"), "{s}");
        assert_eq!(s.chars().count(), SUMMARY_CHARS);
        assert!(!s.contains('\n'));
    }
}
