use super::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml_edit::Value;

use crate::exit::{exit_code_of, one_line};

const ARN: &str =
    "arn:aws:kafka:eu-west-1:123456789012:cluster/demo/abcd1234-5678-90ab-cdef-1234567890ab-3";

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, text).unwrap();
    path
}

fn load_err(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "ksql-msk.toml", text);
    let err = load(&path).unwrap_err();
    assert_eq!(exit_code_of(&err), crate::exit::ExitCode::Config, "{err:#}");
    one_line(&err).replace(&dir.path().display().to_string(), "DIR")
}

#[test]
fn schema_defaults_parse_and_fit_their_kind() {
    for key in schema::KEYS {
        let value: Value = key
            .default
            .parse()
            .unwrap_or_else(|e| panic!("{}: {e}", key.path()));
        check_kind(key, &value).unwrap_or_else(|e| panic!("{}: {e}", key.path()));
    }
}

#[test]
fn minimal_config_gets_documented_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "ksql-msk.toml",
        &format!("[msk]\ncluster_arn = \"{ARN}\"\n"),
    );
    let s = load(&path).unwrap();
    let ClusterRef::Arn(arn) = &s.msk.cluster else {
        panic!()
    };
    assert_eq!(arn.name, "demo");
    assert_eq!(
        s.msk.region.as_deref(),
        Some("eu-west-1"),
        "region from the ARN"
    );
    assert_eq!(s.msk.connectivity, Connectivity::Private);
    assert_eq!(s.ksqldb.version, "0.23.1");
    assert_eq!(
        s.ksqldb.archive_url.expose(),
        "https://ksqldb-packages.s3.amazonaws.com/archive/0.23/confluent-ksqldb-0.23.1.tar.gz"
    );
    assert_eq!(
        s.ksqldb.signature_url.expose(),
        format!("{}.asc", s.ksqldb.archive_url.expose())
    );
    assert_eq!(
        s.ksqldb.key,
        KeySource::Url(
            ConfigUrl::parse("https://ksqldb-packages.s3.amazonaws.com/archive/0.23/archive.key")
                .unwrap()
        )
    );
    assert!(s.ksqldb.trusted_fingerprints.is_empty());
    assert_eq!(s.ksqldb.heap, Heap::Auto);
    assert_eq!(s.ksqldb.memory_budget, 75);
    assert_eq!(
        s.iam_auth.jar_url.expose(),
        "https://github.com/aws/aws-msk-iam-auth/releases/download/v1.1.1/aws-msk-iam-auth-1.1.1-all.jar"
    );
    assert_eq!(s.agent.state_dir, PathBuf::from("/var/lib/ksql-msk"));
    assert_eq!(s.agent.rediscover_interval, Duration::from_secs(600));
    assert_eq!(
        s.agent.health_url.expose(),
        "http://127.0.0.1:8088/healthcheck"
    );
    assert_eq!(s.service_id(), "default_");
}

#[test]
fn dropins_apply_in_lexical_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "ksql-msk.toml",
        "[msk]\ncluster_name = \"demo\"\n[properties]\n\"ksql.service.id\" = \"a_\"\n",
    );
    write(
        dir.path(),
        "ksql-msk.d/20-b.toml",
        "[ksqldb]\nversion = \"0.29.0\"\n",
    );
    write(
        dir.path(),
        "ksql-msk.d/10-a.toml",
        "[ksqldb]\nversion = \"0.28.2\"\nheap = \"2g\"\n[properties]\n\"ksql.service.id\" = \"b_\"\n\"x.y\" = 3\n",
    );
    write(dir.path(), "ksql-msk.d/README", "not toml: ignored");
    let s = load(&path).unwrap();
    assert_eq!(s.ksqldb.version, "0.29.0");
    assert_eq!(s.ksqldb.heap, Heap::Fixed("2g".into()));
    assert_eq!(s.service_id(), "b_");
    assert_eq!(
        s.properties,
        vec![
            ("ksql.service.id".into(), "b_".into()),
            ("x.y".into(), "3".into())
        ]
    );
}

#[test]
fn errors_name_file_line_and_key() {
    assert_eq!(
        load_err("[msk]\ncluster_name = \"demo\"\nbogus = 1\n"),
        "DIR/ksql-msk.toml:3: msk.bogus: unknown key (known in [msk]: cluster_arn, cluster_name, region, connectivity, ipv6, endpoint_url, cluster_wait, api_max_attempts)"
    );
    assert_eq!(
        load_err("[msk]\ncluster_name = \"demo\"\n[ksqldb]\nversion = 29\n"),
        "DIR/ksql-msk.toml:4: ksqldb.version: expected a string, found an integer"
    );
    assert_eq!(
        load_err("[msk]\ncluster_name = \"demo\"\nconnectivity = \"internet\"\n"),
        "DIR/ksql-msk.toml:3: msk.connectivity: \"internet\" is not one of private, public, vpc"
    );
    assert_eq!(
        load_err("[msk]\n"),
        "DIR/ksql-msk.toml: msk.cluster_arn: no cluster configured: set msk.cluster_arn (or msk.cluster_name)"
    );
    assert!(load_err(&format!(
        "[msk]\ncluster_arn = \"{ARN}\"\ncluster_name = \"demo\"\n"
    ))
    .starts_with(
        "DIR/ksql-msk.toml:3: msk.cluster_name: both msk.cluster_arn (DIR/ksql-msk.toml:2)"
    ));
    assert!(load_err("[msk]\ncluster_arn = \"arn:aws:kafka:eu-west-1:123:cluster/demo/x\"\n")
        .contains("msk.cluster_arn: \"arn:aws:kafka:eu-west-1:123:cluster/demo/x\": account \"123\" is not 12 digits"));
    assert!(load_err(
        "[msk]\ncluster_arn = \"arn:aws:kafka:eu-west-1:123456789012:topic/demo/x/t\"\n"
    )
    .contains("is not cluster/<name>/<id>"));
    assert!(load_err("[msk]\ncluster_arn = \"demo\"\n")
        .contains("msk.cluster_arn: \"demo\" is not an ARN"));
    assert!(load_err("[nope]\n").contains("DIR/ksql-msk.toml:1: nope: unknown section"));
    assert!(load_err("[msk\n").starts_with("DIR/ksql-msk.toml:1: invalid TOML:"));
    assert!(
        load_err("[msk]\ncluster_name = \"demo\"\nipv6 = true\nconnectivity = \"public\"\n")
            .contains("msk.ipv6: MSK offers IPv6")
    );
    assert!(
        load_err("[msk]\ncluster_name = \"demo\"\n[agent]\nrediscover_interval = \"soon\"\n")
            .contains("DIR/ksql-msk.toml:4: agent.rediscover_interval: \"soon\" is not a duration")
    );
    assert!(load_err(
        "[msk]\ncluster_name = \"demo\"\n[ksqldb]\ntrusted_fingerprints = [\"ABC\"]\n"
    )
    .contains("ksqldb.trusted_fingerprints: \"ABC\" is not an OpenPGP fingerprint"));
    assert!(load_err(
        "[msk]\ncluster_name = \"demo\"\n[ksqldb]\narchive_url = \"https://x/{versoin}.tgz\"\n"
    )
    .contains("ksqldb.archive_url: unknown placeholder {versoin}"));
    assert!(
        load_err("[msk]\ncluster_name = \"demo\"\n[iam_auth]\nsha256 = \"abc\"\n")
            .contains("iam_auth.sha256: \"abc\" is not a SHA-256 hash")
    );
    assert!(
        load_err("[msk]\ncluster_name = \"demo\"\n[ksqldb]\nheap = \"lots\"\n")
            .contains("ksqldb.heap: \"lots\" is neither")
    );
    for bare in ["4096", "0g", "g", "4gb", "-4g"] {
        assert!(
            load_err(&format!(
                "[msk]\ncluster_name = \"demo\"\n[ksqldb]\nheap = \"{bare}\"\n"
            ))
            .contains("with a unit (k, m or g"),
            "{bare}"
        );
    }
    assert!(
        load_err("[msk]\ncluster_name = \"demo\"\n[properties]\nx = [1]\n")
            .contains("properties.x: expected a string, number or boolean, found an array")
    );
}

#[test]
fn error_in_dropin_names_the_dropin() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "ksql-msk.toml",
        "[msk]\ncluster_name = \"demo\"\n",
    );
    write(
        dir.path(),
        "ksql-msk.d/50-x.toml",
        "\n[agent]\nstate_dir = \"relative\"\n",
    );
    let err = one_line(&load(&path).unwrap_err());
    assert!(
        err.contains(
            "ksql-msk.d/50-x.toml:3: agent.state_dir: \"relative\" is not an absolute path"
        ),
        "{err}"
    );
}

#[test]
fn missing_main_file_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = load(&dir.path().join("nope.toml")).unwrap_err();
    assert_eq!(exit_code_of(&err), crate::exit::ExitCode::Config);
    assert!(one_line(&err).contains("nope.toml: config file not found"));
}

#[test]
fn fingerprints_and_keys_normalise() {
    assert_eq!(
        normalize_fingerprint("cbbb 821e 8faf 364f 7983  5c43 8b1d a612 0c2b f624").as_deref(),
        Some("CBBB821E8FAF364F79835C438B1DA6120C2BF624")
    );
    assert_eq!(normalize_fingerprint("xyz"), None);
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "ksql-msk.toml",
        "[msk]\ncluster_name = \"demo\"\n[ksqldb]\nkey_url = \"/etc/ksql-msk/archive.key\"\n",
    );
    assert_eq!(
        load(&path).unwrap().ksqldb.key,
        KeySource::File("/etc/ksql-msk/archive.key".into())
    );
}

#[test]
fn sizes_and_templates() {
    assert_eq!(parse_size("4g"), Some(4 << 30));
    assert_eq!(parse_size("512M"), Some(512 << 20));
    assert_eq!(parse_size("10"), Some(10));
    assert_eq!(parse_size("0"), None);
    assert_eq!(parse_size("4x"), None);
    assert_eq!(
        expand_template(
            "a/{major_minor}/b-{version}",
            &[("version", "0.29.0"), ("major_minor", "0.29")]
        )
        .unwrap(),
        "a/0.29/b-0.29.0"
    );
    assert!(expand_template("a/{version", &[("version", "1")]).is_err());
    assert!(is_region("us-gov-west-1") && is_region("eu-central-2") && !is_region("useast1"));
}

#[test]
fn config_set_changes_only_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let original = "# top comment\n[ksqldb]\nversion = \"0.23.1\"   # pinned\n  heap = 'auto'\n\n[msk]\ncluster_name = \"demo\"\n";
    let path = write(dir.path(), "ksql-msk.toml", original);
    edit::set(&path, "ksqldb.version", "0.29.0").unwrap();
    let after = std::fs::read_to_string(&path).unwrap();
    assert_eq!(after, original.replace("0.23.1", "0.29.0"));
    edit::set(&path, "agent.restart_limit", "7").unwrap();
    let after = std::fs::read_to_string(&path).unwrap();
    assert!(after.starts_with(&original.replace("0.23.1", "0.29.0")));
    assert!(after.ends_with("[agent]\nrestart_limit = 7\n"), "{after}");
    edit::set(&path, "properties.ksql.service.id", "prod_").unwrap();
    let merged = load_merged(&path).unwrap();
    assert_eq!(
        edit::get(&merged, "properties.ksql.service.id").unwrap(),
        "prod_"
    );
    assert_eq!(edit::get(&merged, "ksqldb.version").unwrap(), "0.29.0");
    assert_eq!(edit::get(&merged, "agent.restart_limit").unwrap(), "7");
    assert_eq!(
        edit::get(&merged, "ksqldb.trusted_fingerprints").unwrap(),
        "[]"
    );
}

#[test]
fn config_set_refuses_bad_values_and_leaves_file() {
    let dir = tempfile::tempdir().unwrap();
    let original = "[msk]\ncluster_name = \"demo\"\n";
    let path = write(dir.path(), "ksql-msk.toml", original);
    for (key, value, expect) in [
        (
            "msk.connectivity",
            "internet",
            "msk.connectivity: \"internet\" is not one of private, public, vpc",
        ),
        (
            "agent.restart_limit",
            "many",
            "agent.restart_limit: \"many\" is not an integer",
        ),
        ("msk.ipv6", "yes", "msk.ipv6: \"yes\" is not true or false"),
        ("msk.cluster_arn", "arn:aws:kafka:x", "is not an ARN"),
        (
            "agent.rediscover_interval",
            "soon",
            "\"soon\" is not a duration",
        ),
        ("msk.nope", "1", "msk.nope: unknown config key"),
        ("version", "1", "version: not a config key"),
    ] {
        let err = edit::set(&path, key, value).unwrap_err();
        assert_eq!(exit_code_of(&err), crate::exit::ExitCode::Config);
        let line = one_line(&err);
        assert!(line.contains(expect), "{key}: {line}");
    }
    assert_eq!(std::fs::read_to_string(&path).unwrap(), original);
}

#[test]
fn config_set_lists() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "ksql-msk.toml",
        "[msk]\ncluster_name = \"demo\"\n",
    );
    let fp = "CBBB821E8FAF364F79835C438B1DA6120C2BF624";
    edit::set(&path, "ksqldb.trusted_fingerprints", fp).unwrap();
    assert_eq!(
        load(&path).unwrap().ksqldb.trusted_fingerprints,
        vec![Fingerprint::parse(fp).unwrap()]
    );
    edit::set(
        &path,
        "iam_auth.policy_topics",
        "[\"orders\", \"payments*\"]",
    )
    .unwrap();
    assert_eq!(
        load(&path).unwrap().iam_auth.policy_topics,
        vec!["orders", "payments*"]
    );
}

/// The shipped default config documents every key with its default.
#[test]
fn shipped_default_config_lists_every_key_with_its_default() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/ksql-msk.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let fragment = parse_fragment(&path, &text).unwrap();
    for key in schema::KEYS {
        let entry = fragment
            .keys
            .get(&(key.section.to_string(), key.name.to_string()))
            .unwrap_or_else(|| panic!("{} missing from packaging/ksql-msk.toml", key.path()));
        let mut shipped = entry.value.clone();
        shipped.decor_mut().clear();
        let mut default = default_value(key);
        default.decor_mut().clear();
        assert_eq!(shipped.to_string(), default.to_string(), "{}", key.path());
    }
    assert_eq!(fragment.keys.len(), schema::KEYS.len());
    // Loading fails only for want of a cluster.
    let err = one_line(&load(&path).unwrap_err());
    assert!(err.contains("no cluster configured"), "{err}");
}

/// Every key has its meaning in the schema (ksql-msk.toml(5) is generated from it): a
/// paragraph of one to three sentences, its lines joined with single spaces.
#[test]
fn every_key_has_a_short_doc() {
    for key in schema::KEYS {
        let doc = key.doc();
        assert!(
            (20..=450).contains(&doc.len()) && doc.ends_with('.'),
            "{}: {doc:?}",
            key.path()
        );
        assert!(!doc.contains("  ") && !doc.contains('\n'), "{}", key.path());
        assert_eq!(
            key.doc_lines.lines().count(),
            key.doc_lines.matches('\n').count()
        );
    }
    assert_eq!(
        schema::keys::MSK_IPV6.doc(),
        "Use the cluster's IPv6 IAM bootstrap brokers (private connectivity only)."
    );
}

fn demo_with(section_and_keys: &str) -> String {
    format!("[msk]\ncluster_name = \"demo\"\n{section_and_keys}")
}

#[test]
fn control_characters_in_url_values_are_refused() {
    // The URL parser would drop a newline or tab silently and the raw string would go
    // on into logs and the properties file.
    for (section, key) in [
        ("ksqldb", "archive_url"),
        ("ksqldb", "signature_url"),
        ("ksqldb", "key_url"),
        ("ksqldb", "listeners"),
        ("ksqldb", "internal_listener"),
        ("iam_auth", "jar_url"),
        ("agent", "health_url"),
        ("msk", "endpoint_url"),
    ] {
        for bad in ["\\n", "\\r", "\\t", "\\u0000", "\\u007f", "\\u001b"] {
            let value = format!("http://127.0.0.1:8088/a{bad}b");
            let text = if section == "msk" {
                format!("[msk]\ncluster_name = \"demo\"\n\n{key} = \"{value}\"\n")
            } else {
                demo_with(&format!("[{section}]\n{key} = \"{value}\"\n"))
            };
            let err = load_err(&text);
            assert!(
                err.starts_with(&format!("DIR/ksql-msk.toml:4: {section}.{key}: "))
                    && err.contains("control character"),
                "{section}.{key} with {bad}: {err}"
            );
            assert!(
                !err.contains(['\n', '\r', '\t', '\0', '\x7f', '\x1b']),
                "{err:?}"
            );
        }
    }
    // A template is checked before expansion too, e.g. a control character in the
    // version is refused there already; a tab around a whole value stays refused.
    let err = load_err(&demo_with(
        "[ksqldb]\nlisteners = \"http://0.0.0.0:8088,\\nhttp://0.0.0.0:8089\"\n",
    ));
    assert!(err.contains("ksqldb.listeners: "), "{err}");
}

#[test]
fn the_internal_listener_is_one_url_or_empty() {
    let err = load_err(&demo_with(
        "[ksqldb]\ninternal_listener = \"http://0.0.0.0:8099,http://0.0.0.0:8100\"\n",
    ));
    assert!(
        err.starts_with("DIR/ksql-msk.toml:4: ksqldb.internal_listener: ")
            && err.contains("one internal listener"),
        "{err}"
    );
    let err = load_err(&demo_with(
        "[ksqldb]\ninternal_listener = \"0.0.0.0:8099\"\n",
    ));
    assert!(
        err.starts_with("DIR/ksql-msk.toml:4: ksqldb.internal_listener: "),
        "{err}"
    );
}

#[test]
fn redact_url_hides_credentials() {
    assert_eq!(
        redact_url("https://user:hunter2@mirror.example/k/{version}.tgz"),
        "https://***@mirror.example/k/{version}.tgz"
    );
    assert_eq!(redact_url("https://tok@m/x@y"), "https://***@m/x@y");
    assert_eq!(
        redact_url("http://a:b@c:d@host:8080?q=@"),
        "http://***@host:8080?q=@"
    );
    assert_eq!(redact_url("https://mirror/x"), "https://mirror/x");
    assert_eq!(
        redact_url("/etc/ksql-msk/archive.key"),
        "/etc/ksql-msk/archive.key"
    );
    assert_eq!(redact_url("not a url @ all"), "not a url @ all");
    assert_eq!(RedactedUrl("https://u:p@h/").to_string(), "https://***@h/");
}

#[test]
fn config_errors_never_show_credentials_in_urls() {
    for text in [
        demo_with("[ksqldb]\narchive_url = \"ftp://user:hunter2@mirror/x.tgz\"\n"),
        demo_with("[ksqldb]\narchive_url = \"https://user:hunter2@mirror/{versoin}.tgz\"\n"),
        demo_with("[ksqldb]\narchive_url = \"https://user:hunter2@mirror/\\n.tgz\"\n"),
        demo_with("[ksqldb]\nkey_url = \"gopher://user:hunter2@mirror/k\"\n"),
        demo_with("[iam_auth]\njar_url = \"https://user:hunter2@[::1/x.jar\"\n"),
        "[msk]\ncluster_name = \"demo\"\nendpoint_url = \"ftp://hunter2@m/\"\n".to_string(),
        demo_with("[agent]\nhealth_url = \"file://user:hunter2@h/\"\n"),
    ] {
        let err = load_err(&text);
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains("***@"), "{err}");
    }
}

#[test]
fn file_key_urls_must_be_absolute() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "ksql-msk.toml",
        &demo_with("[ksqldb]\nkey_url = \"file:///etc/ksql-msk/archive.key\"\n"),
    );
    assert_eq!(
        load(&path).unwrap().ksqldb.key,
        KeySource::File("/etc/ksql-msk/archive.key".into())
    );
    for bad in [
        "file://archive.key",
        "file://etc/ksql-msk/archive.key",
        "file:archive.key",
        "file://",
    ] {
        let err = load_err(&demo_with(&format!("[ksqldb]\nkey_url = \"{bad}\"\n")));
        assert!(
            err.starts_with("DIR/ksql-msk.toml:4: ksqldb.key_url: ") && err.contains("absolute"),
            "{bad}: {err}"
        );
    }
}

#[test]
fn editor_and_hidden_files_in_dropin_dir_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "ksql-msk.toml",
        "[msk]\ncluster_name = \"demo\"\n",
    );
    write(
        dir.path(),
        "ksql-msk.d/10-a.toml",
        "[ksqldb]\nheap = \"2g\"\n",
    );
    // Emacs' lock file is a dangling symlink; backups and swap files hold anything.
    std::os::unix::fs::symlink(
        "root@host.1234:1",
        dir.path().join("ksql-msk.d/.#10-a.toml"),
    )
    .unwrap();
    for junk in [
        "10-a.toml~",
        ".10-a.toml.swp",
        ".hidden.toml",
        "#10-a.toml#",
        "10-a.toml.bak",
        ".toml",
    ] {
        write(
            dir.path(),
            &format!("ksql-msk.d/{junk}"),
            "[nope\n\0garbage",
        );
    }
    let s = load(&path).unwrap();
    assert_eq!(s.ksqldb.heap, Heap::Fixed("2g".into()));
    assert_eq!(
        config_files(&path).unwrap(),
        vec![path.clone(), dir.path().join("ksql-msk.d/10-a.toml")]
    );
}

#[test]
fn errors_without_a_line_in_a_file_do_not_claim_line_1() {
    // The empty cluster_arn on line 3 is what needs a value.
    assert_eq!(
        load_err("# comment\n[msk]\ncluster_arn = \"\"\ncluster_name = \"\"\n"),
        "DIR/ksql-msk.toml:3: msk.cluster_arn: no cluster configured: set msk.cluster_arn (or msk.cluster_name)"
    );
    // No file sets it: the file is named, no line.
    assert_eq!(
        load_err("# comment\n[agent]\nrestart_limit = 3\n"),
        "DIR/ksql-msk.toml: msk.cluster_arn: no cluster configured: set msk.cluster_arn (or msk.cluster_name)"
    );
}

#[test]
fn config_set_validates_the_whole_resulting_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let original = format!("[msk]\ncluster_arn = \"{ARN}\"\n");
    let path = write(dir.path(), "ksql-msk.toml", &original);
    let err = edit::set(&path, "msk.cluster_name", "demo").unwrap_err();
    assert_eq!(exit_code_of(&err), crate::exit::ExitCode::Config);
    let line = one_line(&err).replace(&dir.path().display().to_string(), "DIR");
    assert!(
        line.contains("msk.cluster_name: both msk.cluster_arn (DIR/ksql-msk.toml:2)"),
        "{line}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), original);
    // A drop-in takes part: ipv6 with public connectivity set there is refused.
    write(
        dir.path(),
        "ksql-msk.d/50-net.toml",
        "[msk]\n\nconnectivity = \"public\"\n",
    );
    let err = one_line(&edit::set(&path, "msk.ipv6", "true").unwrap_err())
        .replace(&dir.path().display().to_string(), "DIR");
    assert!(err.contains("msk.ipv6: MSK offers IPv6"), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), original);
    // Swapping the cluster from ARN to name works in two steps.
    edit::set(&path, "msk.cluster_arn", "").unwrap();
    edit::set(&path, "msk.cluster_name", "demo").unwrap();
    assert_eq!(
        load(&path).unwrap().msk.cluster,
        ClusterRef::Name("demo".into())
    );
}

#[test]
fn config_set_errors_name_real_lines() {
    let dir = tempfile::tempdir().unwrap();
    let original = "# c\n\n[msk]\ncluster_arn = \"x\"\n";
    let path = write(dir.path(), "ksql-msk.toml", original);
    // The value comes from the command line: no line is claimed for it.
    let err = one_line(&edit::set(&path, "msk.connectivity", "internet").unwrap_err());
    assert_eq!(
        err,
        "msk.connectivity: \"internet\" is not one of private, public, vpc"
    );
    // A value that fits its type but not its meaning names the file, not line 1.
    let err = one_line(&edit::set(&path, "msk.cluster_name", "-bad").unwrap_err())
        .replace(&dir.path().display().to_string(), "DIR");
    assert!(!err.contains(":1:"), "{err}");
    // A bad value already in the file is named at its line.
    let err = one_line(&edit::set(&path, "ksqldb.heap", "2g").unwrap_err())
        .replace(&dir.path().display().to_string(), "DIR");
    assert!(
        err.starts_with("DIR/ksql-msk.toml:4: msk.cluster_arn: \"x\" is not an ARN"),
        "{err}"
    );
    // Invalid TOML in the file names its line.
    std::fs::write(&path, "[msk]\ncluster_name = \"demo\"\n\n[ksqldb\n").unwrap();
    let err = one_line(&edit::set(&path, "ksqldb.heap", "2g").unwrap_err())
        .replace(&dir.path().display().to_string(), "DIR");
    assert!(
        err.starts_with("DIR/ksql-msk.toml:4: invalid TOML"),
        "{err}"
    );
}

#[test]
fn config_set_edits_a_symlinks_target() {
    let dir = tempfile::tempdir().unwrap();
    let target = write(
        dir.path(),
        "real/ksql-msk.toml",
        "[msk]\ncluster_name = \"demo\"\n",
    );
    std::fs::create_dir(dir.path().join("etc")).unwrap();
    let link = dir.path().join("etc/ksql-msk.toml");
    std::os::unix::fs::symlink("../real/ksql-msk.toml", &link).unwrap();
    edit::set(&link, "ksqldb.heap", "2g").unwrap();
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        PathBuf::from("../real/ksql-msk.toml")
    );
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        "[msk]\ncluster_name = \"demo\"\n\n[ksqldb]\nheap = \"2g\"\n"
    );
    // No temp file is left beside the link or the target.
    for d in ["etc", "real"] {
        let names: Vec<_> = std::fs::read_dir(dir.path().join(d))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{d}: {names:?}");
    }
}

#[test]
fn writable_by_others_is_refused_as_root_and_warned_about_otherwise() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "ksql-msk.toml",
        "[msk]\ncluster_name = \"demo\"\n",
    );
    let meta = |p: &Path| std::fs::metadata(p).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert_eq!(writable_by_others(&path, &meta(&path), false, 0), None);
    for mode in [0o660, 0o602, 0o666] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let problem = writable_by_others(&path, &meta(&path), false, 0).unwrap();
        assert!(problem.contains("can be written by"), "{mode:o}: {problem}");
        assert!(writable_by_others(&path, &meta(&path), false, 1000).is_some());
    }
    // As root, a file owned by someone else is theirs to change.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::chown(&path, Some(1000), None).unwrap();
    assert!(writable_by_others(&path, &meta(&path), false, 0)
        .unwrap()
        .contains("owned by uid 1000"));
    assert_eq!(writable_by_others(&path, &meta(&path), false, 1000), None);
    // A sticky world-writable directory (/tmp) cannot have others replace the file;
    // a drop-in directory can have others add one.
    let sticky = dir.path().join("sticky");
    std::fs::create_dir(&sticky).unwrap();
    std::fs::set_permissions(&sticky, std::fs::Permissions::from_mode(0o1777)).unwrap();
    assert_eq!(writable_by_others(&sticky, &meta(&sticky), true, 0), None);
    assert!(writable_by_others(&sticky, &meta(&sticky), false, 0).is_some());

    // Loading as root (the tests run as root) refuses, naming the file.
    std::os::unix::fs::chown(&path, Some(0), None).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o664)).unwrap();
    if rustix::process::geteuid().is_root() {
        // A plain 0644 root-owned file in a 0700 directory loads.
        let ok = tempfile::tempdir().unwrap();
        load(&write(
            ok.path(),
            "ksql-msk.toml",
            "[msk]\ncluster_name = \"demo\"\n",
        ))
        .unwrap();
        let err = load(&path).unwrap_err();
        assert_eq!(exit_code_of(&err), crate::exit::ExitCode::Config);
        assert!(
            one_line(&err).contains("ksql-msk.toml: can be written by its group"),
            "{}",
            one_line(&err)
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let d = dir.path().join("ksql-msk.d");
        std::fs::create_dir(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = one_line(&load(&path).unwrap_err());
        assert!(err.contains("ksql-msk.d: can be written by"), "{err}");
    }
}

fn load_dir(main: &str, dropins: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "ksql-msk.toml", main);
    for (name, text) in dropins {
        write(dir.path(), &format!("ksql-msk.d/{name}"), text);
    }
    (dir, path)
}

#[test]
fn ksqldb_env_and_jvm_opts_load_in_every_table_syntax_and_drop_ins_merge_entry_by_entry() {
    let (_dir, path) = load_dir(
        &demo_with(
            "[ksqldb]\njvm_opts = \"  -Xss2m -Dcom.sun.management.jmxremote.port=9010 \"\n\
             [ksqldb.env]\nJMX_PORT = \"9010\"\nTZ = \"UTC\"\n",
        ),
        &[
            (
                "10-a.toml",
                "[ksqldb]\nenv = { TZ = \"Europe/Berlin\", _X1 = \"\" }\n",
            ),
            ("20-b.toml", "[ksqldb]\nenv.KSQL_JMX_OPTS = \"-Dx=1\"\n"),
        ],
    );
    let s = load(&path).unwrap();
    assert_eq!(
        s.ksqldb.jvm_opts.as_deref(),
        Some("-Xss2m -Dcom.sun.management.jmxremote.port=9010")
    );
    let env: Vec<(&str, &str)> = s
        .ksqldb
        .env
        .0
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        env,
        [
            ("JMX_PORT", "9010"),
            ("TZ", "Europe/Berlin"),
            ("_X1", ""),
            ("KSQL_JMX_OPTS", "-Dx=1")
        ]
    );
    let merged = load_merged(&path).unwrap();
    assert_eq!(
        edit::get(&merged, "ksqldb.env.TZ").unwrap(),
        "Europe/Berlin"
    );
    assert_eq!(edit::get(&merged, "ksqldb.env.NOPE").unwrap(), "");
    assert_eq!(
        edit::get(&merged, "ksqldb.env").unwrap(),
        r#"{ JMX_PORT = "9010", TZ = "Europe/Berlin", _X1 = "", KSQL_JMX_OPTS = "-Dx=1" }"#
    );
    // Unset: no options, no variables.
    let (_dir, path) = load_dir(&demo_with(""), &[]);
    let s = load(&path).unwrap();
    assert_eq!(s.ksqldb.jvm_opts, None);
    assert!(s.ksqldb.env.0.is_empty());
}

#[test]
fn ksqldb_env_refuses_the_agents_own_variables_bad_names_and_non_strings() {
    for (text, want) in [
        (
            "[ksqldb.env]\nJAVA_HOME = \"/opt/jdk\"\n",
            "DIR/ksql-msk.toml:4: ksqldb.env.JAVA_HOME: set by the agent; use ksqldb.java_home",
        ),
        (
            "[ksqldb]\nenv = { TZ = \"UTC\",\n  KSQL_OPTS = \"-Xss2m\" }\n",
            "DIR/ksql-msk.toml:5: ksqldb.env.KSQL_OPTS: set by the agent; use ksqldb.jvm_opts",
        ),
        (
            "[ksqldb.env]\nKSQL_HEAP_OPTS = \"-Xmx1g\"\n",
            "DIR/ksql-msk.toml:4: ksqldb.env.KSQL_HEAP_OPTS: set by the agent; use ksqldb.heap",
        ),
        (
            "[ksqldb.env]\nLOG_DIR = \"/x\"\n",
            "DIR/ksql-msk.toml:4: ksqldb.env.LOG_DIR: set by the agent; use agent.log_dir",
        ),
        (
            "[ksqldb.env]\nPATH = \"/x\"\n",
            "DIR/ksql-msk.toml:4: ksqldb.env.PATH: set by the agent; ksqlDB gets the agent's PATH",
        ),
        (
            "[ksqldb.env]\nKSQL_JVM_PERFORMANCE_OPTS = \"-XX:+UseG1GC\"\n",
            "DIR/ksql-msk.toml:4: ksqldb.env.KSQL_JVM_PERFORMANCE_OPTS: set by the agent;",
        ),
        (
            "[ksqldb.env]\nKSQL_LOG4J_OPTS = \"-Dx\"\n",
            "DIR/ksql-msk.toml:4: ksqldb.env.KSQL_LOG4J_OPTS: set by the agent;",
        ),
        (
            "[ksqldb.env]\n\"1ABC\" = \"x\"\n",
            "DIR/ksql-msk.toml:4: ksqldb.env.1ABC: not an environment variable name",
        ),
        (
            "[ksqldb.env]\n\"A-B\" = \"x\"\n",
            "DIR/ksql-msk.toml:4: ksqldb.env.A-B: not an environment variable name",
        ),
        (
            "[ksqldb.env]\nPORT = 9010\n",
            "DIR/ksql-msk.toml:4: ksqldb.env.PORT: expected a string, found an integer",
        ),
        (
            "[ksqldb]\nenv = \"A=1\"\n",
            "DIR/ksql-msk.toml:4: ksqldb.env: expected a table of strings, found a string",
        ),
        (
            "[ksqldb.env]\nDB_PASSWORD = \"hunter2\\nINFO forged\"\n",
            "DIR/ksql-msk.toml:4: ksqldb.env.DB_PASSWORD: contains a control character (U+000A at byte 7)",
        ),
        (
            "[ksqldb]\njvm_opts = \"-Xss2m\\n-Dx\"\n",
            "DIR/ksql-msk.toml:4: ksqldb.jvm_opts: contains a control character",
        ),
    ] {
        let err = load_err(&demo_with(text));
        assert!(err.starts_with(want), "{text:?}:\n{err}\nwanted {want}");
        assert!(!err.contains("hunter2"), "{err}");
    }
    // A drop-in cannot sneak one in either, and is named.
    let (dir, path) = load_dir(
        &demo_with(""),
        &[("50-x.toml", "[ksqldb.env]\nJAVA_HOME = \"/opt/jdk\"\n")],
    );
    let err = one_line(&load(&path).unwrap_err()).replace(&dir.path().display().to_string(), "DIR");
    assert!(
        err.starts_with("DIR/ksql-msk.d/50-x.toml:2: ksqldb.env.JAVA_HOME: set by the agent"),
        "{err}"
    );
}

#[test]
fn config_set_writes_one_env_entry_and_refuses_the_table_and_the_agents_variables() {
    let (_dir, path) = load_dir(&demo_with("[ksqldb]\nheap = \"auto\"\n"), &[]);
    edit::set(&path, "ksqldb.env.TZ", "UTC").unwrap();
    edit::set(&path, "ksqldb.env.HTTPS_PROXY", "http://p:3128").unwrap();
    edit::set(&path, "ksqldb.env.TZ", "Europe/Berlin").unwrap();
    edit::set(&path, "ksqldb.jvm_opts", "-Xss2m").unwrap();
    let s = load(&path).unwrap();
    assert_eq!(
        s.ksqldb.env.0,
        [
            ("TZ".to_string(), "Europe/Berlin".to_string()),
            ("HTTPS_PROXY".to_string(), "http://p:3128".to_string())
        ]
    );
    assert_eq!(s.ksqldb.jvm_opts.as_deref(), Some("-Xss2m"));
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("[ksqldb.env]\nTZ = \"Europe/Berlin\"\nHTTPS_PROXY = \"http://p:3128\"\n"),
        "{text}"
    );
    for (key, value, want) in [
        (
            "ksqldb.env",
            "TZ=UTC",
            "ksqldb.env: is a table; set one entry with `config set ksqldb.env.NAME VALUE`",
        ),
        (
            "ksqldb.env.JAVA_HOME",
            "/opt/jdk",
            "ksqldb.env.JAVA_HOME: set by the agent; use ksqldb.java_home",
        ),
        (
            "ksqldb.env.A-B",
            "x",
            "ksqldb.env.A-B: not an environment variable name",
        ),
    ] {
        let err = edit::set(&path, key, value).unwrap_err();
        assert_eq!(exit_code_of(&err), crate::exit::ExitCode::Config);
        let err = one_line(&err);
        assert!(err.contains(want), "{key}: {err}");
    }
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text, "file kept");
}

#[test]
fn log_level_and_loggers_load_in_any_case_and_drop_ins_merge_entry_by_entry() {
    let (_dir, path) = load_dir(
        &demo_with(
            "[ksqldb]\nlog_level = \" debug \"\n\
             [ksqldb.loggers]\n\"io.confluent.ksql.rest\" = \"TRACE\"\nkafka = \"warn\"\n",
        ),
        &[
            ("10-a.toml", "[ksqldb]\nloggers = { kafka = \"Error\", \"kafka.network.RequestChannel$\" = \"off\" }\n"),
            ("20-b.toml", "[ksqldb.loggers]\n\"io.confluent.rest-utils.requests\" = \"FATAL\"\n"),
        ],
    );
    let s = load(&path).unwrap();
    assert_eq!(s.ksqldb.log_level.as_deref(), Some("DEBUG"));
    let loggers: Vec<(&str, &str)> = s
        .ksqldb
        .loggers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        loggers,
        [
            ("io.confluent.ksql.rest", "TRACE"),
            ("kafka", "ERROR"),
            ("kafka.network.RequestChannel$", "OFF"),
            ("io.confluent.rest-utils.requests", "FATAL"),
        ]
    );
    let merged = load_merged(&path).unwrap();
    assert_eq!(
        edit::get(&merged, "ksqldb.loggers.\"io.confluent.ksql.rest\"").unwrap(),
        "TRACE"
    );
    assert_eq!(edit::get(&merged, "ksqldb.loggers.kafka").unwrap(), "Error");
    // Unset: the release's levels.
    let (_dir, path) = load_dir(&demo_with(""), &[]);
    let s = load(&path).unwrap();
    assert_eq!(s.ksqldb.log_level, None);
    assert!(s.ksqldb.loggers.is_empty());
}

#[test]
fn bad_log_levels_and_logger_names_exit_78_naming_the_key_and_the_value() {
    for (text, want) in [
        (
            "[ksqldb]\nlog_level = \"VERBOSE\"\n",
            "DIR/ksql-msk.toml:4: ksqldb.log_level: \"VERBOSE\" is not a log level; use one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL, OFF",
        ),
        (
            "[ksqldb]\nlog_level = \"INFO, file\"\n",
            "DIR/ksql-msk.toml:4: ksqldb.log_level: \"INFO, file\" is not a log level",
        ),
        (
            "[ksqldb.loggers]\n\"io.confluent\" = \"LOUD\"\n",
            "DIR/ksql-msk.toml:4: ksqldb.loggers.io.confluent: \"LOUD\" is not a log level",
        ),
        (
            "[ksqldb.loggers]\n\"a=b\" = \"INFO\"\n",
            "DIR/ksql-msk.toml:4: ksqldb.loggers.a=b: not a logger name",
        ),
        (
            "[ksqldb.loggers]\n\"a\\nlog4j.rootLogger\" = \"INFO\"\n",
            // One line: the newline is shown as "; ".
            "DIR/ksql-msk.toml:4: ksqldb.loggers.a; log4j.rootLogger: not a logger name",
        ),
        (
            "[ksqldb.loggers]\n\"a b\" = \"INFO\"\n",
            "DIR/ksql-msk.toml:4: ksqldb.loggers.a b: not a logger name",
        ),
        (
            "[ksqldb.loggers]\n\"\" = \"INFO\"\n",
            "DIR/ksql-msk.toml:4: ksqldb.loggers.: not a logger name",
        ),
        (
            "[ksqldb.loggers]\nkafka = \"INFO\\nlog4j.rootLogger=OFF\"\n",
            "DIR/ksql-msk.toml:4: ksqldb.loggers.kafka: \"INFO\\nlog4j.rootLogger=OFF\" is not a log level",
        ),
        (
            "[ksqldb.loggers]\nkafka = 3\n",
            "DIR/ksql-msk.toml:4: ksqldb.loggers.kafka: expected a string, found an integer",
        ),
        (
            "[ksqldb.loggers]\nio.confluent.ksql = \"DEBUG\"\n",
            "DIR/ksql-msk.toml:4: ksqldb.loggers.io: expected a string, found a table (a name with dots must be quoted",
        ),
    ] {
        let err = load_err(&demo_with(text));
        assert!(err.starts_with(want), "{text:?}:\n{err}\nwanted {want}");
    }
}

#[test]
fn config_set_writes_one_logger_and_refuses_bad_names_and_levels() {
    let (_dir, path) = load_dir(&demo_with("[ksqldb]\nheap = \"auto\"\n"), &[]);
    edit::set(&path, "ksqldb.log_level", "warn").unwrap();
    edit::set(&path, "ksqldb.loggers.\"io.confluent.ksql\"", "DEBUG").unwrap();
    edit::set(&path, "ksqldb.loggers.kafka.network", "ERROR").unwrap();
    let s = load(&path).unwrap();
    assert_eq!(s.ksqldb.log_level.as_deref(), Some("WARN"));
    assert_eq!(
        s.ksqldb.loggers,
        [
            ("io.confluent.ksql".to_string(), "DEBUG".to_string()),
            ("kafka.network".to_string(), "ERROR".to_string())
        ]
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains(
            "[ksqldb.loggers]\n\"io.confluent.ksql\" = \"DEBUG\"\n\"kafka.network\" = \"ERROR\"\n"
        ),
        "{text}"
    );
    for (key, value, want) in [
        (
            "ksqldb.log_level",
            "LOUD",
            "ksqldb.log_level: \"LOUD\" is not a log level",
        ),
        (
            "ksqldb.loggers.kafka",
            "LOUD",
            "ksqldb.loggers.kafka: \"LOUD\" is not a log level",
        ),
        (
            "ksqldb.loggers.a=b",
            "INFO",
            "ksqldb.loggers.a=b: not a logger name",
        ),
        (
            "ksqldb.loggers",
            "kafka=INFO",
            "ksqldb.loggers: is a table; set one entry with `config set ksqldb.loggers.NAME VALUE`",
        ),
    ] {
        let err = edit::set(&path, key, value).unwrap_err();
        assert_eq!(exit_code_of(&err), crate::exit::ExitCode::Config);
        let err = one_line(&err);
        assert!(err.contains(want), "{key}: {err}");
    }
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text, "file kept");
}

#[test]
fn metrics_ports_bind_and_rules_are_validated() {
    let arn = "[msk]\ncluster_arn = \"arn:aws:kafka:eu-west-1:123456789012:cluster/c/abc-1\"\n";
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "ksql-msk.toml", arn);
    let m = load(&path).unwrap().metrics;
    assert_eq!((m.jmx_port, m.prometheus_port), (None, None));
    assert_eq!(m.prometheus_bind.to_string(), "127.0.0.1");
    assert_eq!(
        m.exporter_url.expose(),
        "https://github.com/prometheus/jmx_exporter/releases/download/1.6.0/jmx_prometheus_javaagent-1.6.0.jar"
    );
    let path = write(
        dir.path(),
        "ksql-msk.toml",
        &format!("{arn}[metrics]\njmx_port = 9010\nprometheus_port = 9404\nprometheus_bind = \"::1\"\nexporter_sha256 = \"{}\"\n", "AB".repeat(32)),
    );
    let m = load(&path).unwrap().metrics;
    assert_eq!((m.jmx_port, m.prometheus_port), (Some(9010), Some(9404)));
    assert_eq!(m.prometheus_bind.to_string(), "::1");
    assert_eq!(m.exporter_sha256.unwrap().to_hex(), "ab".repeat(32));

    let err = |extra: &str| load_err(&format!("{arn}{extra}"));
    assert_eq!(
        err("[metrics]\njmx_port = 70000\n"),
        "DIR/ksql-msk.toml:4: metrics.jmx_port: 70000 is not a TCP port (1-65535, or 0 for off)"
    );
    assert_eq!(
        err("[metrics]\njmx_port = 9010\nprometheus_port = 9010\n"),
        "DIR/ksql-msk.toml:5: metrics.prometheus_port: 9010 is metrics.jmx_port too; the exporter and JMX need a port each"
    );
    assert_eq!(
        err("[metrics]\nprometheus_bind = \"localhost\"\n"),
        "DIR/ksql-msk.toml:4: metrics.prometheus_bind: \"localhost\" is not an IP address such as \"127.0.0.1\""
    );
    assert_eq!(
        err("[metrics]\nprometheus_rules = \"/etc/my rules.yml\"\n"),
        "DIR/ksql-msk.toml:4: metrics.prometheus_rules: \"/etc/my rules.yml\" is not an absolute path without spaces"
    );
    assert!(err("[metrics]\nexporter_sha256 = \"abc\"\n").starts_with(
        "DIR/ksql-msk.toml:4: metrics.exporter_sha256: \"abc\" is not a SHA-256 hash"
    ));
    // The launch script appends JMX_PORT to KSQL_JMX_OPTS, which the agent sets whole.
    assert_eq!(
        err("[ksqldb.env]\nTZ = \"UTC\"\nJMX_PORT = \"9999\"\n[metrics]\njmx_port = 9010\n"),
        "DIR/ksql-msk.toml:5: ksqldb.env.JMX_PORT: metrics.jmx_port = 9010 sets JMX up (bound to 127.0.0.1); remove this entry"
    );
    // Without metrics.jmx_port, [ksqldb.env] may still set them as before.
    let path = write(
        dir.path(),
        "ksql-msk.toml",
        &format!("{arn}[ksqldb.env]\nJMX_PORT = \"9999\"\nKSQL_JMX_OPTS = \"-Dx=1\"\n"),
    );
    assert!(load(&path).is_ok());
}

#[test]
fn a_memory_budget_is_a_percentage_from_10_to_95() {
    for bad in ["5", "96", "100"] {
        let err = load_err(&format!(
            "[msk]\ncluster_name = \"demo\"\n[ksqldb]\nmemory_budget = {bad}\n"
        ));
        assert!(
            err.contains("ksqldb.memory_budget") && err.contains("from 10 to 95"),
            "{err}"
        );
    }
}

#[test]
fn the_rocksdb_setter_jar_is_an_absolute_classpath_entry_or_empty() {
    for (bad, why) in [
        ("lib/setter.jar", "not an absolute path"),
        ("/opt/a:b.jar", "without ':'"),
    ] {
        let err = load_err(&format!(
            "[msk]\ncluster_name = \"demo\"\n[ksqldb]\nrocksdb_setter_jar = \"{bad}\"\n"
        ));
        assert!(
            err.contains("DIR/ksql-msk.toml:4: ksqldb.rocksdb_setter_jar") && err.contains(why),
            "{err}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "ksql-msk.toml",
        "[msk]\ncluster_name = \"demo\"\n[ksqldb]\nrocksdb_setter_jar = \"\"\n",
    );
    assert_eq!(load(&path).unwrap().ksqldb.rocksdb_setter_jar, None);
    let path = write(
        dir.path(),
        "ksql-msk.toml",
        "[msk]\ncluster_name = \"demo\"\n",
    );
    assert_eq!(
        load(&path).unwrap().ksqldb.rocksdb_setter_jar.as_deref(),
        Some(std::path::Path::new(
            "/usr/share/ksql-msk/java/ksql-msk-rocksdb.jar"
        ))
    );
}
