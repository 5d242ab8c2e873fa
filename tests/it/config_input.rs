//! Config input the agent must refuse, hide or ignore (issue 12, item 7): control
//! characters and credentials in URLs, editor files among the drop-ins, and what
//! `config set` does to a symlinked, owned, umask-affected file.

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
