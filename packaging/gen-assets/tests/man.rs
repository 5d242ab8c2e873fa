//! The man pages gen-assets writes: ksql-msk.toml(5) documents exactly the schema's keys
//! (a key missing from the page, or a page entry that is no key, fails), each with its
//! default and doc; every command page has FILES, ENVIRONMENT, EXIT STATUS, EXAMPLES and
//! SEE ALSO, exit codes the agent has, and the variables its options read; groff renders
//! every page without a warning (`-ww`). Without groff that last test is skipped loudly,
//! unless KSQL_MSK_REQUIRE_GROFF=1 (tests/run-all; tests/setup-host installs groff-base).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use clap::CommandFactory;
use ksql_msk::config::schema::{KEYS, PROPERTIES, SECTIONS};
use ksql_msk::exit::{ExitCode, USAGE};

/// gen-assets' output, generated once per test binary.
fn assets() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("gen-assets-man");
        let _ = std::fs::remove_dir_all(&dir);
        let status = Command::new(env!("CARGO_BIN_EXE_gen-assets"))
            .arg(&dir)
            .status()
            .expect("running gen-assets");
        assert!(status.success(), "gen-assets failed: {status}");
        dir
    })
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn config_page() -> String {
    read(&assets().join("man5/ksql-msk.toml.5"))
}

/// The man1 pages by file name.
fn command_pages() -> BTreeMap<String, String> {
    let dir = assets().join("man1");
    std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                read(&p),
            )
        })
        .collect()
}

/// roff text as it reads: escapes undone, font changes dropped.
fn plain(roff: &str) -> String {
    roff.replace(r"\\", "\u{0}")
        .replace(r"\-", "-")
        .replace(r"\*(Aq", "'")
        .replace(r"\fB", "")
        .replace(r"\fI", "")
        .replace(r"\fR", "")
        .replace(r"\&", "")
        .replace('\u{0}', "\\")
}

/// The argument of a `.SH` line, unquoted.
fn heading(line: &str) -> Option<String> {
    let arg = line.strip_prefix(".SH ")?.trim();
    Some(arg.trim_matches('"').to_owned())
}

/// The page's sections: heading, then its lines.
fn sections(page: &str) -> Vec<(String, Vec<&str>)> {
    let mut out: Vec<(String, Vec<&str>)> = Vec::new();
    for line in page.lines() {
        if let Some(h) = heading(line) {
            out.push((h, Vec::new()));
        } else if let Some((_, lines)) = out.last_mut() {
            lines.push(line);
        }
    }
    out
}

/// The `.TP` entries of a section: the tag line and the lines up to the next entry.
fn entries<'a>(lines: &[&'a str]) -> Vec<(&'a str, Vec<&'a str>)> {
    let mut out: Vec<(&str, Vec<&str>)> = Vec::new();
    let mut at_tag = false;
    for &line in lines {
        if line == ".TP" {
            at_tag = true;
        } else if at_tag {
            out.push((line, Vec::new()));
            at_tag = false;
        } else if let Some((_, body)) = out.last_mut() {
            body.push(line);
        }
    }
    out
}

/// The bold word a tag starts with: `\fBname\fR = ...` gives `name`.
fn tag_name(tag: &str) -> Option<String> {
    let rest = tag.strip_prefix(r"\fB")?;
    Some(plain(&rest[..rest.find(r"\fR")?]))
}

/// What ksql-msk.toml(5) documents: `section.name` to the entry's text.
fn documented_keys() -> BTreeMap<String, String> {
    let page = config_page();
    let mut keys = BTreeMap::new();
    for (h, lines) in sections(&page) {
        let Some(section) = h.strip_prefix('[').and_then(|h| h.strip_suffix(']')) else {
            continue;
        };
        for (tag, body) in entries(&lines) {
            let name = tag_name(tag).unwrap_or_else(|| panic!("[{section}]: entry {tag:?}"));
            let text = plain(&format!("{tag}\n{}", body.join("\n")));
            let path = format!("{section}.{name}");
            assert!(
                keys.insert(path.clone(), text).is_none(),
                "{path} documented twice"
            );
        }
    }
    keys
}

fn words(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn config_page_documents_exactly_the_schema_keys() {
    let documented = documented_keys();
    let schema: BTreeSet<String> = KEYS.iter().map(|k| k.path()).collect();
    let on_page: BTreeSet<String> = documented.keys().cloned().collect();
    let missing: Vec<_> = schema.difference(&on_page).collect();
    let extra: Vec<_> = on_page.difference(&schema).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "ksql-msk.toml(5) lacks {missing:?} and documents {extra:?}, which the schema does not have"
    );
    for key in KEYS {
        let text = &documented[&key.path()];
        assert!(
            text.contains(key.default),
            "{}: default {} not on the page:\n{text}",
            key.path(),
            key.default
        );
        let doc = key.doc().replace('`', "");
        assert!(
            words(text).contains(&doc),
            "{}: doc {doc:?} not on the page:\n{text}",
            key.path()
        );
        let kind = format!("Type: {}.", key.kind.describe());
        assert!(text.contains(&kind), "{}: no {kind:?}:\n{text}", key.path());
    }
}

#[test]
fn config_page_has_every_section_properties_and_the_merge_order() {
    let page = config_page();
    assert!(page.starts_with(".ie \\n(.g .ds Aq"), "roff preamble");
    let title = format!(
        ".TH ksql-msk.toml 5 \"\" \"ksql-msk {}\" \"File Formats Manual\"",
        version()
    );
    assert!(page.lines().any(|l| l == title), "no {title:?}:\n{page}");
    let headings: Vec<String> = sections(&page).into_iter().map(|(h, _)| h).collect();
    for section in SECTIONS.iter().chain([&PROPERTIES]) {
        assert!(
            headings.contains(&format!("[{section}]")),
            "no [{section}] in {headings:?}"
        );
    }
    for h in [
        "NAME",
        "SYNOPSIS",
        "DESCRIPTION",
        "DROP-INS AND MERGE ORDER",
        "VALUE TYPES",
        "EXAMPLES",
        "FILES",
        "SEE ALSO",
    ] {
        assert!(headings.iter().any(|x| x == h), "no {h} in {headings:?}");
    }
    let text = words(&plain(&page));
    assert!(text.contains("in lexical order"), "{text}");
    assert!(
        text.contains("win over everything the agent sets itself"),
        "{text}"
    );
}

fn version() -> String {
    ksql_msk::cli::args::Cli::command()
        .get_version()
        .unwrap_or_default()
        .to_owned()
}

/// Every exit code the agent has: 0, EX_USAGE and each [`ExitCode`] (the match makes a
/// new variant fail to compile here until it is listed).
fn agent_codes() -> BTreeSet<i32> {
    let all = [
        ExitCode::Data,
        ExitCode::Unavailable,
        ExitCode::Software,
        ExitCode::Io,
        ExitCode::Temporary,
        ExitCode::NoPerm,
        ExitCode::Config,
    ];
    for c in all {
        match c {
            ExitCode::Data
            | ExitCode::Unavailable
            | ExitCode::Software
            | ExitCode::Io
            | ExitCode::Temporary
            | ExitCode::NoPerm
            | ExitCode::Config => {}
        }
    }
    all.iter().map(|c| c.code()).chain([0, USAGE]).collect()
}

/// Each command of the CLI with its page's file name, as clap_mangen names them.
fn cli_commands() -> Vec<(String, clap::Command)> {
    fn walk(cmd: &clap::Command, out: &mut Vec<(String, clap::Command)>) {
        let name = cmd.get_display_name().unwrap_or(cmd.get_name());
        out.push((format!("{name}.1"), cmd.clone()));
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            walk(sub, out);
        }
    }
    let mut cmd = ksql_msk::cli::args::Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut out = Vec::new();
    walk(&cmd, &mut out);
    out
}

#[test]
fn every_command_page_has_the_added_sections() {
    let pages = command_pages();
    let commands = cli_commands();
    let expected: BTreeSet<&String> = commands.iter().map(|(f, _)| f).collect();
    assert_eq!(pages.keys().collect::<BTreeSet<_>>(), expected);
    let codes = agent_codes();
    for (file, cmd) in &commands {
        let page = &pages[file];
        // Title, section, no date, source: an empty argument dropped would shift them.
        let title = format!(
            ".TH {} 1 \"\" \"ksql-msk {}\"",
            file.trim_end_matches(".1"),
            version()
        );
        assert!(
            page.lines().any(|l| l.trim_end() == title),
            "{file}: no {title:?}:\n{page}"
        );
        let secs = sections(page);
        let find = |h: &str| {
            secs.iter()
                .find(|(x, _)| x == h)
                .map(|(_, lines)| lines.clone())
                .unwrap_or_else(|| panic!("{file}: no {h} section"))
        };
        for h in ["FILES", "ENVIRONMENT"] {
            assert!(!entries(&find(h)).is_empty(), "{file}: empty {h}");
        }
        assert!(find("EXAMPLES").contains(&".EX"), "{file}: no example");
        let see_also = find("SEE ALSO").join("\n");
        assert!(
            see_also.contains(r"\fBksql\-msk.toml\fR(5)"),
            "{file}: SEE ALSO lacks ksql-msk.toml(5): {see_also}"
        );
        let listed: BTreeSet<i32> = entries(&find("EXIT STATUS"))
            .iter()
            .map(|(tag, _)| {
                tag_name(tag)
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("{file}: exit status entry {tag:?}"))
            })
            .collect();
        assert!(
            listed.is_subset(&codes),
            "{file}: exit codes {listed:?}, the agent has {codes:?}"
        );
        assert!(
            listed.contains(&0) && listed.contains(&USAGE),
            "{file}: {listed:?}"
        );
        // A variable an option reads is in the page's ENVIRONMENT.
        let env: Vec<String> = entries(&find("ENVIRONMENT"))
            .iter()
            .map(|(tag, _)| plain(tag))
            .collect();
        for arg in cmd.get_arguments() {
            if let Some(var) = arg.get_env() {
                let var = var.to_string_lossy();
                assert!(
                    env.iter().any(|t| t.split(", ").any(|v| v == var)),
                    "{file}: --{} reads {var}, not in ENVIRONMENT {env:?}",
                    arg.get_id()
                );
            }
        }
    }
    // ksql-msk(1) lists them all, and everything of the host.
    let root = &pages["ksql-msk.1"];
    let root_secs = sections(root);
    let section_text = |h: &str| {
        let lines = &root_secs.iter().find(|(x, _)| x == h).unwrap().1;
        plain(&lines.join("\n"))
    };
    let exit = entries(
        &root_secs
            .iter()
            .find(|(x, _)| x == "EXIT STATUS")
            .unwrap()
            .1,
    )
    .iter()
    .map(|(tag, _)| tag_name(tag).unwrap().parse::<i32>().unwrap())
    .collect::<BTreeSet<_>>();
    assert_eq!(exit, codes);
    let files = section_text("FILES");
    for f in [
        "/etc/ksql-msk/ksql-msk.toml",
        "/etc/ksql-msk/ksql-msk.d/*.toml",
        "/etc/sysconfig/ksql-msk",
        "/var/lib/ksql-msk/current",
        "/var/lib/ksql-msk/releases/",
        "/var/lib/ksql-msk/cache/",
        "/run/ksql-msk/control.sock",
        "/usr/lib/systemd/system/ksql-msk.service",
    ] {
        assert!(files.lines().any(|l| l == f), "ksql-msk(1) FILES lacks {f}");
    }
    let env = section_text("ENVIRONMENT");
    for v in [
        "KSQL_MSK_CONFIG",
        "KSQL_MSK_LOG",
        "KSQL_MSK_LOG_FORMAT",
        "RUNTIME_DIRECTORY",
        "AWS_REGION",
        "AWS_PROFILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_EC2_METADATA_SERVICE_ENDPOINT",
        "AWS_ENDPOINT_URL_KAFKA",
        "HTTPS_PROXY",
        "NO_PROXY",
    ] {
        assert!(env.contains(v), "ksql-msk(1) ENVIRONMENT lacks {v}");
    }
}

/// groff renders every page with all warnings on (`-ww`) and none given; `-k` runs
/// preconv, as man(1) does, for the UTF-8 in clap's help texts.
#[test]
fn groff_renders_every_page_without_warnings() {
    let found = Command::new("groff")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("KSQL_MSK_REQUIRE_GROFF").is_none_or(|v| v != "1"),
            "groff is required (KSQL_MSK_REQUIRE_GROFF=1) but cannot be run"
        );
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: groff is not installed (tests/setup-host installs groff-base)"
        );
        return;
    }
    let mut paths: Vec<PathBuf> = command_pages()
        .keys()
        .map(|f| assets().join("man1").join(f))
        .collect();
    paths.push(assets().join("man5/ksql-msk.toml.5"));
    for path in &paths {
        let out = Command::new("groff")
            // -P-cbou: plain text, no bold or underline by overstrike or escape codes.
            .args(["-k", "-man", "-Tutf8", "-ww", "-P-cbou"])
            .arg(path)
            .env("LC_ALL", "C.UTF-8")
            .output()
            .expect("running groff");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.trim().is_empty(),
            "{}: groff says:\n{stderr}",
            path.display()
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("EXIT STATUS") || text.contains("[agent]"),
            "{}",
            path.display()
        );
    }
}
