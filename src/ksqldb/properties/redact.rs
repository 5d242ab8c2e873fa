//! Keep secrets out of what the agent prints: the values of properties and JAAS
//! options whose names say they are secret (`ssl.key.password`, `ssl.keystore.key`,
//! `basic.auth.user.info`, `awsRoleSecretAccessKey`, ...) and the password part of URLs
//! (`https://user:<redacted>@host`) are replaced by `<redacted>`.
//!
//! Lines are read the way `Properties.load` reads them (the parser's own line reader),
//! so every separator (`k=v`, `k:v`, `k v`), escapes in keys and continuation lines are
//! covered; a diff is redacted from the two whole files it compares, so that a hunk
//! starting in the middle of a continued secret is still redacted.

use std::ops::Range;

use super::document::{is_ws, logical_lines, split_key_value};
use crate::config::secrets::is_secret_name;
pub use crate::config::secrets::REDACTED;

/// The characters of (part of) a logical line after `Properties.loadConvert`, each
/// with the source bytes it came from. Lenient: a malformed `\u` stays as it is.
struct Chars {
    text: Vec<char>,
    spans: Vec<Range<usize>>,
}

impl Chars {
    fn new(content: &[u8], offsets: &[usize]) -> Chars {
        let mut text = Vec::with_capacity(content.len());
        let mut spans = Vec::with_capacity(content.len());
        let mut i = 0;
        while i < content.len() {
            let start = offsets[i];
            let (c, len) = match (content[i], content.get(i + 1)) {
                (b'\\', Some(b'u')) => match unicode_escape(content.get(i + 2..i + 6)) {
                    Some(c) => (c, 6),
                    None => ('u', 2),
                },
                (b'\\', Some(&e)) => (
                    match e {
                        b't' => '\t',
                        b'r' => '\r',
                        b'n' => '\n',
                        b'f' => '\u{c}',
                        other => char::from(other),
                    },
                    2,
                ),
                (b, _) => (char::from(b), 1),
            };
            text.push(c);
            spans.push(start..offsets[i + len - 1] + 1);
            i += len;
        }
        Chars { text, spans }
    }

    fn string(&self, r: Range<usize>) -> String {
        self.text[r].iter().collect()
    }

    /// The source ranges of the characters in `r`, one per run of adjacent bytes (a
    /// continuation's backslash and indentation are not part of the value).
    fn source(&self, r: Range<usize>, out: &mut Vec<Range<usize>>) {
        for span in &self.spans[r] {
            match out.last_mut() {
                Some(last) if last.end == span.start => last.end = span.end,
                _ => out.push(span.clone()),
            }
        }
    }
}

fn unicode_escape(hex: Option<&[u8]>) -> Option<char> {
    let hex = std::str::from_utf8(hex?).ok()?;
    let unit = u16::from_str_radix(hex, 16).ok()?;
    Some(char::from_u32(u32::from(unit)).unwrap_or('\u{fffd}'))
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "._-".contains(c)
}

/// JAAS options with a secret name inside `chars` (`name=value`, `name="value"`): the
/// ranges of their values.
fn secret_options(chars: &Chars, out: &mut Vec<Range<usize>>) {
    let t = &chars.text;
    for (i, _) in t.iter().enumerate().filter(|(_, c)| **c == '=') {
        let start = t[..i]
            .iter()
            .rposition(|&c| !is_name_char(c))
            .map_or(0, |p| p + 1);
        if start == i || !is_secret_name(&chars.string(start..i)) {
            continue;
        }
        let value = if t.get(i + 1) == Some(&'"') {
            let end = t[i + 2..]
                .iter()
                .position(|&c| c == '"')
                .map_or(t.len(), |p| i + 2 + p);
            i + 2..end
        } else {
            let end = t[i + 1..]
                .iter()
                .position(|&c| c.is_whitespace() || c == ';')
                .map_or(t.len(), |p| i + 1 + p);
            i + 1..end
        };
        if !value.is_empty() {
            out.push(value);
        }
    }
}

/// Credentials inside URLs in `chars`: the password of `scheme://user:password@host`,
/// or the whole user part when it has no password (it is then often a token). A
/// password is not always percent-encoded as it should be: the user part runs to the
/// last `@` before the path that follows the first `@`, so a `/` or `@` in it is
/// hidden too (at worst a path with an `@` in it is hidden as well).
fn url_credentials(chars: &Chars, out: &mut Vec<Range<usize>>) {
    let t = &chars.text;
    let mut i = 0;
    while i + 3 <= t.len() {
        let is_scheme = i > 0 && t[i - 1].is_ascii_alphanumeric();
        if !(is_scheme && t[i..i + 3] == [':', '/', '/']) {
            i += 1;
            continue;
        }
        let from = i + 3;
        let find = |from: usize, stop: &str| {
            t[from..]
                .iter()
                .position(|&c| c.is_whitespace() || stop.contains(c))
                .map_or(t.len(), |p| from + p)
        };
        let end = find(from, "\"',;<>\\");
        let first_at = t[from..end].iter().position(|&c| c == '@');
        let end = first_at.map_or(end, |f| find(from + f, "/?#\"',;<>\\"));
        if let Some(at) = t[from..end].iter().rposition(|&c| c == '@') {
            let at = from + at;
            let secret = match t[from..at].iter().position(|&c| c == ':') {
                Some(colon) => from + colon + 1..at,
                None => from..at,
            };
            if !secret.is_empty() {
                out.push(secret);
            }
        }
        i = end.max(from);
    }
}

/// What to redact in one line of properties (or a comment's text): the value if the
/// key is secret (for a comment only if it looks like a commented-out property, so
/// that prose stays), else secret JAAS options and URL credentials in it.
fn scan(content: &[u8], offsets: &[usize], comment: bool, out: &mut Vec<Range<usize>>) {
    let (key_len, value_start) = split_key_value(content);
    let key = Chars::new(&content[..key_len], &offsets[..key_len]);
    let key = key.string(0..key.text.len());
    let value = Chars::new(&content[value_start..], &offsets[value_start..]);
    let explicit = content[key_len..value_start]
        .iter()
        .any(|&b| b == b'=' || b == b':');
    if is_secret_name(&key) && (!comment || explicit || key.contains('.')) {
        value.source(0..value.text.len(), out);
        return;
    }
    let mut found = Vec::new();
    secret_options(&value, &mut found);
    url_credentials(&value, &mut found);
    for r in found {
        value.source(r, out);
    }
}

/// Natural lines as `similar` and `Properties.load` split them (`\n`, `\r`, `\r\n`),
/// terminators included.
fn natural_lines(src: &[u8]) -> Vec<Range<usize>> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < src.len() {
        let end = match src[i] {
            b'\r' if src.get(i + 1) == Some(&b'\n') => i + 2,
            b'\r' | b'\n' => i + 1,
            _ => {
                i += 1;
                continue;
            }
        };
        lines.push(start..end);
        start = end;
        i = end;
    }
    if start < src.len() {
        lines.push(start..src.len());
    }
    lines
}

fn terminator_len(line: &[u8]) -> usize {
    if line.ends_with(b"\r\n") {
        2
    } else {
        usize::from(line.ends_with(b"\n") || line.ends_with(b"\r"))
    }
}

/// `text`'s natural lines, each with its secret values replaced by [`REDACTED`]
/// (terminators kept, so line `i` of the result is line `i` of `text`).
fn redacted_lines(text: &str) -> Vec<String> {
    let src = text.as_bytes();
    let (logical, _) = logical_lines(src);
    let mut ranges = Vec::new();
    for l in &logical {
        scan(&l.content, &l.offsets, false, &mut ranges);
    }
    let lines = natural_lines(src);
    // Comments are not logical lines; a commented-out secret is still a secret.
    let mut next = logical.iter().peekable();
    for line in &lines {
        while next.next_if(|l| l.end <= line.start).is_some() {}
        if next.peek().is_some_and(|l| l.start <= line.start) {
            continue;
        }
        let content = line.start..line.end - terminator_len(&src[line.clone()]);
        let Some(mark) = src[content.clone()].iter().position(|&b| !is_ws(b)) else {
            continue;
        };
        let mark = content.start + mark;
        if src[mark] == b'#' || src[mark] == b'!' {
            let body = src[mark + 1..content.end]
                .iter()
                .position(|&b| !is_ws(b))
                .map_or(content.end, |p| mark + 1 + p);
            let offsets: Vec<usize> = (body..content.end).collect();
            scan(&src[body..content.end], &offsets, true, &mut ranges);
        }
    }
    ranges.sort_by_key(|r| r.start);
    let mut merged: Vec<Range<usize>> = Vec::new();
    for r in ranges {
        match merged.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => merged.push(r),
        }
    }
    let mut ranges = merged.into_iter().peekable();
    lines
        .iter()
        .map(|line| {
            let content_end = line.end - terminator_len(&src[line.clone()]);
            let mut out = Vec::with_capacity(line.len());
            let mut at = line.start;
            while let Some(r) = ranges.peek().cloned() {
                if r.start >= content_end {
                    break;
                }
                let (from, to) = (r.start.max(at), r.end.min(content_end));
                if from < to {
                    out.extend_from_slice(&src[at..from]);
                    out.extend_from_slice(REDACTED.as_bytes());
                    at = to;
                }
                if r.end > content_end {
                    break; // Continues on the next line.
                }
                ranges.next();
            }
            out.extend_from_slice(&src[at..line.end]);
            String::from_utf8_lossy(&out).into_owned()
        })
        .collect()
}

/// `text` (a properties file) with every secret value replaced by [`REDACTED`].
pub fn redact(text: &str) -> String {
    redacted_lines(text).concat()
}

/// The start of each side of a hunk header `@@ -a[,n] +b[,m] @@`, as 0-based indexes
/// of the first line it shows.
fn hunk_start(line: &str) -> Option<(usize, usize)> {
    let rest = line.strip_prefix("@@ -")?;
    let (old, rest) = rest.split_once(" +")?;
    let (new, _) = rest.split_once(" @@")?;
    let start = |r: &str| -> Option<usize> {
        let (a, n) = r.split_once(',').unwrap_or((r, "1"));
        let (a, n): (usize, usize) = (a.parse().ok()?, n.parse().ok()?);
        // An empty side names the line before it; it shows no line anyway.
        Some(if n == 0 { a } else { a.saturating_sub(1) })
    };
    Some((start(old)?, start(new)?))
}

fn strip_terminator(s: &str) -> &str {
    &s[..s.len() - terminator_len(s.as_bytes())]
}

/// A unified diff of `old` to `new` with every secret value replaced by [`REDACTED`].
/// Each shown line is taken redacted from the whole file it belongs to; a line that
/// does not match its file (never expected) is redacted on its own.
pub fn redact_diff(diff: &str, old: &str, new: &str) -> String {
    let sides = [
        (natural_texts(old), redacted_lines(old)),
        (natural_texts(new), redacted_lines(new)),
    ];
    let mut next: Option<[usize; 2]> = None;
    let mut out = String::with_capacity(diff.len());
    for line in natural_texts(diff) {
        if let Some((a, b)) = hunk_start(line) {
            next = Some([a, b]);
            out.push_str(line);
            continue;
        }
        let shown: &[usize] = match line.as_bytes().first() {
            Some(b' ') => &[0, 1],
            Some(b'-') => &[0],
            Some(b'+') => &[1],
            _ => &[],
        };
        let Some(idx) = next.as_mut().filter(|_| !shown.is_empty()) else {
            out.push_str(line); // File headers and "\ No newline at end of file".
            continue;
        };
        // The tag is one ASCII byte.
        let (tag, body) = line.split_at(1);
        let side = shown[shown.len() - 1];
        let (originals, redacted) = &sides[side];
        let i = idx[side];
        let text = match (originals.get(i), redacted.get(i)) {
            (Some(o), Some(r)) if strip_terminator(o) == strip_terminator(body) => {
                strip_terminator(r).to_string()
            }
            _ => redact(strip_terminator(body)),
        };
        for &s in shown {
            idx[s] += 1;
        }
        out.push_str(tag);
        out.push_str(&text);
        out.push_str(&body[strip_terminator(body).len()..]);
    }
    out
}

fn natural_texts(text: &str) -> Vec<&str> {
    // The ranges end at ASCII terminators, so they are char boundaries.
    natural_lines(text.as_bytes())
        .into_iter()
        .filter_map(|r| text.get(r))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn jaas_options_are_redacted_and_the_rest_of_the_line_kept() {
        let jaas = "sasl.jaas.config=software.amazon.msk.auth.iam.IAMLoginModule required \
                    awsRoleArn=\"arn:aws:iam::1:role/r\" awsRoleAccessKeyId=\"AKIA1\" \
                    awsRoleSecretAccessKey=\"s3cr/et+\" awsSessionToken=tok3n;\n";
        let out = redact(jaas);
        assert!(!out.contains("s3cr/et+"), "{out}");
        assert!(!out.contains("tok3n"), "{out}");
        assert!(
            out.contains("awsRoleArn=\"arn:aws:iam::1:role/r\""),
            "{out}"
        );
        assert!(out.contains("awsRoleAccessKeyId=\"AKIA1\""), "{out}");
        assert!(
            out.contains("awsRoleSecretAccessKey=\"<redacted>\""),
            "{out}"
        );
        assert!(out.contains("awsSessionToken=<redacted>;"), "{out}");
        // Escaped quotes, as in a .properties value written by hand.
        let esc = "x=a awsRoleSecretAccessKey=\\\"abc def\\\" b=c";
        assert_eq!(
            redact(esc),
            "x=a awsRoleSecretAccessKey=\\\"<redacted>\\\" b=c"
        );
    }

    #[test]
    fn secret_keys_are_redacted_for_every_separator() {
        for (line, want) in [
            ("ssl.key.password=hunter2", "ssl.key.password=<redacted>"),
            (
                "ssl.key.password = hunter2 x",
                "ssl.key.password = <redacted>",
            ),
            ("ssl.key.password:hunter2", "ssl.key.password:<redacted>"),
            (
                "ssl.key.password : hunter2",
                "ssl.key.password : <redacted>",
            ),
            ("ssl.key.password HANDPW", "ssl.key.password <redacted>"),
            ("ssl.key.password\tHANDPW", "ssl.key.password\t<redacted>"),
            (
                "  ssl.key.password \t = HANDPW",
                "  ssl.key.password \t = <redacted>",
            ),
            ("ssl.keystore.key=-----BEGIN", "ssl.keystore.key=<redacted>"),
            (
                "basic.auth.user.info=u:p",
                "basic.auth.user.info=<redacted>",
            ),
            (
                "ksql.schema.registry.basic.auth.user.info u:p",
                "ksql.schema.registry.basic.auth.user.info <redacted>",
            ),
            ("my.api_key=k", "my.api_key=<redacted>"),
            ("x.passwd=p", "x.passwd=<redacted>"),
            ("aws.credentials=c", "aws.credentials=<redacted>"),
            ("client.secret=s", "client.secret=<redacted>"),
            ("auth.token=t", "auth.token=<redacted>"),
            // Escapes in the key: `Properties.load` reads `ssl.key.password`.
            (
                "ssl.key.pass\\u0077ord=p",
                "ssl.key.pass\\u0077ord=<redacted>",
            ),
            ("ssl.key\\.password=p", "ssl.key\\.password=<redacted>"),
            // An empty secret has nothing to hide.
            ("ssl.key.password=", "ssl.key.password="),
        ] {
            assert_eq!(redact(&format!("{line}\n")), format!("{want}\n"), "{line}");
        }
    }

    #[test]
    fn other_keys_and_values_stay_readable() {
        let plain = "bootstrap.servers=b-1:9098,b-2:9098\n\
                     key.converter=org.apache.kafka.connect.json.JsonConverter\n\
                     ksql.service.id ksql_msk_\n\
                     # comment: with token words\n\
                     # The password of the keystore is set below.\n\
                     listeners=http://0.0.0.0:8088\n";
        assert_eq!(redact(plain), plain);
    }

    #[test]
    fn continuation_lines_of_a_secret_are_redacted() {
        let text = "ssl.keystore.key=-----BEGIN PRIVATE KEY----- \\\n    \
                    MIIEvQIBADANBg \\\r\n\tkqhkiG9w0BAQEF\\\n\
                    -----END PRIVATE KEY-----\n\
                    next=visible\n";
        assert_eq!(
            redact(text),
            "ssl.keystore.key=<redacted>\\\n    <redacted>\\\r\n\t<redacted>\\\n\
             <redacted>\n\
             next=visible\n"
        );
        // A key continued before its value.
        assert_eq!(
            redact("ssl.key.\\\n  password=\\\n  hunter2\n"),
            "ssl.key.\\\n  password=\\\n  <redacted>\n"
        );
        // A JAAS option whose quoted value is continued.
        let jaas = "sasl.jaas.config=x required password=\"first \\\n   second\";\n";
        assert_eq!(
            redact(jaas),
            "sasl.jaas.config=x required password=\"<redacted>\\\n   <redacted>\";\n"
        );
    }

    #[test]
    fn credentials_inside_urls_are_redacted() {
        for (line, want) in [
            (
                "ksql.schema.registry.url=https://sr:pa55@registry:8081/x",
                "ksql.schema.registry.url=https://sr:<redacted>@registry:8081/x",
            ),
            (
                "a.url https://ghp_token@github.com/x,http://u:p@h",
                "a.url https://<redacted>@github.com/x,http://u:<redacted>@h",
            ),
            // As `Properties.store` writes it, with `:` escaped.
            (
                "a.url=https\\://sr\\:pa55@registry",
                "a.url=https\\://sr\\:<redacted>@registry",
            ),
            ("#x.url=http://u:old@h", "#x.url=http://u:<redacted>@h"),
            // A password that should have been percent-encoded.
            (
                "a.url=https://u:pa/ss@wd@host/path@x",
                "a.url=https://u:<redacted>@host/path@x",
            ),
            (
                "listeners=http://0.0.0.0:8088,https://[::]:8443",
                "listeners=http://0.0.0.0:8088,https://[::]:8443",
            ),
        ] {
            assert_eq!(redact(&format!("{line}\n")), format!("{want}\n"), "{line}");
        }
    }

    #[test]
    fn commented_out_secrets_are_redacted() {
        assert_eq!(
            redact("# ssl.key.password=changeit\n#ssl.truststore.password old\n"),
            "# ssl.key.password=<redacted>\n#ssl.truststore.password <redacted>\n"
        );
    }

    fn diff(old: &str, new: &str) -> String {
        let diff = similar::TextDiff::from_lines(old, new)
            .unified_diff()
            .context_radius(1)
            .header("a", "b")
            .to_string();
        redact_diff(&diff, old, new)
    }

    #[test]
    fn a_diff_is_redacted_from_the_files_it_compares() {
        // The hunk starts inside the continued secret: only the files tell.
        let old = "ssl.key.password=\\\n  first\\\n  second\nk=1\n";
        let new = "ssl.key.password=\\\n  first\\\n  second\nk=2\n";
        let out = diff(old, new);
        assert_eq!(
            out,
            "--- a\n+++ b\n@@ -3,2 +3,2 @@\n   <redacted>\n-k=1\n+k=2\n"
        );
        // A rotated secret still shows as a change, of a key whose value is hidden.
        let out = diff("a=1\nssl.key.password old\n", "a=1\nssl.key.password=new\n");
        assert_eq!(
            out,
            "--- a\n+++ b\n@@ -1,2 +1,2 @@\n a=1\n-ssl.key.password <redacted>\n\
             +ssl.key.password=<redacted>\n"
        );
        // No newline at the end, lone `\r` line ends, a file that did not exist.
        let out = diff("", "x.token=t\r\ny=http://u:p@h");
        assert_eq!(
            out,
            "--- a\n+++ b\n@@ -0,0 +1,2 @@\n+x.token=<redacted>\r\n\
             +y=http://u:<redacted>@h\n\\ No newline at end of file\n"
        );
        let out = diff("p.secret=a\rq=b\r", "p.secret=a\rq=c\r");
        assert!(!out.contains("=a"), "{out:?}");
    }

    fn hostile_text() -> impl Strategy<Value = String> {
        // No `Q` or `Z`: those only come from the secret.
        let chars: Vec<char> = vec![
            'a', 'k', '.', ' ', '\t', '\n', '\r', '\x0c', '=', ':', '#', '!', '\\', 'u', '0', '"',
            '@', '/', 'é', '😀', 'p', 'w', 'o', 'r', 'd', 's',
        ];
        prop::collection::vec(prop::sample::select(chars), 0..60)
            .prop_map(|cs| cs.into_iter().collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// Whatever surrounds it, however it is separated and continued, a secret key's
        /// value never survives, in the file or in a diff; line structure is kept.
        #[test]
        fn a_secret_value_never_survives(
            before in hostile_text(),
            after in hostile_text(),
            key in prop::sample::select(vec![
                "ssl.key.password", "ssl.keystore.key", "basic.auth.user.info",
                "x.token", "ssl.key.pass\\u0077ord", "a.secret\\\n  .x",
            ]),
            sep in prop::sample::select(vec!["=", ":", " ", " = ", "\t: ", "\x0c"]),
            split in 0usize..7,
            cont in prop::sample::select(vec!["\\\n", "\\\r\n  ", "\\\r\t"]),
        ) {
            let value = "QZQZQZ";
            let value = if split > 0 && split < value.len() {
                format!("{}{cont}{}", &value[..split], &value[split..])
            } else {
                value.to_string()
            };
            let text = format!("{before}\n\n{key}{sep}{value}\n{after}");
            let out = redact(&text);
            prop_assert!(!out.contains(['Q', 'Z']), "{:?} -> {:?}", text, out);
            prop_assert_eq!(redacted_lines(&text).len(), natural_lines(text.as_bytes()).len());
            let plain = format!("{before}\n\n{after}");
            for (old, new) in [(plain.as_str(), text.as_str()), (text.as_str(), plain.as_str())] {
                let out = diff(old, new);
                prop_assert!(!out.contains(['Q', 'Z']), "{:?} -> {:?}", new, out);
            }
        }

        #[test]
        fn any_text_and_diff_are_redacted_without_panicking(
            old in hostile_text(),
            new in hostile_text(),
        ) {
            let _ = redact(&old);
            let _ = diff(&old, &new);
        }
    }

    #[test]
    fn a_diff_line_unlike_its_file_is_still_redacted() {
        let diff = "@@ -1 +1 @@\n-ssl.key.password x\n+ssl.key.password y\n";
        assert_eq!(
            redact_diff(diff, "other\n", "other\n"),
            "@@ -1 +1 @@\n-ssl.key.password <redacted>\n+ssl.key.password <redacted>\n"
        );
    }
}
