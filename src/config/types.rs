//! Values that cross module boundaries, as types rather than `String`s: a configured
//! URL that cannot be shown with its credentials, a SHA-256 digest and an OpenPGP
//! fingerprint that are valid by construction.

use std::fmt;

use super::values::{check_http_url, normalize_fingerprint, redact_url};

/// A configured http(s) URL (artifact, key, health, MSK endpoint). `Display` and
/// `Debug` hide any `user:password@`, so every log line, error, STATUS and diff that
/// formats it is safe; the real text is only had from [`ConfigUrl::expose`], where the
/// request is made.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ConfigUrl(String);

impl ConfigUrl {
    /// An http or https URL with a host and no control characters.
    pub fn parse(text: &str) -> Result<ConfigUrl, String> {
        check_http_url(text)?;
        Ok(ConfigUrl(text.to_string()))
    }

    /// The URL as configured, credentials included: for the HTTP request only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL as shown and stored (manifest, trust.toml, cache names and sidecars):
    /// `user:password@` replaced by `***@`. Two URLs that differ only in their
    /// credentials have the same redacted form and count as the same input.
    pub fn redacted(&self) -> String {
        redact_url(&self.0)
    }

    /// This URL with `suffix` appended (`<jar>.sha256`).
    pub fn with_suffix(&self, suffix: &str) -> ConfigUrl {
        ConfigUrl(format!("{}{suffix}", self.0))
    }
}

impl fmt::Display for ConfigUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for ConfigUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConfigUrl({:?})", self.redacted())
    }
}

/// A SHA-256 digest (the IAM jar's pin); shown as lower-case hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha256Digest(pub [u8; 32]);

impl Sha256Digest {
    /// 64 hex digits, either case.
    pub fn from_hex(text: &str) -> Result<Sha256Digest, String> {
        let mut out = [0u8; 32];
        match hex::decode_to_slice(text, &mut out) {
            Ok(()) => Ok(Sha256Digest(out)),
            Err(_) => Err(format!("{text:?} is not a SHA-256 hash (64 hex digits)")),
        }
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Digest({})", self.to_hex())
    }
}

/// An OpenPGP fingerprint: upper-case hex, v4 (40 digits) or v6 (64), no spaces.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// Spaces and a `0x` prefix are dropped and case is folded, as people paste them.
    pub fn parse(text: &str) -> Result<Fingerprint, String> {
        normalize_fingerprint(text)
            .map(Fingerprint)
            .ok_or_else(|| format!("{text:?} is not an OpenPGP fingerprint (40 or 64 hex digits)"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_url_hides_credentials_when_shown_and_keeps_them_for_the_request() {
        let u = ConfigUrl::parse("https://user:s3cret@mirror.example/a/b.tar.gz").unwrap();
        assert_eq!(u.to_string(), "https://***@mirror.example/a/b.tar.gz");
        assert_eq!(
            format!("{u:?}"),
            "ConfigUrl(\"https://***@mirror.example/a/b.tar.gz\")"
        );
        assert!(!format!("{:?}", Some(&u)).contains("s3cret"));
        assert_eq!(u.expose(), "https://user:s3cret@mirror.example/a/b.tar.gz");
        assert_eq!(
            u.with_suffix(".sha256").expose(),
            "https://user:s3cret@mirror.example/a/b.tar.gz.sha256"
        );
        assert_eq!(
            u.with_suffix(".sha256").to_string(),
            "https://***@mirror.example/a/b.tar.gz.sha256"
        );
        let plain = ConfigUrl::parse("http://127.0.0.1:8088/healthcheck").unwrap();
        assert_eq!(plain.to_string(), "http://127.0.0.1:8088/healthcheck");
        assert_eq!(plain.redacted(), plain.expose());
    }

    #[test]
    fn config_url_equality_sees_the_credentials_the_redacted_form_does_not() {
        let a = ConfigUrl::parse("https://u:one@h/x").unwrap();
        let b = ConfigUrl::parse("https://u:two@h/x").unwrap();
        assert_ne!(a, b);
        assert_eq!(a.redacted(), b.redacted());
        assert_eq!(a, ConfigUrl::parse("https://u:one@h/x").unwrap());
    }

    #[test]
    fn config_url_refuses_what_is_not_http() {
        for bad in [
            "ftp://h/x",
            "file:///etc/x",
            "not a url",
            "http://h/x\nINFO forged",
            "https://u:p@h/\t",
        ] {
            let e = ConfigUrl::parse(bad).unwrap_err();
            assert!(!e.contains("u:p@"), "{e}");
        }
    }

    #[test]
    fn sha256_digest_parses_either_case_and_shows_lower_case() {
        let upper = "AB".repeat(32);
        let d = Sha256Digest::from_hex(&upper).unwrap();
        assert_eq!(d.to_string(), "ab".repeat(32));
        assert_eq!(d, Sha256Digest::from_hex(&"ab".repeat(32)).unwrap());
        assert_eq!(d.0, [0xab; 32]);
        for bad in ["", "ab", &"ab".repeat(33), &"zz".repeat(32)] {
            assert!(Sha256Digest::from_hex(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn fingerprint_is_normalised_and_validated() {
        let fp = Fingerprint::parse("0x1234 5678 9abc def0 1234 5678 9ABC DEF0 1234 5678").unwrap();
        assert_eq!(fp.as_str(), "123456789ABCDEF0123456789ABCDEF012345678");
        assert_eq!(
            fp,
            Fingerprint::parse("123456789abcdef0123456789abcdef012345678").unwrap()
        );
        assert_eq!(
            Fingerprint::parse(&"a".repeat(64)).unwrap().as_str().len(),
            64
        );
        for bad in ["", "1234", &"g".repeat(40), &"a".repeat(41)] {
            assert!(Fingerprint::parse(bad).is_err(), "{bad:?}");
        }
    }
}
