//! What counts as a secret, by name: property keys, JAAS options and environment
//! variables whose names say so, and the forms of their values that may be shown.
//! `Debug` of the settings, the child's environment in the journal and the properties
//! redaction all ask here.

pub const REDACTED: &str = "<redacted>";

/// Words that make a property key or JAAS option name secret wherever they appear.
const SECRET_WORDS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "credential",
    "user.info",
    "userinfo",
    "privatekey",
    "apikey",
];

/// Whether a property key or JAAS option name says its value is secret: one of
/// [`SECRET_WORDS`], or a name ending in `key` after a separator (`ssl.keystore.key`,
/// `api_key`; not `key.converter` or `awsRoleAccessKeyId`).
pub(crate) fn is_secret_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| lower.contains(w))
        || [".key", "_key", "-key"].iter().any(|s| lower.ends_with(s))
}

/// Whether an environment variable's name says its value is secret: a property word
/// (`AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `DB_PASSWORD`, `SSH_KEY`), or `KEY`
/// as a word of its own or ending one (`AWS_ACCESS_KEY_ID`, `DD_APIKEY`). Errs towards
/// hiding: `AWS_SHARED_CREDENTIALS_FILE` holds a path, and is hidden too.
pub fn is_secret_env_name(name: &str) -> bool {
    is_secret_name(name)
        || name
            .to_ascii_lowercase()
            .split('_')
            .any(|word| word.ends_with("key"))
}

/// An environment variable's value as it may be shown: [`REDACTED`] for a secret name,
/// JVM options with their secret `-Dname=value`s redacted (`KSQL_OPTS`, `*_OPTS`), and
/// any other value with a URL's `user:password@` hidden (`HTTPS_PROXY`).
pub fn env_value_for_display(name: &str, value: &str) -> String {
    if is_secret_env_name(name) {
        REDACTED.to_string()
    } else if name.ends_with("_OPTS") {
        redact_jvm_opts(value)
    } else {
        super::values::redact_url(value)
    }
}

/// JVM options (`-Xss2m -Djavax.net.ssl.keyStorePassword=x`) as they may be shown: the
/// value of each `name=value` word whose name is secret becomes [`REDACTED`], and URL
/// credentials in any word are hidden. Words are split on whitespace, as the launch
/// scripts split `KSQL_OPTS`.
pub fn redact_jvm_opts(opts: &str) -> String {
    opts.split_whitespace()
        .map(|word| match word.split_once('=') {
            Some((name, _)) if is_secret_name(name.trim_start_matches('-')) => {
                format!("{name}={REDACTED}")
            }
            _ => super::values::redact_url(word),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_names_that_look_secret_are_hidden_and_urls_lose_their_password() {
        for secret in [
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_ACCESS_KEY_ID",
            "DB_PASSWORD",
            "GITHUB_TOKEN",
            "MY_CREDENTIALS",
            "SSH_KEY",
            "DD_APIKEY",
        ] {
            assert!(is_secret_env_name(secret), "{secret}");
            assert_eq!(env_value_for_display(secret, "hunter2"), REDACTED);
        }
        for plain in ["LANG", "TZ", "AWS_REGION", "AWS_PROFILE", "KEYSTORE_TYPE"] {
            assert!(!is_secret_env_name(plain), "{plain}");
            assert_eq!(env_value_for_display(plain, "v"), "v");
        }
        assert_eq!(
            env_value_for_display("HTTPS_PROXY", "http://u:hunter2@proxy:3128"),
            "http://***@proxy:3128"
        );
        assert_eq!(
            env_value_for_display(
                "KSQL_OPTS",
                "-Xss2m  -Djavax.net.ssl.keyStorePassword=hunter2 -Dapi_key=k3y -Dx.url=https://u:p4ss@h/"
            ),
            "-Xss2m -Djavax.net.ssl.keyStorePassword=<redacted> -Dapi_key=<redacted> -Dx.url=https://***@h/"
        );
    }
}
