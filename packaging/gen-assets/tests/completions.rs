//! The shell completions gen-assets writes, driven the way each shell drives them: bash's
//! completion function with COMP_WORDS/COMP_CWORD set, fish's `complete -C`; zsh is
//! only parsed (`zsh -n`) and searched for the keys, as its completion system needs a
//! terminal. A missing shell is skipped loudly unless KSQL_MSK_REQUIRE_SHELLS=1.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use ksql_msk::config::schema::{Kind, KEYS};

/// gen-assets' output, generated once per test binary.
fn assets() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("gen-assets-completions");
        let _ = std::fs::remove_dir_all(&dir);
        let status = Command::new(env!("CARGO_BIN_EXE_gen-assets"))
            .arg(&dir)
            .status()
            .expect("running gen-assets");
        assert!(status.success(), "gen-assets failed: {status}");
        dir
    })
}

fn completion(file: &str) -> PathBuf {
    assets().join("completions").join(file)
}

/// Whether `shell` can run here; false (with a SKIPPED line) lets the caller return.
fn have(shell: &str) -> bool {
    let found = Command::new(shell)
        .arg("-c")
        .arg("true")
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("KSQL_MSK_REQUIRE_SHELLS").is_none_or(|v| v != "1"),
            "{shell} is required (KSQL_MSK_REQUIRE_SHELLS=1) but cannot be run"
        );
        // Written past the test harness's capture, which would hide it when the test passes.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: {shell} is not installed (tests/setup-host installs it)"
        );
    }
    found
}

/// The candidates bash's completion function offers for the command line `words`, the
/// last of which is the word being completed, as bash-completion calls it.
fn bash_complete(words: &[&str]) -> Vec<String> {
    let script = r#"
        source "$1"; shift
        fn=$(complete -p ksql-msk | sed -n 's/.* -F \([^ ]*\) .*/\1/p')
        COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
        COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
        prev=""; ((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD-1]}
        "$fn" ksql-msk "${COMP_WORDS[COMP_CWORD]}" "$prev" 2>/dev/null
        printf '%s\n' "${COMPREPLY[@]}"
    "#;
    let out = Command::new("bash")
        .arg("--norc")
        .arg("-c")
        .arg(script)
        .arg("bash")
        .arg(completion("ksql-msk.bash"))
        .args(words)
        .output()
        .expect("running bash");
    assert!(
        out.status.success(),
        "bash: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Every schema key, and `ksqldb.env.` for an entry of the table key.
fn key_paths() -> Vec<String> {
    let mut paths: Vec<String> = KEYS.iter().map(|k| k.path()).collect();
    for key in KEYS.iter().filter(|k| k.kind == Kind::StrTable) {
        paths.push(format!("{}.", key.path()));
    }
    assert!(paths.iter().any(|p| p == "ksqldb.env."), "{paths:?}");
    paths
}

fn assert_offers(what: &str, got: &[String], want: &[&str]) {
    for w in want {
        assert!(
            got.iter().any(|g| g == w),
            "{what}: '{w}' not offered; got {got:?}"
        );
    }
}

#[test]
fn bash_completes_subcommands_options_and_keys_at_every_depth() {
    if !have("bash") {
        return;
    }
    let top = bash_complete(&["ksql-msk", ""]);
    assert_offers(
        "ksql-msk <TAB>",
        &top,
        &[
            "run",
            "install",
            "brokers",
            "check",
            "config",
            "iam-policy",
            "verify",
        ],
    );

    let config = bash_complete(&["ksql-msk", "config", ""]);
    let mut sorted = config.clone();
    sorted.sort();
    // Options wait for a dash, as in zsh and fish.
    assert_eq!(sorted, ["get", "help", "set"], "ksql-msk config <TAB>");
    let install = bash_complete(&["ksql-msk", "install", "--"]);
    assert_offers(
        "ksql-msk install --<TAB>",
        &install,
        &["--dry-run", "--config", "--log-format"],
    );
    // A hyphenated subcommand: its own arm has to match too.
    let policy = bash_complete(&["ksql-msk", "iam-policy", "--"]);
    assert_offers(
        "ksql-msk iam-policy --<TAB>",
        &policy,
        &["--config", "--help"],
    );

    let keys = key_paths();
    let mut want: Vec<&str> = keys.iter().map(String::as_str).collect();
    want.push("properties.");
    for sub in ["get", "set"] {
        let got = bash_complete(&["ksql-msk", "config", sub, ""]);
        assert_offers(&format!("ksql-msk config {sub} <TAB>"), &got, &want);
    }

    let msk = bash_complete(&["ksql-msk", "config", "get", "msk."]);
    let mut msk_keys: Vec<String> = keys
        .iter()
        .filter(|k| k.starts_with("msk."))
        .cloned()
        .collect();
    msk_keys.sort();
    let mut got = msk.clone();
    got.sort();
    assert_eq!(got, msk_keys, "ksql-msk config get msk.<TAB>");

    // After a global option's value, the subcommand is still found.
    let after = bash_complete(&[
        "ksql-msk",
        "--config",
        "/etc/x.toml",
        "config",
        "get",
        "agent.state",
    ]);
    assert_eq!(
        after,
        ["agent.state_dir"],
        "ksql-msk --config F config get agent.state<TAB>"
    );
    // `--config=F`: bash splits the word at '=' (COMP_WORDBREAKS).
    let split = bash_complete(&[
        "ksql-msk",
        "--config",
        "=",
        "/etc/x.toml",
        "config",
        "set",
        "agent.log_",
    ]);
    assert_eq!(
        split,
        ["agent.log_dir"],
        "ksql-msk --config=F config set agent.log_<TAB>"
    );
    let eq = bash_complete(&["ksql-msk", "config", "--log-format", "=", "j"]);
    assert_eq!(eq, ["journald"], "ksql-msk config --log-format=j<TAB>");
    let formats = bash_complete(&["ksql-msk", "config", "--log-format", ""]);
    assert_offers(
        "--log-format <TAB>",
        &formats,
        &["auto", "journald", "stderr"],
    );
}

#[test]
fn bash_completes_what_follows_a_key() {
    if !have("bash") {
        return;
    }
    let choices = bash_complete(&["ksql-msk", "config", "set", "msk.connectivity", ""]);
    assert_eq!(
        choices,
        ["private", "public", "vpc"],
        "config set msk.connectivity <TAB>"
    );
    let bool = bash_complete(&["ksql-msk", "config", "set", "msk.ipv6", "t"]);
    assert_eq!(bool, ["true"], "config set msk.ipv6 t<TAB>");
    // A free value, a key already given to get, a word after VALUE: no key offered again.
    for words in [
        &["ksql-msk", "config", "set", "msk.region", ""][..],
        &["ksql-msk", "config", "get", "msk.region", ""],
        &["ksql-msk", "config", "set", "msk.ipv6", "true", ""],
    ] {
        assert_eq!(bash_complete(words), Vec::<String>::new(), "{words:?}");
    }
    // Options still complete there.
    let opts = bash_complete(&["ksql-msk", "config", "get", "msk.region", "--"]);
    assert_offers("config get KEY --<TAB>", &opts, &["--config", "--help"]);
}

#[test]
fn bash_completes_files_for_config() {
    if !have("bash") {
        return;
    }
    let dir = assets().join("files");
    std::fs::create_dir_all(&dir).expect("creating the file fixture");
    std::fs::write(dir.join("cluster.toml"), "").expect("writing the file fixture");
    let prefix = format!("{}/clu", dir.display());
    let got = bash_complete(&["ksql-msk", "--config", &prefix]);
    assert_eq!(
        got,
        [format!("{}/cluster.toml", dir.display())],
        "--config <TAB> completes files"
    );
    let eq = bash_complete(&["ksql-msk", "config", "--config", "=", &prefix]);
    assert_eq!(
        eq,
        [format!("{}/cluster.toml", dir.display())],
        "--config=<TAB> completes files"
    );
}

#[test]
fn fish_completes_subcommands_and_keys() {
    if !have("fish") {
        return;
    }
    let script = completion("ksql-msk.fish");
    let parse = Command::new("fish")
        .arg("-n")
        .arg(&script)
        .output()
        .expect("running fish -n");
    assert!(
        parse.status.success(),
        "fish -n: {}",
        String::from_utf8_lossy(&parse.stderr)
    );
    let complete = |line: &str| -> Vec<String> {
        let out = Command::new("fish")
            .arg("--no-config")
            .arg("-c")
            .arg("source $argv[1]; complete -C $argv[2]")
            .arg(&script)
            .arg(line)
            .output()
            .expect("running fish");
        assert!(
            out.status.success(),
            "fish: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Each candidate is `word<TAB>description`.
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.split('\t').next().unwrap_or("").to_owned())
            .collect()
    };
    assert_offers(
        "ksql-msk config ",
        &complete("ksql-msk config "),
        &["get", "set"],
    );
    let keys = key_paths();
    let mut want: Vec<&str> = keys.iter().map(String::as_str).collect();
    want.push("properties.");
    assert_offers(
        "ksql-msk config get ",
        &complete("ksql-msk config get "),
        &want,
    );
    assert_offers(
        "ksql-msk config set ",
        &complete("ksql-msk config set "),
        &want,
    );
    let mut msk = complete("ksql-msk --config /etc/x.toml config get msk.");
    msk.sort();
    let mut msk_keys: Vec<String> = keys
        .iter()
        .filter(|k| k.starts_with("msk."))
        .cloned()
        .collect();
    msk_keys.sort();
    assert_eq!(msk, msk_keys, "ksql-msk --config F config get msk.");
    assert_eq!(
        complete("ksql-msk config set msk.connectivity "),
        ["private", "public", "vpc"],
        "config set msk.connectivity "
    );
    // After the key of get: neither keys again nor file names.
    assert_eq!(
        complete("ksql-msk config get msk.region "),
        Vec::<String>::new()
    );
}

/// Completes `line` in an interactive zsh (under zsh/zpty, as a terminal would) with the
/// completion directory first in fpath, and returns what its completion functions
/// offered: `compadd` is wrapped to record each match before adding it.
fn zsh_complete(line: &str) -> Vec<String> {
    const DRIVER: &str = r#"
        zmodload zsh/zpty || exit 3
        dir=$1 out=$2 line=$3
        zpty z zsh -f -i
        zpty -w z "PROMPT='' RPROMPT=''; fpath=(${(q)dir} \$fpath); autoload -Uz compinit; compinit -u -D"
        zpty -w z "compadd() { local -a h; builtin compadd -A h \"\$@\"; (( \$#h )) && print -rl -- \$h >>${(q)out}; builtin compadd \"\$@\"; }"
        zpty -w z "$line"$'\t'
        # Runs once the completion is done: the terminal's input is read in order.
        zpty -w z $'\C-u'"print >${(q)out}.done"$'\n'
        for i in {1..300}; do [[ -e $out.done ]] && break; sleep 0.1; done
        zpty -d z
        [[ -e $out.done ]] || { print -u2 "zsh did not finish completing '$line'"; exit 4 }
    "#;
    static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let out = assets().join(format!("zsh-out-{n}"));
    let _ = std::fs::remove_file(&out);
    let _ = std::fs::remove_file(out.with_extension("done"));
    let run = Command::new("zsh")
        .arg("-f")
        .arg("-c")
        .arg(DRIVER)
        .arg("zsh")
        .arg(assets().join("completions"))
        .arg(&out)
        .arg(line)
        .output()
        .expect("running zsh");
    assert!(
        run.status.success(),
        "zsh driver: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let mut got: Vec<String> = std::fs::read_to_string(&out)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect();
    got.sort();
    got.dedup();
    got
}

#[test]
fn zsh_completes_subcommands_options_and_keys() {
    if !have("zsh") {
        return;
    }
    assert_offers(
        "ksql-msk ",
        &zsh_complete("ksql-msk "),
        &["run", "config", "iam-policy", "verify"],
    );
    assert_offers(
        "ksql-msk config ",
        &zsh_complete("ksql-msk config "),
        &["get", "set"],
    );
    assert_offers(
        "ksql-msk install --",
        &zsh_complete("ksql-msk install --"),
        &["--dry-run", "--config"],
    );
    let keys = key_paths();
    let mut want: Vec<&str> = keys.iter().map(String::as_str).collect();
    want.push("properties.");
    assert_offers(
        "ksql-msk config get ",
        &zsh_complete("ksql-msk config get "),
        &want,
    );
    // KEY comes before VALUE: set's first word is a key, not a file name.
    assert_offers(
        "ksql-msk --config /x config set ",
        &zsh_complete("ksql-msk --config /x config set "),
        &want,
    );
    let mut msk_keys: Vec<String> = keys
        .iter()
        .filter(|k| k.starts_with("msk."))
        .cloned()
        .collect();
    msk_keys.sort();
    assert_eq!(
        zsh_complete("ksql-msk config get msk."),
        msk_keys,
        "ksql-msk config get msk."
    );
    assert_eq!(
        zsh_complete("ksql-msk config set msk.connectivity "),
        ["private", "public", "vpc"],
        "config set msk.connectivity "
    );
}

#[test]
fn zsh_script_parses_and_names_every_key() {
    if !have("zsh") {
        return;
    }
    let script = completion("_ksql-msk");
    let parse = Command::new("zsh")
        .arg("-n")
        .arg(&script)
        .output()
        .expect("running zsh -n");
    assert!(
        parse.status.success(),
        "zsh -n: {}",
        String::from_utf8_lossy(&parse.stderr)
    );
    let text = std::fs::read_to_string(&script).expect("reading the zsh completion");
    for key in key_paths()
        .iter()
        .map(String::as_str)
        .chain(["properties."])
    {
        assert!(text.contains(key), "zsh completion lacks {key}");
    }
    assert!(
        text.starts_with("#compdef ksql-msk"),
        "zsh completion lacks #compdef"
    );
}
