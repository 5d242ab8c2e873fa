//! The doctor's run: connect to every broker at once, explain an authentication denial
//! once, then probe what ksqlDB needs over the connections that passed.

use crate::config::{ClusterArn, Settings};
use crate::msk::discovery::BrokerAddr;

use super::finding::{Diagnosis, Finding, Step};
use super::{client, credentials, probes};

/// Ask the brokers. Never fails: every problem is a finding.
pub async fn diagnose(
    settings: &Settings,
    cluster: &ClusterArn,
    brokers: &[BrokerAddr],
) -> Diagnosis {
    let started = std::time::Instant::now();
    let signer = credentials::signer(settings).await;
    let signer_ref = signer.as_ref().map_err(String::as_str);
    let connects = brokers.iter().map(|b| client::connect(b, signer_ref));
    let results = futures_util::future::join_all(connects).await;
    let mut findings = Vec::new();
    // No credentials: one line about the cluster as a whole, with the time the lookup
    // took; the brokers' lines stop at SASL, since nothing was signed to send them.
    if let Err(why) = &signer {
        findings.push(Finding::cluster(
            Step::Authentication,
            false,
            started.elapsed(),
            why.clone(),
        ));
    }
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
    let target = crate::msk::iam_policy::Target::exact(cluster);
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
