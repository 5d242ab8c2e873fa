//! The agent's state as Prometheus text exposition format (version 0.0.4), for
//! `metrics.textfile` (node_exporter's textfile collector). Names are prefixed
//! `ksql_msk_`; every family has HELP and TYPE lines. docs/STATUS.md lists them.

use std::fmt::Write as _;
use std::time::SystemTime;

use super::{Condition, StateDoc};

/// The exposition text of `doc` at `now`.
pub fn render(doc: &StateDoc, now: SystemTime) -> String {
    let mut m = Text::default();
    if let Some(r) = &doc.release {
        m.family(
            "ksql_msk_release_info",
            "gauge",
            "The ksqlDB release the agent runs (always 1; the facts are labels).",
        );
        m.sample(
            "ksql_msk_release_info",
            &[
                ("version", &r.version),
                ("archive_sha256", &r.archive_sha256),
                ("signer", &r.signer),
                ("trust", &r.trust),
            ],
            1.0,
        );
    }
    if let Some(j) = &doc.iam_jar {
        m.family(
            "ksql_msk_iam_jar_info",
            "gauge",
            "The aws-msk-iam-auth jar on ksqlDB's classpath (always 1).",
        );
        m.sample(
            "ksql_msk_iam_jar_info",
            &[("version", &j.version), ("sha256", &j.sha256)],
            1.0,
        );
    }
    m.family(
        "ksql_msk_agent_info",
        "gauge",
        "The ksql-msk agent (always 1).",
    );
    m.sample(
        "ksql_msk_agent_info",
        &[("version", &doc.agent.version)],
        1.0,
    );
    if let Some(t) = doc.agent.started_at {
        m.family(
            "ksql_msk_agent_start_time_seconds",
            "gauge",
            "When the agent started, in seconds since the Unix epoch.",
        );
        m.sample("ksql_msk_agent_start_time_seconds", &[], t.unix_seconds());
    }
    let condition = doc.ksqldb.health.condition;
    m.family(
        "ksql_msk_health_condition",
        "gauge",
        "ksqlDB's health condition as the agent sees it: 1 for the current one, 0 for the others.",
    );
    for c in Condition::ALL {
        let v = if c == condition { 1.0 } else { 0.0 };
        m.sample("ksql_msk_health_condition", &[("condition", c.name())], v);
    }
    m.family(
        "ksql_msk_health_failing_checks",
        "gauge",
        "Health checks ksqlDB reports failing (isHealthy: false), one sample per check.",
    );
    for check in &doc.ksqldb.health.failing_checks {
        m.sample("ksql_msk_health_failing_checks", &[("check", check)], 1.0);
    }
    if let Some(t) = doc.ksqldb.started_at {
        m.family(
            "ksql_msk_ksqldb_start_time_seconds",
            "gauge",
            "When the running ksqlDB was started, in seconds since the Unix epoch.",
        );
        m.sample("ksql_msk_ksqldb_start_time_seconds", &[], t.unix_seconds());
    }
    m.family(
        "ksql_msk_restarts_total",
        "counter",
        "Failures of ksqlDB (exit, hang, start timeout) since the agent started; each is followed by a restart.",
    );
    m.sample("ksql_msk_restarts_total", &[], doc.restarts.total as f64);
    m.family(
        "ksql_msk_restarts_in_window",
        "gauge",
        "Failures of ksqlDB within agent.restart_window when this file was written.",
    );
    m.sample(
        "ksql_msk_restarts_in_window",
        &[],
        doc.restarts.in_window(now) as f64,
    );
    if let Some(s) = &doc.last_install {
        m.family(
            "ksql_msk_last_install_timestamp_seconds",
            "gauge",
            "When the last install (phases 3-5: fetch, verify, unpack, configure) began.",
        );
        m.sample(
            "ksql_msk_last_install_timestamp_seconds",
            &[],
            s.at.unix_seconds(),
        );
        m.family(
            "ksql_msk_last_install_duration_seconds",
            "gauge",
            "How long the last install took.",
        );
        m.sample("ksql_msk_last_install_duration_seconds", &[], s.seconds);
    }
    if let Some(s) = &doc.last_discovery {
        m.family(
            "ksql_msk_last_discovery_timestamp_seconds",
            "gauge",
            "When the last successful discovery of the cluster's brokers began.",
        );
        m.sample(
            "ksql_msk_last_discovery_timestamp_seconds",
            &[],
            s.at.unix_seconds(),
        );
        m.family(
            "ksql_msk_last_discovery_duration_seconds",
            "gauge",
            "How long the last successful discovery took.",
        );
        m.sample("ksql_msk_last_discovery_duration_seconds", &[], s.seconds);
    }
    if let Some(b) = &doc.brokers {
        m.family(
            "ksql_msk_brokers",
            "gauge",
            "Bootstrap brokers in the last discovered list.",
        );
        m.sample("ksql_msk_brokers", &[], b.list.len() as f64);
    }
    m.family(
        "ksql_msk_download_bytes_total",
        "counter",
        "Bytes the agent downloaded (archive, signature, key, jar) since it started.",
    );
    m.sample(
        "ksql_msk_download_bytes_total",
        &[],
        doc.download_bytes as f64,
    );
    if let Some(b) = &doc.metastore_backup {
        m.family(
            "ksql_msk_metastore_backup_bytes",
            "gauge",
            "Size of ksqlDB's newest command-topic backup file (0: none yet).",
        );
        m.sample(
            "ksql_msk_metastore_backup_bytes",
            &[],
            b.latest_bytes as f64,
        );
        if let Some(t) = b.last_write {
            m.family(
                "ksql_msk_metastore_backup_last_write_seconds",
                "gauge",
                "When ksqlDB last wrote its command-topic backup, in seconds since the Unix epoch.",
            );
            m.sample(
                "ksql_msk_metastore_backup_last_write_seconds",
                &[],
                t.unix_seconds(),
            );
        }
    }
    m.0
}

#[derive(Default)]
struct Text(String);

impl Text {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", escape_label(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {}", number(value));
    }
}

/// A sample value: integers without a fraction, others as Rust prints them (which the
/// format's Go float parsing reads), never NaN or an infinity.
fn number(v: f64) -> String {
    if !v.is_finite() {
        "0".into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// Label values escape `\`, `"` and newline.
fn escape_label(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

/// HELP text escapes `\` and newline.
fn escape_help(v: &str) -> String {
    v.replace('\\', r"\\").replace('\n', r"\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{HealthInfo, ReleaseInfo, Time};

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
        let text = render(&doc, SystemTime::now());
        assert!(
            text.contains(r#"signer="a\"b\\c\nd""#),
            "label escaping: {text}"
        );
        assert!(text.contains("ksql_msk_health_condition{condition=\"waiting_for_kafka\"} 1\n"));
        assert!(text.contains("ksql_msk_health_condition{condition=\"healthy\"} 0\n"));
        assert!(text.contains("ksql_msk_agent_start_time_seconds 0\n"));
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
        assert_eq!(number(1.5), "1.5");
        assert_eq!(number(f64::NAN), "0");
        assert_eq!(number(3.0), "3");
    }
}
