//! The bash, zsh and fish completions: clap_complete's scripts for the CLI, with the
//! config schema's keys as the KEY of `config get/set`, and the repairs each script
//! needs (see `fix_bash`, `add_fish_keys`).

use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};
use clap::builder::PossibleValuesParser;
use clap_complete::Shell;
use ksql_msk::config::schema::{Kind, KEYS, PROPERTIES};

pub fn write(cmd: clap::Command, dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut cmd = with_config_keys(cmd);
    let name = cmd.get_name().to_string();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let path = clap_complete::generate_to(shell, &mut cmd, &name, dir)
            .with_context(|| format!("writing {shell} completion into {}", dir.display()))?;
        match shell {
            Shell::Bash => edit(&path, |s| fix_bash(s, &cmd))?,
            Shell::Fish => edit(&path, |s| add_fish_keys(s, &cmd))?,
            Shell::Zsh => edit(&path, |s| add_zsh_values(s, &cmd))?,
            _ => {}
        }
    }
    Ok(())
}

/// What completes as KEY: every schema key, `ksqldb.env.` for one entry of a table key
/// (`config set ksqldb.env.NAME VALUE`), and `properties.` for the free-form section.
fn key_names() -> Vec<(String, String)> {
    let mut keys: Vec<(String, String)> =
        KEYS.iter().map(|k| (k.path(), k.kind.describe())).collect();
    for key in KEYS.iter().filter(|k| k.kind == Kind::StrTable) {
        keys.push((
            format!("{}.", key.path()),
            format!("one entry of {}", key.path()),
        ));
    }
    keys.push((
        format!("{PROPERTIES}."),
        "a ksql-server.properties entry".to_owned(),
    ));
    keys
}

/// The command as the completions see it: `config get/set KEY` has the keys as possible
/// values. Only the generators see them; the binary's parser still takes any key and
/// names an unknown one itself (with exit 78).
fn with_config_keys(cmd: clap::Command) -> clap::Command {
    // clap takes possible values as &'static str without its `string` feature (which
    // would also change the agent's clap when both are built together); this process
    // writes a few files and exits, so the few dozen names are leaked.
    let keys: Vec<&'static str> = key_names()
        .into_iter()
        .map(|(k, _)| &*Box::leak(k.into_boxed_str()))
        .collect();
    let key_arg = |a: clap::Arg| a.value_parser(PossibleValuesParser::new(keys.clone()));
    cmd.mut_subcommand("config", |c| {
        c.mut_subcommand("get", |g| g.mut_arg("key", key_arg))
            // mut_arg moves the argument last, and the positionals' order is their
            // index: VALUE goes after KEY again (zsh's `_arguments` follows it).
            .mut_subcommand("set", |s| s.mut_arg("key", key_arg).mut_arg("value", |v| v))
    })
}

/// The long options of the top command that take a value (`--config PATH`), so that the
/// hand-written parts can skip those values when they look for the words typed so far.
fn options_with_values(cmd: &clap::Command) -> Vec<String> {
    cmd.get_arguments()
        .filter(|a| !a.is_positional() && a.get_action().takes_values())
        .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
        .collect()
}

/// The values `config set KEY` completes for a key of a kind with a closed set.
fn values_of(kind: Kind) -> Option<String> {
    match kind {
        Kind::Bool => Some("true false".to_owned()),
        Kind::OneOf(choices) => Some(choices.join(" ")),
        _ => None,
    }
}

fn edit(path: &Path, f: impl FnOnce(&str) -> Result<String>) -> Result<()> {
    let script = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let script = f(&script).with_context(|| format!("post-processing {}", path.display()))?;
    fs::write(path, script).with_context(|| format!("writing {}", path.display()))
}

/// clap_complete (4.6.11 and 4.6.12, clap-rs/clap#6421) names the state of a subcommand
/// `ksql__msk__subcmd__config` in the loop that walks the words but
/// `ksql__subcmd__msk__subcmd__config` in the arm that completes it, so nothing past the
/// first word completed: the arms are respelt as the loop spells them. Its arms offer
/// the options with every word; the wrapper keeps them for a word that starts with a
/// dash. They also
/// offer the KEY again after the key (they do not count positionals), so a wrapper
/// completes what follows a key itself: VALUE's closed set for `config set`, else
/// nothing; and `properties.` takes no trailing space so a property name can follow.
/// The value of `--opt=` completes too.
fn fix_bash(script: &str, cmd: &clap::Command) -> Result<String> {
    let bin = cmd.get_name();
    let fn_name = bin.replace('-', "__");
    let misspelt = bin.replace('-', "__subcmd__");
    let mut script = script.replace(&misspelt, &fn_name);
    let register = format!("complete -F _{fn_name} ");
    if !script.contains(&register) {
        bail!("no '{register}' line to hook into");
    }
    let with_values = options_with_values(cmd).join("|");
    if with_values.is_empty() {
        bail!("no option with a value: the wrapper's patterns would be empty");
    }
    // `--config=<TAB>`: bash splits the word at '=', and clap's arms then see '=' as the
    // previous word and offer the options instead of the value.
    let mut after_eq = String::new();
    for arg in cmd.get_arguments().filter(|a| !a.is_positional()) {
        let Some(long) = arg.get_long().filter(|_| arg.get_action().takes_values()) else {
            continue;
        };
        let values: Vec<String> = arg
            .get_possible_values()
            .iter()
            .filter(|v| !v.is_hide_set())
            .map(|v| v.get_name().to_owned())
            .collect();
        let reply = if values.is_empty() {
            "compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -f -- \"$cur\"))".to_owned()
        } else {
            format!(
                "COMPREPLY=($(compgen -W \"{}\" -- \"$cur\"))",
                values.join(" ")
            )
        };
        after_eq.push_str(&format!("            --{long}) {reply}; return 0 ;;\n"));
    }
    let mut value_arms = String::new();
    for key in KEYS {
        if let Some(values) = values_of(key.kind) {
            value_arms.push_str(&format!(
                "                {}) COMPREPLY=($(compgen -W \"{values}\" -- \"$cur\")) ;;\n",
                key.path()
            ));
        }
    }
    let wrapper = format!(
        r#"# Added by gen-assets: what follows the KEY of `config get/set`, see above.
_{fn_name}_words() {{
    _{fn_name} "$@"
    local ret=$? cur=$2 prev=$3 w i skip=0
    local -a pos=() keep=()
    if [[ $prev == = ]] && ((COMP_CWORD >= 2)); then
        case ${{COMP_WORDS[COMP_CWORD-2]}} in
{after_eq}        esac
    fi
    # Options only once a dash is typed, as zsh and fish do: `config <TAB>` is get, set.
    if [[ $cur != -* && $prev != @({with_values}) ]]; then
        for w in "${{COMPREPLY[@]}}"; do [[ $w == -* ]] || keep+=("$w"); done
        COMPREPLY=("${{keep[@]}}")
    fi
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${{COMP_WORDS[i]}}
        if [[ $w == = ]]; then skip=1; continue; fi
        if ((skip)); then skip=0; continue; fi
        case $w in
            {with_values}) skip=1 ;;
            -*) ;;
            *) pos+=("$w") ;;
        esac
    done
    if [[ ${{pos[0]}} == config && ${{pos[1]}} == @(get|set) && ${{#pos[@]}} -ge 3 \
        && $cur != -* && $prev != @({with_values}) ]]; then
        COMPREPLY=()
        if [[ ${{pos[1]}} == set && ${{#pos[@]}} -eq 3 ]]; then
            case ${{pos[2]}} in
{value_arms}            esac
        fi
        compopt +o default +o bashdefault 2>/dev/null
    fi
    if [[ ${{#COMPREPLY[@]}} -eq 1 && ${{COMPREPLY[0]}} == *. ]]; then
        compopt -o nospace 2>/dev/null
    fi
    return $ret
}}

"#
    );
    script = script.replace(&register, &format!("complete -F _{fn_name}_words "));
    let at = script
        .find("if [[ \"${BASH_VERSINFO[0]}\" -eq 4")
        .context("no registration block")?;
    script.insert_str(at, &wrapper);
    Ok(script)
}

/// zsh completes VALUE of `config set` as a file whatever the key; a function of the
/// key (`$line[1]`, the first positional) offers the closed set where there is one.
fn add_zsh_values(script: &str, cmd: &clap::Command) -> Result<String> {
    let bin = cmd.get_name();
    let generic = "':value:_default' \\\n";
    if script.matches(generic).count() != 1 {
        bail!("expected one {generic:?} (config set's VALUE)");
    }
    let function = format!("_{bin}_config_value");
    let mut script = script.replace(generic, &format!("':value:{function}' \\\n"));
    let mut arms = String::new();
    for key in KEYS {
        if let Some(values) = values_of(key.kind) {
            arms.push_str(&format!(
                "        ({}) compadd -- {values} ;;\n",
                key.path()
            ));
        }
    }
    let definition = format!(
        "# Added by gen-assets: VALUE of `config set`, by key.
(( $+functions[{function}] )) ||
{function}() {{
    case $line[1] in
{arms}        (*) _default ;;
    esac
}}

"
    );
    let at = script
        .find("if [ \"$funcstack[1]\" = ")
        .context("no dispatch block at the end")?;
    script.insert_str(at, &definition);
    Ok(script)
}

/// clap_complete's fish generator completes no positionals, so the KEY of `config get`
/// and `config set` gets its own lines, offered while no key has been given yet, each
/// with its kind; VALUE gets its closed set where the key has one; no file names after
/// `config` (they are never what the words there mean).
fn add_fish_keys(script: &str, cmd: &clap::Command) -> Result<String> {
    let bin = cmd.get_name();
    let with_values = options_with_values(cmd).join(" ");
    let mut script = script.to_owned();
    script.push_str(&format!(
        "
# Added by gen-assets: the KEY and VALUE of `config get/set`.
# The words after the command that are not options or option values.
function __fish_ksql_msk_config_words
    set -l words (commandline -opc)
    set -e words[1]
    set -l skip 0
    for w in $words
        if test $skip = 1
            set skip 0
            continue
        end
        switch $w
            case {with_values}
                set skip 1
            case '-*'
            case '*'
                echo $w
        end
    end
end
function __fish_ksql_msk_config_key_needed
    set -l pos (__fish_ksql_msk_config_words)
    test (count $pos) -eq 2; and test $pos[1] = config; and contains -- $pos[2] get set
end
function __fish_ksql_msk_config_value_of
    set -l pos (__fish_ksql_msk_config_words)
    test (count $pos) -eq 3; and test $pos[1] = config; and test $pos[2] = set
    and test $pos[3] = $argv[1]
end
complete -c {bin} -n '__fish_ksql_msk_using_subcommand config' -f
"
    ));
    let quote = |s: &str| format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"));
    for (key, what) in key_names() {
        script.push_str(&format!(
            "complete -c {bin} -n __fish_ksql_msk_config_key_needed -f -a {} -d {}\n",
            quote(&key),
            quote(&what)
        ));
    }
    for key in KEYS {
        if let Some(values) = values_of(key.kind) {
            script.push_str(&format!(
                "complete -c {bin} -n {} -f -a {}\n",
                quote(&format!("__fish_ksql_msk_config_value_of {}", key.path())),
                quote(&values)
            ));
        }
    }
    Ok(script)
}
