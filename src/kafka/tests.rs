//! Property tests of the response decoders (a hostile broker: garbage, truncated and
//! oversized frames) and the agreement of the doctor's plan with `ksql-msk iam-policy`.

use proptest::prelude::*;

use super::messages::{self, DECODED};
use super::wire::{self, Writer, MAX_FRAME};
use crate::config::{ClusterArn, Settings};
use crate::msk::iam_policy::{self, Target};

/// A well-formed Metadata v8 answer with `topics` topics, to cut and corrupt.
fn metadata_body(topics: usize) -> Vec<u8> {
    let mut w = Writer::default();
    w.i32(0)
        .array_len(1)
        .i32(1)
        .string("localhost")
        .i32(9098)
        .nullable_string(None);
    w.nullable_string(Some("cluster")).i32(1).array_len(topics);
    for i in 0..topics {
        w.i16(0)
            .string(&format!("topic-{i}"))
            .bool(false)
            .array_len(1);
        w.i16(0).i32(0).i32(1).i32(0);
        for _ in 0..3 {
            w.array_len(1).i32(1);
        }
        w.i32(0x0ff8);
    }
    w.i32(i32::MIN);
    w.buf
}

/// A DescribeCluster v0 (flexible) answer.
fn describe_cluster_body() -> Vec<u8> {
    let mut w = Writer::default();
    w.i32(0).i16(0).uvarint(0).uvarint(3);
    w.buf.extend_from_slice(b"id");
    w.i32(1).uvarint(2).i32(1).uvarint(10);
    w.buf.extend_from_slice(b"localhost");
    w.i32(9098).uvarint(0).no_tags();
    w.i32(0x1fa0).no_tags();
    w.buf
}

#[test]
fn well_formed_answers_decode() {
    let m = messages::metadata_response(&metadata_body(2)).unwrap();
    assert_eq!(m.topics.len(), 2);
    assert_eq!(m.topics[1].name, "topic-1");
    assert_eq!(m.topics[0].authorized_operations, 0x0ff8);
    assert_eq!(m.brokers[0].port, 9098);
    let c = messages::describe_cluster_response(&describe_cluster_body()).unwrap();
    assert_eq!(c.brokers[0].host, "localhost");
    assert_eq!(c.authorized_operations, 0x1fa0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Garbage is an error or a value, never a panic; the decoders allocate only for
    /// elements they read from the input.
    #[test]
    fn garbage_is_one_error(api in 0..DECODED.len(), body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = messages::decode_any(DECODED[api], &body);
    }

    /// Every strict prefix of a real answer is refused (truncated), never misread.
    #[test]
    fn truncated_answers_are_refused(topics in 0usize..4, cut in 0usize..400) {
        let body = metadata_body(topics);
        let cut = cut % body.len();
        prop_assert!(messages::metadata_response(&body[..cut]).is_err());
        let body = describe_cluster_body();
        let cut = cut % body.len();
        prop_assert!(messages::describe_cluster_response(&body[..cut]).is_err());
    }

    /// Any 4 bytes written over a real answer (counts and lengths included) decode to
    /// an error or a value: a count of 2^31 in a small frame is refused before any
    /// allocation.
    #[test]
    fn corrupted_answers_never_panic(at in 0usize..400, word in any::<u32>(), api in 0..DECODED.len()) {
        let mut body = metadata_body(2);
        let at = at % body.len().saturating_sub(4).max(1);
        body[at..at + 4].copy_from_slice(&word.to_be_bytes());
        let _ = messages::metadata_response(&body);
        let _ = messages::decode_any(DECODED[api], &body);
        let mut body = describe_cluster_body();
        let at = at % body.len().saturating_sub(4).max(1);
        body[at..at + 4].copy_from_slice(&word.to_be_bytes());
        let _ = messages::describe_cluster_response(&body);
    }

    /// Frame sizes outside 4..=1 MiB are refused before a byte of the body is read.
    #[test]
    fn oversized_frames_are_refused(size in any::<i32>()) {
        let ok = wire::frame_size(size.to_be_bytes()).is_ok();
        prop_assert_eq!(ok, (4..=MAX_FRAME as i64).contains(&i64::from(size)));
    }
}

fn settings(extra: &str) -> Settings {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ksql-msk.toml");
    std::fs::write(
        &path,
        format!(
            "[msk]\ncluster_arn = \"arn:aws:kafka:eu-west-1:123456789012:cluster/demo/0b1c-2\"\n\n[agent]\nstate_dir = \"{}\"\n{extra}",
            dir.path().join("state").display()
        ),
    )
    .unwrap();
    crate::config::load(&path).unwrap()
}

fn target(s: &Settings) -> Target {
    let crate::config::ClusterRef::Arn(arn) = &s.msk.cluster else {
        panic!("an ARN")
    };
    Target::exact(&ClusterArn::parse(&arn.arn).unwrap())
}

/// `iam-policy` and the doctor agree: every need the doctor probes is granted by a
/// statement of the policy, and every (action, resource) the policy grants is probed
/// by at least one need. Only the transactional ids of exactly-once queries go
/// unprobed without exactly-once (ksqlDB does not use them then).
#[test]
fn iam_policy_and_the_doctor_agree() {
    for (extra, eos) in [
        (
            "[properties]\n\"ksql.service.id\" = \"orders_\"\n\"processing.guarantee\" = \"exactly_once_v2\"\n[iam_auth]\npolicy_topics = [\"orders\", \"clicks*\"]\n",
            true,
        ),
        ("", false),
        (
            "[properties]\n\"ksql.logging.processing.topic.name\" = \"plog\"\n",
            false,
        ),
    ] {
        let s = settings(extra);
        let t = target(&s);
        let needs = super::probes::plan(&s);
        for need in &needs {
            let resource = need.resource(&t);
            assert!(
                iam_policy::granting_sid(&s, &t, need.action, &resource).is_some(),
                "the doctor probes {} on {resource}, which no iam-policy statement grants ({extra})",
                need.action
            );
        }
        for (sid, action, patterns) in iam_policy::kafka_cluster_grants(&s, &t) {
            for pattern in patterns {
                let probed = needs
                    .iter()
                    .any(|n| n.action == action && iam_policy::arn_matches(&pattern, &n.resource(&t)));
                let unprobed_ok = !eos
                    && sid == "KsqlDbTransactionalIds"
                    && pattern.contains("transactional-id/demo/0b1c-2/_confluent-ksql-");
                assert!(
                    probed || unprobed_ok,
                    "iam-policy grants {action} on {pattern} ({sid}), which the doctor never probes ({extra})"
                );
            }
        }
    }
    // The processing log's name follows the property.
    let s = settings("[properties]\n\"ksql.logging.processing.topic.name\" = \"plog\"\n");
    assert!(super::probes::plan(&s).iter().any(|n| n.name == "plog"));
}
