//! Who may use ksqlDB's REST API (`ksqldb.auth`, issue 15 item 3).
//!
//! `basic` sets up ksqlDB's HTTP basic authentication as its documentation describes
//! ("Configure Security for ksqlDB", HTTP-BASIC): `authentication.method=BASIC`,
//! `authentication.realm` naming a section of a JAAS file passed to the JVM with
//! `-Djava.security.auth.login.config`, whose Jetty `PropertyFileLoginModule` reads a
//! password file of `user: password,role` lines, and `authentication.roles` naming the
//! roles let in.
//!
//! Who writes what (the agent runs as `ksql` and cannot write `/etc/ksql-msk`):
//! - the password file, [`PASSWORD_FILE`] beside the main config file, holds one
//!   generated credential. Root creates it (`ksql-msk auth ensure`, the unit's
//!   `ExecStartPre=+`) when it is missing, and replaces it (`ksql-msk auth rotate`),
//!   atomically, 0640, owned by root and the config file's group (`ksql`), so that the
//!   agent's health probe and ksqlDB (both `ksql`) can read it and nobody else can.
//!   The password is in plain text: the probe and `/usr/bin/ksql` need it as such and
//!   run as the same user as ksqlDB, so a hashed copy for ksqlDB would hide it from
//!   nobody who could not read the plain one as well.
//! - the JAAS file, [`JAAS_FILE`] in the state directory, names the password file and
//!   holds no secret; the agent writes it (atomically, without following links). The
//!   `ksql` user can rewrite it, but only ksqlDB reads it, and ksqlDB is `ksql` too.
//!
//! The password never goes into a log line, the properties file, the JAAS file or an
//! error message: [`Credential`]'s `Debug` hides it.

use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::config::{RestAuth, Settings};
use crate::exit::{fail, ExitCode};
use crate::host::{self, Dir};

/// The JAAS section, and so `authentication.realm` (the name ksqlDB's docs use).
pub const REALM: &str = "KsqlServer-Props";
/// The role of the generated user, and `authentication.roles`.
pub const ROLE: &str = "ksql-msk";
/// The generated user's name.
pub const USER: &str = "ksql";
/// Jetty's property-file login module, as ksqlDB's docs name it for 0.x (Jetty 9.4's
/// `jetty-jaas`, which ksqlDB's REST app depends on; Jetty 12 moved it to
/// `org.eclipse.jetty.security.jaas.spi`).
pub const LOGIN_MODULE: &str = "org.eclipse.jetty.jaas.spi.PropertyFileLoginModule";
/// The password file's name, beside the main config file (`/etc/ksql-msk/`).
pub const PASSWORD_FILE: &str = "ksqldb.password";
/// The JAAS file's name in the state directory.
pub const JAAS_FILE: &str = "ksqldb-jaas.conf";
/// The JVM option that names the JAAS file.
pub const JAAS_OPTION: &str = "-Djava.security.auth.login.config=";
/// Random bytes in a generated password (hex-encoded: 64 characters, 256 bits).
const PASSWORD_BYTES: usize = 32;

/// A user and password for ksqlDB's REST API. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub user: String,
    password: String,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Credential {
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> Credential {
        Credential {
            user: user.into(),
            password: password.into(),
        }
    }

    /// The password, for an `Authorization` header or the CLI: never for a log line.
    pub fn password(&self) -> &str {
        &self.password
    }
}

/// Where the password file is: beside the main config file.
pub fn password_path(settings: &Settings) -> PathBuf {
    host::parent_dir(&settings.source).join(PASSWORD_FILE)
}

/// Where the JAAS file is: in the state directory.
pub fn jaas_path(settings: &Settings) -> PathBuf {
    settings.agent.state_dir.join(JAAS_FILE)
}

/// The managed ksql-server.properties keys for `ksqldb.auth` (none for `none`: the
/// release's pristine file has none, so ksqlDB's default `NONE` applies).
pub fn properties(settings: &Settings) -> Vec<(String, String)> {
    match settings.ksqldb.auth {
        RestAuth::None => Vec::new(),
        RestAuth::Basic => vec![
            ("authentication.method".into(), "BASIC".into()),
            ("authentication.realm".into(), REALM.into()),
            ("authentication.roles".into(), ROLE.into()),
        ],
    }
}

/// ksqlDB's `KSQL_OPTS`: the JAAS option (with `basic`) first, then `ksqldb.jvm_opts`,
/// so that an operator's `-D` still wins.
pub fn ksql_opts(settings: &Settings, jvm_opts: Option<&str>) -> Option<String> {
    let jaas = (settings.ksqldb.auth == RestAuth::Basic)
        .then(|| format!("{JAAS_OPTION}{}", jaas_path(settings).display()));
    match (jaas, jvm_opts) {
        (Some(j), Some(o)) => Some(format!("{j} {o}")),
        (Some(j), None) => Some(j),
        (None, o) => o.map(str::to_string),
    }
}

/// A fresh password: 32 bytes from the kernel's CSPRNG (getrandom(2)), hex-encoded.
pub fn generate_password() -> Result<String> {
    let mut buf = [0u8; PASSWORD_BYTES];
    let mut filled = 0;
    while filled < buf.len() {
        match rustix::rand::getrandom(&mut buf[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                return Err(std::io::Error::from(e))
                    .context("reading random bytes for the REST API password")
            }
        }
    }
    Ok(hex::encode(buf))
}

/// The password file's text: Jetty's `user: password,role` format.
pub fn render_password_file(credential: &Credential) -> String {
    format!(
        "# ksqlDB's REST API credential (ksqldb.auth = \"basic\"), written by ksql-msk.\n\
         # Jetty PropertyFileLoginModule format: <user>: <password>,<role>\n\
         # `sudo ksql-msk auth rotate` replaces it and restarts ksqlDB; do not edit.\n\
         {}: {},{ROLE}\n",
        credential.user, credential.password
    )
}

/// The credential in a password file's text (its first entry). Jetty also takes
/// `OBF:`, `MD5:` and `CRYPT:` forms, but the agent's probe needs the password itself.
pub fn parse_password_file(text: &str, path: &Path) -> Result<Credential> {
    let bad = |why: &str| {
        fail(
            ExitCode::Config,
            format!(
                "{}: {why}; `sudo ksql-msk auth rotate` writes a new one",
                path.display()
            ),
        )
    };
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with(['#', '!']))
        .ok_or_else(|| bad("holds no credential"))?;
    let (user, rest) = line
        .split_once(':')
        .ok_or_else(|| bad("is not in the `user: password,role` format"))?;
    let password = rest.split(',').next().unwrap_or_default().trim();
    let user = user.trim();
    if user.is_empty() || password.is_empty() {
        return Err(bad("is not in the `user: password,role` format"));
    }
    if ["OBF:", "MD5:", "CRYPT:"]
        .iter()
        .any(|p| password.starts_with(p))
    {
        return Err(bad(
            "holds a hashed password, which the agent's health probe cannot send",
        ));
    }
    Ok(Credential::new(user, password))
}

/// The JAAS file's text, naming the password file. JAAS config files quote with `"`,
/// take `\` escapes and expand `${...}`: a path with any of them is refused.
pub fn render_jaas(password_file: &Path) -> Result<String> {
    let path = password_file
        .to_str()
        .filter(|p| !p.contains(['"', '\\', '$', '\n', '\r']) && !p.chars().any(char::is_control));
    let Some(path) = path else {
        return Err(fail(
            ExitCode::Config,
            format!(
                "{}: a path with quotes, backslashes, `$` or control characters cannot go into a JAAS file; keep the config in a plainer directory",
                password_file.display()
            ),
        ));
    };
    Ok(format!(
        "/* ksqlDB's REST API login (ksqldb.auth = \"basic\"), written by ksql-msk. */\n\
         {REALM} {{\n  {LOGIN_MODULE} required\n  file=\"{path}\"\n  debug=\"false\";\n}};\n"
    ))
}

/// The credential in the password file; `None` if there is no file.
pub fn read_credential(path: &Path) -> Result<Option<Credential>> {
    let (dir, name) = Dir::parent_of(path)?;
    let bytes = dir.read(&name).map_err(|e| {
        fail(
            ExitCode::Config,
            format!(
                "{}: {} (it is 0640 root:ksql: run as root or as a member of group ksql)",
                path.display(),
                crate::exit::one_line(&e)
            ),
        )
    })?;
    let Some(bytes) = bytes else {
        return Ok(None);
    };
    let text = String::from_utf8(bytes)
        .map_err(|_| fail(ExitCode::Config, format!("{}: not UTF-8", path.display())))?;
    parse_password_file(&text, path).map(Some)
}

/// The credential for this host's REST API: `None` with `auth = "none"`. With
/// `basic`, a missing password file is an error that says how to create it. This is
/// what the health probe, `/usr/bin/ksql` and `status` use.
pub fn credential(settings: &Settings) -> Result<Option<Credential>> {
    if settings.ksqldb.auth == RestAuth::None {
        return Ok(None);
    }
    let path = password_path(settings);
    match read_credential(&path)? {
        Some(c) => Ok(Some(c)),
        None => Err(fail(
            ExitCode::Config,
            format!(
                "ksqldb.auth = \"basic\" but {} is missing: `sudo ksql-msk auth ensure` creates it (the unit's ExecStartPre= does)",
                path.display()
            ),
        )),
    }
}

/// Write a new credential to the password file, atomically: 0640, owned by this
/// process's user (root) and the main config file's group (`ksql`).
fn write_password_file(settings: &Settings, credential: &Credential) -> Result<()> {
    let path = password_path(settings);
    let gid = std::fs::metadata(&settings.source)
        .with_context(|| format!("reading {}", settings.source.display()))?
        .gid();
    let uid = rustix::process::geteuid().as_raw();
    let (dir, name) = Dir::parent_of(&path)?;
    dir.write_atomic_owned(
        &name,
        render_password_file(credential).as_bytes(),
        0o640,
        (uid, gid),
    )
    .map_err(|e| {
        fail(
            ExitCode::Config,
            format!(
                "cannot write {}: {} (run `sudo ksql-msk auth ensure`; the unit's ExecStartPre= does)",
                path.display(),
                crate::exit::one_line(&e)
            ),
        )
    })
}

/// `ksql-msk auth ensure`: with `basic`, create the password file if it is missing;
/// an existing one is only checked. `Ok(true)` if it was created.
pub fn ensure(settings: &Settings) -> Result<bool> {
    if settings.ksqldb.auth == RestAuth::None {
        return Ok(false);
    }
    if read_credential(&password_path(settings))?.is_some() {
        return Ok(false);
    }
    write_password_file(settings, &Credential::new(USER, generate_password()?))?;
    Ok(true)
}

/// `ksql-msk auth rotate`'s first half: replace the credential (the caller asks the
/// running agent to restart ksqlDB with it).
pub fn rotate(settings: &Settings) -> Result<()> {
    if settings.ksqldb.auth == RestAuth::None {
        return Err(fail(
            ExitCode::Config,
            "ksqldb.auth is \"none\": there is no credential to rotate (set ksqldb.auth = \"basic\")",
        ));
    }
    write_password_file(settings, &Credential::new(USER, generate_password()?))
}

/// Phase 5 for `ksqldb.auth`, under the state directory's lock: with `basic`, create a
/// missing password file if this process can (root; a test's own directory) and
/// (re)write the JAAS file if it differs; with `none`, remove a JAAS file left by
/// `basic`.
pub fn configure(settings: &Settings) -> Result<()> {
    let state = Dir::open(&settings.agent.state_dir)?;
    if settings.ksqldb.auth == RestAuth::None {
        state.remove_file(JAAS_FILE)?;
        return Ok(());
    }
    let jaas_path = jaas_path(settings);
    if jaas_path
        .to_str()
        .is_none_or(|p| p.contains(char::is_whitespace))
    {
        return Err(fail(
            ExitCode::Config,
            format!(
                "{}: ksqlDB's launch script splits KSQL_OPTS on whitespace, so with ksqldb.auth = \"basic\" agent.state_dir must not contain any",
                settings.agent.state_dir.display()
            ),
        ));
    }
    let password = password_path(settings);
    if read_credential(&password)?.is_none() {
        ensure(settings)?;
    }
    let text = render_jaas(&password)?;
    if state.read(JAAS_FILE)?.as_deref() != Some(text.as_bytes()) {
        // 0644 like ksql-server.properties: no secret in it, and a root-run `install`
        // must leave it readable by ksqlDB (`ksql`).
        state.write_atomic(JAAS_FILE, text.as_bytes(), 0o644)?;
    }
    Ok(())
}

/// The listeners anyone on the network may use: with `auth = "none"`, every listener
/// that is not on a loopback address.
pub fn open_listeners(settings: &Settings) -> Vec<String> {
    if settings.ksqldb.auth == RestAuth::Basic {
        return Vec::new();
    }
    settings
        .ksqldb
        .listeners
        .split(',')
        .map(str::trim)
        .filter(|l| !is_loopback_listener(l))
        .map(str::to_string)
        .collect()
}

/// A listener bound to a loopback address (`127.0.0.0/8`, `::1`, `localhost`).
pub fn is_loopback_listener(listener: &str) -> bool {
    let Ok(url) = url::Url::parse(listener) else {
        return false;
    };
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// What to do about an open REST API: the text of the start warning and of `check`'s ✗.
pub fn open_api_problem(settings: &Settings) -> Option<String> {
    let open = open_listeners(settings);
    if open.is_empty() {
        return None;
    }
    Some(format!(
        "ksqlDB's REST API on {} takes SQL (DROP ... DELETE TOPIC, TERMINATE) from anyone who can reach it (ksqldb.auth = \"none\"): set ksqldb.auth = \"basic\", listen on loopback alone on a single host (ksqldb.listeners = \"http://127.0.0.1:8088\"), or let the security group admit only trusted clients to the port",
        open.join(", ")
    ))
}

/// `auth: basic|none` for `ksql-msk status` (the hook for its output).
pub fn mode(settings: &Settings) -> &'static str {
    settings.ksqldb.auth.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(dir: &Path, extra: &str) -> Settings {
        let state = dir.join("state");
        std::fs::create_dir_all(&state).unwrap();
        let path = dir.join("ksql-msk.toml");
        std::fs::write(
            &path,
            format!(
                "[msk]\ncluster_arn = \"arn:aws:kafka:eu-west-1:123456789012:cluster/demo/abcd1234-5678-90ab-cdef-1234567890ab-3\"\n[agent]\nstate_dir = \"{}\"\n{extra}",
                state.display()
            ),
        )
        .unwrap();
        crate::config::load(&path).unwrap()
    }

    #[test]
    fn password_file_round_trips_in_jettys_format() {
        let c = Credential::new(USER, generate_password().unwrap());
        let text = render_password_file(&c);
        let entry = text.lines().find(|l| !l.starts_with('#')).unwrap();
        assert_eq!(entry, format!("ksql: {},ksql-msk", c.password()));
        assert_eq!(parse_password_file(&text, Path::new("f")).unwrap(), c);
    }

    #[test]
    fn passwords_are_256_random_bits() {
        let a = generate_password().unwrap();
        let b = generate_password().unwrap();
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn hashed_and_malformed_files_are_refused_without_showing_them() {
        for text in [
            "",
            "# only a comment\n",
            "ksql\n",
            "ksql: ,role\n",
            "ksql: MD5:164c88b302622e17050af52c89945d44,user\n",
            "ksql: OBF:1w8t1tvf1w261w8v1w1c1tvn1w8x,user\n",
        ] {
            let e =
                parse_password_file(text, Path::new("/etc/ksql-msk/ksqldb.password")).unwrap_err();
            let msg = crate::exit::one_line(&e);
            assert!(msg.starts_with("/etc/ksql-msk/ksqldb.password: "), "{msg}");
            assert!(!msg.contains("164c88") && !msg.contains("1w8t"), "{msg}");
            assert_eq!(crate::exit::exit_code_of(&e), ExitCode::Config);
        }
        // Roles are optional in Jetty's format.
        let c = parse_password_file("fred: letmein\n", Path::new("f")).unwrap();
        assert_eq!((c.user.as_str(), c.password()), ("fred", "letmein"));
    }

    #[test]
    fn debug_hides_the_password() {
        let c = Credential::new("ksql", "s3cr3t-value");
        let shown = format!("{c:?}");
        assert!(
            shown.contains("ksql") && !shown.contains("s3cr3t"),
            "{shown}"
        );
    }

    #[test]
    fn jaas_file_names_the_realm_module_and_password_file() {
        let text = render_jaas(Path::new("/etc/ksql-msk/ksqldb.password")).unwrap();
        assert_eq!(
            text.lines().skip(1).collect::<Vec<_>>(),
            [
                "KsqlServer-Props {",
                "  org.eclipse.jetty.jaas.spi.PropertyFileLoginModule required",
                "  file=\"/etc/ksql-msk/ksqldb.password\"",
                "  debug=\"false\";",
                "};",
            ]
        );
        for bad in ["/etc/a\"b", "/etc/${user.home}", "/etc/a\\b", "/etc/a\nb"] {
            assert!(render_jaas(Path::new(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn properties_and_jvm_option_only_with_basic() {
        let dir = tempfile::tempdir().unwrap();
        let none = settings(dir.path(), "");
        assert!(properties(&none).is_empty());
        assert_eq!(ksql_opts(&none, None), None);
        assert_eq!(ksql_opts(&none, Some("-Da=1")), Some("-Da=1".into()));
        let basic = settings(dir.path(), "[ksqldb]\nauth = \"basic\"\n");
        assert_eq!(
            properties(&basic),
            [
                ("authentication.method".to_string(), "BASIC".to_string()),
                ("authentication.realm".into(), "KsqlServer-Props".into()),
                ("authentication.roles".into(), "ksql-msk".into()),
            ]
        );
        let jaas = format!(
            "-Djava.security.auth.login.config={}",
            dir.path().join("state/ksqldb-jaas.conf").display()
        );
        assert_eq!(ksql_opts(&basic, None), Some(jaas.clone()));
        assert_eq!(
            ksql_opts(&basic, Some("-Da=1")),
            Some(format!("{jaas} -Da=1"))
        );
    }

    #[test]
    fn configure_creates_the_password_file_once_and_the_jaas_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let s = settings(dir.path(), "[ksqldb]\nauth = \"basic\"\n");
        configure(&s).unwrap();
        let pw = dir.path().join(PASSWORD_FILE);
        let meta = std::fs::metadata(&pw).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
        let first = credential(&s).unwrap().unwrap();
        assert_eq!(first.user, "ksql");
        let jaas_file = dir.path().join("state").join(JAAS_FILE);
        let mode = std::fs::metadata(&jaas_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o644, "no secret in it; ksqlDB reads it");
        let jaas = std::fs::read_to_string(&jaas_file).unwrap();
        assert!(
            jaas.contains(&format!("file=\"{}\"", pw.display())),
            "{jaas}"
        );
        assert!(!jaas.contains(first.password()));
        // Again: the same credential, nothing rewritten.
        configure(&s).unwrap();
        assert!(!ensure(&s).unwrap());
        assert_eq!(credential(&s).unwrap().unwrap(), first);
        // Rotation replaces it.
        rotate(&s).unwrap();
        let second = credential(&s).unwrap().unwrap();
        assert_ne!(second, first);
        // Back to none: the JAAS file goes, the password file stays for later.
        let none = settings(dir.path(), "");
        configure(&none).unwrap();
        assert!(!dir.path().join("state").join(JAAS_FILE).exists());
        assert!(pw.exists());
        assert!(rotate(&none).is_err());
        assert_eq!(credential(&none).unwrap(), None);
    }

    #[test]
    fn a_missing_password_file_says_how_to_create_it() {
        let dir = tempfile::tempdir().unwrap();
        let s = settings(dir.path(), "[ksqldb]\nauth = \"basic\"\n");
        let e = credential(&s).unwrap_err();
        assert!(
            crate::exit::one_line(&e).contains("sudo ksql-msk auth ensure"),
            "{e:#}"
        );
    }

    #[test]
    fn open_listeners_are_the_non_loopback_ones_without_auth() {
        for (l, loopback) in [
            ("http://127.0.0.1:8088", true),
            ("http://127.1.2.3:8088", true),
            ("http://[::1]:8088", true),
            ("http://localhost:8088", true),
            ("http://0.0.0.0:8088", false),
            ("http://[::]:8088", false),
            ("https://10.0.0.7:8443", false),
            ("http://ksql.internal:8088", false),
        ] {
            assert_eq!(is_loopback_listener(l), loopback, "{l}");
        }
        let dir = tempfile::tempdir().unwrap();
        let s = settings(
            dir.path(),
            "[ksqldb]\nlisteners = \"http://127.0.0.1:8088, http://0.0.0.0:8089\"\n",
        );
        assert_eq!(open_listeners(&s), ["http://0.0.0.0:8089"]);
        let problem = open_api_problem(&s).unwrap();
        assert!(problem.contains("ksqldb.auth = \"basic\""), "{problem}");
        assert!(problem.contains("security group"), "{problem}");
        let s = settings(dir.path(), "[ksqldb]\nauth = \"basic\"\n");
        assert_eq!(open_api_problem(&s), None);
        let s = settings(
            dir.path(),
            "[ksqldb]\nlisteners = \"http://127.0.0.1:8088\"\n",
        );
        assert_eq!(open_api_problem(&s), None);
    }
}
