//! `install --dry-run` prints the properties diff with every secret-like value replaced
//! by `<redacted>`, whichever of Java's three separators (`=`, `:`, whitespace) the line
//! uses, across continuation lines, and inside URLs; keys and other values stay visible.

use crate::support::fixture::Fixture;

const KEYSTORE_KEY: &str = "KeystoreKeyBody/DoNotLeak0000";
const USER_INFO: &str = "UserInfoPass/DoNotLeak0000";
const URL_PASS: &str = "UrlPass/DoNotLeak0000";
const HAND_PW: &str = "HANDPW";
const COLON_PW: &str = "ColonTrustPass/DoNotLeak";
const CONT_TOKEN: &str = "ContinuedToken/DoNotLeak";

#[test]
fn dry_run_diff_redacts_secret_keys_for_every_separator_and_urls() {
    let fx = Fixture::new("");
    // `[properties]` overrides: a PEM key, basic-auth user info, a URL with a password.
    let path = fx.host.config_path();
    let mut config = std::fs::read_to_string(&path).unwrap();
    config.push_str(&format!(
        "\n[properties]\n\
         \"ssl.keystore.key\" = \"-----BEGIN PRIVATE KEY-----\\n{KEYSTORE_KEY}\\n-----END PRIVATE KEY-----\"\n\
         \"basic.auth.user.info\" = \"sruser:{USER_INFO}\"\n\
         \"ksql.schema.registry.url\" = \"https://sruser:{URL_PASS}@registry.example.com:8081\"\n\
         \"ksql.service.id\" = \"visible_service_id\"\n"
    ));
    std::fs::write(&path, config).unwrap();
    // Lines added by hand to the live file: whitespace and colon separators, and a
    // secret continued over a second line.
    let props = fx.release.join("etc/ksqldb/ksql-server.properties");
    let mut live = std::fs::read_to_string(&props).unwrap();
    live.push_str(&format!(
        "ssl.key.password {HAND_PW}\n\
         ssl.truststore.password:{COLON_PW}\n\
         my.api.token = first-half\\\n    {CONT_TOKEN}\n"
    ));
    std::fs::write(&props, &live).unwrap();

    let out = fx.host.run(&["install", "--dry-run"]);
    assert_eq!(out.code, 0, "{out:?}");
    for secret in [
        KEYSTORE_KEY,
        USER_INFO,
        URL_PASS,
        HAND_PW,
        COLON_PW,
        CONT_TOKEN,
    ] {
        assert!(
            !out.stdout.contains(secret) && !out.stderr.contains(secret),
            "the dry run prints {secret}:\n{out:?}"
        );
    }
    // Still a readable diff: every key, the non-secret values and the URL's host.
    for visible in [
        "+ssl.keystore.key=<redacted>",
        "+basic.auth.user.info=<redacted>",
        "ssl.key.password <redacted>",
        "ssl.truststore.password:<redacted>",
        "my.api.token = <redacted>\\",
        "https://sruser:<redacted>@registry.example.com:8081",
        "+ksql.service.id=visible_service_id",
    ] {
        assert!(out.stdout.contains(visible), "no {visible:?} in:\n{out:?}");
    }
    // The dry run wrote nothing: the live file still holds what was added by hand.
    assert_eq!(std::fs::read_to_string(&props).unwrap(), live);
}
