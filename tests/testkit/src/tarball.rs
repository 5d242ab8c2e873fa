//! ksqlDB-shaped release archives made by tests (layout of the real
//! `confluent-ksqldb-<v>.tar.gz`), plus hostile variants for the sanitiser.

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use flate2::Compression;
use tar::{Builder, EntryType, Header};

/// The small properties text used when `../shared/fixtures/ksqldb/` is absent.
const BUILTIN_PROPERTIES: &str = "\
# Built-in stand-in for ksql-server.properties (the shared fixture was not found).
listeners=http://0.0.0.0:8088
ksql.logging.processing.stream.auto.create=true
bootstrap.servers=localhost:9092
";

/// The fixture `ksql-server.properties`, or a built-in stand-in (with a note on stderr).
pub fn server_properties() -> Vec<u8> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let candidates: Vec<PathBuf> = root
        .ancestors()
        .map(|a| a.join("../shared/fixtures/ksqldb/ksql-server.properties"))
        .take(4)
        .collect();
    for path in candidates {
        if let Ok(bytes) = std::fs::read(&path) {
            return bytes;
        }
    }
    eprintln!("testkit: ../shared/fixtures/ksqldb/ksql-server.properties not found; using a built-in stand-in");
    BUILTIN_PROPERTIES.as_bytes().to_vec()
}

/// The release's `bin/ksql` stand-in: prints how it was started (its pid, its uid, each
/// argument, its environment) on stdout, one `key=value` a line, and exits 0, or with N
/// given as an argument `--standin-exit=N` (`ksql` passes the CLI no variable of the
/// caller's that could carry it).
pub const CLI: &str = "#!/bin/sh\n# stand-in for ksqlDB's CLI: says how it was started\n\
echo \"ksql-cli-standin pid=$$\"\n\
echo \"uid=$(id -u)\"\n\
for a in \"$@\"; do printf 'arg=%s\\n' \"$a\"; done\n\
env | LC_ALL=C sort | sed 's/^/env=/'\n\
code=0\n\
for a in \"$@\"; do case $a in --standin-exit=*) code=${a#--standin-exit=};; esac; done\n\
exit \"$code\"\n";

pub const SERVER_START: &str = "#!/bin/sh\n# stand-in for ksqlDB's start script\nexec \"$(dirname \"$0\")/ksql-run-class\" \"$@\"\n";

/// Builds a release archive entry by entry.
pub struct TarballBuilder {
    top: String,
    tar: Builder<GzEncoder<Vec<u8>>>,
}

impl TarballBuilder {
    pub fn new(version: &str) -> TarballBuilder {
        TarballBuilder {
            top: format!("confluent-ksqldb-{version}"),
            tar: Builder::new(GzEncoder::new(Vec::new(), Compression::fast())),
        }
    }

    /// The normal content of a release.
    pub fn standard(self) -> TarballBuilder {
        self.standard_with_start(SERVER_START.as_bytes())
    }

    /// The normal content of a release with `server_start` as `bin/ksql-server-start`
    /// (a script or a binary: the ksqlDB stand-in for runnable releases).
    pub fn standard_with_start(mut self, server_start: &[u8]) -> TarballBuilder {
        self.dir("");
        self.dir("bin");
        self.file("bin/ksql-server-start", server_start, 0o755);
        self.file("bin/ksql", CLI.as_bytes(), 0o755);
        self.file(
            "bin/ksql-run-class",
            b"#!/bin/sh\necho ksql-run-class \"$@\"\n",
            0o755,
        );
        self.dir("etc/ksqldb");
        self.file(
            "etc/ksqldb/ksql-server.properties",
            &server_properties(),
            0o644,
        );
        // Upstream's console-only log4j configuration (tests/fixtures/log4j/).
        self.file(
            "etc/ksqldb/log4j.properties",
            include_bytes!("../../fixtures/log4j/upstream-console.properties"),
            0o644,
        );
        self.dir("share/java/ksqldb");
        self.file(
            "share/java/ksqldb/ksqldb-engine-0.jar",
            b"PK\x03\x04 dummy engine jar",
            0o644,
        );
        self.file(
            "share/java/ksqldb/kafka-clients-0.jar",
            b"PK\x03\x04 dummy clients jar",
            0o644,
        );
        // A jar of an older aws-msk-iam-auth that install must replace.
        self.file(
            "share/java/ksqldb/aws-msk-iam-auth-0.0.1-all.jar",
            b"PK old iam jar",
            0o644,
        );
        self.dir("share/doc/ksqldb");
        self.file(
            "share/doc/ksqldb/README",
            b"ksqlDB stand-in release\n",
            0o644,
        );
        self.symlink("share/doc/ksqldb/LICENSE", "README");
        self
    }

    fn full(&self, rel: &str) -> String {
        if rel.is_empty() {
            format!("{}/", self.top)
        } else {
            format!("{}/{rel}", self.top)
        }
    }

    pub fn dir(&mut self, rel: &str) -> &mut Self {
        let name = self.full(rel);
        self.raw(&name, EntryType::Directory, 0o755, b"", None)
    }

    pub fn file(&mut self, rel: &str, data: &[u8], mode: u32) -> &mut Self {
        let name = self.full(rel);
        self.raw(&name, EntryType::Regular, mode, data, None)
    }

    /// A regular file of `size` bytes of incompressible data, streamed (no big buffer).
    pub fn random_file(&mut self, rel: &str, size: u64, seed: u64) -> &mut Self {
        let mut header = Header::new_gnu();
        header.set_entry_type(EntryType::Regular);
        header.set_mode(0o644);
        header.set_size(size);
        header.set_mtime(1_700_000_000);
        let name = self.full(rel);
        self.tar
            .append_data(
                &mut header,
                &name,
                Noise {
                    state: seed | 1,
                    left: size,
                },
            )
            .expect("append random file");
        self
    }

    pub fn symlink(&mut self, rel: &str, target: &str) -> &mut Self {
        let name = self.full(rel);
        self.raw(&name, EntryType::Symlink, 0o777, b"", Some(target))
    }

    /// An entry written with its name and link name as given: no checks, so hostile
    /// paths can be made.
    pub fn raw(
        &mut self,
        name: &str,
        kind: EntryType,
        mode: u32,
        data: &[u8],
        link: Option<&str>,
    ) -> &mut Self {
        let mut header = Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(data.len() as u64);
        header.set_mtime(1_700_000_000);
        {
            let bytes = header.as_old_mut();
            assert!(name.len() < 100, "test entry names stay short");
            bytes.name = [0; 100];
            bytes.name[..name.len()].copy_from_slice(name.as_bytes());
            if let Some(l) = link {
                bytes.linkname = [0; 100];
                bytes.linkname[..l.len()].copy_from_slice(l.as_bytes());
            }
        }
        header.set_cksum();
        self.tar.append(&header, data).expect("append entry");
        self
    }

    pub fn top(&self) -> &str {
        &self.top
    }

    pub fn finish(self) -> Vec<u8> {
        self.tar
            .into_inner()
            .and_then(|gz| gz.finish())
            .expect("finish tarball")
    }
}

/// xorshift noise: incompressible, cheap, reproducible.
struct Noise {
    state: u64,
    left: u64,
}

impl std::io::Read for Noise {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.left as usize) / 8 * 8;
        let n = if n == 0 {
            buf.len().min(self.left as usize)
        } else {
            n
        };
        for chunk in buf[..n].chunks_mut(8) {
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            let b = self.state.to_le_bytes();
            chunk.copy_from_slice(&b[..chunk.len()]);
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// A standard small release archive.
pub fn ksqldb_tarball(version: &str) -> Vec<u8> {
    TarballBuilder::new(version).standard().finish()
}

/// A standard archive plus one big jar of incompressible data (performance and
/// interruption tests).
pub fn large_tarball(version: &str, jar_bytes: u64) -> Vec<u8> {
    let mut b = TarballBuilder::new(version).standard();
    b.random_file("share/java/ksqldb/big-0.jar", jar_bytes, 0x5eed);
    b.finish()
}

/// Write a large archive straight to a file.
pub fn write_large_tarball(path: &Path, version: &str, jar_bytes: u64) {
    let file = std::fs::File::create(path).expect("create tarball");
    let mut tar = Builder::new(GzEncoder::new(
        std::io::BufWriter::new(file),
        Compression::fast(),
    ));
    let top = format!("confluent-ksqldb-{version}");
    for (rel, data, mode) in [
        (
            "bin/ksql-server-start",
            SERVER_START.as_bytes().to_vec(),
            0o755,
        ),
        (
            "etc/ksqldb/ksql-server.properties",
            server_properties(),
            0o644,
        ),
    ] {
        let mut h = Header::new_gnu();
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        tar.append_data(&mut h, format!("{top}/{rel}"), &data[..])
            .expect("append");
    }
    let mut h = Header::new_gnu();
    h.set_mode(0o644);
    h.set_size(jar_bytes);
    tar.append_data(
        &mut h,
        format!("{top}/share/java/ksqldb/big-0.jar"),
        Noise {
            state: 0x5eed,
            left: jar_bytes,
        },
    )
    .expect("append big");
    let gz = tar.into_inner().expect("tar");
    gz.finish().expect("gzip").flush().expect("flush");
}

/// Hostile entries the sanitiser must refuse; each names what the error must mention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hostile {
    AbsolutePath,
    DotDot,
    SymlinkOut,
    SymlinkAbsolute,
    HardlinkOut,
    CharDevice,
    BlockDevice,
    Fifo,
    Setuid,
    Setgid,
    WriteThroughSymlink,
    SecondTopDir,
}

impl Hostile {
    pub const ALL: &'static [Hostile] = &[
        Hostile::AbsolutePath,
        Hostile::DotDot,
        Hostile::SymlinkOut,
        Hostile::SymlinkAbsolute,
        Hostile::HardlinkOut,
        Hostile::CharDevice,
        Hostile::BlockDevice,
        Hostile::Fifo,
        Hostile::Setuid,
        Hostile::Setgid,
        Hostile::WriteThroughSymlink,
        Hostile::SecondTopDir,
    ];

    /// (entry name that must appear in the error, a word the reason contains)
    pub fn expect(self, version: &str) -> (String, &'static str) {
        let top = format!("confluent-ksqldb-{version}");
        match self {
            Hostile::AbsolutePath => ("/tmp/ksql-msk-pwned".into(), "absolute"),
            Hostile::DotDot => (format!("{top}/../../pwned"), ".."),
            Hostile::SymlinkOut => (format!("{top}/bin/escape"), "outside"),
            Hostile::SymlinkAbsolute => (format!("{top}/bin/passwd"), "outside"),
            Hostile::HardlinkOut => (format!("{top}/bin/hard"), "outside"),
            Hostile::CharDevice => (format!("{top}/bin/null"), "device"),
            Hostile::BlockDevice => (format!("{top}/bin/sda"), "device"),
            Hostile::Fifo => (format!("{top}/bin/pipe"), "fifo"),
            Hostile::Setuid => (format!("{top}/bin/suid"), "setuid"),
            Hostile::Setgid => (format!("{top}/bin/sgid"), "setgid"),
            Hostile::WriteThroughSymlink => (format!("{top}/lib/evil"), "symlink"),
            Hostile::SecondTopDir => ("other-dir/file".into(), "top directory"),
        }
    }
}

/// A standard archive with one hostile entry appended.
pub fn hostile_tarball(version: &str, kind: Hostile) -> Vec<u8> {
    let mut b = TarballBuilder::new(version).standard();
    let top = b.top().to_string();
    let (name, _) = kind.expect(version);
    match kind {
        Hostile::AbsolutePath | Hostile::DotDot | Hostile::SecondTopDir => {
            b.raw(&name, EntryType::Regular, 0o644, b"pwned", None);
        }
        Hostile::SymlinkOut => {
            b.raw(
                &name,
                EntryType::Symlink,
                0o777,
                b"",
                Some("../../../../etc"),
            );
        }
        Hostile::SymlinkAbsolute => {
            b.raw(&name, EntryType::Symlink, 0o777, b"", Some("/etc/passwd"));
        }
        Hostile::HardlinkOut => {
            b.raw(&name, EntryType::Link, 0o644, b"", Some("/etc/passwd"));
        }
        Hostile::CharDevice => {
            b.raw(&name, EntryType::Char, 0o666, b"", None);
        }
        Hostile::BlockDevice => {
            b.raw(&name, EntryType::Block, 0o660, b"", None);
        }
        Hostile::Fifo => {
            b.raw(&name, EntryType::Fifo, 0o644, b"", None);
        }
        Hostile::Setuid => {
            b.raw(&name, EntryType::Regular, 0o4755, b"#!/bin/sh\n", None);
        }
        Hostile::Setgid => {
            b.raw(&name, EntryType::Regular, 0o2755, b"#!/bin/sh\n", None);
        }
        Hostile::WriteThroughSymlink => {
            // `lib` -> `bin` is harmless on its own; writing `lib/evil` goes through it.
            b.raw(
                &format!("{top}/lib"),
                EntryType::Symlink,
                0o777,
                b"",
                Some("bin"),
            );
            b.raw(&name, EntryType::Regular, 0o644, b"evil", None);
        }
    }
    b.finish()
}

/// A tiny archive whose content inflates to `size` bytes of zeros.
pub fn gzip_bomb(version: &str, size: u64) -> Vec<u8> {
    let mut b = TarballBuilder::new(version).standard();
    let mut header = Header::new_gnu();
    header.set_entry_type(EntryType::Regular);
    header.set_mode(0o644);
    header.set_size(size);
    let name = format!("{}/share/java/ksqldb/zeros.jar", b.top());
    b.tar
        .append_data(
            &mut header,
            name,
            std::io::Read::take(std::io::repeat(0), size),
        )
        .expect("append zeros");
    b.finish()
}
