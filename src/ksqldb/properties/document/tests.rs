use super::*;
use proptest::prelude::*;

fn doc(text: &str) -> Document {
    Document::parse(text.as_bytes()).unwrap()
}

fn map(text: &str) -> Vec<(String, String)> {
    doc(text)
        .java_map()
        .into_iter()
        .map(|(k, v)| (String::from_utf16_lossy(&k), String::from_utf16_lossy(&v)))
        .collect()
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn separators_and_whitespace() {
    assert_eq!(
        map("a=1\nb: 2\nc 3\n  d\t=\t4\ne\n f = \n g  :  =x\n"),
        pairs(&[
            ("a", "1"),
            ("b", "2"),
            ("c", "3"),
            ("d", "4"),
            ("e", ""),
            ("f", ""),
            ("g", "=x"),
        ])
    );
}

#[test]
fn comments_only_at_line_start_and_never_continued() {
    assert_eq!(
        map("# a=1 \\\nb=2\n  ! c=3\nd=#4\n\x0c#e=5\n"),
        pairs(&[("b", "2"), ("d", "#4")])
    );
}

#[test]
fn continuation_lines() {
    // Odd backslashes continue, even do not; leading whitespace of the next line goes.
    assert_eq!(
        map("a=x\\\n    y\\\\\nb=1\\\\\\\n  2\n"),
        pairs(&[("a", "xy\\"), ("b", "1\\2")])
    );
    // A continued line may start with `#`: it is value text then.
    assert_eq!(map("a=1\\\n#2\n"), pairs(&[("a", "1#2")]));
    // A blank line after a continuation ends the logical line.
    assert_eq!(map("a=1\\\n\nb=2"), pairs(&[("a", "1"), ("b", "2")]));
    // Continuation at end of file, with and without a newline.
    assert_eq!(map("a=1\\"), pairs(&[("a", "1")]));
    assert_eq!(map("a=1\\\n"), pairs(&[("a", "1")]));
    // A lone backslash line: Java's quirks.
    assert_eq!(map("\\"), pairs(&[("", "")]));
    assert_eq!(map("\\\n\nb=2"), pairs(&[("b", "2")]));
    assert_eq!(map("\\\n#c\nb=2"), pairs(&[("b", "2")]));
}

#[test]
fn escapes_and_line_endings() {
    assert_eq!(
        map("k\\:1\\=2\\ 3=\\u00e9\\t\\\\\\q\r\nx=CR\ry=LF\n"),
        pairs(&[("k:1=2 3", "é\t\\q"), ("x", "CR"), ("y", "LF")])
    );
    // CRLF continuation.
    assert_eq!(map("a=1\\\r\n  2\r\n"), pairs(&[("a", "12")]));
    let err = Document::parse(b"a=1\nb=\\u12x4\n").unwrap_err();
    assert_eq!(err.to_string(), "line 2: b: malformed \\uxxxx encoding");
}

#[test]
fn bytes_are_latin1_like_ksqldb_reads_them() {
    // ksqlDB uses Properties.load(InputStream): UTF-8 é is two ISO-8859-1 chars.
    let d = Document::parse("k=é".as_bytes()).unwrap();
    assert_eq!(d.get("k").unwrap(), "Ã©");
}

#[test]
fn duplicate_keys_last_wins() {
    let d = doc("a=1\nb=2\na=3\n");
    assert_eq!(d.get("a").as_deref(), Some("3"));
}

#[test]
fn set_replaces_last_in_place_and_drops_earlier() {
    let mut d = doc("# top\na = 1\nb: 2\r\na : 3 \\\n   continued\r\nc 4");
    d.set("a", "new");
    d.set("b", "x y");
    d.set("c", " lead");
    assert_eq!(
        String::from_utf8(d.render_checked().unwrap()).unwrap(),
        "# top\nb: x y\r\na : new\r\nc \\ lead"
    );
}

#[test]
fn set_adds_separator_when_key_stands_alone() {
    let mut d = doc("a\nb\\\n");
    d.set("a", "1");
    d.set("b", "2");
    assert_eq!(String::from_utf8(d.render()).unwrap(), "a=1\nb=2\n");
}

#[test]
fn set_same_value_changes_nothing() {
    let text = "a = 1\\\n  2\nb=x\n";
    let mut d = doc(text);
    d.set("a", "12");
    assert_eq!(d.render(), text.as_bytes());
}

#[test]
fn new_keys_go_to_managed_block() {
    let mut d = doc("a=1\r\n# end");
    d.set("new.key", "v:1");
    d.set("x y", "#!=");
    assert_eq!(
        String::from_utf8(d.render_checked().unwrap()).unwrap(),
        "a=1\r\n# end\r\n\r\n# --- managed by ksql-msk ---\r\nnew.key=v:1\r\nx\\ y=#!=\r\n"
    );
    assert_eq!(d.get("x y").as_deref(), Some("#!="));
}

#[test]
fn append_after_open_continuation_does_not_join() {
    for text in ["a=1\\", "a=1\\\n", "a=1\\\r", "a=1\\\r\n", "\\", "  \\\n"] {
        let mut d = doc(text);
        d.set("b", "2");
        let out = d.render_checked().unwrap();
        let again = Document::parse(&out).unwrap();
        assert_eq!(again.get("b").as_deref(), Some("2"), "{text:?}");
        assert_eq!(again.get("a"), doc(text).get("a"), "{text:?}");
    }
}

#[test]
fn remove_takes_every_occurrence_and_its_continuations() {
    let mut d = doc("a=1\nb=2\\\n  3\nc=4\nb=5\n");
    assert!(d.remove("b"));
    assert!(!d.remove("zz"));
    assert_eq!(String::from_utf8(d.render()).unwrap(), "a=1\nc=4\n");
}

#[test]
fn escape_round_trips_through_the_parser() {
    for s in [
        "",
        " ",
        "  a b  ",
        "=x",
        ":x",
        "#x",
        "!x",
        "a\\b",
        "tab\tnl\ncr\rff\x0c",
        "é€😀",
        "\u{1}\u{7f}",
    ] {
        for is_key in [true, false] {
            let line = if is_key {
                format!("{}=v", escape(s, true))
            } else {
                format!("k={}", escape(s, false))
            };
            let d = doc(&line);
            let (k, v) = &d.java_map()[0];
            let got = if is_key { k } else { v };
            assert_eq!(got, &java(s), "{s:?} as key={is_key}: {line:?}");
        }
    }
}

#[test]
fn comments_are_listed_in_order() {
    let d = doc("# one\na=1\\\n# not a comment\n  ! two\n");
    assert_eq!(d.comments(), vec!["# one", "! two"]);
}

// ---------------------------------------------------------------------------
// Property-based tests

/// Text built from the characters that matter to the format, so that edge cases
/// (escapes, continuations, CR/LF mixes, comments) come up often.
pub(crate) fn hostile_text() -> impl Strategy<Value = Vec<u8>> {
    let atoms: Vec<&'static [u8]> = vec![
        b"a",
        b"b",
        b"key",
        b".",
        b"=",
        b":",
        b" ",
        b"\t",
        b"\x0c",
        b"\\",
        b"\\\\",
        b"\n",
        b"\r",
        b"\r\n",
        b"#",
        b"!",
        b"\\u",
        b"00e9",
        b"\\u0041",
        b"u",
        b"\\n",
        b"\\ ",
        "é".as_bytes(),
        b"\xff",
    ];
    prop::collection::vec(prop::sample::select(atoms), 0..40).prop_map(|parts| parts.concat())
}

fn key_or_value() -> impl Strategy<Value = String> {
    let chars: Vec<char> = vec![
        'a', 'k', '.', ' ', '\t', '\n', '\r', '\x0c', '=', ':', '#', '!', '\\', 'u', 'é', '😀',
        '\u{0}', '\u{7f}',
    ];
    prop::collection::vec(prop::sample::select(chars), 0..8).prop_map(|cs| cs.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn parse_render_is_identity(text in hostile_text()) {
        match Document::parse(&text) {
            Ok(d) => prop_assert_eq!(d.render(), text),
            Err(e) => {
                prop_assert!(e.message.contains("malformed \\uxxxx"));
                prop_assert!(text.windows(2).any(|w| w == b"\\u"));
            }
        }
    }

    #[test]
    fn arbitrary_bytes_round_trip(text in prop::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(d) = Document::parse(&text) {
            prop_assert_eq!(d.render(), text);
        }
    }

    #[test]
    fn set_then_parse_reads_the_value(
        text in hostile_text(),
        edits in prop::collection::vec((key_or_value(), key_or_value(), any::<bool>()), 1..5),
    ) {
        let Ok(mut d) = Document::parse(&text) else { return Ok(()) };
        let mut want: Vec<(JavaString, JavaString)> = d.java_map();
        for (k, v, remove) in &edits {
            let jk = java(k);
            if *remove {
                d.remove(k);
                want.retain(|(key, _)| *key != jk);
            } else {
                d.set(k, v);
                match want.iter_mut().find(|(key, _)| *key == jk) {
                    Some(slot) => slot.1 = java(v),
                    None => want.push((jk, java(v))),
                }
            }
        }
        let out = d.render_checked().map_err(|e| TestCaseError::fail(format!("{e}")))?;
        let mut got = Document::parse(&out).unwrap().java_map();
        got.sort();
        want.sort();
        prop_assert_eq!(got, want);
        // Each edited key now occurs once, or not at all when its last edit removed it.
        let again = Document::parse(&out).unwrap();
        for (k, _, _) in &edits {
            let removed = edits.iter().rev().find(|(k2, _, _)| k2 == k).is_some_and(|e| e.2);
            let n = again.entries().filter(|e| e.key == java(k)).count();
            prop_assert_eq!(n, usize::from(!removed), "{:?}", k);
        }
    }
}

#[test]
fn truncate_at_marker_gives_a_base_that_renders_the_same() {
    for base in ["a=1\n", "a=1\n\n", "a=1", "# c\r\na=1\r\n"] {
        let mut d = doc(base);
        d.set("x", "1");
        let first = d.render();
        let cut = Document::parse(&first)
            .unwrap()
            .truncate_at(MANAGED_MARKER)
            .unwrap();
        let mut again = Document::parse(&cut).unwrap();
        again.set("x", "1");
        assert_eq!(again.render(), first, "{base:?}");
    }
    assert_eq!(doc("a=1\n").truncate_at(MANAGED_MARKER), None);
}
