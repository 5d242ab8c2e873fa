//! The download cache (`<state_dir>/cache/`): where a URL's download lives, its
//! partial file and the sidecar that lets it resume, and forgetting all three.

use std::fs;
use std::path::{Path, PathBuf};

use reqwest::header::{self, HeaderMap};
use sha2::{Digest, Sha256};

/// Where a URL's download lives in the cache: a short hash of the URL keeps two
/// versions (or two hosts) with the same file name apart.
pub(super) fn cache_path(cache_dir: &Path, url: &str) -> PathBuf {
    let digest = hex::encode(&Sha256::digest(url.as_bytes())[..6]);
    let base = url
        .split(['?', '#'])
        .next()
        .unwrap_or(url)
        .rsplit('/')
        .find(|s| !s.is_empty() && !s.bytes().all(|b| b == b'.'))
        .unwrap_or("download");
    let base: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_+".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    cache_dir.join(format!("{digest}-{base}"))
}

pub(super) fn part_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".part");
    PathBuf::from(p)
}

pub(super) fn meta_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".part.meta");
    PathBuf::from(p)
}

/// What the server said about the partial file's content: sent back as `If-Range`, so a
/// changed file is sent whole (200) instead of a mismatched tail.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Validator {
    pub(super) url: String,
    etag: Option<String>,
    last_modified: Option<String>,
}

impl Validator {
    pub(super) fn from_headers(url: &str, headers: &HeaderMap) -> Validator {
        let get = |name: header::HeaderName| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        Validator {
            url: url.to_string(),
            // A weak ETag may not be used in If-Range (RFC 9110 13.1.5).
            etag: get(header::ETAG).filter(|e| !e.starts_with("W/")),
            last_modified: get(header::LAST_MODIFIED),
        }
    }

    pub(super) fn if_range(&self) -> Option<&str> {
        self.etag.as_deref().or(self.last_modified.as_deref())
    }

    pub(super) fn render(&self) -> String {
        let mut s = format!("url {}\n", self.url);
        if let Some(e) = &self.etag {
            s.push_str(&format!("etag {e}\n"));
        }
        if let Some(l) = &self.last_modified {
            s.push_str(&format!("last-modified {l}\n"));
        }
        s
    }

    pub(super) fn parse(text: &str) -> Validator {
        let mut v = Validator::default();
        for line in text.lines() {
            match line.split_once(' ') {
                Some(("url", u)) => v.url = u.to_string(),
                Some(("etag", e)) => v.etag = Some(e.to_string()),
                Some(("last-modified", l)) => v.last_modified = Some(l.to_string()),
                _ => {}
            }
        }
        v
    }
}

/// Remove a cached download, its partial file and sidecar.
pub(super) fn discard(path: &Path) {
    for p in [path.to_path_buf(), part_path(path), meta_path(path)] {
        match fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!("cannot remove {}: {e}", p.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_names_differ_per_url_and_keep_the_file_name() {
        let dir = Path::new("/c");
        let a = cache_path(dir, "https://h/a/confluent-ksqldb-0.29.0.tar.gz");
        let b = cache_path(dir, "https://h/b/confluent-ksqldb-0.29.0.tar.gz");
        assert_ne!(a, b);
        assert!(a
            .to_string_lossy()
            .ends_with("-confluent-ksqldb-0.29.0.tar.gz"));
        let q = cache_path(dir, "https://h/x/../?a=b");
        assert!(!q.to_string_lossy().contains(".."), "{}", q.display());
    }

    #[test]
    fn validator_round_trips_and_prefers_strong_etag() {
        let mut h = HeaderMap::new();
        h.insert(header::ETAG, "\"abc\"".parse().unwrap());
        h.insert(
            header::LAST_MODIFIED,
            "Tue, 01 Jul 2025 10:00:00 GMT".parse().unwrap(),
        );
        let v = Validator::from_headers("http://x/y", &h);
        assert_eq!(v.if_range(), Some("\"abc\""));
        assert_eq!(Validator::parse(&v.render()), v);
        h.insert(header::ETAG, "W/\"weak\"".parse().unwrap());
        let v = Validator::from_headers("http://x/y", &h);
        assert_eq!(v.if_range(), Some("Tue, 01 Jul 2025 10:00:00 GMT"));
    }
}
