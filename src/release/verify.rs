//! Integrity of what was downloaded: the ksqlDB archive by a detached OpenPGP signature
//! from a pinned (or trusted-on-first-use) key, the IAM auth jar by SHA-256.
//!
//! The archive's data is not read here: [`SignatureCheck::verify_reader`] hashes whatever
//! reader it is given, so the unpacker can feed it the same bytes it extracts.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use openpgp::cert::prelude::*;
use openpgp::parse::stream::{
    DetachedVerifierBuilder, GoodChecksum, MessageLayer, MessageStructure, VerificationError,
    VerificationHelper,
};
use openpgp::parse::Parse;
use openpgp::policy::StandardPolicy;
use openpgp::types::RevocationStatus;
use openpgp::{Cert, Fingerprint, KeyHandle};
use sequoia_openpgp as openpgp;
use sha2::{Digest, Sha256};
use toml_edit::{DocumentMut, Item, Table};

use crate::config::{self, ConfigUrl, Sha256Digest};
use crate::exit::{fail, ExitCode};
use crate::host;

/// Who signed the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    /// The certificate's primary key fingerprint (upper-case hex).
    pub primary: String,
    /// The key that made the signature (the primary or a signing subkey).
    pub key: String,
}

/// Which signers are acceptable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignerTrust {
    /// `ksqldb.trusted_fingerprints`: primary or signing-subkey fingerprints.
    Pinned(Vec<config::Fingerprint>),
    /// Nothing pinned: the signer recorded on first use, if any.
    FirstUse(Option<config::Fingerprint>),
}

impl SignerTrust {
    pub fn accepts(&self, signer: &Signer) -> bool {
        let is = |f: &config::Fingerprint| f.as_str() == signer.primary || f.as_str() == signer.key;
        match self {
            SignerTrust::Pinned(fps) => fps.iter().any(is),
            SignerTrust::FirstUse(Some(fp)) => is(fp),
            SignerTrust::FirstUse(None) => true,
        }
    }
}

/// A detached signature and the key(s) it may be checked against.
pub struct SignatureCheck {
    certs: Vec<Cert>,
    signature: Vec<u8>,
    signature_url: ConfigUrl,
    trust: SignerTrust,
}

impl SignatureCheck {
    /// `key` is the key file's content (armored or binary, one or more certificates).
    pub fn new(
        key: &[u8],
        key_origin: &str,
        signature: Vec<u8>,
        signature_url: &ConfigUrl,
        trust: SignerTrust,
    ) -> Result<SignatureCheck> {
        let certs: Vec<Cert> = CertParser::from_bytes(key)
            .and_then(|parser| parser.collect::<openpgp::Result<Vec<Cert>>>())
            .map_err(|e| {
                fail(
                    ExitCode::Data,
                    format!("signing key {key_origin} is not an OpenPGP key: {e}"),
                )
            })?;
        if certs.is_empty() {
            return Err(fail(
                ExitCode::Data,
                format!("signing key {key_origin} holds no OpenPGP certificate"),
            ));
        }
        if signature.iter().all(|b| b.is_ascii_whitespace()) {
            return Err(fail(
                ExitCode::Data,
                format!("signature {signature_url} is empty: refusing an unsigned archive"),
            ));
        }
        Ok(SignatureCheck {
            certs,
            signature,
            signature_url: signature_url.clone(),
            trust,
        })
    }

    /// Hash `data` to its end and check the signature over it. Errors exit 65 and say
    /// what was wrong (bad signature, unknown, untrusted, expired or revoked key).
    pub fn verify_reader<R: Read + Send + Sync>(&self, data: R) -> Result<Signer> {
        let policy = StandardPolicy::new();
        let helper = Helper {
            certs: &self.certs,
            policy: &policy,
            trust: &self.trust,
            signer: None,
        };
        let mut verifier = DetachedVerifierBuilder::from_bytes(&self.signature)
            .and_then(|b| b.with_policy(&policy, None, helper))
            .map_err(|e| {
                fail(
                    ExitCode::Data,
                    format!(
                        "signature {} is not a valid OpenPGP signature (truncated or corrupt?): {e}",
                        self.signature_url
                    ),
                )
            })?;
        match verifier.verify_reader(data) {
            Ok(()) => {}
            Err(e) if e.downcast_ref::<crate::exit::Coded>().is_some() => return Err(e),
            Err(e) if e.chain().any(|c| c.is::<std::io::Error>()) => {
                return Err(e.context("reading the archive for verification"))
            }
            Err(e) => {
                return Err(fail(
                    ExitCode::Data,
                    format!("checking signature {}: {e}", self.signature_url),
                ))
            }
        }
        verifier.into_helper().signer.ok_or_else(|| {
            fail(
                ExitCode::Data,
                format!("signature {}: no good signature", self.signature_url),
            )
        })
    }
}

struct Helper<'a> {
    certs: &'a [Cert],
    policy: &'a StandardPolicy<'a>,
    trust: &'a SignerTrust,
    signer: Option<Signer>,
}

impl Helper<'_> {
    /// The signing key must be usable now, not only when it signed: an expired or
    /// revoked key is refused even for old signatures.
    fn valid_now(&self, cert: &Cert, key: &Fingerprint) -> std::result::Result<(), String> {
        let fp = cert.fingerprint().to_hex();
        let vc = cert
            .with_policy(self.policy, None)
            .map_err(|e| format!("key {fp} is not valid now: {e}"))?;
        if let RevocationStatus::Revoked(_) = vc.revocation_status() {
            return Err(format!("key {fp} is revoked"));
        }
        vc.alive()
            .map_err(|e| format!("key {fp} has expired: {e}"))?;
        let ka = vc.keys().key_handle(key.clone()).next().ok_or_else(|| {
            format!("signing key {key} of {fp} is not valid now (expired or unbound)")
        })?;
        if let RevocationStatus::Revoked(_) = ka.revocation_status() {
            return Err(format!("signing key {key} of {fp} is revoked"));
        }
        ka.alive()
            .map_err(|e| format!("signing key {key} of {fp} has expired: {e}"))?;
        if !ka.for_signing() {
            return Err(format!("key {key} of {fp} is not a signing key"));
        }
        Ok(())
    }
}

fn describe(e: &VerificationError) -> String {
    match e {
        VerificationError::MissingKey { sig } => {
            let issuers: Vec<String> = sig.get_issuers().iter().map(|i| i.to_hex()).collect();
            format!(
                "signed by key {} which is not in the signing key file (wrong key?)",
                issuers.join(", ")
            )
        }
        VerificationError::BadSignature { ka, error, .. } => {
            let fp = ka.cert().fingerprint().to_hex();
            match error.downcast_ref::<openpgp::Error>() {
                Some(openpgp::Error::PolicyViolation(what, _)) => format!(
                    "signature by key {fp} refused by policy: {what} is not accepted as secure \
                     (ask for a signature with SHA-256 or better); the archive was not checked"
                ),
                Some(openpgp::Error::NotYetLive(t)) => format!(
                    "signature by key {fp} is dated in the future ({}): check this host's clock \
                     (chronyd) or the signer's",
                    humantime::format_rfc3339_seconds(*t)
                ),
                Some(openpgp::Error::Expired(t)) => format!(
                    "signature by key {fp} expired on {}",
                    humantime::format_rfc3339_seconds(*t)
                ),
                _ => format!(
                    "bad signature by key {fp}: the archive does not match its signature (tampered, truncated or wrong file)"
                ),
            }
        }
        VerificationError::BadKey { ka, error, .. } => format!(
            "signing key {} cannot be used (expired or revoked?): {error}",
            ka.cert().fingerprint().to_hex()
        ),
        VerificationError::UnboundKey { cert, error, .. } => format!(
            "signing key of {} is not bound to it: {error}",
            cert.fingerprint().to_hex()
        ),
        other => other.to_string(),
    }
}

impl VerificationHelper for Helper<'_> {
    fn get_certs(&mut self, _ids: &[KeyHandle]) -> openpgp::Result<Vec<Cert>> {
        Ok(self.certs.to_vec())
    }

    fn check(&mut self, structure: MessageStructure) -> openpgp::Result<()> {
        let mut problems = Vec::new();
        for layer in structure.into_iter() {
            let MessageLayer::SignatureGroup { results } = layer else {
                continue;
            };
            for result in results {
                match result {
                    Ok(GoodChecksum { ka, .. }) => {
                        let signer = Signer {
                            primary: ka.cert().fingerprint().to_hex(),
                            key: ka.key().fingerprint().to_hex(),
                        };
                        if let Err(p) = self.valid_now(ka.cert(), &ka.key().fingerprint()) {
                            problems.push(p);
                            continue;
                        }
                        if !self.trust.accepts(&signer) {
                            problems.push(match self.trust {
                                SignerTrust::Pinned(_) => format!(
                                    "good signature, but by key {} which is not in ksqldb.trusted_fingerprints",
                                    signer.primary
                                ),
                                SignerTrust::FirstUse(Some(seen)) => format!(
                                    "signed by key {} but key {seen} was trusted on first use (trust.toml): refusing a changed signing key; pin the new key in ksqldb.trusted_fingerprints if the change is genuine",
                                    signer.primary
                                ),
                                SignerTrust::FirstUse(None) => unreachable!("first use accepts any"),
                            });
                            continue;
                        }
                        self.signer = Some(signer);
                        return Ok(());
                    }
                    Err(e) => problems.push(describe(&e)),
                }
            }
        }
        let msg = match problems.len() {
            0 => "the signature file holds no signature".to_string(),
            _ => problems.join("; "),
        };
        Err(fail(ExitCode::Data, msg))
    }
}

// ---------------------------------------------------------------------------
// The jar

/// SHA-256 of a file (streamed; files may be large).
pub fn sha256_file(path: &Path) -> Result<Sha256Digest> {
    let (dir, name) = host::Dir::parent_of(path)?;
    let (file, _) = host::open_state_file(&dir, name, host::StateFile::Jar)?
        .ok_or_else(|| fail(ExitCode::Data, format!("{}: missing", path.display())))?;
    sha256_of(file.take(host::StateFile::Jar.limit()), path)
}

/// SHA-256 of what `reader` (the open file `path`) yields, streamed in 1 MiB reads.
pub fn sha256_of(mut reader: impl Read, path: &Path) -> Result<Sha256Digest> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(Sha256Digest(hasher.finalize().into()))
}

/// The hash in a published `.sha256` file: hex, possibly followed by a file name.
pub fn parse_sha256_file(text: &str) -> Option<Sha256Digest> {
    Sha256Digest::from_hex(text.split_whitespace().next()?).ok()
}

/// Refuse a jar whose hash is not `expected`; `origin` says where the expectation came from.
pub fn check_jar(
    path: &Path,
    url: &ConfigUrl,
    actual: &Sha256Digest,
    expected: &Sha256Digest,
    origin: &str,
) -> Result<()> {
    if actual != expected {
        return Err(fail(
            ExitCode::Data,
            format!(
                "{url}: SHA-256 is {actual}, expected {expected} ({origin}); refusing the jar ({})",
                path.display()
            ),
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Trust on first use

pub const TRUST_FILE: &str = "trust.toml";
/// trust.toml's table of exporter jar hashes trusted on first use, by redacted URL.
const EXPORTER_TABLE: &str = "exporter_sha256";

/// A hash the jar must have, and where that expectation comes from (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedHash {
    pub sha256: Sha256Digest,
    pub origin: String,
}

/// The jar accepted on first use, said where an operator sees it.
pub fn warn_first_use_jar(url: &str, sha: &str) {
    tracing::warn!(
        "TRUST ON FIRST USE: accepted the aws-msk-iam-auth jar {url} with SHA-256 {sha} because iam_auth.sha256 is empty. \
         Pin it in the config to make it strict: [iam_auth] sha256 = \"{sha}\""
    );
}

/// What was trusted on first use, kept in `<state_dir>/trust.toml`.
#[derive(Debug, Clone)]
pub struct TrustStore {
    path: PathBuf,
    doc: DocumentMut,
}

impl TrustStore {
    pub fn load(state_dir: &Path) -> Result<TrustStore> {
        let path = state_dir.join(TRUST_FILE);
        // The service user can write the state directory: read as a state file (no
        // link followed, no FIFO waited on, bounded), never as root's own file.
        let text = host::read_state_text(&path, host::StateFile::Trust)?;
        let doc = match text {
            Some(text) => text.parse::<DocumentMut>().map_err(|e| {
                fail(
                    ExitCode::Data,
                    format!(
                        "{}: not valid TOML ({}); fix or remove it",
                        path.display(),
                        e.message()
                    ),
                )
            })?,
            None => {
                let mut doc = DocumentMut::new();
                doc.decor_mut().set_prefix(
                    "# Written by ksql-msk: what was trusted on first use because the config pins\n\
                     # nothing. Pin these values in the config to make them strict.\n",
                );
                doc
            }
        };
        check_recorded(&path, &doc)?;
        Ok(TrustStore { path, doc })
    }

    #[cfg(test)]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The ksqlDB archive signer recorded on first use (checked by [`TrustStore::load`]).
    pub fn signer(&self) -> Option<config::Fingerprint> {
        self.doc
            .get("ksqldb")
            .and_then(|t| t.get("signer"))
            .and_then(|v| v.as_str())
            .and_then(|s| config::Fingerprint::parse(s).ok())
    }

    /// The jar hash recorded on first use for this (redacted) URL (checked by
    /// [`TrustStore::load`]).
    pub fn jar_sha256(&self, url: &str) -> Option<Sha256Digest> {
        self.doc
            .get("iam_auth_sha256")
            .and_then(|t| t.get(url))
            .and_then(|v| v.as_str())
            .and_then(|s| Sha256Digest::from_hex(s).ok())
    }

    fn table(&mut self, name: &str) -> &mut Table {
        if !self.doc.contains_table(name) {
            self.doc.insert(name, Item::Table(Table::new()));
        }
        self.doc[name]
            .as_table_mut()
            .expect("inserted as a table above")
    }

    pub fn set_signer(&mut self, fp: &str) {
        self.table("ksqldb")["signer"] = toml_edit::value(fp);
    }

    pub fn set_jar_sha256(&mut self, url: &str, sha: &str) {
        self.table("iam_auth_sha256")[url] = toml_edit::value(sha);
    }

    /// The trust rule for the archive's signer: the pinned fingerprints
    /// (`ksqldb.trusted_fingerprints`), else the signer recorded on first use, else anyone
    /// (who is then recorded).
    pub fn signer_trust(&self, pinned: &[config::Fingerprint]) -> SignerTrust {
        if pinned.is_empty() {
            SignerTrust::FirstUse(self.signer())
        } else {
            SignerTrust::Pinned(pinned.to_vec())
        }
    }

    /// The jar's expected hash: the pinned one (`iam_auth.sha256`), else the one recorded
    /// on first use for `url` (by its redacted form, as recorded); `None` means trust on
    /// first use of the published hash.
    pub fn expected_jar(
        &self,
        pinned: Option<&Sha256Digest>,
        url: &ConfigUrl,
    ) -> Option<ExpectedHash> {
        expected(pinned, "iam_auth.sha256", || {
            self.jar_sha256(&url.redacted())
        })
    }

    /// Record what an install accepted on first use (a signer, a jar URL in its redacted
    /// form, as the manifest holds it, and hash), and say so loudly: from now on a different one is refused.
    pub fn record_first_use(
        &mut self,
        signer: Option<&str>,
        jar: Option<(&str, &str)>,
    ) -> Result<()> {
        if let Some(fp) = signer {
            self.set_signer(fp);
        }
        if let Some((url, sha)) = jar {
            self.set_jar_sha256(url, sha);
        }
        if signer.is_none() && jar.is_none() {
            return Ok(());
        }
        self.save()?;
        if let Some(fp) = signer {
            tracing::warn!(
                "TRUST ON FIRST USE: accepted ksqlDB archive signing key {fp} because ksqldb.trusted_fingerprints is empty; \
                 recorded in {} and a different key will be refused. Pin it in the config to make it strict: \
                 [ksqldb] trusted_fingerprints = [\"{fp}\"]",
                self.path.display(),
            );
        }
        if let Some((url, sha)) = jar {
            warn_first_use_jar(url, sha);
        }
        Ok(())
    }

    /// The exporter jar's hash recorded on first use for this (redacted) URL.
    pub fn exporter_sha256(&self, url: &str) -> Option<Sha256Digest> {
        self.doc
            .get(EXPORTER_TABLE)
            .and_then(|t| t.get(url))
            .and_then(|v| v.as_str())
            .and_then(|s| Sha256Digest::from_hex(s).ok())
    }

    /// The exporter jar's expected hash: the pin (`metrics.exporter_sha256`), else the
    /// one recorded on first use for `url`; `None`: trust on first use.
    pub fn expected_exporter(
        &self,
        pinned: Option<&Sha256Digest>,
        url: &ConfigUrl,
    ) -> Option<ExpectedHash> {
        expected(pinned, "metrics.exporter_sha256", || {
            self.exporter_sha256(&url.redacted())
        })
    }

    /// Record the exporter jar accepted on first use (its redacted URL and hash), and
    /// say so loudly: a different one is refused from now on.
    pub fn record_exporter_first_use(&mut self, url: &str, sha: &str) -> Result<()> {
        self.table(EXPORTER_TABLE)[url] = toml_edit::value(sha);
        self.save()?;
        tracing::warn!(
            "TRUST ON FIRST USE: accepted the Prometheus JMX exporter jar {url} with SHA-256 {sha} because metrics.exporter_sha256 is empty; \
             recorded in {} and a different jar will be refused. Pin it in the config to make it strict: [metrics] exporter_sha256 = \"{sha}\"",
            self.path.display()
        );
        Ok(())
    }

    pub fn save(&self) -> Result<()> {
        host::write_atomic(&self.path, self.doc.to_string().as_bytes(), 0o644)
    }
}

/// What trust.toml records must be a fingerprint and SHA-256 hashes: a value that is not
/// (or not a string) would otherwise read as "nothing recorded", and first use again.
fn check_recorded(path: &Path, doc: &DocumentMut) -> Result<()> {
    let bad = |key: String, problem: String| {
        fail(
            ExitCode::Data,
            format!("{}: {key}: {problem}; fix or remove it", path.display()),
        )
    };
    if let Some(v) = doc.get("ksqldb").and_then(|t| t.get("signer")) {
        let text = v.as_str().unwrap_or_default();
        config::Fingerprint::parse(text).map_err(|e| bad("ksqldb.signer".into(), e))?;
    }
    for name in ["iam_auth_sha256", EXPORTER_TABLE] {
        let Some(item) = doc.get(name) else { continue };
        let table = item
            .as_table_like()
            .ok_or_else(|| bad(name.into(), "is not a table".into()))?;
        for (url, v) in table.iter() {
            let text = v.as_str().unwrap_or_default();
            Sha256Digest::from_hex(text).map_err(|e| bad(format!("{name}.{url:?}"), e))?;
        }
    }
    Ok(())
}

/// A jar's expected hash: the pin named `key`, else what `recorded` finds in the trust
/// record; `None`: trust on first use.
fn expected(
    pinned: Option<&Sha256Digest>,
    key: &str,
    recorded: impl FnOnce() -> Option<Sha256Digest>,
) -> Option<ExpectedHash> {
    match pinned {
        Some(h) => Some(ExpectedHash {
            sha256: *h,
            origin: key.into(),
        }),
        None => recorded().map(|h| ExpectedHash {
            sha256: h,
            origin: "recorded on first use in trust.toml".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_file_format() {
        let h = "A".repeat(64);
        let lower = Sha256Digest::from_hex(&"a".repeat(64)).ok();
        assert_eq!(
            parse_sha256_file(&format!("{h}  aws-msk-iam-auth-1.1.1-all.jar\n")),
            lower
        );
        assert_eq!(parse_sha256_file(&format!("{h}\n")), lower);
        assert_eq!(parse_sha256_file("<html>not found</html>"), None);
        assert_eq!(parse_sha256_file(""), None);
    }

    #[test]
    fn trust_store_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = TrustStore::load(dir.path()).unwrap();
        assert_eq!(t.signer(), None);
        let (fp, sha) = ("ABCD".repeat(10), "00ff".repeat(16));
        t.set_signer(&fp);
        t.set_jar_sha256("http://***@h/a.jar", &sha);
        t.save().unwrap();
        let t = TrustStore::load(dir.path()).unwrap();
        assert_eq!(t.signer(), config::Fingerprint::parse(&fp).ok());
        assert_eq!(
            t.jar_sha256("http://***@h/a.jar"),
            Sha256Digest::from_hex(&sha).ok()
        );
        assert_eq!(t.jar_sha256("http://h/b.jar"), None);
        let text = std::fs::read_to_string(t.path()).unwrap();
        assert!(text.starts_with("# Written by ksql-msk"), "{text}");
    }

    #[test]
    fn pinned_accepts_primary_or_subkey() {
        let fp = |c: &str| config::Fingerprint::parse(&c.repeat(40)).unwrap();
        let s = Signer {
            primary: "A".repeat(40),
            key: "B".repeat(40),
        };
        assert!(SignerTrust::Pinned(vec![fp("B")]).accepts(&s));
        assert!(SignerTrust::Pinned(vec![fp("a")]).accepts(&s));
        assert!(!SignerTrust::Pinned(vec![fp("C")]).accepts(&s));
        assert!(SignerTrust::FirstUse(None).accepts(&s));
        assert!(SignerTrust::FirstUse(Some(fp("A"))).accepts(&s));
        assert!(!SignerTrust::FirstUse(Some(fp("C"))).accepts(&s));
    }

    /// A recorded value that is not a fingerprint or hash (or not a string) used to read
    /// as nothing recorded: trust on first use again.
    #[test]
    fn trust_store_refuses_what_is_not_a_fingerprint_or_hash() {
        for (text, key) in [
            ("[ksqldb]\nsigner = 5\n", "ksqldb.signer"),
            ("[ksqldb]\nsigner = \"ABCD\"\n", "ksqldb.signer"),
            (
                "[iam_auth_sha256]\n\"http://h/a.jar\" = \"00ff\"\n",
                "iam_auth_sha256.\"http://h/a.jar\"",
            ),
            (
                "[iam_auth_sha256]\n\"http://h/a.jar\" = true\n",
                "iam_auth_sha256.\"http://h/a.jar\"",
            ),
            ("iam_auth_sha256 = 3\n", "iam_auth_sha256"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join(TRUST_FILE), text).unwrap();
            let e = TrustStore::load(dir.path()).unwrap_err();
            assert_eq!(crate::exit::exit_code_of(&e), ExitCode::Data, "{text}");
            let line = crate::exit::one_line(&e);
            assert!(
                line.contains("trust.toml: ")
                    && line.contains(key)
                    && line.contains("fix or remove it"),
                "{text}: {line}"
            );
        }
    }
}
