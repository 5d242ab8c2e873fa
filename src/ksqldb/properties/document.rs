//! A lossless editor for Java `.properties` files (ksql-server.properties).
//!
//! Parsing follows `java.util.Properties.load(InputStream)` exactly, which is how ksqlDB
//! reads its server file (`PropertiesUtil.loadPropsFromFile`): bytes are ISO-8859-1
//! characters, natural lines end in `\n`, `\r` or `\r\n`, a logical line continues while
//! a natural line ends in an odd number of backslashes, leading whitespace (space, tab,
//! form feed) of every natural line is dropped, `#`/`!` start a comment only at the
//! start of a logical line, and comments cannot be continued.
//!
//! The document keeps every byte: each logical line is an entry holding its raw bytes
//! (continuations included), everything between entries is kept verbatim as trivia.
//! Rendering an unedited document gives back the input byte for byte. Editing replaces
//! the value part of an entry's bytes in place, removes whole entries, or appends lines.

use std::fmt;

/// The comment that opens the block of keys ksql-msk appends.
pub const MANAGED_MARKER: &str = "# --- managed by ksql-msk ---";

/// A Java string: UTF-16 code units, as `Properties` holds keys and values. Not a Rust
/// `String` because `\uD800` alone is a valid Java value.
pub type JavaString = Vec<u16>;

/// A file that `Properties.load` would refuse (only malformed `\uxxxx` escapes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line where the logical line starts.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    key: JavaString,
    value: JavaString,
    /// Byte offset in the item's raw bytes where the value starts.
    value_at: usize,
    /// Whether anything (`=`, `:` or whitespace) stands between key and value.
    has_separator: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Item {
    raw: Vec<u8>,
    entry: Option<Entry>,
}

/// A parsed properties file that renders back to its exact bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    items: Vec<Item>,
    /// Line ending for appended lines: the file's first one, else `\n`.
    eol: &'static [u8],
}

/// One logical line as `Properties.LineReader` returns it, with where it came from.
pub(super) struct Logical {
    /// Byte range of the natural lines it spans, terminator included.
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) content: Vec<u8>,
    /// Source offset of each byte of `content`.
    pub(super) offsets: Vec<usize>,
}

pub(super) fn is_ws(c: u8) -> bool {
    c == b' ' || c == b'\t' || c == 0x0c
}

fn line_start(src: &[u8], pos: usize) -> usize {
    src[..pos]
        .iter()
        .rposition(|&b| b == b'\n' || b == b'\r')
        .map_or(0, |i| i + 1)
}

/// A port of `java.util.Properties.LineReader.readLine` over the whole input. Returns
/// the logical lines and whether the input ends inside a continuation (so that text
/// appended after it would join the last logical line).
pub(super) fn logical_lines(src: &[u8]) -> (Vec<Logical>, bool) {
    let mut out = Vec::new();
    let mut off = 0;
    loop {
        match next_logical(src, &mut off) {
            Next::Line(line) => out.push(line),
            Next::Last(line, open_at_eof) => {
                out.push(line);
                return (out, open_at_eof);
            }
            Next::End => return (out, false),
        }
    }
}

/// What [`next_logical`] found.
enum Next {
    Line(Logical),
    /// The last line, and whether the input ends inside its continuation.
    Last(Logical, bool),
    End,
}

/// The logical line from `*off` on, one pass of `LineReader.readLine`'s loop; `*off`
/// moves past it (terminator included).
fn next_logical(src: &[u8], off: &mut usize) -> Next {
    let n = src.len();
    let mut buf: Vec<u8> = Vec::new();
    let mut offsets: Vec<usize> = Vec::new();
    let mut skip_ws = true;
    let mut appended_line_begin = false;
    let mut preceding_backslash = false;
    let mut start: Option<usize> = None;
    loop {
        if *off >= n {
            if buf.is_empty() {
                return Next::End;
            }
            return last_line(buf, offsets, start, n, preceding_backslash);
        }
        let c = src[*off];
        *off += 1;
        if skip_ws {
            if is_ws(c) || (!appended_line_begin && (c == b'\r' || c == b'\n')) {
                continue;
            }
            skip_ws = false;
            appended_line_begin = false;
        }
        if buf.is_empty() && (c == b'#' || c == b'!') {
            // A comment runs to the end of its natural line; no continuation.
            skip_to_line_end(src, off);
            skip_ws = true;
            start = None;
            continue;
        }
        if c != b'\n' && c != b'\r' {
            if buf.is_empty() && start.is_none() {
                start = Some(line_start(src, *off - 1));
            }
            buf.push(c);
            offsets.push(*off - 1);
            preceding_backslash = c == b'\\' && !preceding_backslash;
            continue;
        }
        if buf.is_empty() {
            // An empty logical line (e.g. a lone `\` followed by a blank line).
            skip_ws = true;
            start = None;
            continue;
        }
        if *off >= n {
            return last_line(buf, offsets, start, n, preceding_backslash);
        }
        if preceding_backslash {
            // The backslash joins the next natural line, minus its leading whitespace.
            buf.pop();
            offsets.pop();
            skip_ws = true;
            appended_line_begin = true;
            preceding_backslash = false;
            if c == b'\r' && src[*off] == b'\n' {
                *off += 1;
            }
            continue;
        }
        // Java skips the `\n` of `\r\n` at the start of the next line; keep it with
        // this one so that every entry owns its whole terminator.
        if c == b'\r' && *off < n && src[*off] == b'\n' {
            *off += 1;
        }
        return Next::Line(Logical {
            start: start.unwrap_or(0),
            end: *off,
            content: buf,
            offsets,
        });
    }
}

/// The line the input ends in: a trailing continuation backslash is dropped, and says
/// the input ends open.
fn last_line(
    mut content: Vec<u8>,
    mut offsets: Vec<usize>,
    start: Option<usize>,
    end: usize,
    preceding_backslash: bool,
) -> Next {
    if preceding_backslash {
        content.pop();
        offsets.pop();
    }
    let line = Logical {
        start: start.unwrap_or(0),
        end,
        content,
        offsets,
    };
    Next::Last(line, preceding_backslash)
}

/// Past the end of the natural line `*off` is in (its terminator's first byte).
fn skip_to_line_end(src: &[u8], off: &mut usize) {
    while *off < src.len() {
        let b = src[*off];
        *off += 1;
        if b == b'\r' || b == b'\n' {
            break;
        }
    }
}

/// `Properties.load0`: where the key ends and the value starts, and whether a `=`/`:`
/// or whitespace separates them.
pub(super) fn split_key_value(content: &[u8]) -> (usize, usize) {
    let limit = content.len();
    let mut key_len = 0;
    let mut value_start = limit;
    let mut has_sep = false;
    let mut preceding_backslash = false;
    while key_len < limit {
        let c = content[key_len];
        if (c == b'=' || c == b':') && !preceding_backslash {
            value_start = key_len + 1;
            has_sep = true;
            break;
        } else if is_ws(c) && !preceding_backslash {
            value_start = key_len + 1;
            break;
        }
        preceding_backslash = c == b'\\' && !preceding_backslash;
        key_len += 1;
    }
    while value_start < limit {
        let c = content[value_start];
        if !is_ws(c) {
            if !has_sep && (c == b'=' || c == b':') {
                has_sep = true;
            } else {
                break;
            }
        }
        value_start += 1;
    }
    (key_len, value_start)
}

/// `Properties.loadConvert`: undo escapes. Bytes are ISO-8859-1 characters.
fn unescape(s: &[u8]) -> Result<JavaString, String> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        i += 1;
        if c != b'\\' {
            out.push(u16::from(c));
            continue;
        }
        // The line reader never leaves an unpaired backslash at the end.
        let Some(&e) = s.get(i) else { break };
        i += 1;
        if e == b'u' {
            let hex = s
                .get(i..i + 4)
                .ok_or_else(|| "malformed \\uxxxx encoding".to_string())?;
            let mut v: u16 = 0;
            for &h in hex {
                let d = (h as char)
                    .to_digit(16)
                    .ok_or_else(|| "malformed \\uxxxx encoding".to_string())?;
                v = (v << 4) | d as u16;
            }
            i += 4;
            out.push(v);
        } else {
            out.push(match e {
                b't' => 0x09,
                b'r' => 0x0d,
                b'n' => 0x0a,
                b'f' => 0x0c,
                other => u16::from(other),
            });
        }
    }
    Ok(out)
}

pub(super) fn java(s: &str) -> JavaString {
    s.encode_utf16().collect()
}

/// Escape a key or value so that `Properties.load` reads back exactly `s`. Non-ASCII
/// characters become `\uxxxx` because ksqlDB reads the file as ISO-8859-1.
pub fn escape(s: &str, is_key: bool) -> String {
    escape_units(&java(s), is_key)
}

fn escape_units(s: &[u16], is_key: bool) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for (i, &unit) in s.iter().enumerate() {
        let first = i == 0;
        match unit {
            0x5c => out.push_str("\\\\"),
            0x09 => out.push_str("\\t"),
            0x0a => out.push_str("\\n"),
            0x0d => out.push_str("\\r"),
            0x0c => out.push_str("\\f"),
            // Whitespace and separators end a key; at the start of a value they would
            // be skipped or taken as the separator.
            0x20 | 0x3d | 0x3a if is_key || first => {
                out.push('\\');
                out.push(unit as u8 as char);
            }
            // `#` or `!` first on a line starts a comment.
            0x23 | 0x21 if is_key => {
                out.push('\\');
                out.push(unit as u8 as char);
            }
            0x20..=0x7e => out.push(unit as u8 as char),
            _ => out.push_str(&format!("\\u{unit:04X}")),
        }
    }
    out
}

/// Whether trivia bytes hold the comment line `marker` (surrounding whitespace ignored).
fn has_comment_line(raw: &[u8], marker: &str) -> bool {
    raw.split(|&b| b == b'\n' || b == b'\r')
        .any(|l| l.trim_ascii() == marker.as_bytes())
}

fn terminator_len(raw: &[u8]) -> usize {
    if raw.ends_with(b"\r\n") {
        2
    } else if raw.ends_with(b"\n") || raw.ends_with(b"\r") {
        1
    } else {
        0
    }
}

impl Document {
    /// Parse a file. Fails only where `Properties.load` would (malformed `\uxxxx`).
    pub fn parse(src: &[u8]) -> Result<Document, ParseError> {
        let (lines, _) = logical_lines(src);
        let mut items = Vec::with_capacity(lines.len() * 2 + 1);
        let mut at = 0;
        for logical in lines {
            if logical.start > at {
                items.push(Item {
                    raw: src[at..logical.start].to_vec(),
                    entry: None,
                });
            }
            let (key_len, value_start) = split_key_value(&logical.content);
            let line = src[..logical.start].iter().filter(|&&b| b == b'\n').count() + 1;
            let err = |message: String| ParseError { line, message };
            let key =
                unescape(&logical.content[..key_len]).map_err(|m| err(format!("key: {m}")))?;
            let value = unescape(&logical.content[value_start..])
                .map_err(|m| err(format!("{}: {m}", String::from_utf16_lossy(&key))))?;
            let value_src = match logical.offsets.get(value_start) {
                Some(&o) => o,
                None => logical.offsets.last().map_or(logical.start, |&o| o + 1),
            };
            items.push(Item {
                raw: src[logical.start..logical.end].to_vec(),
                entry: Some(Entry {
                    key,
                    value,
                    value_at: value_src - logical.start,
                    has_separator: value_start > key_len,
                }),
            });
            at = logical.end;
        }
        if at < src.len() {
            items.push(Item {
                raw: src[at..].to_vec(),
                entry: None,
            });
        }
        let eol: &'static [u8] = match src.iter().position(|&b| b == b'\n' || b == b'\r') {
            Some(i) if src[i] == b'\r' && src.get(i + 1) == Some(&b'\n') => b"\r\n",
            _ => b"\n",
        };
        Ok(Document { items, eol })
    }

    /// The file's bytes.
    pub fn render(&self) -> Vec<u8> {
        self.items
            .iter()
            .flat_map(|i| i.raw.iter().copied())
            .collect()
    }

    /// Every key/value pair in file order, duplicates included.
    fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.items.iter().filter_map(|i| i.entry.as_ref())
    }

    /// What `Properties.load` ends up with: the last value of each key, in order of
    /// first appearance.
    pub fn java_map(&self) -> Vec<(JavaString, JavaString)> {
        let mut map: Vec<(JavaString, JavaString)> = Vec::new();
        for e in self.entries() {
            match map.iter_mut().find(|(k, _)| *k == e.key) {
                Some(slot) => slot.1 = e.value.clone(),
                None => map.push((e.key.clone(), e.value.clone())),
            }
        }
        map
    }

    /// The value Java reads for `key` (lossy for unpaired surrogates).
    pub fn get(&self, key: &str) -> Option<String> {
        let key = java(key);
        self.entries()
            .filter(|e| e.key == key)
            .last()
            .map(|e| String::from_utf16_lossy(&e.value))
    }

    /// Keys in order of first appearance (lossy for unpaired surrogates).
    pub fn keys(&self) -> Vec<String> {
        self.java_map()
            .into_iter()
            .map(|(k, _)| String::from_utf16_lossy(&k))
            .collect()
    }

    /// Comment lines (after leading whitespace, starting with `#` or `!`), in order.
    /// Lines inside a logical line's continuation are not comments and not listed.
    pub fn comments(&self) -> Vec<String> {
        self.items
            .iter()
            .filter(|i| i.entry.is_none())
            .flat_map(|i| {
                String::from_utf8_lossy(&i.raw)
                    .split(['\n', '\r'])
                    .map(|l| l.trim_start_matches([' ', '\t', '\x0c']).to_string())
                    .filter(|l| l.starts_with('#') || l.starts_with('!'))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Set `key` to `value`: the last occurrence is rewritten in place (its key text
    /// and separator kept), earlier occurrences are removed, and a new key is appended
    /// to the managed block at the end.
    pub fn set(&mut self, key: &str, value: &str) {
        self.set_in_block(MANAGED_MARKER, &java(key), &java(value));
    }

    /// [`Document::set`], a new key going to the block that the comment line `marker`
    /// opens (opened at the end of the file if it is not there yet).
    pub fn set_in(&mut self, marker: &str, key: &str, value: &str) {
        self.set_in_block(marker, &java(key), &java(value));
    }

    /// [`Document::set`] for Java strings; a new key goes to the block that the comment
    /// line `marker` opens (opened at the end of the file if it is not there yet).
    pub fn set_in_block(&mut self, marker: &str, key: &[u16], value: &[u16]) {
        let positions: Vec<usize> = self
            .items
            .iter()
            .enumerate()
            .filter(|(_, i)| i.entry.as_ref().is_some_and(|e| e.key == key))
            .map(|(n, _)| n)
            .collect();
        let Some((&last, earlier)) = positions.split_last() else {
            self.append(marker, key, value);
            return;
        };
        let item = &mut self.items[last];
        if let Some(entry) = item.entry.as_mut() {
            if entry.value != value {
                let term = item.raw[item.raw.len() - terminator_len(&item.raw)..].to_vec();
                let mut raw = item.raw[..entry.value_at].to_vec();
                if !entry.has_separator {
                    raw.push(b'=');
                }
                entry.value_at = raw.len();
                entry.has_separator = true;
                raw.extend_from_slice(escape_units(value, false).as_bytes());
                raw.extend_from_slice(&term);
                item.raw = raw;
                entry.value = value.to_vec();
            }
        }
        for &n in earlier.iter().rev() {
            self.items.remove(n);
        }
    }

    /// Key/value pairs (last value wins) that stand before the comment line `marker`,
    /// or in the whole file if it has no such line.
    pub fn java_map_before(&self, marker: &str) -> Vec<(JavaString, JavaString)> {
        let end = self
            .items
            .iter()
            .position(|i| i.entry.is_none() && has_comment_line(&i.raw, marker))
            .unwrap_or(self.items.len());
        Document {
            items: self.items[..end].to_vec(),
            eol: self.eol,
        }
        .java_map()
    }

    /// Remove every occurrence of `key`. Returns whether there was one.
    pub fn remove(&mut self, key: &str) -> bool {
        let jkey = java(key);
        let before = self.items.len();
        self.items
            .retain(|i| i.entry.as_ref().is_none_or(|e| e.key != jkey));
        self.items.len() != before
    }

    /// Append a new line `key=value`, opening the block `marker` first if needed.
    fn append(&mut self, marker: &str, key: &[u16], value: &[u16]) {
        let (_, open) = logical_lines(&self.render());
        if open {
            // A lone `\` at the very end is the entry "" = "" only because the file ends
            // there; anything appended would swallow it. Spell it out instead.
            if let Some(last) = self.items.last_mut() {
                if let Some(e) = last.entry.as_mut().filter(|e| e.key.is_empty()) {
                    if e.value.is_empty() {
                        last.raw = [b"=", self.eol].concat();
                        e.value_at = 1;
                        e.has_separator = true;
                    }
                }
            }
        }
        let body = self.render();
        let (_, open) = logical_lines(&body);
        let mut lead = Vec::new();
        if !body.is_empty() && !body.ends_with(b"\n") && !body.ends_with(b"\r") {
            lead.extend_from_slice(self.eol);
        }
        if open {
            // The last line continues into whatever follows: end it with a blank line.
            // After a lone `\r`, a `\n` would only complete that terminator.
            if body.ends_with(b"\r") && !body.ends_with(b"\r\n") && lead.is_empty() {
                lead.push(b'\r');
            } else {
                lead.extend_from_slice(self.eol);
            }
        }
        let has_marker = self
            .items
            .iter()
            .any(|i| i.entry.is_none() && has_comment_line(&i.raw, marker));
        if !has_marker {
            let so_far = [body.as_slice(), lead.as_slice()].concat();
            if !so_far.is_empty() && !so_far.ends_with(&[self.eol, self.eol].concat()) {
                lead.extend_from_slice(self.eol);
            }
            lead.extend_from_slice(marker.as_bytes());
            lead.extend_from_slice(self.eol);
        }
        if !lead.is_empty() {
            self.items.push(Item {
                raw: lead,
                entry: None,
            });
        }
        let mut raw = escape_units(key, true).into_bytes();
        raw.push(b'=');
        let value_at = raw.len();
        raw.extend_from_slice(escape_units(value, false).as_bytes());
        raw.extend_from_slice(self.eol);
        self.items.push(Item {
            raw,
            entry: Some(Entry {
                key: key.to_vec(),
                value: value.to_vec(),
                value_at,
                has_separator: true,
            }),
        });
    }

    /// The bytes before the comment line `marker`, or `None` if there is no such line.
    pub fn truncate_at(&self, marker: &str) -> Option<Vec<u8>> {
        let idx = self
            .items
            .iter()
            .position(|i| i.entry.is_none() && has_comment_line(&i.raw, marker))?;
        let mut out: Vec<u8> = self.items[..idx]
            .iter()
            .flat_map(|i| i.raw.iter().copied())
            .collect();
        let raw = &self.items[idx].raw;
        let mut line_start = 0;
        for (n, &b) in raw.iter().enumerate() {
            if b == b'\n' || b == b'\r' {
                if raw[line_start..n].trim_ascii() == marker.as_bytes() {
                    break;
                }
                line_start = n + 1;
            }
        }
        // A blank line ksql-msk put before the marker stays: rendering again then adds
        // none, so the output is the same.
        out.extend_from_slice(&raw[..line_start]);
        Some(out)
    }

    /// Render and check that a fresh parse of the bytes reads the same keys and values
    /// this document holds: an edit must never change what Java reads elsewhere.
    pub fn render_checked(&self) -> anyhow::Result<Vec<u8>> {
        let bytes = self.render();
        let reparsed = Document::parse(&bytes)
            .map_err(|e| anyhow::anyhow!("rendered properties do not parse: {e}"))?;
        let (mut want, mut got) = (self.java_map(), reparsed.java_map());
        want.sort();
        got.sort();
        if want != got {
            anyhow::bail!("rendered properties would not read back as written (a bug in ksql-msk)");
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests;
