//! OpenPGP keys and detached signatures for tests: sequoia-made keys (Ed25519/Cv25519,
//! fast) and GnuPG-made ones (RSA 4096, like Confluent's), both exported as the agent
//! would download them.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use openpgp::cert::prelude::*;
use openpgp::packet::signature::SignatureBuilder;
use openpgp::policy::StandardPolicy;
use openpgp::serialize::stream::{Armorer, Message, Signer};
use openpgp::serialize::SerializeInto;
use openpgp::types::{ReasonForRevocation, SignatureType};
use sequoia_openpgp as openpgp;

/// A sequoia-made key with a signing subkey.
pub struct TestKey {
    pub cert: Cert,
    /// When signatures are made (past for the "expired key" case).
    pub sign_time: SystemTime,
}

impl TestKey {
    /// A fresh Cv25519 key, valid now, with a signing subkey.
    pub fn generate(uid: &str) -> TestKey {
        let (cert, _) = CertBuilder::general_purpose(Some(uid))
            .set_cipher_suite(CipherSuite::Cv25519)
            .generate()
            .expect("generate key");
        TestKey {
            cert,
            sign_time: SystemTime::now(),
        }
    }

    /// A key created two days ago that expired one day ago; it signs as of 36 hours ago,
    /// while it was still valid.
    pub fn generate_expired(uid: &str) -> TestKey {
        let now = SystemTime::now();
        let created = now - Duration::from_secs(2 * 86400);
        let (cert, _) = CertBuilder::general_purpose(Some(uid))
            .set_cipher_suite(CipherSuite::Cv25519)
            .set_creation_time(created)
            .set_validity_period(Duration::from_secs(86400))
            .generate()
            .expect("generate key");
        TestKey {
            cert,
            sign_time: now - Duration::from_secs(36 * 3600),
        }
    }

    /// Primary key fingerprint, upper-case hex.
    pub fn fingerprint(&self) -> String {
        self.cert.fingerprint().to_hex()
    }

    /// The signing subkey's fingerprint.
    pub fn signing_subkey(&self) -> String {
        let p = StandardPolicy::new();
        self.cert
            .keys()
            .subkeys()
            .with_policy(&p, self.sign_time)
            .for_signing()
            .next()
            .expect("signing subkey")
            .key()
            .fingerprint()
            .to_hex()
    }

    /// The public key, ASCII-armored (what `archive.key` holds).
    pub fn public_armored(&self) -> Vec<u8> {
        self.cert.armored().to_vec().expect("armor")
    }

    /// The public key, binary (as `gpg --export` writes it).
    pub fn cert_binary(&self) -> Vec<u8> {
        self.cert.to_vec().expect("serialize")
    }

    /// The public key with a hard revocation attached.
    pub fn revoked_public_armored(&self) -> Vec<u8> {
        let mut primary = self
            .cert
            .primary_key()
            .key()
            .clone()
            .parts_into_secret()
            .expect("secret primary")
            .into_keypair()
            .expect("keypair");
        let rev = self
            .cert
            .revoke(&mut primary, ReasonForRevocation::KeyCompromised, b"test")
            .expect("revoke");
        let (cert, _) = self
            .cert
            .clone()
            .insert_packets(rev)
            .expect("insert revocation");
        let armored = cert.armored().to_vec().expect("armor");
        armored
    }

    /// A detached signature over `data`, armored or binary.
    pub fn sign(&self, data: &[u8], armored: bool) -> Vec<u8> {
        self.sign_with(data, armored, None, self.sign_time)
    }

    /// [`TestKey::sign`] with another hash algorithm (e.g. SHA-1, which policy rejects)
    /// or creation time (e.g. in the future).
    pub fn sign_with(
        &self,
        data: &[u8],
        armored: bool,
        hash: Option<openpgp::types::HashAlgorithm>,
        created: std::time::SystemTime,
    ) -> Vec<u8> {
        let p = StandardPolicy::new();
        let keypair = self
            .cert
            .keys()
            .with_policy(&p, self.sign_time)
            .secret()
            .for_signing()
            .next()
            .expect("signing key")
            .key()
            .clone()
            .into_keypair()
            .expect("keypair");
        let mut out = Vec::new();
        {
            let mut message = Message::new(&mut out);
            if armored {
                message = Armorer::new(message)
                    .kind(openpgp::armor::Kind::Signature)
                    .build()
                    .expect("armorer");
            }
            let mut signer = Signer::with_template(
                message,
                keypair,
                SignatureBuilder::new(SignatureType::Binary),
            )
            .expect("signer")
            .detached()
            .creation_time(created);
            if let Some(h) = hash {
                signer = signer.hash_algo(h).expect("hash algorithm");
            }
            let mut signer = signer.build().expect("build signer");
            signer.write_all(data).expect("sign");
            signer.finalize().expect("finalize");
        }
        out
    }
}

/// A GnuPG-made key in its own temporary GNUPGHOME.
pub struct GpgKey {
    pub home: tempfile::TempDir,
    pub fingerprint: String,
}

/// Is a `gpg` binary on PATH? (`tests/setup-host` installs gnupg.)
pub fn have_gpg() -> bool {
    Command::new("gpg")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

impl GpgKey {
    /// `gpg --quick-gen-key` with `algo` (e.g. "rsa4096", "ed25519"), signing only.
    pub fn generate(uid: &str, algo: &str) -> GpgKey {
        let home = tempfile::tempdir().expect("gnupg home");
        let out = gpg(
            home.path(),
            &[
                "--passphrase",
                "",
                "--quick-gen-key",
                uid,
                algo,
                "sign",
                "never",
            ],
            None,
        );
        assert!(
            out.status.success(),
            "gpg --quick-gen-key: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let list = gpg(home.path(), &["--with-colons", "--list-keys", uid], None);
        let text = String::from_utf8_lossy(&list.stdout);
        let fingerprint = text
            .lines()
            .find_map(|l| {
                l.strip_prefix("fpr:")
                    .map(|r| r.trim_matches(':').to_string())
            })
            .expect("fingerprint in gpg --list-keys");
        GpgKey { home, fingerprint }
    }

    pub fn public(&self, armored: bool) -> Vec<u8> {
        let mut args = vec!["--export"];
        if armored {
            args.insert(0, "--armor");
        }
        args.push(&self.fingerprint);
        let out = gpg(self.home.path(), &args, None);
        assert!(
            out.status.success() && !out.stdout.is_empty(),
            "gpg --export"
        );
        out.stdout
    }

    /// `gpg --detach-sign`, armored or binary, of `data`.
    pub fn sign(&self, data: &[u8], armored: bool) -> Vec<u8> {
        let mut args = vec!["--local-user", self.fingerprint.as_str(), "--detach-sign"];
        if armored {
            args.insert(0, "--armor");
        }
        let out = gpg(self.home.path(), &args, Some(data));
        assert!(
            out.status.success(),
            "gpg --detach-sign: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }
}

fn gpg(home: &Path, args: &[&str], stdin: Option<&[u8]>) -> std::process::Output {
    let mut cmd = Command::new("gpg");
    cmd.env("GNUPGHOME", home)
        .args([
            "--batch",
            "--quiet",
            "--no-tty",
            "--pinentry-mode",
            "loopback",
        ])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("run gpg");
    if let Some(mut input) = child.stdin.take() {
        if let Some(data) = stdin {
            input.write_all(data).expect("gpg stdin");
        }
    }
    child.wait_with_output().expect("gpg output")
}
