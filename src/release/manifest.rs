//! The release manifest (`layout::MANIFEST`): what install verified about a release. A
//! later run with the same inputs trusts it instead of downloading and hashing again,
//! after [`crate::release::integrity::check`] has compared the tree on disk with the [`Tree`] the
//! manifest binds.
//!
//! The tree is a sidecar file ([`TREE_FILE`]) whose SHA-256 is in the manifest, not a
//! table inside it: the manifest stays a short file an operator can read, a warm start
//! parses a thousand plain lines instead of a thousand TOML tables, and paths are kept
//! byte for byte (a file name need not be UTF-8).

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use anyhow::Result;
use sha2::{Digest, Sha256};
use toml_edit::DocumentMut;

use crate::exit::{fail, ExitCode};
use crate::host;
use crate::host::layout;

/// The tree record beside the manifest, in the release directory.
pub const TREE_FILE: &str = ".ksql-msk-tree";
/// First line of a tree record; another format version is not read.
const TREE_HEADER: &str = "# ksql-msk release tree 1: kind mode size sha256 path [target]";

/// Declares `Manifest` with one `String` field per name, and the name/value walk that
/// writing and parsing share, so that a field is listed once.
macro_rules! manifest_fields {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct Manifest {
            $($(#[$doc])* pub $name: String,)*
        }

        impl Manifest {
            fn entries(&self) -> Vec<(&'static str, &str)> {
                vec![$((stringify!($name), self.$name.as_str()),)*]
            }

            fn from_entries(get: impl Fn(&str) -> Option<String>) -> Option<Manifest> {
                Some(Manifest { $($name: get(stringify!($name))?,)* })
            }
        }
    };
}

manifest_fields! {
    version,
    /// Redacted (`***@` for credentials), as every URL here: a password is not stored,
    /// and changing only a mirror's password is not a different input.
    archive_url,
    archive_sha256,
    signature_url,
    /// Primary fingerprint of the certificate that signed the archive.
    signer,
    /// The (sub)key that made the signature.
    signing_key,
    jar_url,
    jar_sha256,
    /// The jar's file name in `layout::JAR_DIR`.
    jar_file,
    /// SHA-256 of the tree record ([`TREE_FILE`]). A manifest without it (written by an
    /// older agent) vouches for no tree and does not parse: that release is installed
    /// again.
    tree_sha256,
}

impl Manifest {
    pub fn to_toml(&self) -> String {
        let mut doc = DocumentMut::new();
        doc.decor_mut().set_prefix(
            "# Written by ksql-msk install: what was verified about this release. Do not edit.\n",
        );
        for (k, v) in self.entries() {
            doc[k] = toml_edit::value(v);
        }
        doc.to_string()
    }

    pub fn parse(text: &str) -> Option<Manifest> {
        let doc: DocumentMut = text.parse().ok()?;
        Manifest::from_entries(|k| doc.get(k).and_then(|v| v.as_str()).map(str::to_string))
    }

    /// The manifest of the release in `release_dir`, if it has a readable one.
    pub fn load(release_dir: &Path) -> Option<Manifest> {
        let path = release_dir.join(layout::MANIFEST);
        let text = match host::read_state_text(&path, host::StateFile::Manifest) {
            Ok(text) => text?,
            Err(e) => {
                tracing::warn!(
                    "not using {}: {}",
                    path.display(),
                    crate::exit::one_line(&e)
                );
                return None;
            }
        };
        Manifest::parse(&text)
    }

    pub fn save(&self, release_dir: &Path) -> Result<()> {
        host::write_atomic(
            &release_dir.join(layout::MANIFEST),
            self.to_toml().as_bytes(),
            0o644,
        )
    }

    /// Write `tree` beside the manifest, then the manifest naming its hash. The manifest
    /// goes last: a crash in between leaves a manifest whose tree does not match (the
    /// release is refused and installed again), never one vouching for an unrecorded tree.
    pub fn save_with_tree(&mut self, release_dir: &Path, tree: &Tree) -> Result<()> {
        let text = tree.to_text();
        host::write_atomic(&release_dir.join(TREE_FILE), text.as_bytes(), 0o644)?;
        self.tree_sha256 = hex::encode(Sha256::digest(text.as_bytes()));
        self.save(release_dir)
    }
}

/// What one entry of a release is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A regular file (a hard link is recorded as the file it links to).
    File {
        size: u64,
        sha256: [u8; 32],
    },
    Dir,
    /// A symbolic link and its target, as written.
    Symlink {
        target: Vec<u8>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: Kind,
    /// Permission bits as written on disk (`st_mode & 0o7777`); 0 for a symlink, whose
    /// mode means nothing on Linux.
    pub mode: u32,
}

/// Every entry of a release directory, by path relative to it ('/'-separated bytes).
/// About a thousand for a ksqlDB release; at most `unpack::MAX_ENTRIES`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    entries: BTreeMap<Vec<u8>, Entry>,
}

fn key(rel: &Path) -> &[u8] {
    rel.as_os_str().as_bytes()
}

impl Tree {
    /// Record `rel` as `entry`, replacing what was there; a replaced directory takes its
    /// contents with it (as it does on disk).
    pub fn record(&mut self, rel: &Path, entry: Entry) {
        if entry.kind != Kind::Dir {
            self.remove_below(rel);
        }
        self.entries.insert(key(rel).to_vec(), entry);
    }

    /// Record a file the agent wrote after the unpack (the IAM jar, the pristine
    /// properties copy), whose content it knows.
    pub fn record_file(&mut self, rel: &Path, size: u64, mode: u32, sha256: [u8; 32]) {
        self.record(
            rel,
            Entry {
                kind: Kind::File { size, sha256 },
                mode,
            },
        );
    }

    /// Forget `rel` and, if it is a directory, everything in it.
    pub fn remove(&mut self, rel: &Path) {
        self.remove_below(rel);
        self.entries.remove(key(rel));
    }

    fn remove_below(&mut self, rel: &Path) {
        let mut lo = key(rel).to_vec();
        lo.push(b'/');
        let mut hi = key(rel).to_vec();
        hi.push(b'/' + 1);
        let below: Vec<Vec<u8>> = self.entries.range(lo..hi).map(|(k, _)| k.clone()).collect();
        for k in below {
            self.entries.remove(&k);
        }
    }

    pub fn get(&self, rel: &Path) -> Option<&Entry> {
        self.entries.get(key(rel))
    }

    pub fn contains(&self, rel: &Path) -> bool {
        self.entries.contains_key(key(rel))
    }

    /// Entries in path order (a directory before what it holds).
    pub fn iter(&self) -> impl Iterator<Item = (&Path, &Entry)> {
        self.entries
            .iter()
            .map(|(k, e)| (Path::new(OsStr::from_bytes(k)), e))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The record: a header line, then one line per entry in path order:
    /// `f MODE SIZE SHA256 PATH`, `d MODE PATH` or `l PATH TARGET`, modes in octal and
    /// paths escaped (see [`escape`]).
    pub fn to_text(&self) -> String {
        let mut out = String::with_capacity(self.entries.len() * 120);
        out.push_str(TREE_HEADER);
        out.push('\n');
        for (path, e) in &self.entries {
            match &e.kind {
                Kind::File { size, sha256 } => {
                    let _ = write!(out, "f {:o} {size} {} ", e.mode, hex::encode(sha256));
                    escape(path, &mut out);
                }
                Kind::Dir => {
                    let _ = write!(out, "d {:o} ", e.mode);
                    escape(path, &mut out);
                }
                Kind::Symlink { target } => {
                    out.push_str("l ");
                    escape(path, &mut out);
                    out.push(' ');
                    escape(target, &mut out);
                }
            }
            out.push('\n');
        }
        out
    }

    /// Parse [`Tree::to_text`]'s output; `Err` says which line is wrong.
    pub fn parse(text: &str) -> std::result::Result<Tree, String> {
        let mut lines = text.lines();
        if lines.next() != Some(TREE_HEADER) {
            return Err("not a ksql-msk tree record (header line)".into());
        }
        let mut tree = Tree::default();
        for (i, line) in lines.enumerate() {
            let bad = || format!("line {}: {line:?}", i + 2);
            let f: Vec<&str> = line.split(' ').collect();
            let mode = |s: &str| u32::from_str_radix(s, 8).ok().filter(|m| *m <= 0o7777);
            let (path, entry) = match f.as_slice() {
                ["f", m, size, sha, path] => {
                    let mut sha256 = [0u8; 32];
                    hex::decode_to_slice(sha, &mut sha256).map_err(|_| bad())?;
                    let kind = Kind::File {
                        size: size.parse().map_err(|_| bad())?,
                        sha256,
                    };
                    let mode = mode(m).ok_or_else(bad)?;
                    (path, Entry { kind, mode })
                }
                ["d", m, path] => {
                    let mode = mode(m).ok_or_else(bad)?;
                    let kind = Kind::Dir;
                    (path, Entry { kind, mode })
                }
                ["l", path, target] => {
                    let target = unescape(target).ok_or_else(bad)?;
                    let kind = Kind::Symlink { target };
                    (path, Entry { kind, mode: 0 })
                }
                _ => return Err(bad()),
            };
            let path = unescape(path).filter(|p| valid_rel(p)).ok_or_else(bad)?;
            if tree.entries.insert(path, entry).is_some() {
                return Err(format!("{}: the path is listed twice", bad()));
            }
        }
        Ok(tree)
    }

    /// The tree record of `release_dir`, which must hash to `sha256_hex` (the
    /// manifest's `tree_sha256`). Opened without following a link; 65 when it is
    /// missing, unreadable, altered or malformed.
    pub fn load(release_dir: &Path, sha256_hex: &str) -> Result<Tree> {
        let path = release_dir.join(TREE_FILE);
        let refused = |why: String| {
            fail(
                ExitCode::Data,
                format!(
                    "{}: {why}; the release's tree is not what install recorded",
                    path.display()
                ),
            )
        };
        let bytes = host::read_state(&path, host::StateFile::Tree)
            .map_err(|e| refused(format!("cannot read it ({})", crate::exit::one_line(&e))))?
            .ok_or_else(|| refused("missing".into()))?;
        let actual = hex::encode(Sha256::digest(&bytes));
        if actual != sha256_hex {
            return Err(refused(format!(
                "SHA-256 {actual}, the manifest records {sha256_hex}"
            )));
        }
        let text = std::str::from_utf8(&bytes).map_err(|_| refused("not text".into()))?;
        Tree::parse(text).map_err(refused)
    }
}

/// A relative path as unpack makes them: no empty, `.` or `..` component, no leading or
/// trailing '/'.
fn valid_rel(p: &[u8]) -> bool {
    !p.is_empty()
        && p.split(|b| *b == b'/')
            .all(|c| !c.is_empty() && c != b"." && c != b"..")
}

/// Bytes outside printable ASCII, the space and '%' as `%XX`: one token per path, any
/// byte kept.
fn escape(bytes: &[u8], out: &mut String) {
    for &b in bytes {
        if b.is_ascii_graphic() && b != b'%' {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

fn unescape(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            version: "0.29.0".into(),
            archive_url: "http://h/a.tar.gz".into(),
            archive_sha256: "00".into(),
            signature_url: "http://h/a.tar.gz.asc".into(),
            signer: "AB".into(),
            signing_key: "CD".into(),
            jar_url: "http://h/j.jar".into(),
            jar_sha256: "11".into(),
            jar_file: "j.jar".into(),
            tree_sha256: "22".into(),
        }
    }

    #[test]
    fn round_trip() {
        let m = manifest();
        assert_eq!(Manifest::parse(&m.to_toml()), Some(m));
        assert_eq!(Manifest::parse("version = \"1\""), None);
    }

    #[test]
    fn a_manifest_without_a_tree_does_not_parse() {
        let old = manifest()
            .to_toml()
            .lines()
            .filter(|l| !l.starts_with("tree_sha256"))
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(Manifest::parse(&old), None);
    }

    fn sample() -> Tree {
        let mut t = Tree::default();
        let dir = |mode| Entry {
            kind: Kind::Dir,
            mode,
        };
        t.record(Path::new("bin"), dir(0o755));
        t.record_file(Path::new("bin/ksql-server-start"), 12, 0o755, [7; 32]);
        t.record(Path::new("odd name%\n\u{e9}"), dir(0o700));
        t.record(
            Path::new("bin/ksql"),
            Entry {
                kind: Kind::Symlink {
                    target: b"ksql-server-start".to_vec(),
                },
                mode: 0,
            },
        );
        t
    }

    #[test]
    fn tree_round_trips_byte_for_byte() {
        let t = sample();
        let text = t.to_text();
        assert!(text.contains("d 700 odd%20name%25%0A%C3%A9\n"), "{text}");
        assert_eq!(Tree::parse(&text), Ok(t));
    }

    #[test]
    fn tree_parse_refuses_damage() {
        let text = sample().to_text();
        for bad in [
            text.replacen(TREE_HEADER, "# other", 1),
            text.replacen("f 755 12", "f 755 x", 1),
            text.replacen("f 755", "f 7777777", 1),
            text.replacen("bin/ksql-server-start", "bin/../x", 1),
            text.replacen("d 755 bin", "d 755 /bin", 1),
            format!("{text}d 755 bin\n"),
            format!("{text}q 1 2\n"),
        ] {
            assert!(Tree::parse(&bad).is_err(), "accepted:\n{bad}");
        }
    }

    #[test]
    fn replacing_a_directory_drops_its_contents() {
        let mut t = sample();
        t.record_file(Path::new("bin"), 1, 0o644, [0; 32]);
        assert!(!t.contains(Path::new("bin/ksql-server-start")));
        assert!(!t.contains(Path::new("bin/ksql")));
        assert!(t.contains(Path::new("odd name%\n\u{e9}")));
        let mut t = sample();
        t.remove(Path::new("bin"));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn save_binds_and_load_checks_the_tree() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = manifest();
        m.save_with_tree(dir.path(), &sample()).unwrap();
        let loaded = Manifest::load(dir.path()).unwrap();
        assert_eq!(loaded, m);
        assert_eq!(Tree::load(dir.path(), &m.tree_sha256).unwrap(), sample());
        // One byte changed in the record (mode 755 -> 777) is refused.
        let path = dir.path().join(TREE_FILE);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replacen("f 755", "f 777", 1)).unwrap();
        let err = Tree::load(dir.path(), &m.tree_sha256).unwrap_err();
        assert_eq!(crate::exit::exit_code_of(&err), ExitCode::Data);
        assert!(err.to_string().contains(TREE_FILE), "{err}");
    }
}
