//! Exit codes that scripts can rely on: usage errors are EX_USAGE (64) like the rest of
//! the agent's sysexits codes, and `config get` answers an unset key alike in every
//! section (its default, or an empty line; exit 0).

use crate::support::Host;

#[test]
fn usage_errors_exit_64_help_and_version_0() {
    let host = Host::new();
    for args in [
        &["no-such-command"][..],
        &["--no-such-flag", "check"],
        &["config", "get"],
    ] {
        let out = host.run(args);
        assert_eq!(out.code, 64, "{args:?}: {out:?}");
        assert!(out.stderr.contains("Usage"), "{args:?}: {out:?}");
    }
    for args in [&["--help"][..], &["--version"], &["config", "--help"]] {
        let out = host.run(args);
        assert_eq!(out.code, 0, "{args:?}: {out:?}");
        assert!(!out.stdout.is_empty(), "{args:?}: {out:?}");
    }
}

#[test]
fn config_get_of_an_unset_key_is_the_same_in_every_section() {
    let host = Host::new();
    host.write_config("[msk]\ncluster_name = \"demo\"\n");
    let msk = host.run(&["config", "get", "msk.cluster_arn"]);
    let prop = host.run(&["config", "get", "properties.ksql.service.id"]);
    for out in [&msk, &prop] {
        assert_eq!(out.code, 0, "{out:?}");
        assert_eq!(out.stdout, "\n", "{out:?}");
    }
    host.write_config(
        "[msk]\ncluster_name = \"demo\"\n[properties]\n\"ksql.service.id\" = \"svc_\"\n",
    );
    let set = host.run(&["config", "get", "properties.ksql.service.id"]);
    assert_eq!((set.code, set.stdout.as_str()), (0, "svc_\n"), "{set:?}");
}
