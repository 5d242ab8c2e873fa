//! Config input the agent must refuse, hide or ignore (issue 12, item 7): control
//! characters and credentials in URLs, editor files among the drop-ins, and what
//! `config set` does to a symlinked, owned, umask-affected file.

use std::os::unix::fs::PermissionsExt;

use crate::support::{error_line, Host};

#[test]
fn newline_in_a_url_is_refused_with_one_line() {
    let host = Host::new();
    // Today's URL parser would drop the newline, and the raw value would forge a line.
    host.write_config(
        "[msk]\ncluster_name = \"demo\"\n[ksqldb]\narchive_url = \"https://mirror/x.tgz\\nksql-msk: ready\"\n",
    );
    for cmd in [
        &["iam-policy"][..],
        &["install", "--dry-run"][..],
        &["check"][..],
    ] {
        let out = host.run(cmd);
        assert_eq!(out.code, 78, "{cmd:?}: {out:?}");
        let line = error_line(&out);
        assert!(
            line.contains("etc/ksql-msk.toml:4: ksqldb.archive_url: ")
                && line.contains("control character"),
            "{cmd:?}: {line}"
        );
        assert!(
            !out.stderr.lines().any(|l| l.starts_with("ksql-msk: ready")),
            "{out:?}"
        );
    }
}

#[test]
fn credentials_in_urls_do_not_reach_the_error() {
    let host = Host::new();
    for bad in [
        "ftp://user:hunter2@mirror/x.tgz",
        "https://user:hunter2@mirror/{versoin}.tgz",
        "https://user:hunter2@mirror/\\u0007.tgz",
    ] {
        host.write_config(&format!(
            "[msk]\ncluster_name = \"demo\"\n[ksqldb]\narchive_url = \"{bad}\"\n"
        ));
        let out = host.run(&["install", "--dry-run"]);
        assert_eq!(out.code, 78, "{out:?}");
        assert!(
            !out.stderr.contains("hunter2") && !out.stdout.contains("hunter2"),
            "{out:?}"
        );
        assert!(
            error_line(&out).contains("https://***@mirror")
                || error_line(&out).contains("ftp://***@mirror"),
            "{out:?}"
        );
    }
}

#[test]
fn editor_files_among_dropins_are_ignored() {
    let host = Host::new();
    host.write_config("[msk]\ncluster_name = \"demo\"\n");
    host.write_dropin("10-heap.toml", "[ksqldb]\nheap = \"2g\"\n");
    for junk in ["10-heap.toml~", ".10-heap.toml.swp", ".hidden.toml"] {
        host.write_dropin(junk, "[ksqldb\nheap = \"junk\"\n");
    }
    let dropins = host.config_path().with_file_name("ksql-msk.d");
    std::os::unix::fs::symlink("root@host.4242:1700000000", dropins.join(".#10-heap.toml"))
        .unwrap();
    let out = host.run(&["config", "get", "ksqldb.heap"]);
    assert_eq!((out.code, out.stdout.as_str()), (0, "2g\n"), "{out:?}");
}

#[test]
fn a_config_others_can_write_is_refused_as_root() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root");
        return;
    }
    let host = Host::new();
    host.write_config("[msk]\ncluster_name = \"demo\"\n");
    std::fs::set_permissions(host.config_path(), std::fs::Permissions::from_mode(0o646)).unwrap();
    let out = host.run(&["iam-policy"]);
    assert_eq!(out.code, 78, "{out:?}");
    assert!(
        error_line(&out).contains("etc/ksql-msk.toml: can be written by others"),
        "{out:?}"
    );
    std::fs::set_permissions(host.config_path(), std::fs::Permissions::from_mode(0o644)).unwrap();
    host.write_dropin("50-x.toml", "[ksqldb]\nheap = \"2g\"\n");
    let dropin = host.config_path().with_file_name("ksql-msk.d/50-x.toml");
    std::fs::set_permissions(&dropin, std::fs::Permissions::from_mode(0o664)).unwrap();
    let out = host.run(&["iam-policy"]);
    assert_eq!(out.code, 78, "{out:?}");
    assert!(
        error_line(&out).contains("ksql-msk.d/50-x.toml: can be written by its group"),
        "{out:?}"
    );
}
