//! The growing-download primitive: how far a download has been written into its cache
//! file ([`Growth`]), and a reader that follows it while it grows ([`Follower`]).

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// How far a download has been written into its cache file, shared between the
/// downloader (async) and one [`Follower`] (a blocking thread).
#[derive(Clone, Default)]
pub struct Growth(Arc<(Mutex<GrowthState>, Condvar)>);

#[derive(Default)]
struct GrowthState {
    /// The file the bytes are in: the `.part` file while downloading, the cache file
    /// once complete. `None` between a restart and the new file's creation.
    file: Option<PathBuf>,
    /// Bumped whenever the download starts over from byte 0.
    generation: u32,
    /// Bytes of `file` that are written (not merely buffered).
    written: u64,
    /// The whole size, once the server said it.
    total: Option<u64>,
    /// Set when the download completed (`Ok`) or was given up (`Err`, one line).
    end: Option<std::result::Result<(), String>>,
    /// The generation the follower opened, once it did.
    followed: Option<u32>,
}

impl Growth {
    fn state(&self) -> MutexGuard<'_, GrowthState> {
        // A poisoned lock only means a panic elsewhere: the counters stay usable.
        self.0 .0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn update(&self, f: impl FnOnce(&mut GrowthState)) {
        f(&mut self.state());
        self.0 .1.notify_all();
    }

    /// The download starts over from byte 0: what a follower read is void. Called
    /// before the old `.part` file is removed.
    pub(super) fn restart(&self) {
        self.update(|s| {
            s.generation += 1;
            s.file = None;
            s.written = 0;
        });
    }

    pub(super) fn opened(&self, part: &Path, written: u64, total: Option<u64>) {
        self.update(|s| {
            s.file = Some(part.to_path_buf());
            s.written = written;
            s.total = total;
        });
    }

    pub(super) fn written(&self, written: u64) {
        let mut s = self.state();
        if s.written != written {
            s.written = written;
            drop(s);
            self.0 .1.notify_all();
        }
    }

    pub(super) fn finish(&self, path: &Path, size: u64) {
        self.update(|s| {
            s.file = Some(path.to_path_buf());
            s.written = size;
            s.total = Some(size);
            s.end = Some(Ok(()));
        });
    }

    pub(super) fn fail(&self, why: String) {
        self.update(|s| {
            if s.end.is_none() {
                s.end = Some(Err(why));
            }
        });
    }

    /// Block until the server announced the size (or the download ended); `None` when
    /// it never says.
    pub fn wait_total(&self) -> Option<u64> {
        let mut s = self.state();
        while s.total.is_none() && s.end.is_none() {
            s = self.0 .1.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        s.total
    }

    /// Did the download start over from byte 0 after the follower began reading? Then
    /// what it read is void, and the complete file must be read again.
    pub fn restarted_under_follower(&self) -> bool {
        let s = self.state();
        s.followed.is_some_and(|g| g != s.generation)
    }

    /// A reader of the download's bytes as they are written.
    pub fn follower(&self) -> Follower {
        Follower {
            growth: self.clone(),
            file: None,
            generation: 0,
            pos: 0,
        }
    }
}

/// Fails the [`Growth`] if the download future is dropped before it ended, so that a
/// follower never waits for bytes that will not come.
pub(super) struct GrowthGuard<'a>(pub(super) &'a Growth);

impl Drop for GrowthGuard<'_> {
    fn drop(&mut self) {
        self.0.fail("the download was abandoned".into());
    }
}

/// The error a [`Follower`] returns when the download started over from byte 0 after it
/// had begun reading: its bytes so far may not be the file's.
#[derive(Debug, thiserror::Error)]
#[error("the download started over while it was being unpacked")]
pub struct Restarted;

/// Reads a download while it grows: blocks at the written end until more is written,
/// returns end of file once the download completed, and an error when it was given up
/// (the download's own error is the one to report) or started over ([`Restarted`]).
pub struct Follower {
    growth: Growth,
    file: Option<File>,
    generation: u32,
    pos: u64,
}

impl Read for Follower {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let cv = &self.growth.0 .1;
        let mut s = self.growth.state();
        loop {
            if self.file.is_some() && s.generation != self.generation {
                return Err(std::io::Error::other(Restarted));
            }
            if let Some(Err(why)) = &s.end {
                return Err(std::io::Error::other(format!("download failed: {why}")));
            }
            if self.file.is_none() {
                if let Some(path) = &s.file {
                    // Opened under the lock: the downloader bumps the generation (which
                    // takes the lock) before it removes or replaces this file.
                    // Never through a link planted at the `.part` name.
                    let opened = std::fs::OpenOptions::new()
                        .read(true)
                        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                        .open(path);
                    match opened {
                        Ok(f) => {
                            self.file = Some(f);
                            self.generation = s.generation;
                            s.followed = Some(s.generation);
                            continue;
                        }
                        // Renamed to its final name just now: the next state names it.
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            if let Some(f) = &self.file {
                let avail = s.written.saturating_sub(self.pos);
                if avail > 0 {
                    drop(s);
                    let want = buf.len().min(usize::try_from(avail).unwrap_or(usize::MAX));
                    let n = f.read_at(&mut buf[..want], self.pos)?;
                    if n == 0 {
                        // Shorter than published: it was replaced under us.
                        return Err(std::io::Error::other(Restarted));
                    }
                    self.pos += n as u64;
                    return Ok(n);
                }
                if matches!(s.end, Some(Ok(()))) {
                    return Ok(0);
                }
            }
            s = cv
                .wait_timeout(s, Duration::from_millis(100))
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::{self, OpenOptions};
    use std::io::Write;

    #[test]
    fn follower_reads_while_growing_and_stops_on_restart_or_failure() {
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("a.part");
        let done = dir.path().join("a");

        // Grows in two steps, then completes under its final name.
        let g = Growth::default();
        fs::write(&part, b"hello ").unwrap();
        g.opened(&part, 6, Some(11));
        let reader = {
            let g = g.clone();
            std::thread::spawn(move || {
                let mut out = Vec::new();
                g.follower().read_to_end(&mut out).map(|_| out)
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        OpenOptions::new()
            .append(true)
            .open(&part)
            .unwrap()
            .write_all(b"world")
            .unwrap();
        g.written(11);
        fs::rename(&part, &done).unwrap();
        g.finish(&done, 11);
        assert_eq!(reader.join().unwrap().unwrap(), b"hello world");
        assert!(!g.restarted_under_follower());

        // Starts over after the follower read: its bytes are void.
        let g = Growth::default();
        fs::write(&part, b"old bytes").unwrap();
        g.opened(&part, 9, None);
        let mut f = g.follower();
        let mut buf = [0u8; 4];
        assert_eq!(f.read(&mut buf).unwrap(), 4);
        g.restart();
        let err = f.read(&mut buf).unwrap_err();
        assert!(err.get_ref().is_some_and(|e| e.is::<Restarted>()), "{err}");
        assert!(g.restarted_under_follower());

        // Given up: the follower does not wait forever.
        let g = Growth::default();
        g.opened(&part, 0, None);
        let mut f = g.follower();
        g.fail("HTTP 404".into());
        assert!(f
            .read(&mut buf)
            .unwrap_err()
            .to_string()
            .contains("HTTP 404"));
        // Abandoned (the download future dropped): likewise.
        let g = Growth::default();
        drop(GrowthGuard(&g));
        assert!(g.follower().read(&mut buf).is_err());
        assert_eq!(g.wait_total(), None);
    }
}
