//! Credentials inside artifact URLs (`http://user:password@mirror/...`) are sent to the
//! mirror (as Basic auth) but never shown: not on stdout or stderr of an install, a dry
//! run, a failing install or a refused redirect, not in `run`'s stderr, journal or
//! STATUS, and not in any file under the state directory (manifest, trust.toml, cache
//! names and resume sidecars).

use std::path::Path;

use ksql_msk_testkit::artifacts::Fault;
use ksql_msk_testkit::signing::TestKey;
use ksql_msk_testkit::{standins, tarball};

use crate::install::{archive_path, assert_installed, jar_path, Pins, World, JAR_VERSION, NEW};
use crate::run::{wait_for, Fixture};
use crate::support::{error_line, Output};

const USER: &str = "mirroruser";
const PASSWORD: &str = "s3cretPW";

/// `Basic base64("mirroruser:s3cretPW")`, what reqwest sends for a URL's userinfo.
const BASIC: &str = "Basic bWlycm9ydXNlcjpzM2NyZXRQVw==";

/// Point every artifact URL of the world's config at `user:password@` the artifact
/// server (which ignores auth), and trust on first use (empty pins) so that the jar
/// URL and the signer land in trust.toml too.
fn with_credentials(w: &World, agent: &str) {
    let key_fp_placeholder = Pins::strict("0").agent(agent);
    w.configure(NEW, &key_fp_placeholder);
    let path = w.host.config_path();
    let text = std::fs::read_to_string(&path).unwrap();
    let plain = w.art.server.url();
    let secret = plain.replacen("http://", &format!("http://{USER}:{PASSWORD}@"), 1);
    let text = text.replace(&plain, &secret);
    let text = text.replace(
        "trusted_fingerprints = [\"0\"]",
        "trusted_fingerprints = []",
    );
    let text = text
        .lines()
        .map(|l| {
            if l.starts_with("sha256 = ") {
                "sha256 = \"\""
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        text.contains(&format!("{USER}:{PASSWORD}@127.0.0.1")),
        "{text}"
    );
    std::fs::write(&path, text).unwrap();
}

fn assert_clean(what: &str, out: &Output) {
    assert!(
        !out.stdout.contains(PASSWORD) && !out.stderr.contains(PASSWORD),
        "{what} shows the URL password: {out:?}"
    );
}

/// Every file under `dir` (following no links), by path and content.
fn assert_state_clean(dir: &Path) {
    let mut seen = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            assert!(
                !p.to_string_lossy().contains(PASSWORD),
                "a path holds the URL password: {}",
                p.display()
            );
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                stack.push(p);
            } else if meta.is_file() {
                let body = std::fs::read(&p).unwrap();
                let found = body
                    .windows(PASSWORD.len())
                    .any(|w| w == PASSWORD.as_bytes());
                assert!(!found, "{} holds the URL password", p.display());
                seen += 1;
            } else if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&p).unwrap();
                assert!(!target.to_string_lossy().contains(PASSWORD));
            }
        }
    }
    assert!(seen > 0, "nothing under {}", dir.display());
}

fn assert_sent_credentials(w: &World, path: &str) {
    let reqs = w.art.requests_for(path);
    assert!(!reqs.is_empty(), "no request for {path}");
    for r in reqs {
        assert_eq!(r.header("authorization"), Some(BASIC), "{path}: {r:?}");
    }
}

#[test]
fn url_credentials_are_sent_but_never_shown_or_stored() {
    let w = World::new();
    let key = TestKey::generate("k <k@example.com>");
    w.publish(NEW, &tarball::large_tarball(NEW, 3 << 20), &key);
    with_credentials(&w, "");

    let dry = w.host.run(&["install", "--dry-run"]);
    assert_eq!(dry.code, 0, "{dry:?}");
    assert_clean("install --dry-run", &dry);
    assert!(
        dry.stdout.contains("would download http://***@127.0.0.1:"),
        "the dry run names the redacted URL: {dry:?}"
    );

    // A 5xx first: the retry is logged, naming the URL; then a reset mid-body: the
    // resume matches the sidecar (which holds the redacted URL) and goes on.
    w.art.fault_next(&archive_path(NEW), Fault::Status(503));
    w.art
        .fault_next(&archive_path(NEW), Fault::ResetAfter(1 << 20));
    let out = w.install();
    assert_eq!(out.code, 0, "{out:?}");
    assert_clean("install", &out);
    assert!(out.stderr.contains("HTTP 503"), "{out:?}");
    assert!(out.stderr.contains("resuming at byte"), "{out:?}");
    assert!(out.stderr.contains("http://***@127.0.0.1:"), "{out:?}");
    assert_installed(&w, NEW);
    for p in [
        archive_path(NEW),
        format!("{}.asc", archive_path(NEW)),
        jar_path(JAR_VERSION),
    ] {
        assert_sent_credentials(&w, &p);
    }
    assert_state_clean(&w.state());
    // What is stored names the mirror, redacted.
    let manifest = std::fs::read_to_string(
        w.state()
            .join("releases")
            .join(NEW)
            .join(".ksql-msk-manifest.toml"),
    )
    .unwrap();
    assert!(
        manifest.contains("archive_url = \"http://***@127.0.0.1:"),
        "{manifest}"
    );
    let trust = std::fs::read_to_string(w.state().join("trust.toml")).unwrap();
    assert!(trust.contains("\"http://***@127.0.0.1:"), "{trust}");

    // The warm rerun matches the manifest against the config: still installed, nothing
    // downloaded again.
    let before = w.archive_requests(NEW);
    let again = w.install();
    assert_eq!(again.code, 0, "{again:?}");
    assert_clean("a second install", &again);
    assert_eq!(
        w.archive_requests(NEW),
        before,
        "the rerun downloaded again"
    );
    assert_state_clean(&w.state());
}

#[test]
fn failing_downloads_name_the_redacted_url() {
    let w = World::new();
    let key = TestKey::generate("k <k@example.com>");
    w.publish(NEW, &tarball::ksqldb_tarball(NEW), &key);
    w.art.remove(&archive_path(NEW));
    with_credentials(&w, "download_timeout = \"3s\"");

    let out = w.install();
    assert_eq!(out.code, 69, "{out:?}");
    assert_clean("install of a missing archive", &out);
    let line = error_line(&out);
    assert!(line.contains("404"), "{line}");
    assert!(line.contains("http://***@127.0.0.1:"), "{line}");
    assert_sent_credentials(&w, &archive_path(NEW));

    // Cut short once (a partial file and its resume sidecar stay), then only 500s.
    w.publish(NEW, &tarball::large_tarball(NEW, 3 << 20), &key);
    w.art
        .fault_next(&archive_path(NEW), Fault::ResetAfter(1 << 20));
    w.art.fault_always(&archive_path(NEW), Fault::Status(500));
    let out = w.install();
    assert_eq!(out.code, 75, "{out:?}");
    assert_clean("install that exhausts its retries", &out);
    let line = error_line(&out);
    assert!(line.contains("HTTP 500"), "{line}");
    assert!(line.contains("http://***@127.0.0.1:"), "{line}");
    assert_state_clean(&w.state());
    let sidecars: Vec<String> = std::fs::read_dir(w.state().join("cache"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".part.meta"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    assert_eq!(sidecars.len(), 1, "{sidecars:?}");
    assert!(
        sidecars[0].starts_with("url http://***@127.0.0.1:"),
        "{sidecars:?}"
    );
}

#[test]
fn a_refused_redirect_does_not_show_the_credentials_of_its_target() {
    const TARGET_PW: &str = "L0cationPW";
    let w = World::new();
    let key = TestKey::generate("k <k@example.com>");
    w.publish(NEW, &tarball::ksqldb_tarball(NEW), &key);
    with_credentials(&w, "");
    let to = format!("ftp://evil:{TARGET_PW}@127.0.0.1/x.tar.gz");
    w.art
        .fault_always(&archive_path(NEW), Fault::Redirect(to.clone()));
    let out = w.install();
    assert_eq!(out.code, 69, "{out:?}");
    assert_clean("install redirected to ftp:", &out);
    assert!(!out.stderr.contains(TARGET_PW), "{out:?}");
    let line = error_line(&out);
    assert!(line.contains("ftp://***@127.0.0.1/x.tar.gz"), "{line}");
}

/// `run`: the first start's downloads (one retried), the health probes and a reload
/// whose archive is missing: stderr, the journal and STATUS never show the password.
#[test]
fn run_logs_journal_and_status_do_not_show_url_credentials() {
    let mut fx = Fixture::uninstalled("", "17.0.15", "1.1.1");
    let path = fx.host.config_path();
    let text = std::fs::read_to_string(&path).unwrap();
    let plain = fx.art.server.url();
    let secret = plain.replacen("http://", &format!("http://{USER}:{PASSWORD}@"), 1);
    let text = text.replace(&plain, &secret).replace(
        "health_url = \"http://127.0.0.1:",
        &format!("health_url = \"http://{USER}:{PASSWORD}@127.0.0.1:"),
    );
    assert_eq!(text.matches(PASSWORD).count(), 4, "{text}");
    std::fs::write(&path, &text).unwrap();
    fx.art
        .fault_next(&standins::archive_path("0.28.2"), Fault::Status(503));
    let notify = fx.notify_socket();
    let journal = fx.journal_socket();
    let mut agent = fx.start();
    wait_for("READY=1", || notify.lines().iter().any(|l| l == "READY=1"));

    // Another version whose archive is not there: the reload fails, naming its URL.
    std::fs::write(&path, text.replace("\"0.28.2\"", "\"0.28.3\"")).unwrap();
    agent.signal(libc::SIGHUP);
    let failed = || {
        notify
            .lines()
            .into_iter()
            .find(|l| l.starts_with("STATUS=reload failed"))
    };
    wait_for("STATUS of the failed reload", || failed().is_some());
    let status = failed().unwrap_or_default();
    assert!(
        status.contains("http://***@127.0.0.1:") && status.contains("404"),
        "STATUS names the missing download, redacted: {status}"
    );
    assert_eq!(agent.stop(), 0);

    let journal: Vec<String> = journal
        .raw()
        .iter()
        .map(|(_, m)| String::from_utf8_lossy(m).into_owned())
        .collect();
    let journal = journal.join("\n");
    let notify = notify.lines().join("\n");
    for (what, text) in [
        ("run stderr", agent.stderr()),
        ("journal", journal.clone()),
        ("notify", notify.clone()),
    ] {
        assert!(
            !text.contains(PASSWORD),
            "{what} shows the URL password:\n{text}"
        );
    }
    let stderr = agent.stderr();
    assert!(
        stderr.contains("HTTP 503") && stderr.contains("http://***@127.0.0.1:"),
        "{stderr}"
    );
    assert!(journal.contains("is healthy"), "{journal}");
    assert_state_clean(&fx.host.state_dir());
}
