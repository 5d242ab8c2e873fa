//! `ksql-msk status [--json]` and the metrics textfile (issue 14, items 2 and 3):
//! against a real install and a running agent in the test world, field by field;
//! after a crash of ksqlDB; with the service stopped; with a hostile state file.
//! The textfile is parsed by a real Prometheus parser (Python's prometheus_client).

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::fixture::{wait_for, Fixture, VERSION};
use crate::support::world::{sha256_hex, World, JAR_BYTES};
use crate::support::{skip, Output};

/// `status`'s summary with the label column's padding collapsed to one space.
fn summary(fx: &Fixture) -> Output {
    let mut out = fx.host.run(&["status"]);
    out.stdout = squeeze(&out.stdout);
    out
}

fn squeeze(text: &str) -> String {
    text.lines()
        .map(|l| match l.find(":  ") {
            Some(i) => format!("{}: {}", &l[..i], l[i + 1..].trim_start()),
            None => l.to_string(),
        })
        .map(|l| l + "\n")
        .collect()
}

fn status_json(fx: &Fixture) -> Value {
    let out = fx.host.run(&["status", "--json"]);
    assert_eq!(out.code, 0, "{out:?}");
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
}

/// The textfile as prometheus_client's parser sees it: family name → (type, help,
/// samples as (name, labels, value)). None (the test skips) without the parser.
type Families = HashMap<String, (String, String, Vec<(String, HashMap<String, String>, f64)>)>;

const PARSE: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for f in text_string_to_metric_families(open(sys.argv[1]).read()):
    out[f.name] = [f.type, f.documentation, [[s.name, s.labels, s.value] for s in f.samples]]
print(json.dumps(out))
"#;

fn parse_prom(path: &Path) -> Option<Families> {
    let have = Command::new("python3")
        .args(["-c", "import prometheus_client"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !have {
        skip(
            "KSQL_MSK_REQUIRE_PROMETHEUS_CLIENT",
            "no Python prometheus_client to parse the metrics textfile (tests/setup-host installs it)",
        );
        return None;
    }
    let out = Command::new("python3")
        .args(["-c", PARSE])
        .arg(path)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "prometheus_client refused {}:\n{}\n{}",
        path.display(),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(path).unwrap_or_default()
    );
    let raw: HashMap<String, Value> = serde_json::from_slice(&out.stdout).expect("parser output");
    Some(
        raw.into_iter()
            .map(|(name, v)| {
                let samples = v[2]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| {
                        let labels = s[1]
                            .as_object()
                            .unwrap()
                            .iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                            .collect();
                        (
                            s[0].as_str().unwrap().to_string(),
                            labels,
                            s[2].as_f64().unwrap(),
                        )
                    })
                    .collect();
                let kind = v[0].as_str().unwrap().to_string();
                let help = v[1].as_str().unwrap().to_string();
                (name, (kind, help, samples))
            })
            .collect(),
    )
}

/// The one value of an unlabelled family (or of its sample with `label`=`value`).
fn value(f: &Families, family: &str, kind: &str, label: Option<(&str, &str)>) -> f64 {
    let (t, help, samples) = f
        .get(family)
        .unwrap_or_else(|| panic!("no family {family} in {:?}", f.keys()));
    assert_eq!(t, kind, "{family}'s type");
    assert!(!help.is_empty(), "{family} has no HELP");
    let matching: Vec<&(String, HashMap<String, String>, f64)> = samples
        .iter()
        .filter(|(_, labels, _)| match label {
            Some((k, v)) => labels.get(k).map(String::as_str) == Some(v),
            None => true,
        })
        .collect();
    assert_eq!(matching.len(), 1, "{family} {label:?}: {samples:?}");
    matching[0].2
}

fn condition(f: &Families) -> String {
    let (_, _, samples) = &f["ksql_msk_health_condition"];
    let set: Vec<&String> = samples
        .iter()
        .filter(|(_, _, v)| *v == 1.0)
        .map(|(_, l, _)| &l["condition"])
        .collect();
    assert_eq!(set.len(), 1, "exactly one condition is 1: {samples:?}");
    assert!(samples.iter().all(|(_, _, v)| *v == 0.0 || *v == 1.0));
    set[0].clone()
}

#[test]
fn status_reports_a_running_agent_field_by_field_and_follows_a_crash() {
    let mut fx = Fixture::new("");
    let prom = fx.host.dir.path().join("textfile/ksql-msk.prom");
    std::fs::create_dir_all(prom.parent().unwrap()).unwrap();
    let config = std::fs::read_to_string(fx.host.config_path()).unwrap();
    std::fs::write(
        fx.host.config_path(),
        format!("{config}\n[metrics]\ntextfile = \"{}\"\n", prom.display()),
    )
    .unwrap();
    fx.host
        .write_dropin("50-test.toml", "[agent]\nrestart_limit = 3\n");
    let dropin = fx
        .host
        .config_path()
        .parent()
        .unwrap()
        .join("ksql-msk.d/50-test.toml");
    assert!(dropin.is_file(), "{}", dropin.display());
    let notify = fx.notify_socket();
    let mut agent = fx.start();
    wait_for("READY=1", || notify.lines().iter().any(|l| l == "READY=1"));
    wait_for("status: healthy", || {
        status_json(&fx)["ksqldb"]["health"]["condition"] == "healthy"
    });
    let s = status_json(&fx);
    eprintln!("{}", serde_json::to_string_pretty(&s).unwrap());
    assert_eq!(s["schema_version"], 1);
    assert_eq!(s["service"]["running"], true);
    assert_eq!(s["service"]["agent_pid"], agent.child.id());
    assert_eq!(s["service"]["agent_version"], env!("CARGO_PKG_VERSION"));
    let rel = &s["release"];
    assert_eq!(rel["version"], VERSION);
    assert_eq!(rel["path"], fx.release.display().to_string());
    assert_eq!(rel["archive_sha256"], sha256_hex(&fx.archive));
    assert_eq!(rel["signer"], fx.key.fingerprint());
    assert_eq!(rel["trust"], "pinned");
    assert!(rel["verified_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    assert_eq!(s["kept_releases"], serde_json::json!([]));
    let jar = &s["iam_jar"];
    assert_eq!(jar["version"], "1.1.1");
    assert_eq!(jar["file"], "aws-msk-iam-auth-1.1.1-all.jar");
    assert_eq!(jar["sha256"], sha256_hex(JAR_BYTES));
    assert_eq!(jar["trust"], "pinned");
    let served: Vec<&str> = fx
        .cluster
        .brokers_field("bootstrapBrokerStringSaslIam")
        .unwrap()
        .split(',')
        .collect();
    assert_eq!(s["brokers"]["list"], serde_json::json!(served));
    assert_eq!(s["brokers"]["count"], 3);
    assert!(s["brokers"]["discovered_at"].is_string());
    assert!(s["brokers"]["discovery_seconds"].as_f64().unwrap() >= 0.0);
    assert_eq!(s["cluster"]["arn"], fx.cluster.arn);
    assert_eq!(s["cluster"]["name"], "demo");
    assert_eq!(s["cluster"]["state"], "ACTIVE");
    assert_eq!(s["cluster"]["serverless"], false);
    let first = fx.pids()[0];
    assert_eq!(s["ksqldb"]["pid"], first);
    assert!(s["ksqldb"]["uptime_seconds"].as_u64().is_some());
    assert_eq!(
        s["ksqldb"]["health"]["failing_checks"],
        serde_json::json!([])
    );
    assert_eq!(s["restarts"]["in_window"], 0);
    assert_eq!(s["restarts"]["total"], 0);
    assert_eq!(s["restarts"]["limit"], 3);
    assert_eq!(s["restarts"]["window_seconds"], 60);
    assert_eq!(s["last_failure"], Value::Null);
    assert!(s["last_install"]["seconds"].as_f64().is_some());
    assert_eq!(
        s["config_files"],
        serde_json::json!([
            fx.host.config_path().display().to_string(),
            dropin.display().to_string()
        ])
    );
    assert_eq!(s["state_file"]["problem"], Value::Null);
    // No upgrade failed or was rolled back; the running release is the last good one.
    assert_eq!(s["upgrade"]["failed"], Value::Null, "{s}");
    assert_eq!(s["upgrade"]["rolled_back_by_hand"], Value::Null);
    assert_eq!(s["upgrade"]["last_good"], "0.28.2");
    assert_eq!(s["auth"]["mode"], "none");
    assert_eq!(s["auth"]["password_file"], Value::Null);
    // The state file: 0640, so the service's group reads it.
    let mode = std::fs::metadata(fx.host.state_dir().join("status.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o640);

    // The summary for people.
    let human = summary(&fx);
    assert_eq!(human.code, 0, "{human:?}");
    eprintln!("{}", human.stdout);
    for needle in [
        "service: running (agent pid",
        "ksqlDB: healthy for",
        &format!("pid {first}"),
        "restarts: 0 in the last 1m (limit 3), 0 since the agent started",
        "last failure: none",
        &format!("release: ksqlDB {VERSION} in"),
        &format!("signed by {} (pinned)", fx.key.fingerprint()),
        "brokers: 3: b-1.demo",
    ] {
        assert!(
            human.stdout.contains(needle),
            "{needle:?} in\n{}",
            human.stdout
        );
    }
    assert!(
        human.stdout.lines().count() <= 24,
        "one screen:\n{}",
        human.stdout
    );

    let mut metrics = parse_prom(&prom);
    if metrics.is_some() {
        // The textfile is written after status.json (the same background write): wait
        // for the snapshot that says healthy.
        wait_for("the textfile says healthy", || {
            metrics = parse_prom(&prom);
            metrics.as_ref().is_some_and(|m| condition(m) == "healthy")
        });
    }
    if let Some(m) = &metrics {
        let (_, _, info) = &m["ksql_msk_release_info"];
        assert_eq!(info[0].1["version"], VERSION);
        assert_eq!(info[0].1["archive_sha256"], sha256_hex(&fx.archive));
        assert_eq!(value(m, "ksql_msk_release_info", "gauge", None), 1.0);
        // prometheus_client names a counter's family without `_total`.
        assert_eq!(value(m, "ksql_msk_restarts", "counter", None), 0.0);
        assert_eq!(value(m, "ksql_msk_brokers", "gauge", None), 3.0);
        assert!(value(m, "ksql_msk_download_bytes", "counter", None) >= 0.0);
        let installed = value(m, "ksql_msk_last_install_timestamp_seconds", "gauge", None);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            installed > now - 600.0 && installed <= now,
            "{installed} vs {now}"
        );
        assert!(value(m, "ksql_msk_last_install_duration_seconds", "gauge", None) >= 0.0);
        assert!(
            value(
                m,
                "ksql_msk_last_discovery_timestamp_seconds",
                "gauge",
                None
            ) > 0.0
        );
        assert!(value(m, "ksql_msk_last_discovery_duration_seconds", "gauge", None) >= 0.0);
        assert!(value(m, "ksql_msk_ksqldb_start_time_seconds", "gauge", None) > 0.0);
    }

    // A crash: the restart is counted, the failure recorded, the new pid shown.
    std::fs::write(fx.control("fake-ksqldb.crash"), "").unwrap();
    wait_for("a second start", || fx.pids().len() == 2);
    let second = fx.pids()[1];
    wait_for("status: healthy again, restarted once", || {
        let s = status_json(&fx);
        s["ksqldb"]["health"]["condition"] == "healthy" && s["ksqldb"]["pid"] == second
    });
    let s = status_json(&fx);
    assert_eq!(s["restarts"]["in_window"], 1);
    assert_eq!(s["restarts"]["total"], 1);
    let failure = &s["last_failure"];
    assert_eq!(
        failure["reason"], "ksqlDB exited with exit code 1",
        "{failure}"
    );
    assert!(failure["at"].is_string());
    let human = summary(&fx).stdout;
    assert!(
        human.contains("restarts: 1 in the last 1m (limit 3), 1 since the agent started"),
        "{human}"
    );
    assert!(
        human.contains("last failure: ksqlDB exited with exit code 1 at "),
        "{human}"
    );
    if metrics.is_some() {
        wait_for("the textfile counts the restart", || {
            parse_prom(&prom).is_some_and(|m| {
                value(&m, "ksql_msk_restarts", "counter", None) == 1.0 && condition(&m) == "healthy"
            })
        });
        let m = parse_prom(&prom).unwrap();
        assert_eq!(value(&m, "ksql_msk_restarts_in_window", "gauge", None), 1.0);
    }

    // Stopped: says so, and still shows what is on disk.
    assert_eq!(agent.stop(), 0);
    let s = status_json(&fx);
    assert_eq!(s["service"]["running"], false, "{s}");
    assert!(
        s["service"]["detail"]
            .as_str()
            .unwrap()
            .contains("not running"),
        "{s}"
    );
    assert_eq!(s["ksqldb"]["pid"], Value::Null);
    assert_eq!(s["ksqldb"]["health"]["condition"], "stopped");
    assert_eq!(s["release"]["version"], VERSION);
    assert_eq!(s["release"]["archive_sha256"], sha256_hex(&fx.archive));
    assert_eq!(
        s["last_failure"]["reason"],
        "ksqlDB exited with exit code 1"
    );
    let human = summary(&fx);
    assert_eq!(human.code, 0, "{human:?}");
    assert!(
        human
            .stdout
            .starts_with("service: not running: the service is not running"),
        "{}",
        human.stdout
    );
    if let Some(m) = parse_prom(&prom) {
        assert_eq!(condition(&m), "stopped");
    }
}

#[test]
fn status_without_a_running_agent_shows_the_disk_and_a_kept_release() {
    let fx = Fixture::new("");
    // Installed, never run: the active release from `current` and its manifest.
    let s = status_json(&fx);
    assert_eq!(s["service"]["running"], false);
    assert_eq!(s["release"]["version"], VERSION);
    assert_eq!(s["release"]["archive_sha256"], sha256_hex(&fx.archive));
    assert_eq!(s["release"]["signer"], fx.key.fingerprint());
    assert_eq!(s["iam_jar"]["sha256"], sha256_hex(JAR_BYTES));
    assert_eq!(s["ksqldb"]["pid"], Value::Null);
    assert_eq!(s["ksqldb"]["health"]["condition"], "unknown");
    assert!(s["state_file"]["problem"].is_string());
    // Another verified release beside it is listed as kept.
    let other = fx.host.state_dir().join("releases/0.28.0");
    std::fs::create_dir(&other).unwrap();
    let manifest = std::fs::read_to_string(fx.release.join(".ksql-msk-manifest.toml"))
        .unwrap()
        .replace(&format!("version = \"{VERSION}\""), "version = \"0.28.0\"");
    std::fs::write(other.join(".ksql-msk-manifest.toml"), manifest).unwrap();
    let s = status_json(&fx);
    assert_eq!(s["kept_releases"][0]["version"], "0.28.0", "{s}");
    assert_eq!(s["kept_releases"].as_array().unwrap().len(), 1);
    // A stale state file (its agent pid is another process now): not running.
    let doc = serde_json::json!({
        "schema_version": 1,
        "written_at": "2026-01-01T00:00:00.000Z",
        "agent": {"pid": std::process::id(), "start_ticks": 1, "version": "0.0.1"},
        "ksqldb": {"pid": std::process::id(), "start_ticks": 1,
                   "health": {"condition": "healthy"}}
    });
    std::fs::write(fx.host.state_dir().join("status.json"), doc.to_string()).unwrap();
    let s = status_json(&fx);
    assert_eq!(s["service"]["running"], false, "{s}");
    assert!(s["service"]["detail"]
        .as_str()
        .unwrap()
        .contains("another process"));
    assert_eq!(s["ksqldb"]["health"]["condition"], "stopped");
    assert_eq!(s["ksqldb"]["pid"], Value::Null);

    // Text from the state file with C0 and C1 controls (U+009B is CSI): escaped in the
    // JSON text, never raw on a terminal, and the same string once parsed.
    let reason = "bad\u{1b}[2J\u{9b}31m\u{85}end";
    let doc = serde_json::json!({
        "schema_version": 1,
        "written_at": "2026-01-01T00:00:00.000Z",
        "last_failure": {"reason": reason, "at": "2026-01-01T00:00:00.000Z"}
    });
    std::fs::write(fx.host.state_dir().join("status.json"), doc.to_string()).unwrap();
    let out = fx.host.run(&["status", "--json"]);
    assert!(
        !out.stdout.chars().any(|c| c.is_control() && c != '\n'),
        "raw control characters in status --json: {:?}",
        out.stdout
    );
    assert!(out.stdout.contains(r"\u009b31m\u0085end"), "{}", out.stdout);
    let s: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(s["last_failure"]["reason"], reason, "{s}");
}

#[test]
fn a_first_start_counts_the_bytes_it_downloaded() {
    let fx = Fixture::uninstalled("", "17.0.15", "1.1.1");
    let prom = fx.host.dir.path().join("ksql-msk.prom");
    let config = std::fs::read_to_string(fx.host.config_path()).unwrap();
    std::fs::write(
        fx.host.config_path(),
        format!("{config}\n[metrics]\ntextfile = \"{}\"\n", prom.display()),
    )
    .unwrap();
    let mut agent = fx.start();
    wait_for("status: healthy", || {
        // 69 until the first install is in place.
        let out = fx.host.run(&["status", "--json"]);
        serde_json::from_str::<Value>(&out.stdout)
            .is_ok_and(|s| s["ksqldb"]["health"]["condition"] == "healthy")
    });
    let s = status_json(&fx);
    // The archive and the jar at least (the signature and key come on top).
    let least = (fx.archive.len() + JAR_BYTES.len()) as u64;
    let bytes = s["download_bytes"].as_u64().unwrap();
    assert!(bytes >= least, "{bytes} < {least}");
    assert!(bytes < least + 64 * 1024, "{bytes}");
    if let Some(m) = parse_prom(&prom) {
        assert_eq!(
            value(&m, "ksql_msk_download_bytes", "counter", None),
            bytes as f64
        );
    }
    assert_eq!(agent.stop(), 0);
}

#[test]
fn status_with_nothing_installed_exits_69() {
    let w = World::new();
    w.host.write_config("[msk]\ncluster_name = \"demo\"\n");
    let out = w.host.run(&["status"]);
    assert_eq!(out.code, 69, "{out:?}");
    let err: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(err.len(), 1, "{out:?}");
    assert!(err[0].contains("nothing is installed"), "{out:?}");
    assert!(
        squeeze(&out.stdout).contains("release: none installed"),
        "{out:?}"
    );
}

/// `status` (and `--json`) under `timeout`: its output, or a failure if it hangs.
fn run_bounded(fx: &Fixture, args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let mut child = fx
        .host
        .command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let end = started + Duration::from_secs(10);
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            break;
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("ksql-msk {args:?} hung on a hostile state file");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().expect("output");
    let took = started.elapsed();
    (
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        },
        took,
    )
}

#[test]
fn a_hostile_state_file_is_unknown_in_one_line_never_a_hang_or_panic() {
    let fx = Fixture::new("");
    let state = fx.host.state_dir().join("status.json");
    let outside = fx.host.dir.path().join("outside.json");
    std::fs::write(&outside, "{\"schema_version\":1}").unwrap();
    let plant = |what: &str| {
        let _ = std::fs::remove_file(&state);
        match what {
            "symlink to /dev/zero" => std::os::unix::fs::symlink("/dev/zero", &state).unwrap(),
            "symlink to a valid file" => std::os::unix::fs::symlink(&outside, &state).unwrap(),
            "fifo" => {
                let c = std::ffi::CString::new(state.as_os_str().as_encoded_bytes()).unwrap();
                // SAFETY: mkfifo(3) with a valid path.
                assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
            }
            "garbage" => std::fs::write(&state, b"\x00\xff{{{not json\x1b[2J").unwrap(),
            "deep nesting" => std::fs::write(&state, "[".repeat(100_000)).unwrap(),
            "another schema" => std::fs::write(&state, "{\"schema_version\":99}").unwrap(),
            "100 MB" => {
                let f = std::fs::File::create(&state).unwrap();
                f.set_len(100 << 20).unwrap();
            }
            "a directory" => std::fs::create_dir(&state).unwrap(),
            _ => unreachable!(),
        }
    };
    for what in [
        "symlink to /dev/zero",
        "symlink to a valid file",
        "fifo",
        "garbage",
        "deep nesting",
        "another schema",
        "100 MB",
        "a directory",
    ] {
        if what == "a directory" {
            let _ = std::fs::remove_file(&state);
        }
        plant(what);
        for args in [&["status"][..], &["status", "--json"][..]] {
            let (mut out, took) = run_bounded(&fx, args);
            out.stdout = squeeze(&out.stdout);
            assert_eq!(out.code, 0, "{what} {args:?}: {out:?}");
            assert!(out.stderr.is_empty(), "{what} {args:?}: {out:?}");
            assert!(took < Duration::from_secs(5), "{what}: {took:?}");
            if args.len() == 1 {
                let state_lines: Vec<&str> = out
                    .stdout
                    .lines()
                    .filter(|l| l.starts_with("state:"))
                    .collect();
                assert_eq!(state_lines.len(), 1, "{what}: {}", out.stdout);
                assert!(
                    state_lines[0].starts_with("state: unknown: "),
                    "{what}: {}",
                    out.stdout
                );
                assert!(
                    !out.stdout.contains('\u{1b}'),
                    "{what}: escape sent to the terminal"
                );
                eprintln!("{what}: {} ({took:?})", state_lines[0]);
                // What is on disk is still shown.
                assert!(
                    out.stdout.contains(&format!("release: ksqlDB {VERSION}")),
                    "{what}: {}",
                    out.stdout
                );
            } else {
                let s: Value = serde_json::from_str(&out.stdout).expect("json");
                assert_eq!(s["service"]["running"], false, "{what}");
                assert!(s["state_file"]["problem"].is_string(), "{what}: {s}");
                assert_eq!(s["release"]["version"], VERSION);
            }
        }
        if what == "a directory" {
            std::fs::remove_dir(&state).unwrap();
        }
    }
    // Nothing was written through the planted links.
    assert_eq!(
        std::fs::read_to_string(&outside).unwrap(),
        "{\"schema_version\":1}"
    );
    // A planted `current` pointing outside the state directory is no release.
    let _ = std::fs::remove_file(&state);
    let current = fx.host.state_dir().join("current");
    std::fs::remove_file(&current).unwrap();
    std::os::unix::fs::symlink("/etc", &current).unwrap();
    let (out, _) = run_bounded(&fx, &["status", "--json"]);
    let s: Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(s["release"], Value::Null, "{s}");
}

#[test]
fn a_user_who_may_not_read_the_state_gets_one_line_and_74() {
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        skip(
            "KSQL_MSK_REQUIRE_ROOT",
            "cannot run status as another user (not root)",
        );
        return;
    }
    let fx = Fixture::new("");
    let inner = fx.host.command(&["status", "--json"]);
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(inner.get_program())
        .args(inner.get_args())
        .env_clear();
    for (k, v) in inner.get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    let out = cmd.output().expect("setpriv");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(74), "{stderr}");
    assert!(out.stdout.is_empty());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("permission denied reading the ")
            && stderr.contains("root and members of group ksql"),
        "{stderr}"
    );
}

/// The metrics textfile is 0644 as documented (node_exporter runs as its own user),
/// also under the unit's `UMask=0027`; the state file stays 0640.
#[test]
fn the_metrics_textfile_is_0644_under_the_units_umask() {
    let fx = Fixture::new("");
    let prom = fx.host.dir.path().join("ksql-msk.prom");
    let config = std::fs::read_to_string(fx.host.config_path()).unwrap();
    std::fs::write(
        fx.host.config_path(),
        format!("{config}\n[metrics]\ntextfile = \"{}\"\n", prom.display()),
    )
    .unwrap();
    let mut agent = fx.start_behind("umask 0027");
    wait_for("healthy", || agent.stderr().contains("is healthy"));
    wait_for("the textfile", || prom.exists());
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&prom), 0o644);
    assert_eq!(mode(&fx.host.state_dir().join("status.json")), 0o640);
    assert_eq!(agent.stop(), 0);
    assert_eq!(mode(&prom), 0o644, "rewritten at the stop");
}
