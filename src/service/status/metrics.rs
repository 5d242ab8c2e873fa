//! The agent's state as Prometheus text exposition format (version 0.0.4), for
//! `metrics.textfile` (node_exporter's textfile collector). Names are prefixed
//! `ksql_msk_`; every family has HELP and TYPE lines. docs/STATUS.md lists them.
//!
//! The families are built from the state document here; `prometheus-client`'s 0.0.4
//! text encoder writes them (HELP and label escaping, a counter's `_total`). The file
//! is one snapshot, so the families are a [`Collector`] over it, not live metrics: a
//! collector also writes a family that has no samples (HELP and TYPE alone), as the
//! file always has for `ksql_msk_health_failing_checks`.

use std::time::SystemTime;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{prometheus_text, DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::{Condition, StateDoc, Time};

/// The exposition text of `doc` at `now`.
pub fn render(doc: &StateDoc, now: SystemTime) -> String {
    let mut families = Vec::new();
    release_families(doc, &mut families);
    health_families(doc, &mut families);
    restart_families(doc, now, &mut families);
    span_families(doc, &mut families);
    kafka_families(doc, &mut families);
    metastore_families(doc, &mut families);
    if let Some(b) = &doc.brokers {
        families.push(Family::gauge(
            "ksql_msk_brokers",
            "Bootstrap brokers in the last discovered list.",
            Value::Int(b.list.len() as i64),
        ));
    }
    families.push(Family {
        name: "ksql_msk_download_bytes",
        help: "Bytes the agent downloaded (archive, signature, key, jar) since it started.",
        kind: MetricType::Counter,
        samples: vec![(Vec::new(), Value::Count(doc.download_bytes))],
    });
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Families(families)));
    let mut text = String::new();
    // Writing into a String cannot fail, and no family here makes the encoder fail.
    let _ = prometheus_text::encode(&mut text, &registry);
    text
}

/// ksqlDB's command-topic backup: the newest file's size and last write.
fn metastore_families(doc: &StateDoc, out: &mut Vec<Family>) {
    let Some(b) = &doc.metastore_backup else {
        return;
    };
    out.push(Family::gauge(
        "ksql_msk_metastore_backup_bytes",
        "Size of ksqlDB's newest command-topic backup file (0: none yet).",
        Value::Int(i64::try_from(b.latest_bytes).unwrap_or(i64::MAX)),
    ));
    if let Some(t) = b.last_write {
        out.push(Family::gauge(
            "ksql_msk_metastore_backup_last_write_seconds",
            "When ksqlDB last wrote its command-topic backup, in seconds since the Unix epoch.",
            Value::Float(t.unix_seconds()),
        ));
    }
}

/// What runs: the release, the IAM jar, the agent.
fn release_families(doc: &StateDoc, out: &mut Vec<Family>) {
    if let Some(r) = &doc.release {
        out.push(Family::info(
            "ksql_msk_release_info",
            "The ksqlDB release the agent runs (always 1; the facts are labels).",
            &[
                ("version", &r.version),
                ("archive_sha256", &r.archive_sha256),
                ("signer", &r.signer),
                ("trust", &r.trust),
            ],
        ));
    }
    if let Some(j) = &doc.iam_jar {
        out.push(Family::info(
            "ksql_msk_iam_jar_info",
            "The aws-msk-iam-auth jar on ksqlDB's classpath (always 1).",
            &[("version", &j.version), ("sha256", &j.sha256)],
        ));
    }
    out.push(Family::info(
        "ksql_msk_agent_info",
        "The ksql-msk agent (always 1).",
        &[("version", &doc.agent.version)],
    ));
    if let Some(t) = doc.agent.started_at {
        out.push(Family::gauge(
            "ksql_msk_agent_start_time_seconds",
            "When the agent started, in seconds since the Unix epoch.",
            Value::Float(t.unix_seconds()),
        ));
    }
}

/// ksqlDB's health: the condition (one sample each), failing checks, since when it runs.
fn health_families(doc: &StateDoc, out: &mut Vec<Family>) {
    let condition = doc.ksqldb.health.condition;
    out.push(Family {
        name: "ksql_msk_health_condition",
        help: "ksqlDB's health condition as the agent sees it: 1 for the current one, 0 for the others.",
        kind: MetricType::Gauge,
        samples: Condition::ALL
            .iter()
            .map(|&c| {
                let labels = vec![("condition".to_string(), c.name().to_string())];
                (labels, Value::Int(i64::from(c == condition)))
            })
            .collect(),
    });
    out.push(Family {
        name: "ksql_msk_health_failing_checks",
        help: "Health checks ksqlDB reports failing (isHealthy: false), one sample per check.",
        kind: MetricType::Gauge,
        samples: doc
            .ksqldb
            .health
            .failing_checks
            .iter()
            .map(|check| (vec![("check".to_string(), check.clone())], Value::Int(1)))
            .collect(),
    });
    if let Some(t) = doc.ksqldb.started_at {
        out.push(Family::gauge(
            "ksql_msk_ksqldb_start_time_seconds",
            "When the running ksqlDB was started, in seconds since the Unix epoch.",
            Value::Float(t.unix_seconds()),
        ));
    }
}

fn restart_families(doc: &StateDoc, now: SystemTime, out: &mut Vec<Family>) {
    out.push(Family {
        name: "ksql_msk_restarts",
        help: "Failures of ksqlDB (exit, hang, start timeout) since the agent started; each is followed by a restart.",
        kind: MetricType::Counter,
        samples: vec![(Vec::new(), Value::Count(doc.restarts.total))],
    });
    out.push(Family::gauge(
        "ksql_msk_restarts_in_window",
        "Failures of ksqlDB within agent.restart_window when this file was written.",
        Value::Int(doc.restarts.in_window(now) as i64),
    ));
}

/// When the last install and discovery began, and how long they took: per span, a
/// `_timestamp_seconds` and a `_duration_seconds` gauge (none before the first).
fn span_families(doc: &StateDoc, out: &mut Vec<Family>) {
    let spans = [
        (
            &doc.last_install,
            "ksql_msk_last_install_timestamp_seconds",
            "When the last install (phases 3-5: fetch, verify, unpack, configure) began.",
            "ksql_msk_last_install_duration_seconds",
            "How long the last install took.",
        ),
        (
            &doc.last_discovery,
            "ksql_msk_last_discovery_timestamp_seconds",
            "When the last successful discovery of the cluster's brokers began.",
            "ksql_msk_last_discovery_duration_seconds",
            "How long the last successful discovery took.",
        ),
    ];
    for (span, began, began_help, took, took_help) in spans {
        if let Some(s) = span {
            out.push(Family::gauge(
                began,
                began_help,
                Value::Float(s.at.unix_seconds()),
            ));
            out.push(Family::gauge(took, took_help, Value::Float(s.seconds)));
        }
    }
}

/// The Kafka doctor: its runs, and its finding while ksqlDB waits for Kafka (one
/// sample, the facts as labels; no sample when there is none).
fn kafka_families(doc: &StateDoc, out: &mut Vec<Family>) {
    let k = &doc.kafka;
    out.push(Family {
        name: "ksql_msk_kafka_doctor_runs",
        help: "Runs of the agent's Kafka doctor since the agent started (only while ksqlDB says Kafka is unhealthy).",
        kind: MetricType::Counter,
        samples: vec![(Vec::new(), Value::Count(k.doctor_runs))],
    });
    let samples = match &k.diagnosis {
        Some(d) => {
            let label =
                |k: &str, v: &Option<String>| (k.to_string(), v.clone().unwrap_or_default());
            let labels = vec![
                ("step".to_string(), d.step.clone()),
                label("action", &d.action),
                label("resource", &d.resource),
                label("sid", &d.sid),
                label("broker", &d.broker),
            ];
            let since = d.first_seen.map(Time::unix_seconds).unwrap_or(0.0);
            vec![(labels, Value::Float(since))]
        }
        None => Vec::new(),
    };
    out.push(Family {
        name: "ksql_msk_kafka_diagnosis_since_seconds",
        help: "The Kafka doctor's first failing finding while ksqlDB waits for Kafka (labels), valued when it was first found (seconds since the Unix epoch).",
        kind: MetricType::Gauge,
        samples,
    });
}

/// A sample's value: counts and flags as integers, times as floats.
#[derive(Debug, Clone, Copy)]
enum Value {
    Int(i64),
    Count(u64),
    Float(f64),
}

type Labels = Vec<(String, String)>;

/// One metric family of the snapshot. `name` is without a counter's `_total`, which
/// the encoder adds (to HELP and TYPE too, as the 0.0.4 format has it).
#[derive(Debug)]
struct Family {
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    samples: Vec<(Labels, Value)>,
}

impl Family {
    fn gauge(name: &'static str, help: &'static str, value: Value) -> Family {
        Family {
            name,
            help,
            kind: MetricType::Gauge,
            samples: vec![(Vec::new(), value)],
        }
    }

    /// An `_info` gauge: always 1, the facts are labels.
    fn info(name: &'static str, help: &'static str, labels: &[(&str, &str)]) -> Family {
        let labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Family {
            name,
            help,
            kind: MetricType::Gauge,
            samples: vec![(labels, Value::Int(1))],
        }
    }
}

#[derive(Debug)]
struct Families(Vec<Family>);

impl Collector for Families {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for family in &self.0 {
            let mut metric =
                encoder.encode_descriptor(family.name, family.help, None, family.kind)?;
            for (labels, value) in &family.samples {
                let sample = metric.encode_family(labels)?;
                match *value {
                    Value::Int(v) => ConstGauge::new(v).encode(sample)?,
                    Value::Count(v) => ConstCounter::new(v).encode(sample)?,
                    // Whole numbers without a fraction, as the file always had them;
                    // never NaN or an infinity (parsers differ on them).
                    Value::Float(v) if !v.is_finite() => ConstGauge::new(0i64).encode(sample)?,
                    Value::Float(v) if v.fract() == 0.0 && v.abs() < 1e15 => {
                        ConstGauge::new(v as i64).encode(sample)?
                    }
                    Value::Float(v) => ConstGauge::new(v).encode(sample)?,
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::status::{HealthInfo, ReleaseInfo, Span, Time};

    #[test]
    fn every_family_has_help_and_type_and_one_condition_is_set() {
        let mut doc = StateDoc {
            release: Some(ReleaseInfo {
                version: "0.29.0".into(),
                archive_sha256: "ab".into(),
                signer: "a\"b\\c\nd".into(),
                ..ReleaseInfo::default()
            }),
            ..StateDoc::default()
        };
        doc.ksqldb.health = HealthInfo {
            condition: Condition::WaitingForKafka,
            failing_checks: vec!["kafka".into()],
            ..HealthInfo::default()
        };
        doc.agent.started_at = Some(Time(SystemTime::UNIX_EPOCH));
        doc.last_install = Some(Span {
            at: Time(SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1500)),
            seconds: f64::NAN,
        });
        doc.last_discovery = Some(Span {
            at: Time(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(7)),
            seconds: 0.25,
        });
        let text = render(&doc, SystemTime::now());
        assert!(
            text.contains(r#"signer="a\"b\\c\nd""#),
            "label escaping: {text}"
        );
        assert!(text.contains("ksql_msk_health_condition{condition=\"waiting_for_kafka\"} 1\n"));
        assert!(text.contains("ksql_msk_health_condition{condition=\"healthy\"} 0\n"));
        assert!(text.contains("ksql_msk_agent_start_time_seconds 0\n"));
        assert!(text.contains("ksql_msk_last_install_timestamp_seconds 1.5\n"));
        assert!(text.contains("ksql_msk_last_install_duration_seconds 0\n"));
        assert!(text.contains("ksql_msk_last_discovery_timestamp_seconds 7\n"));
        assert!(text.contains("ksql_msk_last_discovery_duration_seconds 0.25\n"));
        assert!(text.contains("ksql_msk_restarts_total 0\n"));
        assert!(text.contains("# TYPE ksql_msk_restarts_total counter\n"));
        // A family without samples keeps its HELP and TYPE lines.
        let empty = render(&StateDoc::default(), SystemTime::now());
        assert!(empty.contains("# TYPE ksql_msk_health_failing_checks gauge\n"));
        assert!(
            !empty.contains("ksql_msk_last_"),
            "no span before the first: {empty}"
        );
        let mut typed = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                typed.push(rest.split(' ').next().unwrap().to_string());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                assert!(typed.iter().any(|t| t == name), "{name} has no TYPE");
                assert!(name.starts_with("ksql_msk_"));
            }
        }
    }
}
