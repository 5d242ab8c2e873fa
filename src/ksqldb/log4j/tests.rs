use super::*;
use crate::exit::exit_code_of;
use crate::ksqldb::child_log::line_priority;
use crate::ksqldb::properties::Document;

/// The settings of upstream's console-only file, two stored versions
/// (tests/fixtures/log4j/README.md).
const CONSOLE: &[u8] = include_bytes!("../../../tests/fixtures/log4j/upstream-console.properties");
const RATE_FILTER: &[u8] =
    include_bytes!("../../../tests/fixtures/log4j/upstream-rate-filter.properties");
const FIXTURES: [(&str, &[u8]); 2] = [("console", CONSOLE), ("rate-filter", RATE_FILTER)];

const NO_LOGGERS: &[(String, String)] = &[];
const DEFAULTS: Levels = Levels {
    root: None,
    loggers: NO_LOGGERS,
};

fn loggers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn value(bytes: &[u8], key: &str) -> Option<String> {
    Document::parse(bytes).unwrap().get(key)
}

const PATTERNS: [&str; 2] = [
    "log4j.appender.stdout.layout.ConversionPattern",
    "log4j.appender.streams.layout.ConversionPattern",
];

#[test]
fn with_the_defaults_only_the_console_patterns_lose_their_date() {
    for (name, source) in FIXTURES {
        let out = generate(source, &DEFAULTS).unwrap();
        for key in PATTERNS {
            assert_eq!(
                value(source, key).unwrap(),
                "[%d] %p %m (%c:%L)%n",
                "{name}"
            );
            assert_eq!(value(&out, key).unwrap(), "%p %m (%c:%L)%n", "{name}");
        }
        // Every other line, comments and blank lines included, is kept byte for byte.
        let (source_text, out_text) = (text(source), text(&out));
        let changed: Vec<&str> = source_text
            .lines()
            .zip(out_text.lines())
            .filter(|(a, b)| a != b)
            .map(|(a, _)| a)
            .collect();
        assert_eq!(changed.len(), 2, "{name}: {changed:?}");
        assert!(
            changed.iter().all(|l| l.contains("ConversionPattern")),
            "{name}: {changed:?}"
        );
        assert_eq!(text(source).lines().count(), text(&out).lines().count());
        assert_eq!(
            value(&out, "log4j.rootLogger").as_deref(),
            Some("INFO, stdout"),
            "{name}"
        );
    }
}

#[test]
fn the_root_level_is_set_and_its_appenders_kept() {
    for (name, source) in FIXTURES {
        let levels = Levels {
            root: Some("DEBUG"),
            loggers: NO_LOGGERS,
        };
        let out = generate(source, &levels).unwrap();
        assert!(
            text(&out).contains("\nlog4j.rootLogger=DEBUG, stdout\n"),
            "{name}: {}",
            text(&out)
        );
        assert!(!text(&out).contains(MARKER), "{name}: nothing added");
    }
    let out = generate(
        b"log4j.rootLogger = WARN,stdout, metrics\n",
        &Levels {
            root: Some("ERROR"),
            loggers: NO_LOGGERS,
        },
    )
    .unwrap();
    assert_eq!(text(&out), "log4j.rootLogger = ERROR,stdout, metrics\n");
    // Only a level: the level is replaced; the old synonym rootCategory is honoured.
    let out = generate(
        b"log4j.rootCategory=INFO\n",
        &Levels {
            root: Some("TRACE"),
            loggers: NO_LOGGERS,
        },
    )
    .unwrap();
    assert_eq!(text(&out), "log4j.rootCategory=TRACE\n");
}

#[test]
fn loggers_are_overridden_in_place_keeping_their_appenders_or_added() {
    for (name, source) in FIXTURES {
        let wanted = loggers(&[
            ("org.apache.kafka.streams", "DEBUG"),
            ("kafka", "WARN"),
            ("io.confluent.ksql.rest", "TRACE"),
            ("processing", "OFF"),
        ]);
        let levels = Levels {
            root: None,
            loggers: &wanted,
        };
        let out = generate(source, &levels).unwrap();
        let out_text = text(&out);
        // In place, appender kept: without it, Kafka Streams (additivity off) would print
        // nothing.
        assert!(
            out_text.contains("\nlog4j.logger.org.apache.kafka.streams=DEBUG, streams\nlog4j.additivity.org.apache.kafka.streams=false\n"),
            "{name}: {out_text}"
        );
        assert!(
            out_text.contains("\nlog4j.logger.kafka=WARN, stdout\n"),
            "{name}"
        );
        // New ones at the end, in their block.
        assert!(
            out_text.ends_with(&format!(
                "log4j.logger.org.I0Itec.zkclient=ERROR, stdout\n\n{MARKER}\n\
                 log4j.logger.io.confluent.ksql.rest=TRACE\nlog4j.logger.processing=OFF\n"
            )),
            "{name}: {out_text}"
        );
        // What log4j reads: only these keys differ from the release's.
        let before = Document::parse(source).unwrap().java_map();
        let after = Document::parse(&out).unwrap().java_map();
        let differ: Vec<String> = after
            .iter()
            .filter(|kv| !before.contains(kv))
            .map(|(k, _)| String::from_utf16_lossy(k))
            .collect();
        assert_eq!(
            differ,
            [
                PATTERNS[0],
                PATTERNS[1],
                "log4j.logger.kafka",
                "log4j.logger.org.apache.kafka.streams",
                "log4j.logger.io.confluent.ksql.rest",
                "log4j.logger.processing",
            ],
            "{name}"
        );
        assert_eq!(before.len() + 2, after.len(), "{name}");
    }
}

#[test]
fn generating_is_idempotent() {
    let wanted = loggers(&[("io.confluent.ksql", "DEBUG"), ("kafka", "INFO")]);
    let levels = Levels {
        root: Some("WARN"),
        loggers: &wanted,
    };
    for (name, source) in FIXTURES {
        let once = generate(source, &levels).unwrap();
        assert_eq!(generate(source, &levels).unwrap(), once, "{name}");
        // Applied to its own output, it changes nothing more.
        assert_eq!(generate(&once, &levels).unwrap(), once, "{name}");
        assert_eq!(generate(&once, &DEFAULTS).unwrap(), once, "{name}");
    }
}

#[test]
fn a_line_of_the_generated_pattern_keeps_its_journal_priority() {
    let levels = Levels {
        root: Some("TRACE"),
        loggers: NO_LOGGERS,
    };
    for (name, source) in FIXTURES {
        let out = generate(source, &levels).unwrap();
        let pattern = value(&out, PATTERNS[0]).unwrap();
        assert!(
            !pattern.contains("%d") && pattern.contains("%p"),
            "{pattern}"
        );
        for (level, priority) in [
            ("FATAL", 3),
            ("ERROR", 3),
            ("WARN", 4),
            ("INFO", 6),
            ("DEBUG", 7),
            ("TRACE", 7),
        ] {
            let line = format_event(&pattern, level, "Server up", "io.confluent.X", 12);
            assert!(!line.starts_with('['), "{name}: {line}");
            assert_eq!(line_priority(&line), Some(priority), "{name}: {line}");
        }
    }
}

/// What log4j's PatternLayout prints for the conversions the patterns here use.
fn format_event(pattern: &str, level: &str, message: &str, logger: &str, line: u32) -> String {
    let mut out = String::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut width = String::new();
        while let Some(&m) = chars.peek() {
            if m == '-' || m.is_ascii_digit() {
                width.push(m);
                chars.next();
            } else {
                break;
            }
        }
        let text = match chars.next() {
            Some('p') => level.to_string(),
            Some('m') => message.to_string(),
            Some('c') => logger.to_string(),
            Some('L') => line.to_string(),
            Some('n') => String::new(),
            Some('%') => "%".into(),
            other => panic!("conversion {other:?} not in this test's formatter"),
        };
        let pad: usize = width.trim_start_matches('-').parse().unwrap_or(0);
        out.push_str(&format!("{text:<pad$}"));
    }
    out
}

#[test]
fn console_patterns_lose_the_date_and_keep_or_gain_the_level() {
    for (pattern, undated) in [
        ("[%d] %p %m (%c:%L)%n", "%p %m (%c:%L)%n"),
        ("[%d] %p %m (%c)%n", "%p %m (%c)%n"),
        ("%d{ISO8601} %-5p [%t] %c - %m%n", "%-5p [%t] %c - %m%n"),
        ("%-23d{yyyy-MM-dd HH:mm:ss} %p %m%n", "%p %m%n"),
        ("%d{ISO8601}{UTC} %p %m%n", "%p %m%n"),
        ("[%t] %p %d %m%n", "[%t] %p %m%n"),
        // No date: unchanged. `%%d` is a literal "%d".
        ("%p %m%n", "%p %m%n"),
        ("%p 100%%d %m%n", "%p 100%%d %m%n"),
        // No level: it is put first, for the priority.
        ("[%d] %m%n", "%p %m%n"),
        ("%m%n", "%p %m%n"),
    ] {
        assert_eq!(console_pattern(pattern), undated, "{pattern}");
    }
}

#[test]
fn only_console_appenders_lose_the_date() {
    let source = b"log4j.rootLogger=INFO, stdout, file\n\
        log4j.appender.stdout=org.apache.log4j.ConsoleAppender\n\
        log4j.appender.stdout.layout=org.apache.log4j.PatternLayout\n\
        log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c:%L)%n\n\
        log4j.appender.file=org.apache.log4j.RollingFileAppender\n\
        log4j.appender.file.layout=org.apache.log4j.PatternLayout\n\
        log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n\n";
    let out = generate(source, &DEFAULTS).unwrap();
    assert_eq!(
        value(&out, "log4j.appender.stdout.layout.ConversionPattern").unwrap(),
        "%p %m (%c:%L)%n"
    );
    assert_eq!(
        value(&out, "log4j.appender.file.layout.ConversionPattern").unwrap(),
        "[%d] %p %m (%c)%n"
    );
}

#[test]
fn a_file_that_is_not_log4j_1_properties_is_refused_with_the_reason() {
    // log4j2's properties format.
    let log4j2 = b"rootLogger.level = INFO\nrootLogger.appenderRef.stdout.ref = STDOUT\n\
        appender.stdout.type = Console\n";
    let why = generate(log4j2, &DEFAULTS).unwrap_err();
    assert!(why.contains("no log4j.rootLogger"), "{why}");
    let why = generate(b"log4j.rootLogger=INFO\nbad=\\u12\n", &DEFAULTS).unwrap_err();
    assert!(why.contains("line 2"), "{why}");
}

/// A release's etc/ksqldb/ holding `source` as log4j.properties.
fn release(source: Option<&[u8]>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("etc/ksqldb")).unwrap();
    if let Some(source) = source {
        std::fs::write(dir.path().join(layout::LOG4J), source).unwrap();
    }
    dir
}

#[test]
fn render_writes_only_when_the_bytes_change() {
    use std::os::unix::fs::MetadataExt;
    let dir = release(Some(CONSOLE));
    let path = dir.path().join(layout::LOG4J_GENERATED);
    let first = render(dir.path(), &DEFAULTS, "0.29.0", false)
        .unwrap()
        .unwrap();
    assert!(first.generated && first.changed);
    assert_eq!(first.path, path);
    assert_eq!(std::fs::read(&path).unwrap(), first.bytes);
    assert_eq!(
        std::fs::metadata(&path).unwrap().mode() & 0o777,
        MODE & 0o755
    );
    let inode = std::fs::metadata(&path).unwrap().ino();
    let again = render(dir.path(), &DEFAULTS, "0.29.0", false)
        .unwrap()
        .unwrap();
    assert!(!again.changed && again.diff.is_empty());
    assert_eq!(
        std::fs::metadata(&path).unwrap().ino(),
        inode,
        "not rewritten"
    );
    // A dry run of a change says what would change and writes nothing.
    let wanted = loggers(&[("io.confluent.ksql", "DEBUG")]);
    let levels = Levels {
        root: None,
        loggers: &wanted,
    };
    let dry = render(dir.path(), &levels, "0.29.0", true)
        .unwrap()
        .unwrap();
    assert!(dry.changed);
    assert!(
        dry.diff.contains("+log4j.logger.io.confluent.ksql=DEBUG"),
        "{}",
        dry.diff
    );
    assert_eq!(std::fs::read(&path).unwrap(), first.bytes);
    let changed = render(dir.path(), &levels, "0.29.0", false)
        .unwrap()
        .unwrap();
    assert!(changed.changed);
    assert_eq!(std::fs::read(&path).unwrap(), changed.bytes);
    // The release's own file is never touched.
    assert_eq!(
        std::fs::read(dir.path().join(layout::LOG4J)).unwrap(),
        CONSOLE
    );
}

#[test]
fn a_link_planted_at_the_generated_file_is_replaced_not_written_through() {
    let dir = release(Some(CONSOLE));
    let outside = dir.path().join("outside");
    std::fs::write(&outside, "precious\n").unwrap();
    let path = dir.path().join(layout::LOG4J_GENERATED);
    std::os::unix::fs::symlink(&outside, &path).unwrap();
    let c = render(dir.path(), &DEFAULTS, "0.29.0", false)
        .unwrap()
        .unwrap();
    assert!(c.changed);
    assert!(!std::fs::symlink_metadata(&path)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read(&path).unwrap(), c.bytes);
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "precious\n");
    // A link at the release's own file, or at etc/, is refused (65), not followed.
    let dir = release(None);
    std::os::unix::fs::symlink(&outside, dir.path().join(layout::LOG4J)).unwrap();
    let err = render(dir.path(), &DEFAULTS, "0.29.0", false).unwrap_err();
    assert_eq!(exit_code_of(&err), ExitCode::Data, "{err:#}");
    let dir = tempfile::tempdir().unwrap();
    let real = release(Some(CONSOLE));
    std::os::unix::fs::symlink(real.path().join("etc"), dir.path().join("etc")).unwrap();
    let err = render(dir.path(), &DEFAULTS, "0.29.0", false).unwrap_err();
    assert_eq!(exit_code_of(&err), ExitCode::Data, "{err:#}");
    assert!(!real.path().join(layout::LOG4J_GENERATED).exists());
}

#[test]
fn a_release_without_a_usable_file_runs_as_it_is_unless_levels_are_asked_for() {
    let wanted = loggers(&[("kafka", "DEBUG")]);
    let asked = [
        (
            Levels {
                root: Some("DEBUG"),
                loggers: NO_LOGGERS,
            },
            "ksqldb.log_level: cannot be applied to ksqlDB 9.0.0: ",
        ),
        (
            Levels {
                root: None,
                loggers: &wanted,
            },
            "ksqldb.loggers: cannot be applied to ksqlDB 9.0.0: ",
        ),
    ];
    // No log4j.properties at all.
    let dir = release(None);
    assert_eq!(render(dir.path(), &DEFAULTS, "9.0.0", false).unwrap(), None);
    for (levels, start) in &asked {
        let err = render(dir.path(), levels, "9.0.0", false).unwrap_err();
        assert_eq!(exit_code_of(&err), ExitCode::Config);
        assert!(err.to_string().starts_with(start), "{err}");
        assert!(err
            .to_string()
            .contains("it has no etc/ksqldb/log4j.properties"));
    }
    // A log4j2 file: used as it is, nothing generated.
    let log4j2 = b"rootLogger.level = INFO\n";
    let dir = release(Some(log4j2));
    let c = render(dir.path(), &DEFAULTS, "9.0.0", false)
        .unwrap()
        .unwrap();
    assert!(!c.generated);
    assert_eq!(c.path, dir.path().join(layout::LOG4J));
    assert_eq!(c.bytes, log4j2);
    assert!(!dir.path().join(layout::LOG4J_GENERATED).exists());
    for (levels, start) in &asked {
        let err = render(dir.path(), levels, "9.0.0", false).unwrap_err();
        assert_eq!(exit_code_of(&err), ExitCode::Config);
        let msg = err.to_string();
        assert!(
            msg.starts_with(start) && msg.contains("no log4j.rootLogger"),
            "{msg}"
        );
    }
}
