//! A stand-in for ksqlDB's `bin/ksql-server-start <properties>`, for tests and the
//! sandbox. It behaves like the real server where the agent can tell:
//!
//! - binds the first of `listeners=` from the properties file it is given, and
//!   `ksql.internal.listener` when set (serving the same routes);
//! - answers `GET /healthcheck` with 503 (`error_code` 50302) while "starting", then
//!   `{"isHealthy":true,...}`; `GET /info` with `{"KsqlServerInfo":{...}}`;
//! - prints log4j-style lines (`[%d] %p %m (%c:%L)`) on stdout, with a stack trace, and
//!   a JVM-style line on stderr; like log4j, it reads the file that `KSQL_LOG4J_OPTS`'s
//!   `-Dlog4j.configuration=file:` names: without `%d` in the `stdout` appender's
//!   pattern it prints no date, and it drops events below the level of their logger
//!   (the longest `log4j.logger.<name>` the class falls under, else `log4j.rootLogger`);
//! - exits on SIGTERM like the JVM (status 143), after a shutdown log line.
//!
//! Its behaviour comes from `fake-ksqldb.mode` in the release directory (three levels
//! above the properties file), `key=value` per line:
//! `healthy_after_ms`, `log_error` (an ERROR line with a stack trace at start),
//! `never_healthy`, `unhealthy_after_ms`, `ignore_term`,
//! `exit_after_ms` + `exit_code`, `sigstop_after_ms` (it stops itself: alive, its
//! listener accepting, nothing answering — a hung JVM), `grandchild` (start a helper in the same process group
//! that ignores SIGTERM), `escapee` (orphan a helper in its own session, outside the
//! group), `version`. Creating `fake-ksqldb.crash` makes it crash
//! (exit 1 after an ERROR with a stack trace). While `fake-ksqldb.unhealthy` exists, a
//! ready server answers `{"isHealthy":false,...}` with the checks named in it (comma
//! separated; empty: `kafka`) failing, as ksqlDB does when it loses Kafka. It appends its pid to `fake-ksqldb.pids`
//! and writes its environment to `fake-ksqldb.env` and arguments to `fake-ksqldb.args`.
//!
//! `degraded=incompatible|corrupted` (or the file `fake-ksqldb.degraded` holding one of
//! them) makes a ready server's command runner DEGRADED as ksqlDB's is: the WARN line
//! `CommandRunner entering degraded state ...`, `/healthcheck` with `commandRunner`
//! false while `kafka` is true, `/info` with `serverStatus: DEGRADED`.
//!
//! With `ksql.metastore.backup.location` set it keeps a backup of its "command topic"
//! as ksqlDB does (CommandTopicBackupImpl): creates the directory (0700) if missing,
//! fails to start (exit 255) when it is not a writable directory, reopens the file
//! `backup__confluent-ksql-<service id>_command_topic_<ms>` with the largest timestamp
//! or starts a new one, and appends one `<key>:<value>` line per command, here the
//! commands listed in `fake-ksqldb.commands` beside the backup directory (a stand-in
//! for the topic all servers share) that the file does not hold yet.
//!
//! With `authentication.method=BASIC` in its properties it authenticates every request
//! as ksqlDB 0.23–0.28 do (0.29 exempts `/healthcheck`): it finds the JAAS file in
//! `KSQL_OPTS` (`-Djava.security.auth.login.config=`), the section named by
//! `authentication.realm`, which must use Jetty's `PropertyFileLoginModule`, and its
//! `file="..."` password file (`user: password,role...` lines, read once at start as
//! Jetty caches it), and answers 401 (`error_code` 40100) unless the request carries
//! `Authorization: Basic` for a user there with a role in `authentication.roles`
//! (`**`: any). A JAAS setup it cannot follow is logged as an ERROR and refuses all.
//!
//! Only std and libc: it builds in a second and runs anywhere.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

static TERM: AtomicBool = AtomicBool::new(false);

extern "C" fn on_term(_: libc::c_int) {
    TERM.store(true, Ordering::SeqCst);
}

fn timestamp() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02},{:03}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_millis()
    )
}

fn log(level: &str, msg: &str, class: &str) {
    log_with(level, msg, class, None);
}

/// What the stand-in takes from the log4j configuration it is given.
struct Log4j {
    dated: bool,
    /// `log4j.rootLogger`'s level and each `log4j.logger.<name>`'s, upper case.
    root: String,
    loggers: Vec<(String, String)>,
}

static LOG4J: std::sync::OnceLock<Log4j> = std::sync::OnceLock::new();

/// The file `-Dlog4j.configuration=file:<path>` in `KSQL_LOG4J_OPTS` names, read as
/// log4j 1 does (enough of it). Without one, every event is printed, dated.
fn log4j() -> &'static Log4j {
    LOG4J.get_or_init(|| {
        let file = std::env::var("KSQL_LOG4J_OPTS").ok().and_then(|opts| {
            opts.split_whitespace()
                .find_map(|o| o.strip_prefix("-Dlog4j.configuration=file:"))
                .map(PathBuf::from)
        });
        let Some(kv) = file.map(|f| read_kv(&f)) else {
            return Log4j {
                dated: true,
                root: "TRACE".into(),
                loggers: Vec::new(),
            };
        };
        let level = |v: &String| v.split(',').next().unwrap_or("").trim().to_uppercase();
        Log4j {
            dated: kv
                .get("log4j.appender.stdout.layout.ConversionPattern")
                .is_none_or(|p| p.contains("%d")),
            root: kv
                .get("log4j.rootLogger")
                .map(level)
                .unwrap_or("DEBUG".into()),
            loggers: kv
                .iter()
                .filter_map(|(k, v)| Some((k.strip_prefix("log4j.logger.")?.to_string(), level(v))))
                .collect(),
        }
    })
}

fn rank(level: &str) -> usize {
    ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "OFF"]
        .iter()
        .position(|l| *l == level)
        .unwrap_or(0)
}

/// Whether log4j would print an event of `level` from `class` (`a.b.C:12`).
fn enabled(level: &str, class: &str) -> bool {
    let config = log4j();
    let name = class.split(':').next().unwrap_or(class);
    let threshold = config
        .loggers
        .iter()
        .filter(|(l, _)| name == l || name.starts_with(&format!("{l}.")))
        .max_by_key(|(l, _)| l.len())
        .map_or(config.root.as_str(), |(_, level)| level.as_str());
    rank(level) >= rank(threshold)
}

/// One log4j event; a throwable follows the pattern's line, as log4j prints it.
fn log_with(level: &str, msg: &str, class: &str, trace: Option<String>) {
    if !enabled(level, class) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if log4j().dated {
        let _ = write!(out, "[{}] ", timestamp());
    }
    let _ = writeln!(out, "{level} {msg} ({class})");
    if let Some(t) = trace {
        let _ = writeln!(out, "{t}");
    }
    let _ = out.flush();
}

fn stack_trace() -> String {
    [
        "java.lang.IllegalStateException: fake failure for the log test",
        "\tat io.confluent.ksql.rest.server.KsqlRestApplication.startKsql(KsqlRestApplication.java:412)",
        "\tat io.confluent.ksql.rest.server.KsqlServerMain.tryStartApp(KsqlServerMain.java:93)",
        "Caused by: org.apache.kafka.common.errors.TimeoutException: Timed out waiting for a node assignment.",
        "\tat org.apache.kafka.clients.admin.KafkaAdminClient.call(KafkaAdminClient.java:1337)",
        "\t... 4 more",
    ]
    .join("\n")
}

fn read_kv(path: &Path) -> HashMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim_start().starts_with(['#', '!']))
        .filter_map(|l| {
            let (k, v) = l.split_once('=')?;
            Some((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

fn ms(mode: &HashMap<String, String>, key: &str) -> Option<Duration> {
    mode.get(key)?.parse().ok().map(Duration::from_millis)
}

/// Jetty's JAAS property-file login module, as ksqlDB's docs configure it.
const PROPERTY_FILE_LOGIN_MODULE: &str = "org.eclipse.jetty.jaas.spi.PropertyFileLoginModule";

/// `authentication.method=BASIC`: who may come in.
struct BasicAuth {
    realm: String,
    /// (user, password, roles) from the password file; empty if the setup was broken.
    users: Vec<(String, String, Vec<String>)>,
    allowed_roles: Vec<String>,
}

impl BasicAuth {
    /// From the properties and `KSQL_OPTS`; `None` without `authentication.method=BASIC`.
    fn from(props: &HashMap<String, String>) -> Option<BasicAuth> {
        if props.get("authentication.method").map(String::as_str) != Some("BASIC") {
            return None;
        }
        let realm = props
            .get("authentication.realm")
            .cloned()
            .unwrap_or_default();
        let allowed_roles = props
            .get("authentication.roles")
            .map(|r| {
                r.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let users = match Self::users(&realm) {
            Ok(u) => u,
            Err(e) => {
                log(
                    "ERROR",
                    &format!("Could not start login service: {e}"),
                    "io.confluent.ksql.api.auth.JaasAuthProvider:112",
                );
                Vec::new()
            }
        };
        Some(BasicAuth {
            realm,
            users,
            allowed_roles,
        })
    }

    fn users(realm: &str) -> Result<Vec<(String, String, Vec<String>)>, String> {
        let opts = std::env::var("KSQL_OPTS").unwrap_or_default();
        let jaas = opts
            .split_whitespace()
            .find_map(|o| o.strip_prefix("-Djava.security.auth.login.config="))
            .ok_or("no -Djava.security.auth.login.config in KSQL_OPTS")?;
        let text = std::fs::read_to_string(jaas).map_err(|e| format!("reading {jaas}: {e}"))?;
        let start = text
            .find(&format!("{realm} {{"))
            .ok_or_else(|| format!("{jaas}: no section {realm:?}"))?;
        let section = &text[start + realm.len() + 2..];
        let section = &section[..section.find("};").ok_or("unterminated JAAS section")?];
        let module = section.split_whitespace().next().unwrap_or_default();
        if module != PROPERTY_FILE_LOGIN_MODULE {
            return Err(format!(
                "{jaas}: login module {module:?} is not {PROPERTY_FILE_LOGIN_MODULE}"
            ));
        }
        let file = section
            .split("file=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .ok_or_else(|| format!("{jaas}: no file=\"...\""))?;
        let users = std::fs::read_to_string(file)
            .map_err(|e| format!("reading {file}: {e}"))?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with(['#', '!']))
            .filter_map(|l| {
                let (user, rest) = l.split_once(':')?;
                let mut parts = rest.split(',').map(|p| p.trim().to_string());
                let password = parts.next()?;
                Some((user.trim().to_string(), password, parts.collect()))
            })
            .collect();
        Ok(users)
    }

    /// Whether an `Authorization` header value lets the request in.
    fn admits(&self, header: Option<&str>) -> bool {
        let Some(encoded) = header.and_then(|h| {
            let (scheme, rest) = h.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("basic").then_some(rest.trim())
        }) else {
            return false;
        };
        let Some(decoded) = base64_decode(encoded).and_then(|b| String::from_utf8(b).ok()) else {
            return false;
        };
        let Some((user, password)) = decoded.split_once(':') else {
            return false;
        };
        self.users.iter().any(|(u, p, roles)| {
            u == user
                && p == password
                && (self.allowed_roles.iter().any(|r| r == "**")
                    || roles.iter().any(|r| self.allowed_roles.contains(r)))
        })
    }
}

/// Standard base64 (RFC 4648, with padding), as HTTP basic authentication uses.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes = text.trim_end_matches('=').as_bytes();
    let mut out = Vec::new();
    for chunk in bytes.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= value(c)? << (18 - 6 * i);
        }
        let n = match chunk.len() {
            4 => 3,
            3 => 2,
            2 => 1,
            _ => return None,
        };
        out.extend_from_slice(&acc.to_be_bytes()[1..1 + n]);
    }
    Some(out)
}

struct Behaviour {
    /// `authentication.method=BASIC`.
    auth: Option<BasicAuth>,
    started: Instant,
    healthy_after: Duration,
    never_healthy: bool,
    unhealthy_after: Option<Duration>,
    version: String,
    /// `ksql.service.id` from the properties, for `/info`.
    service_id: String,
    /// `fake-ksqldb.unhealthy`: while it exists, these checks fail.
    unhealthy_file: PathBuf,
    /// `degraded=` from the mode, or `fake-ksqldb.degraded`.
    degraded: Option<String>,
    degraded_file: PathBuf,
}

impl Behaviour {
    fn degraded(&self) -> Option<String> {
        self.degraded.clone().or_else(|| {
            std::fs::read_to_string(&self.degraded_file)
                .ok()
                .map(|t| t.trim().to_string())
        })
    }

    fn health(&self) -> (u16, String) {
        let up = self.started.elapsed();
        if self.never_healthy || up < self.healthy_after {
            return (
                503,
                r#"{"@type":"generic_error","error_code":50302,"message":"KSQL is not yet ready to serve requests."}"#.into(),
            );
        }
        let mut failing: Vec<String> = Vec::new();
        if self.unhealthy_after.is_some_and(|d| up >= d) {
            failing.push("kafka".into());
        }
        if let Ok(text) = std::fs::read_to_string(&self.unhealthy_file) {
            failing.extend(
                text.trim()
                    .split(',')
                    .map(|c| c.trim().to_string())
                    .filter(|c| !c.is_empty()),
            );
            if failing.is_empty() {
                failing.push("kafka".into());
            }
        }
        if self.degraded().is_some() {
            failing.push("commandRunner".into());
        }
        let check = |name: &str| !failing.iter().any(|f| f == name);
        (
            200,
            format!(
                r#"{{"isHealthy":{},"details":{{"metastore":{{"isHealthy":{}}},"kafka":{{"isHealthy":{}}},"commandRunner":{{"isHealthy":{}}}}},"serverState":"RUNNING"}}"#,
                failing.is_empty(),
                check("metastore"),
                check("kafka"),
                check("commandRunner"),
            ),
        )
    }
}

fn serve(stream: TcpStream, b: &Behaviour) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut reader = BufReader::new(&stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut authorization = None;
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) if line == "\r\n" || line == "\n" => break,
            Ok(_) => {
                if let Some((name, value)) = line.split_once(':') {
                    if name.trim().eq_ignore_ascii_case("authorization") {
                        authorization = Some(value.trim().to_string());
                    }
                }
            }
        }
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    if let Some(auth) = b
        .auth
        .as_ref()
        .filter(|a| !a.admits(authorization.as_deref()))
    {
        let body = r#"{"@type":"generic_error","error_code":40100,"message":"Unauthorized"}"#;
        let mut stream = stream;
        let _ = write!(
            stream,
            "HTTP/1.1 401 Unauthorized\r\nwww-authenticate: Basic realm=\"{}\"\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            auth.realm,
            body.len()
        );
        return;
    }
    let (status, body) = match path {
        "/healthcheck" => b.health(),
        "/info" => {
            let (s, _) = b.health();
            if s == 503 {
                b.health()
            } else {
                (
                    200,
                    format!(
                        r#"{{"KsqlServerInfo":{{"version":"{}","kafkaClusterId":"fake-cluster","ksqlServiceId":"{}","serverStatus":"{}"}}}}"#,
                        b.version,
                        b.service_id,
                        if b.degraded().is_some() {
                            "DEGRADED"
                        } else {
                            "RUNNING"
                        }
                    ),
                )
            }
        }
        _ => (404, r#"{"error_code":40400,"message":"not found"}"#.into()),
    };
    let reason = match status {
        200 => "OK",
        503 => "Service Unavailable",
        _ => "Not Found",
    };
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// ksqlDB's CommandTopicBackupImpl, as far as the agent can tell (see the module doc).
fn backup(dir: &Path, service_id: &str) {
    use std::os::unix::fs::PermissionsExt;
    let fail = |why: String| -> ! {
        log(
            "ERROR",
            &format!("Failed to start KSQL: {why}"),
            "io.confluent.ksql.rest.server.KsqlServerMain:68",
        );
        std::process::exit(255);
    };
    if !dir.exists() {
        if let Err(e) = std::fs::create_dir_all(dir) {
            fail(format!(
                "Couldn't create the backups directory: {} ({e})",
                dir.display()
            ));
        }
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    if !dir.is_dir() {
        fail(format!("{} is not a directory.", dir.display()));
    }
    let prefix = format!("backup__confluent-ksql-{service_id}_command_topic_");
    let latest = std::fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().to_lowercase();
                    name.strip_prefix(&prefix)?.parse::<u64>().ok()
                })
                .max()
        })
        .unwrap_or_else(|e| {
            fail(format!(
                "The backups directory is not readable/writable for KSQL server: {} ({e})",
                dir.display()
            ))
        });
    let ts = latest.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    });
    let file = dir.join(format!("{prefix}{ts}"));
    let had = std::fs::read_to_string(&file).unwrap_or_default();
    let topic = dir
        .parent()
        .map(|p| p.join("fake-ksqldb.commands"))
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_else(|| {
            r#""stream/KSQL_PROCESSING_LOG/create":{"statement":"CREATE STREAM KSQL_PROCESSING_LOG (...) WITH (KAFKA_TOPIC='default_ksql_processing_log', VALUE_FORMAT='JSON');","streamsProperties":{},"originalProperties":{},"plan":null}"#.to_string() + "\n"
        });
    let mut out = match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&file)
    {
        Ok(f) => f,
        Err(e) => fail(format!(
            "The backups directory is not readable/writable for KSQL server: {} ({e})",
            dir.display()
        )),
    };
    for line in topic.lines().skip(had.lines().count()) {
        let _ = writeln!(out, "{line}");
    }
    log(
        "INFO",
        &format!("Command topic will be backup on file: {}", file.display()),
        "io.confluent.ksql.rest.server.CommandTopicBackupImpl:103",
    );
}

/// The stand-in for `bin/ksql-restore-command-topic` (ksqlDB's KsqlRestoreCommandTopic,
/// its RestoreOptions parsed by airline): `--config-file <file>` (required), `-s` /
/// `--skip-incompatible-commands`, `-y` / `--yes`, `-h` / `--help`, and the backup file
/// as the one positional argument. Exit 1 on a parse error (and for `--help`), 2 for a
/// missing or unreadable file, 1 without `--yes` and no console (ksqlDB's
/// NullPointerException), 1 when a line has no `:` or the file `fake-ksqldb.restore-fails`
/// exists in the working directory (the release); else it replaces the "command topic"
/// (`fake-ksqldb.commands` beside `ksql.metastore.backup.location`) with the backup's
/// lines and prints ksqlDB's transcript. Its arguments and environment are recorded
/// in `fake-ksqldb.restore.args` / `.env` in the working directory.
fn restore_command_topic(args: &[String]) -> ! {
    let usage = |msg: &str| -> ! {
        eprintln!("{msg}\nSee the -h or --help flags for usage information");
        std::process::exit(1);
    };
    let (mut config, mut file, mut yes, mut skip) = (None, None, false, false);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--config-file" => match it.next() {
                Some(v) => config = Some(v.clone()),
                None => usage("Required values for option 'config-file' not provided"),
            },
            "-y" | "--yes" => yes = true,
            "-s" | "--skip-incompatible-commands" => skip = true,
            "-h" | "--help" => {
                println!("usage: ksql-restore-command-topic --config-file <config-file> [ {{-s | --skip-incompatible-commands}} ] [ {{-y | --yes}} ] [--] <backup-file>");
                std::process::exit(1);
            }
            s if s.starts_with('-') => usage(&format!("Found unexpected parameters: [{s}]")),
            s if file.is_none() => file = Some(s.to_string()),
            s => usage(&format!("Found unexpected parameters: [{s}]")),
        }
    }
    let config = config.unwrap_or_else(|| usage("Required option 'config-file' is missing"));
    let file = file.unwrap_or_else(|| usage("Required arguments are missing: 'backup-file'"));
    for f in [&config, &file] {
        match std::fs::metadata(f) {
            Err(_) => {
                eprintln!("File does not exist: {f}");
                std::process::exit(2);
            }
            Ok(m) if !m.is_file() => {
                eprintln!("Invalid file: {f}");
                std::process::exit(2);
            }
            Ok(_) => {}
        }
    }
    let _ = std::fs::write("fake-ksqldb.restore.args", args.join("\n") + "\n");
    let env: String = std::env::vars()
        .map(|(k, v)| format!("{k}={v}\n"))
        .collect();
    let _ = std::fs::write("fake-ksqldb.restore.env", env);
    if !yes {
        println!("Restoring the command topic will DELETE your actual metadata.");
        eprintln!("Exception in thread \"main\" java.lang.NullPointerException");
        std::process::exit(1);
    }
    println!("Loading backup file ...");
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    for (i, line) in text.lines().enumerate() {
        if !line.contains(':') {
            eprintln!(
                "Failed loading backup file.\nError = Invalid CommandId string (line {}): {line}",
                i + 1
            );
            std::process::exit(1);
        }
    }
    let n = text.lines().count();
    println!("Backup ({n} records) loaded in memory in 3 ms.");
    if skip {
        println!("0 incompatible command(s) skipped from backup file.");
    }
    println!("Restoring command topic ...");
    // A restore that does not finish on its own (bounded): killed by the agent or not.
    if Path::new("fake-ksqldb.restore-hangs").exists() {
        let _ = std::io::stdout().flush();
        let _ = std::fs::write("fake-ksqldb.restore.pid", std::process::id().to_string());
        std::thread::sleep(Duration::from_secs(120));
        eprintln!("Failed restoring command topic.\nError = hung for 120 s");
        std::process::exit(1);
    }
    if Path::new("fake-ksqldb.restore-fails").exists() {
        eprintln!(
            "Failed restoring command topic.\nError = Failed to initialize topic transactions."
        );
        std::process::exit(1);
    }
    let props = read_kv(Path::new(&config));
    let Some(topic) = props.get("ksql.metastore.backup.location").and_then(|d| {
        Path::new(d)
            .parent()
            .map(|p| p.join("fake-ksqldb.commands"))
    }) else {
        eprintln!("Failed restoring command topic.\nError = no ksql.metastore.backup.location");
        std::process::exit(1);
    };
    if let Err(e) = std::fs::write(&topic, &text) {
        eprintln!("Failed restoring command topic.\nError = {e}");
        std::process::exit(1);
    }
    println!("Restore process completed in 5 ms.");
    println!("You need to restart the ksqlDB server to re-load the command topic.");
    std::process::exit(0);
}

/// `host:port` of the first URL in a listener list (`http://0.0.0.0:8088,...`).
fn bind_addr(listeners: &str) -> String {
    listeners
        .split(',')
        .next()
        .unwrap_or("")
        .trim()
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_string()
}

fn grandchild() -> ! {
    // SAFETY: setting a signal disposition.
    unsafe { libc::signal(libc::SIGTERM, libc::SIG_IGN) };
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Start a helper in a new session (outside ksqlDB's process group), write its pid to
/// `args[2]`, and exit: the helper is orphaned, like a daemon a plugin might start.
fn escapee_parent(args: &[String]) -> ! {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new(&args[0]);
    cmd.arg("--grandchild");
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let code = match cmd.spawn() {
        Ok(c) => {
            let _ = std::fs::write(&args[2], format!("{}\n", c.id()));
            0
        }
        Err(_) => 1,
    };
    std::process::exit(code);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--grandchild") {
        grandchild();
    }
    if args.get(1).map(String::as_str) == Some("--escapee-parent") {
        escapee_parent(&args);
    }
    if args.get(1).map(String::as_str) == Some("--restore-command-topic") {
        restore_command_topic(&args[2..]);
    }
    let Some(props_path) = args.get(1).map(PathBuf::from) else {
        eprintln!("USAGE: ksql-server-start <ksql-server.properties>");
        std::process::exit(1);
    };
    let release = props_path
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let mode = read_kv(&release.join("fake-ksqldb.mode"));
    let props = read_kv(&props_path);
    let pid = std::process::id();

    // 0600: fake-ksqldb.env holds what ksqlDB was given, AWS credentials included (the
    // IAM module's chain reads them), and the secrets test scans the state directory
    // for world-readable secrets.
    let record = |name: &str, text: String, append: bool| {
        use std::os::unix::fs::OpenOptionsExt;
        let path = release.join(name);
        let mut f = std::fs::OpenOptions::new()
            .mode(0o600)
            .create(true)
            .append(append)
            .write(true)
            .truncate(!append)
            .open(path)
            .expect("control file");
        f.write_all(text.as_bytes()).expect("write control file");
    };
    record("fake-ksqldb.pids", format!("{pid}\n"), true);
    let mut env: Vec<String> = std::env::vars().map(|(k, v)| format!("{k}={v}")).collect();
    env.sort();
    record("fake-ksqldb.env", env.join("\n") + "\n", false);
    record("fake-ksqldb.args", args[1..].join("\n") + "\n", false);

    if mode.contains_key("ignore_term") {
        // SAFETY: setting a signal disposition.
        unsafe { libc::signal(libc::SIGTERM, libc::SIG_IGN) };
    } else {
        // SAFETY: the handler only stores to an atomic.
        unsafe { libc::signal(libc::SIGTERM, on_term as *const () as libc::sighandler_t) };
    }

    if mode.contains_key("grandchild") {
        match std::process::Command::new(&args[0])
            .arg("--grandchild")
            .spawn()
        {
            Ok(c) => record("fake-ksqldb.grandchild", format!("{}\n", c.id()), false),
            Err(e) => eprintln!("cannot start grandchild: {e}"),
        }
    }

    if mode.contains_key("escapee") {
        let path = release.join("fake-ksqldb.escapee");
        let _ = std::process::Command::new(&args[0])
            .arg("--escapee-parent")
            .arg(&path)
            .status();
    }

    let listener = props
        .get("listeners")
        .cloned()
        .unwrap_or_else(|| "http://0.0.0.0:8088".into());
    let addr = bind_addr(&listener);
    // Like the real server, it knows its own version: the release directory's name.
    let version = mode.get("version").cloned().unwrap_or_else(|| {
        release
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| n.starts_with(|c: char| c.is_ascii_digit()))
            .unwrap_or_else(|| "0.28.2".into())
    });
    log(
        "INFO",
        &format!(
            "KsqlServerMain starting ksqlDB {version} with {}",
            props_path.display()
        ),
        "io.confluent.ksql.rest.server.KsqlServerMain:65",
    );
    eprintln!(
        "OpenJDK 64-Bit Server VM warning: Options -Xverify:none and -noverify were deprecated"
    );
    let behaviour = Arc::new(Behaviour {
        auth: BasicAuth::from(&props),
        started: Instant::now(),
        healthy_after: ms(&mode, "healthy_after_ms").unwrap_or(Duration::from_millis(300)),
        never_healthy: mode.contains_key("never_healthy"),
        unhealthy_after: ms(&mode, "unhealthy_after_ms"),
        version: version.clone(),
        service_id: props
            .get("ksql.service.id")
            .cloned()
            .unwrap_or_else(|| "default_".into()),
        unhealthy_file: release.join("fake-ksqldb.unhealthy"),
        degraded: mode.get("degraded").cloned(),
        degraded_file: release.join("fake-ksqldb.degraded"),
    });
    if let Some(location) = props.get("ksql.metastore.backup.location") {
        backup(Path::new(location), &behaviour.service_id);
    }
    let server = match TcpListener::bind(&addr) {
        Ok(l) => l,
        Err(e) => {
            log(
                "ERROR",
                &format!("Failed to bind {addr}: {e}"),
                "io.confluent.ksql.rest.server.KsqlRestApplication:301",
            );
            std::process::exit(1);
        }
    };
    let b = behaviour.clone();
    std::thread::spawn(move || {
        for stream in server.incoming().flatten() {
            serve(stream, &b);
        }
    });
    // Like ksqlDB, a second server for the other nodes on `ksql.internal.listener`.
    if let Some(internal) = props.get("ksql.internal.listener") {
        let addr = bind_addr(internal);
        match TcpListener::bind(&addr) {
            Ok(l) => {
                let b = behaviour.clone();
                std::thread::spawn(move || {
                    for stream in l.incoming().flatten() {
                        serve(stream, &b);
                    }
                });
                log(
                    "INFO",
                    &format!("Internal listener up on {internal}"),
                    "io.confluent.ksql.rest.server.KsqlRestApplication:370",
                );
            }
            Err(e) => {
                log(
                    "ERROR",
                    &format!("Failed to bind the internal listener {addr}: {e}"),
                    "io.confluent.ksql.rest.server.KsqlRestApplication:301",
                );
                std::process::exit(1);
            }
        }
    }
    log(
        "WARN",
        "The configuration 'ksql.streams.state.dir' was supplied but isn't a known config.",
        // Not under org.apache.kafka, which upstream's log4j config sets to ERROR.
        "io.confluent.ksql.rest.server.KsqlRestConfig:380",
    );
    if mode.contains_key("log_error") {
        log_with(
            "ERROR",
            "Could not reach the command topic, retrying",
            "io.confluent.ksql.rest.server.CommandStore:118",
            Some(stack_trace()),
        );
    }
    log(
        "DEBUG",
        "debug detail",
        "io.confluent.ksql.rest.server.KsqlRestApplication:77",
    );
    log(
        "INFO",
        &format!("Server up and running on {listener}"),
        "io.confluent.ksql.rest.server.KsqlRestApplication:363",
    );
    if let Some(how) = behaviour.degraded() {
        let why = if how == "corrupted" {
            "encountering corruption between topic and backup"
        } else {
            "encountering an incompatible command"
        };
        log(
            "WARN",
            &format!("CommandRunner entering degraded state due to {why}"),
            "io.confluent.ksql.rest.server.computation.CommandRunner:443",
        );
    }

    let exit_after = ms(&mode, "exit_after_ms");
    let sigstop_after = ms(&mode, "sigstop_after_ms");
    let exit_code: i32 = mode
        .get("exit_code")
        .and_then(|c| c.parse().ok())
        .unwrap_or(1);
    let crash_file = release.join("fake-ksqldb.crash");
    loop {
        std::thread::sleep(Duration::from_millis(20));
        if TERM.load(Ordering::SeqCst) {
            log(
                "INFO",
                "ksqlDB shutting down",
                "io.confluent.ksql.rest.server.KsqlServerMain:110",
            );
            std::process::exit(143);
        }
        if crash_file.exists() {
            let _ = std::fs::remove_file(&crash_file);
            log_with(
                "FATAL",
                "Unhandled exception, crashing",
                "io.confluent.ksql.rest.server.KsqlServerMain:99",
                Some(stack_trace()),
            );
            std::process::exit(1);
        }
        if sigstop_after.is_some_and(|d| behaviour.started.elapsed() >= d) {
            // SAFETY: raise(3) with a signal number.
            unsafe { libc::raise(libc::SIGSTOP) };
        }
        if exit_after.is_some_and(|d| behaviour.started.elapsed() >= d) {
            log(
                "ERROR",
                &format!("exiting with status {exit_code} as told"),
                "io.confluent.ksql.rest.server.KsqlServerMain:99",
            );
            let _ = std::io::stdout().flush();
            std::process::exit(exit_code);
        }
    }
}
