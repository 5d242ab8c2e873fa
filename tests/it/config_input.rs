//! Config input the agent must refuse, hide or ignore (issue 12, item 7): control
//! characters and credentials in URLs, editor files among the drop-ins, and what
//! `config set` does to a symlinked, owned, umask-affected file.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;

use crate::support::{error_line, Host, Output};

const ARN: &str =
    "arn:aws:kafka:eu-west-1:123456789012:cluster/demo/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0-2";

fn run_with_umask(host: &Host, umask: libc::mode_t, args: &[&str]) -> Output {
    let mut cmd = host.command(args);
    // SAFETY: umask is async-signal-safe and touches only the child's own state.
    unsafe {
        cmd.pre_exec(move || {
            libc::umask(umask);
            Ok(())
        });
    }
    let out = cmd.output().expect("run ksql-msk");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

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
fn config_set_keeps_the_link_the_mode_and_the_owner_whatever_the_umask() {
    let host = Host::new();
    let real_dir = host.dir.path().join("real");
    std::fs::create_dir(&real_dir).unwrap();
    let real = real_dir.join("ksql-msk.toml");
    let original = "[msk]\ncluster_name = \"demo\"\n";
    std::fs::write(&real, original).unwrap();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::chown(&real, Some(0), Some(4242)).unwrap();
    std::os::unix::fs::symlink(&real, host.config_path()).unwrap();

    let out = run_with_umask(&host, 0o077, &["config", "set", "ksqldb.heap", "2g"]);
    assert_eq!(out.code, 0, "{out:?}");
    let link = std::fs::symlink_metadata(host.config_path()).unwrap();
    assert!(link.file_type().is_symlink(), "the link was replaced");
    assert_eq!(std::fs::read_link(host.config_path()).unwrap(), real);
    let meta = std::fs::metadata(&real).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o640);
    assert_eq!((meta.uid(), meta.gid()), (0, 4242));
    assert_eq!(
        std::fs::read_to_string(&real).unwrap(),
        format!("{original}\n[ksqldb]\nheap = \"2g\"\n")
    );
    let out = host.run(&["config", "get", "ksqldb.heap"]);
    assert_eq!(out.stdout, "2g\n", "{out:?}");
}

#[test]
fn config_set_refuses_a_result_that_would_not_load() {
    let host = Host::new();
    host.write_config(&format!("[msk]\ncluster_arn = \"{ARN}\"\n"));
    let before = std::fs::read(host.config_path()).unwrap();
    let out = host.run(&["config", "set", "msk.cluster_name", "demo"]);
    assert_eq!(out.code, 78, "{out:?}");
    assert!(
        error_line(&out).contains("msk.cluster_name: both msk.cluster_arn (")
            && error_line(&out).contains("etc/ksql-msk.toml:2)"),
        "{out:?}"
    );
    assert_eq!(std::fs::read(host.config_path()).unwrap(), before);
    let out = host.run(&["iam-policy"]);
    assert_eq!(out.code, 0, "{out:?}");
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
