//! Rendering ksql-server.properties: against the real upstream file, idempotence on
//! disk, hand-added keys, and a cross-check of the parser against java.util.Properties.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use ksql_msk::config::Settings;
use ksql_msk::exit::{exit_code_of, one_line, ExitCode};
use ksql_msk::host::layout;
use ksql_msk::ksqldb::properties::{
    managed_with_imds, render, Configured, Document, MANAGED_MARKER,
};
use ksql_msk::msk::discovery::{Brokers, Discovered};
use ksql_msk_testkit::imds::FakeImds;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;

use crate::support::{repo_root, skip};

const ARN: &str =
    "arn:aws:kafka:eu-west-1:123456789012:cluster/demo/abcd1234-5678-90ab-cdef-1234567890ab-3";
const BROKERS: &str = "b-1.demo.kafka.eu-west-1.amazonaws.com:9098,b-2.demo.kafka.eu-west-1.amazonaws.com:9098,b-3.demo.kafka.eu-west-1.amazonaws.com:9098";

fn fixture() -> Option<Vec<u8>> {
    let path = repo_root().join("../shared/fixtures/ksqldb/ksql-server.properties");
    match std::fs::read(&path) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            skip(
                "KSQL_MSK_REQUIRE_SHARED",
                &format!("{}: {e} (the ../shared checkout)", path.display()),
            );
            None
        }
    }
}

struct Release {
    dir: tempfile::TempDir,
}

impl Release {
    /// A release directory as the unpacker leaves it: live file plus pristine copy.
    fn new(upstream: &[u8]) -> Release {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc/ksqldb")).unwrap();
        std::fs::write(dir.path().join(layout::PROPERTIES), upstream).unwrap();
        std::fs::write(dir.path().join(layout::PRISTINE_PROPERTIES), upstream).unwrap();
        Release { dir }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn live(&self) -> PathBuf {
        self.dir.path().join(layout::PROPERTIES)
    }
    fn read(&self) -> Vec<u8> {
        std::fs::read(self.live()).unwrap()
    }
}

fn settings(dir: &Path, extra: &str) -> Settings {
    let path = dir.join("ksql-msk.toml");
    std::fs::write(
        &path,
        format!(
            "[msk]\ncluster_arn = \"{ARN}\"\n[agent]\nstate_dir = \"/var/lib/ksql-msk\"\n{extra}"
        ),
    )
    .unwrap();
    ksql_msk::config::load(&path).unwrap()
}

fn discovered() -> Discovered {
    Discovered {
        cluster_arn: ARN.into(),
        cluster_name: "demo".into(),
        serverless: false,
        state: "ACTIVE".into(),
        brokers: Brokers::parse(BROKERS).unwrap(),
    }
}

/// Run configure on a fresh runtime, capturing what it logs.
fn run(
    settings: &Settings,
    release: &Path,
    dry_run: bool,
    imds: Option<&str>,
) -> (anyhow::Result<Configured>, String) {
    let logs = Arc::new(Mutex::new(Vec::<u8>::new()));
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || Writer(sink.clone()))
        .with_ansi(false)
        .finish();
    let result = tracing::subscriber::with_default(subscriber, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let managed = managed_with_imds(settings, &discovered(), imds).await?;
                render(release, &managed, dry_run)
            })
    });
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    (result, text)
}

struct Writer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Writer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn comment_lines(text: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(text)
        .lines()
        .filter(|l| l.trim_start().starts_with('#'))
        .map(str::to_string)
        .collect()
}

#[test]
fn fixture_keeps_every_comment_in_order_and_gets_managed_keys() {
    let Some(upstream) = fixture() else { return };
    let release = Release::new(&upstream);
    let cfg = tempfile::tempdir().unwrap();
    let s = settings(cfg.path(), "");
    let (out, _) = run(&s, release.path(), false, None);
    let out = out.unwrap();
    assert!(out.changed);
    assert!(out.hand_added.is_empty());
    let rendered = release.read();

    // Every original comment line, in the same order (ours may come in between).
    let mut ours = comment_lines(&rendered).into_iter();
    for line in comment_lines(&upstream) {
        assert!(
            ours.any(|l| l == line),
            "comment {line:?} missing or out of order"
        );
    }
    let doc = Document::parse(&rendered).unwrap();
    assert_eq!(doc.get("bootstrap.servers").as_deref(), Some(BROKERS));
    assert_eq!(doc.get("security.protocol").as_deref(), Some("SASL_SSL"));
    assert_eq!(
        doc.get("ksql.streams.state.dir").as_deref(),
        Some("/var/lib/ksql-msk/streams")
    );
    // Upstream's own keys are untouched.
    assert_eq!(doc.get("compression.type").as_deref(), Some("snappy"));
    // Keys upstream already has are rewritten in place, not appended.
    let text = String::from_utf8(rendered.clone()).unwrap();
    let marker_at = text.find(MANAGED_MARKER).unwrap();
    assert!(text.find(&format!("bootstrap.servers={BROKERS}")).unwrap() < marker_at);
    assert!(!text.contains("localhost:9092"));
    assert!(text[marker_at..].contains("\nsasl.mechanism=AWS_MSK_IAM\n"));
    // The diff shows what changed.
    assert!(out
        .diff
        .contains("-bootstrap.servers=localhost:9092\n+bootstrap.servers=b-1."));
    let mode = std::fs::metadata(release.live())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o640);
}

#[test]
fn second_render_is_identical_and_does_not_touch_the_file() {
    let Some(upstream) = fixture() else { return };
    let release = Release::new(&upstream);
    let cfg = tempfile::tempdir().unwrap();
    let s = settings(cfg.path(), "[properties]\n\"ksql.service.id\" = \"svc_\"\n");
    let (first, _) = run(&s, release.path(), false, None);
    assert!(first.unwrap().changed);
    let bytes = release.read();
    let before = std::fs::metadata(release.live()).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));

    let (second, logs) = run(&s, release.path(), false, None);
    let second = second.unwrap();
    assert!(!second.changed, "{}", second.diff);
    assert_eq!(second.diff, "");
    assert_eq!(release.read(), bytes);
    let after = std::fs::metadata(release.live()).unwrap();
    assert_eq!(after.mtime_nsec(), before.mtime_nsec());
    assert_eq!(after.mtime(), before.mtime());
    assert_eq!(after.ino(), before.ino(), "the file was replaced");
    assert!(logs.contains("up to date"), "{logs}");
}

#[test]
fn an_unchanged_live_file_made_world_readable_gets_its_mode_back() {
    let Some(upstream) = fixture() else { return };
    let release = Release::new(&upstream);
    let cfg = tempfile::tempdir().unwrap();
    let s = settings(cfg.path(), "");
    let (first, _) = run(&s, release.path(), false, None);
    assert!(first.unwrap().changed);
    let bytes = release.read();
    std::fs::set_permissions(release.live(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let (second, logs) = run(&s, release.path(), false, None);
    assert!(!second.unwrap().changed);
    assert_eq!(release.read(), bytes);
    let mode = std::fs::metadata(release.live()).unwrap().mode() & 0o7777;
    assert_eq!(mode, 0o640, "{logs}");
    assert!(logs.contains("mode 644 set back to 640"), "{logs}");
    // A dry run changes nothing, not even the mode.
    std::fs::set_permissions(release.live(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let (third, _) = run(&s, release.path(), true, None);
    assert!(!third.unwrap().changed);
    assert_eq!(
        std::fs::metadata(release.live()).unwrap().mode() & 0o7777,
        0o644
    );
}

#[test]
fn hand_added_keys_are_kept_reported_and_stable() {
    let Some(upstream) = fixture() else { return };
    let release = Release::new(&upstream);
    let cfg = tempfile::tempdir().unwrap();
    let s = settings(cfg.path(), "");
    run(&s, release.path(), false, None).0.unwrap();
    // Someone edits the live file: a new key in the middle, and a managed one.
    let text = String::from_utf8(release.read()).unwrap().replace(
        "compression.type=snappy\n",
        "compression.type=snappy\nmy.hand.key = by hand\nsecurity.protocol=PLAINTEXT\n",
    );
    std::fs::write(release.live(), text).unwrap();

    let (out, logs) = run(&s, release.path(), false, None);
    let out = out.unwrap();
    assert_eq!(out.hand_added, vec!["my.hand.key".to_string()]);
    assert!(out.changed);
    assert!(
        logs.contains("WARN") && logs.contains("my.hand.key") && logs.contains("[properties]"),
        "{logs}"
    );
    let doc = Document::parse(&release.read()).unwrap();
    assert_eq!(doc.get("my.hand.key").as_deref(), Some("by hand"));
    assert_eq!(doc.get("security.protocol").as_deref(), Some("SASL_SSL"));

    // Kept on the next run too, without rewriting.
    let (again, _) = run(&s, release.path(), false, None);
    let again = again.unwrap();
    assert_eq!(again.hand_added, vec!["my.hand.key".to_string()]);
    assert!(!again.changed, "{}", again.diff);
}

#[test]
fn keys_appended_after_the_managed_block_are_kept() {
    let Some(upstream) = fixture() else { return };
    let release = Release::new(&upstream);
    let cfg = tempfile::tempdir().unwrap();
    let with = settings(cfg.path(), "[properties]\n\"ksql.service.id\" = \"svc_\"\n");
    run(&with, release.path(), false, None).0.unwrap();
    // `echo key=value >> ksql-server.properties`: lands after our block.
    let mut text = release.read();
    text.extend_from_slice(b"appended.by.hand=yes\n");
    std::fs::write(release.live(), text).unwrap();
    // The override goes away in the same run: it was ours, so it is dropped.
    let without = settings(cfg.path(), "");
    let (out, logs) = run(&without, release.path(), false, None);
    let out = out.unwrap();
    assert_eq!(
        out.hand_added,
        vec!["appended.by.hand".to_string()],
        "{logs}"
    );
    let doc = Document::parse(&release.read()).unwrap();
    assert_eq!(doc.get("appended.by.hand").as_deref(), Some("yes"));
    assert_eq!(doc.get("ksql.service.id"), None);
}

#[test]
fn removing_an_override_removes_it_from_the_file() {
    let Some(upstream) = fixture() else { return };
    let release = Release::new(&upstream);
    let cfg = tempfile::tempdir().unwrap();
    let with = settings(
        cfg.path(),
        "[properties]\n\"ksql.service.id\" = \"svc_\"\n\"compression.type\" = \"zstd\"\n",
    );
    run(&with, release.path(), false, None).0.unwrap();
    let doc = Document::parse(&release.read()).unwrap();
    assert_eq!(doc.get("ksql.service.id").as_deref(), Some("svc_"));
    assert_eq!(doc.get("compression.type").as_deref(), Some("zstd"));

    let without = settings(cfg.path(), "");
    let (out, _) = run(&without, release.path(), false, None);
    let out = out.unwrap();
    assert!(out.changed);
    assert!(out.hand_added.is_empty(), "{:?}", out.hand_added);
    assert!(out.diff.contains("-ksql.service.id=svc_\n"), "{}", out.diff);
    let doc = Document::parse(&release.read()).unwrap();
    assert_eq!(doc.get("ksql.service.id"), None);
    assert_eq!(doc.get("compression.type").as_deref(), Some("snappy"));
}

#[test]
fn dry_run_writes_nothing_and_missing_pristine_is_created() {
    let Some(upstream) = fixture() else { return };
    let release = Release::new(&upstream);
    let pristine = release.path().join(layout::PRISTINE_PROPERTIES);
    std::fs::remove_file(&pristine).unwrap();
    let cfg = tempfile::tempdir().unwrap();
    let s = settings(cfg.path(), "");

    let (out, _) = run(&s, release.path(), true, None);
    let out = out.unwrap();
    assert!(out.changed);
    assert!(out
        .diff
        .starts_with("--- a/etc/ksqldb/ksql-server.properties\n"));
    assert_eq!(release.read(), upstream, "dry run wrote the live file");
    assert!(!pristine.exists(), "dry run wrote the pristine copy");

    run(&s, release.path(), false, None).0.unwrap();
    assert_eq!(std::fs::read(&pristine).unwrap(), upstream);
    // Lost after a render: rebuilt from the live file minus our appended block (values
    // managed in place stay, they are rewritten on every render anyway).
    std::fs::remove_file(&pristine).unwrap();
    let (out, logs) = run(&s, release.path(), false, None);
    assert!(!out.unwrap().changed);
    assert!(
        logs.contains("rebuilt it without the managed block"),
        "{logs}"
    );
    let rebuilt = String::from_utf8(std::fs::read(&pristine).unwrap()).unwrap();
    assert!(!rebuilt.contains(MANAGED_MARKER));
    assert!(!rebuilt.contains("sasl.mechanism"));
    assert!(String::from_utf8(upstream)
        .unwrap()
        .starts_with(&rebuilt[..1000]));
}

#[test]
fn advertised_listener_comes_from_imds() {
    let Some(upstream) = fixture() else { return };
    let release = Release::new(&upstream);
    let cfg = tempfile::tempdir().unwrap();
    let s = settings(cfg.path(), "");
    let imds = FakeImds::start("eu-west-1", "10.1.2.3");
    run(&s, release.path(), false, Some(&imds.url())).0.unwrap();
    let doc = Document::parse(&release.read()).unwrap();
    assert_eq!(
        doc.get("ksql.advertised.listener").as_deref(),
        Some("http://10.1.2.3:8088")
    );
    assert!(imds
        .server
        .requests()
        .iter()
        .any(|r| r.path() == "/latest/meta-data/local-ipv4"));

    // IMDS disabled: a warning, and the key goes away.
    let (out, logs) = run(&s, release.path(), false, None);
    assert!(out.unwrap().changed);
    assert!(logs.contains("ksql.advertised.listener left out"), "{logs}");
    let doc = Document::parse(&release.read()).unwrap();
    assert_eq!(doc.get("ksql.advertised.listener"), None);
}

#[test]
fn malformed_escape_is_a_data_error_naming_file_and_line() {
    let release = Release::new(b"a=1\n# x\nbad=\\u12\n");
    let cfg = tempfile::tempdir().unwrap();
    let s = settings(cfg.path(), "");
    let err = run(&s, release.path(), false, None).0.unwrap_err();
    assert_eq!(exit_code_of(&err), ExitCode::Data);
    let line = one_line(&err);
    assert!(
        line.contains("ksql-server.properties.dist: line 3: bad: malformed \\uxxxx encoding"),
        "{line}"
    );
}

// ---------------------------------------------------------------------------
// Cross-check with java.util.Properties

/// What the Rust parser reads, in PropsDump's format.
fn rust_dump(bytes: &[u8]) -> Vec<String> {
    let Ok(doc) = Document::parse(bytes) else {
        return vec!["!error".into()];
    };
    let esc = |s: &[u16]| -> String {
        s.iter()
            .map(|&c| {
                if (0x21..=0x7e).contains(&c) && c != u16::from(b'\\') && c != u16::from(b'=') {
                    (c as u8 as char).to_string()
                } else {
                    format!("\\u{c:04x}")
                }
            })
            .collect()
    };
    let mut lines: Vec<String> = doc
        .java_map()
        .iter()
        .map(|(k, v)| format!("{}={}", esc(k), esc(v)))
        .collect();
    lines.sort();
    lines
}

/// What Java reads from each input, or `None` when there is no `java`.
fn java_dump(inputs: &[Vec<u8>]) -> Option<Vec<Vec<String>>> {
    if let Err(e) = Command::new("java").arg("-version").output() {
        skip(
            "KSQL_MSK_REQUIRE_JAVA",
            &format!("the java.util.Properties cross-check: cannot run `java`: {e}"),
        );
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        let path = dir.path().join(format!("{i}.properties"));
        std::fs::write(&path, input).unwrap();
        files.push(path);
    }
    let out = Command::new("java")
        .arg(repo_root().join("tests/java/PropsDump.java"))
        .args(&files)
        .output()
        .expect("run java");
    assert!(
        out.status.success(),
        "PropsDump failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut dumps: Vec<Vec<String>> = Vec::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        if line.starts_with("== ") {
            dumps.push(Vec::new());
        } else {
            dumps
                .last_mut()
                .expect("== header first")
                .push(line.to_string());
        }
    }
    assert_eq!(dumps.len(), inputs.len());
    Some(dumps)
}

fn cross_check(inputs: &[Vec<u8>]) {
    let Some(java) = java_dump(inputs) else {
        return;
    };
    let mut mismatches = Vec::new();
    for (input, want) in inputs.iter().zip(&java) {
        let got = rust_dump(input);
        if &got != want {
            mismatches.push(format!(
                "input {:?}\n  java: {want:?}\n  rust: {got:?}",
                String::from_utf8_lossy(input)
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} inputs read differently:\n{}",
        mismatches.len(),
        inputs.len(),
        mismatches.join("\n")
    );
}

/// Inputs built from the characters the format cares about.
fn hostile_inputs(n: usize) -> Vec<Vec<u8>> {
    let atoms: Vec<&'static [u8]> = vec![
        b"a",
        b"key",
        b".",
        b"=",
        b":",
        b" ",
        b"\t",
        b"\x0c",
        b"\\",
        b"\\\\",
        b"\n",
        b"\r",
        b"\r\n",
        b"#",
        b"!",
        b"\\u",
        b"00e9",
        b"\\u0041",
        b"\\uD83D",
        b"u",
        b"\\n",
        b"\\ ",
        "é".as_bytes(),
        b"\xff",
        b"\\\n",
        b"\\\r\n",
    ];
    let strategy = proptest::collection::vec(proptest::sample::select(atoms), 0..30)
        .prop_map(|parts| parts.concat());
    let mut runner = TestRunner::deterministic();
    (0..n)
        .map(|_| strategy.new_tree(&mut runner).unwrap().current())
        .collect()
}

fn edge_cases() -> Vec<Vec<u8>> {
    [
        &b"a=1\\\n    b\\\\\nc=3"[..],
        b"a=1\\",
        b"a=1\\\n",
        b"\\",
        b"\\\n",
        b"\\\n\nb=2",
        b"\\\n#c\nb=2",
        b"  \\\n   ",
        b"a=1\\\r\n  2\r\nb\\\r\r\nc",
        b"# c \\\nx=1\n! d\n  #e=2",
        b"k\\:1\\=2\\ 3=\\u00e9\\t\\\\\\q",
        b"dup=1\ndup=2\ndup 3",
        b"x=\\u12",
        b"\\u0041\\u00=1",
        b"a\x0c=\x0cb\x0c",
        b"key\n\n\n",
        b"a=1\r\rb=2\n\rc=3",
        b"\xe9t\xe9=\xff",
        b"=",
        b":x",
        b" = ",
    ]
    .iter()
    .map(|b| b.to_vec())
    .collect()
}

#[test]
fn java_reads_what_the_parser_reads() {
    let mut inputs = edge_cases();
    inputs.extend(hostile_inputs(600));
    if let Some(upstream) = fixture() {
        inputs.push(upstream);
    }
    cross_check(&inputs);
}

#[test]
fn java_reads_rendered_output_as_intended() {
    let Some(upstream) = fixture() else { return };
    let release = Release::new(&upstream);
    let cfg = tempfile::tempdir().unwrap();
    let s = settings(
        cfg.path(),
        "[iam_auth]\nrole_arn = \"arn:aws:iam::123456789012:role/msk\"\ndebug_creds = true\n\
         [properties]\n\"odd key:=\" = \" lead, tab\\t, nl\\n, back\\\\slash, é€😀\"\n\
         \"compression.type\" = \"=zstd\"\n",
    );
    run(&s, release.path(), false, None).0.unwrap();
    let rendered = release.read();
    let mut inputs = vec![rendered.clone()];
    // Edits on hostile inputs too: set and remove, then Java must read the edits.
    let mut edited_expect = Vec::new();
    for (i, mut input) in hostile_inputs(200).into_iter().enumerate() {
        let Ok(mut doc) = Document::parse(&input) else {
            continue;
        };
        doc.set("key", &format!(" v{i}:=\\"));
        doc.remove("a");
        doc.set("new key", "é\r\n");
        input = doc.render_checked().unwrap();
        edited_expect.push(input.clone());
        inputs.push(input);
    }
    cross_check(&inputs);

    // And the values are the ones asked for (Java's view equals the Rust view above).
    let doc = Document::parse(&rendered).unwrap();
    assert_eq!(
        doc.get("odd key:=").as_deref(),
        Some(" lead, tab\t, nl\n, back\\slash, é€😀")
    );
    assert_eq!(doc.get("compression.type").as_deref(), Some("=zstd"));
    assert_eq!(
        doc.get("sasl.jaas.config").as_deref(),
        Some(
            "software.amazon.msk.auth.iam.IAMLoginModule required \
             awsRoleArn=\"arn:aws:iam::123456789012:role/msk\" awsDebugCreds=true;"
        )
    );
    for edited in &edited_expect {
        let doc = Document::parse(edited).unwrap();
        assert_eq!(doc.get("new key").as_deref(), Some("é\r\n"));
        assert_eq!(doc.get("a"), None);
    }
}
