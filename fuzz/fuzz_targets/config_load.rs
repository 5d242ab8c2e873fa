//! The config loader on arbitrary input: a main file and a drop-in (split at the first
//! NUL byte). It must not panic, and whatever it refuses it refuses with exit code 78
//! and one non-empty line that names the file at fault.
#![no_main]

use std::path::Path;

use ksql_msk::config::{parse_fragment, Merged, Settings};
use ksql_msk::exit::{exit_code_of, one_line, ExitCode};
use libfuzzer_sys::fuzz_target;

const MAIN: &str = "/etc/ksql-msk/ksql-msk.toml";
const DROPIN: &str = "/etc/ksql-msk/ksql-msk.d/50-fuzz.toml";

fn check(err: &anyhow::Error, files: &[&str]) {
    assert_eq!(exit_code_of(err), ExitCode::Config, "{err:#}");
    let line = one_line(err);
    assert!(!line.trim().is_empty(), "empty error");
    assert!(!line.contains('\n'), "error on more than one line: {line:?}");
    assert!(
        files.iter().any(|f| line.contains(f)),
        "the error names no file: {line}"
    );
}

fuzz_target!(|data: &[u8]| {
    let (main, dropin) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    // Files that are not UTF-8 are refused when read, before parsing.
    let Ok(main) = std::str::from_utf8(main) else {
        return;
    };
    let mut fragments = Vec::new();
    match parse_fragment(Path::new(MAIN), main) {
        Ok(f) => fragments.push(f),
        Err(e) => return check(&e, &[MAIN]),
    }
    if let Some(Ok(text)) = dropin.map(std::str::from_utf8) {
        match parse_fragment(Path::new(DROPIN), text) {
            Ok(f) => fragments.push(f),
            Err(e) => return check(&e, &[DROPIN]),
        }
    }
    let merged = Merged::from_fragments(Path::new(MAIN), fragments);
    if let Err(e) = Settings::from_merged(&merged) {
        // A missing required key is reported against the main file.
        check(&e, &[MAIN, DROPIN]);
    }
});
