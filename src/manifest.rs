//! The release manifest (`layout::MANIFEST`): what install verified about a release. A
//! later run with the same inputs trusts it instead of downloading and hashing again.

use std::path::Path;

use anyhow::Result;
use toml_edit::DocumentMut;

use crate::fsutil;
use crate::layout;

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
