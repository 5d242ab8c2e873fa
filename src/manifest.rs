//! The release manifest (`layout::MANIFEST`): what install verified about a release. A
//! later run with the same inputs trusts it instead of downloading and hashing again.

use std::path::Path;

use anyhow::Result;
use toml_edit::DocumentMut;

use crate::fsutil;
use crate::layout;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub version: String,
    pub archive_url: String,
    pub archive_sha256: String,
    pub signature_url: String,
    /// Primary fingerprint of the certificate that signed the archive.
    pub signer: String,
    /// The (sub)key that made the signature.
    pub signing_key: String,
    pub jar_url: String,
    pub jar_sha256: String,
    /// The jar's file name in `layout::JAR_DIR`.
    pub jar_file: String,
}

const FIELDS: &[&str] = &[
    "version",
    "archive_url",
    "archive_sha256",
    "signature_url",
    "signer",
    "signing_key",
    "jar_url",
    "jar_sha256",
    "jar_file",
];

impl Manifest {
    fn values(&self) -> [&str; 9] {
        [
            &self.version,
            &self.archive_url,
            &self.archive_sha256,
            &self.signature_url,
            &self.signer,
            &self.signing_key,
            &self.jar_url,
            &self.jar_sha256,
            &self.jar_file,
        ]
    }

    pub fn to_toml(&self) -> String {
        let mut doc = DocumentMut::new();
        doc.decor_mut().set_prefix(
            "# Written by ksql-msk install: what was verified about this release. Do not edit.\n",
        );
        for (k, v) in FIELDS.iter().zip(self.values()) {
            doc[*k] = toml_edit::value(v);
        }
        doc.to_string()
    }

    pub fn parse(text: &str) -> Option<Manifest> {
        let doc: DocumentMut = text.parse().ok()?;
        let get = |k: &str| doc.get(k).and_then(|v| v.as_str()).map(str::to_string);
        Some(Manifest {
            version: get("version")?,
            archive_url: get("archive_url")?,
            archive_sha256: get("archive_sha256")?,
            signature_url: get("signature_url")?,
            signer: get("signer")?,
            signing_key: get("signing_key")?,
            jar_url: get("jar_url")?,
            jar_sha256: get("jar_sha256")?,
            jar_file: get("jar_file")?,
        })
    }

    /// The manifest of the release in `release_dir`, if it has a readable one.
    pub fn load(release_dir: &Path) -> Option<Manifest> {
        let text = std::fs::read_to_string(release_dir.join(layout::MANIFEST)).ok()?;
        Manifest::parse(&text)
    }

    pub fn save(&self, release_dir: &Path) -> Result<()> {
        fsutil::write_atomic(
            &release_dir.join(layout::MANIFEST),
            self.to_toml().as_bytes(),
            0o644,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let m = Manifest {
            version: "0.29.0".into(),
            archive_url: "http://h/a.tar.gz".into(),
            archive_sha256: "00".into(),
            signature_url: "http://h/a.tar.gz.asc".into(),
            signer: "AB".into(),
            signing_key: "CD".into(),
            jar_url: "http://h/j.jar".into(),
            jar_sha256: "11".into(),
            jar_file: "j.jar".into(),
        };
        assert_eq!(Manifest::parse(&m.to_toml()), Some(m));
        assert_eq!(Manifest::parse("version = \"1\""), None);
    }
}
