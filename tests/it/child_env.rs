//! The environment ksqlDB gets: locale, time zone, proxy and AWS variables from the
//! agent's own environment, `[ksqldb] jvm_opts` and `[ksqldb.env]` from the config,
//! nothing else; secret-looking values never in the agent's output or journal.

use crate::support::error_line;
use crate::support::fixture::*;

const SECRET_1: &str = "envTableSecret-DoNotLog-1";
const SECRET_2: &str = "envTableSecret-DoNotLog-2";
const AWS_SECRET: &str = "envFakeSecretAccessKey/DoNotLeak00000000";

fn env_dropin(secret: &str, tz: &str) -> String {
    format!(
        "[ksqldb]\njvm_opts = \"-Xss2m -Dcom.sun.management.jmxremote.port=9010\"\n\
         [ksqldb.env]\nJMX_PORT = \"9010\"\nDB_PASSWORD = \"{secret}\"\nTZ = \"{tz}\"\n"
    )
}

#[test]
fn ksqldb_gets_locale_proxy_aws_and_configured_env_and_nothing_else() {
    let mut fx = Fixture::new("");
    fx.mode("healthy_after_ms=100\n");
    // A profile the agent's own AWS SDK can resolve (credentials come from the env).
    let aws_config = fx.host.dir.path().join("aws-config");
    std::fs::write(&aws_config, "[profile ksql]\nregion = eu-west-1\n").unwrap();
    fx.host
        .env("LANG", "de_DE.UTF-8")
        .env("TZ", "America/New_York")
        .env("HTTPS_PROXY", "http://proxy.invalid:3128")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_PROFILE", "ksql")
        .env("FOO_BAR", "1");
    fx.host
        .write_dropin("50-env.toml", &env_dropin(SECRET_1, "UTC"));
    let notify = fx.notify_socket();
    let journal = fx.journal_socket();
    let mut agent = fx.start();
    wait_for("READY=1", || notify.lines().iter().any(|l| l == "READY=1"));

    let env = fx.child_env();
    let keys = fx.child_env_names();
    assert_eq!(
        keys,
        [
            "AWS_ACCESS_KEY_ID",
            "AWS_CONFIG_FILE",
            "AWS_EC2_METADATA_DISABLED",
            "AWS_PROFILE",
            "AWS_REGION",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SHARED_CREDENTIALS_FILE",
            "DB_PASSWORD",
            "HTTPS_PROXY",
            "JAVA_HOME",
            "JMX_PORT",
            "KSQL_HEAP_OPTS",
            "KSQL_JVM_PERFORMANCE_OPTS",
            "KSQL_LOG4J_OPTS",
            "KSQL_OPTS",
            "LANG",
            "LOG_DIR",
            "NO_PROXY",
            "PATH",
            "TZ",
        ],
        "{env:?}"
    );
    assert_eq!(env["LANG"], "de_DE.UTF-8");
    assert_eq!(env["TZ"], "UTC", "[ksqldb.env] wins over the agent's TZ");
    assert_eq!(env["HTTPS_PROXY"], "http://proxy.invalid:3128");
    assert_eq!(env["NO_PROXY"], "127.0.0.1,localhost");
    assert_eq!(env["AWS_REGION"], "eu-west-1");
    assert_eq!(env["AWS_PROFILE"], "ksql");
    assert_eq!(env["AWS_CONFIG_FILE"], aws_config.display().to_string());
    assert_eq!(env["AWS_SECRET_ACCESS_KEY"], AWS_SECRET);
    assert_eq!(env["JMX_PORT"], "9010");
    assert_eq!(env["DB_PASSWORD"], SECRET_1);
    assert!(
        env["KSQL_OPTS"].ends_with("-Xss2m -Dcom.sun.management.jmxremote.port=9010"),
        "{env:?}"
    );
    assert!(!env.contains_key("FOO_BAR"));

    // A reload that changes [ksqldb.env] restarts ksqlDB with the new values, and says
    // what changed without showing the secret.
    fx.host
        .write_dropin("50-env.toml", &env_dropin(SECRET_2, "Europe/Berlin"));
    agent.signal(libc::SIGHUP);
    wait_for("restart for the new environment", || fx.pids().len() == 2);
    wait_for("the new environment", || {
        fx.child_env().get("TZ").map(String::as_str) == Some("Europe/Berlin")
    });
    let env = fx.child_env();
    assert_eq!(env["DB_PASSWORD"], SECRET_2);
    // The reload's result is one event (RELOADED), in the journal.
    let said = "restarting ksqlDB: JVM environment changed: DB_PASSWORD=<redacted> → <redacted>, TZ=UTC → Europe/Berlin";
    wait_for("the reload's event", || {
        journal
            .entries()
            .iter()
            .any(|e| e.get("MESSAGE").is_some_and(|m| m == said))
    });
    wait_for("READY after the reload", || {
        let l = notify.lines();
        let r = l.iter().rposition(|x| x == "RELOADING=1");
        r.is_some_and(|r| l[r..].iter().any(|x| x == "READY=1"))
    });
    assert_eq!(agent.stop(), 0);

    let stderr = agent.stderr();
    let entries = journal.entries();
    assert!(!entries.is_empty());
    let journal_text: String = entries
        .iter()
        .flat_map(|e| e.values())
        .cloned()
        .collect::<Vec<_>>()
        .join("\n");
    let notify_text = notify.lines().join("\n");
    for secret in [SECRET_1, SECRET_2, AWS_SECRET] {
        assert!(!stderr.contains(secret), "{secret} in stderr:\n{stderr}");
        assert!(!journal_text.contains(secret), "{secret} in the journal");
        assert!(!notify_text.contains(secret), "{secret} in STATUS");
    }
}

#[test]
fn without_a_locale_ksqldb_gets_c_utf8() {
    let fx = Fixture::new("");
    fx.mode("healthy_after_ms=100\n");
    let mut agent = fx.start();
    wait_for("healthy", || agent.stderr().contains("is healthy"));
    let env = fx.child_env();
    assert_eq!(
        env.get("LANG").map(String::as_str),
        Some("C.UTF-8"),
        "{env:?}"
    );
    assert!(!env.contains_key("KSQL_OPTS"), "{env:?}");
    assert_eq!(agent.stop(), 0);
}

#[test]
fn ksqldb_env_naming_an_agent_variable_exits_78_naming_file_and_key() {
    let fx = Fixture::uninstalled("", "17.0.15", "1.1.1");
    fx.host.write_dropin(
        "50-env.toml",
        "[ksqldb.env]\nJAVA_HOME = \"/opt/other-jdk\"\n",
    );
    let out = fx.host.run(&["run"]);
    assert_eq!(out.code, 78, "{out:?}");
    let line = error_line(&out);
    assert!(
        line.ends_with("ksql-msk.d/50-env.toml:2: ksqldb.env.JAVA_HOME: set by the agent; use ksqldb.java_home"),
        "{out:?}"
    );
    assert!(
        !fx.control("fake-ksqldb.pids").exists(),
        "ksqlDB never started"
    );
}

/// A real Java started the way ksqlDB is (from the release's start script, with the
/// environment the agent gives it) reads and writes UTF-8, though the agent itself runs
/// without a locale, as a systemd service does.
#[test]
fn a_real_java_under_the_agent_uses_utf8() {
    if let Err(e) = std::process::Command::new("java").arg("-version").output() {
        crate::support::skip(
            "KSQL_MSK_REQUIRE_JAVA",
            &format!("the file.encoding check: cannot run `java`: {e}"),
        );
        return;
    }
    let source = crate::support::repo_root().join("tests/java/Encoding.java");
    // `java` from PATH: JAVA_HOME is the fixture's stand-in JDK.
    let before = format!(
        "java '{}' > \"$(dirname \"$0\")/../fake-ksqldb.encoding\" 2>&1\n",
        source.display()
    );
    let mut fx = Fixture::with_start_prefix("", &before);
    fx.mode("healthy_after_ms=100\n");
    fx.host
        .unset_env("LANG")
        .unset_env("LC_ALL")
        .unset_env("LC_CTYPE");
    let mut agent = fx.start();
    wait_for("healthy", || agent.stderr().contains("is healthy"));
    let out = std::fs::read_to_string(fx.control("fake-ksqldb.encoding")).unwrap();
    assert_eq!(out, "file.encoding=UTF-8\nsun.jnu.encoding=UTF-8\n");
    assert_eq!(agent.stop(), 0);
}
