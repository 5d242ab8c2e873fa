//! A hostile state directory (docs/RELIABILITY.md, "Planted links and the state
//! directory"): the `ksql` user can write everything under it, and root may run
//! `ksql-msk install` over it. Nothing planted there may redirect a write, a chmod or a
//! create outside it, and a state directory that is not the agent's own is refused.

use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ksql_msk_testkit::signing::TestKey;
use ksql_msk_testkit::tarball;

use crate::install::{Pins, World, OLD};
use crate::support::{error_line, files_under, is_root};

const PROPERTIES: &str = "etc/ksqldb/ksql-server.properties";

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// `OLD` installed under a strict pin, and a directory outside the state directory
/// that hostile links point into.
fn installed() -> (World, Pins, PathBuf) {
    let w = World::new();
    let key = TestKey::generate("k <k@example.com>");
    let pins = Pins::strict(&key.fingerprint());
    w.publish(OLD, &tarball::ksqldb_tarball(OLD), &key);
    w.configure(OLD, &pins);
    let out = w.install();
    assert_eq!(out.code, 0, "installing {OLD}: {out:?}");
    let outside = w.host.dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    (w, pins, outside)
}

/// Add a `[properties]` override, so that the next install rewrites the live file.
fn add_override(w: &World, value: &str) {
    let path = w.host.config_path();
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        format!("{text}\n[properties]\n\"ksql.service.id\" = \"{value}\"\n"),
    )
    .unwrap();
}

fn release(w: &World) -> PathBuf {
    w.state().join("releases").join(OLD)
}

/// The pids the next processes will get: the old temp names were `.<name>.tmp-<pid>`,
/// so an attacker who plants a few thousand of them wins against the next install.
fn next_pids(count: u32) -> Vec<u32> {
    let read = |p: &str| -> u32 { std::fs::read_to_string(p).unwrap().trim().parse().unwrap() };
    let last = read("/proc/sys/kernel/ns_last_pid");
    let max = read("/proc/sys/kernel/pid_max");
    // Pids wrap to just above the kernel's reserved ones (300).
    (1..=count)
        .map(|i| {
            let p = last + i;
            if p >= max {
                300 + (p - max)
            } else {
                p
            }
        })
        .collect()
}

#[test]
fn four_thousand_links_at_the_old_temp_names_do_not_redirect_the_properties_write() {
    let (w, _pins, outside) = installed();
    add_override(&w, "planted_links_");
    let dir = release(&w).join("etc/ksqldb");
    let pids = next_pids(4000);
    for pid in &pids {
        symlink(
            outside.join(format!("leak-{pid}")),
            dir.join(format!(".ksql-server.properties.tmp-{pid}")),
        )
        .unwrap();
    }
    let out = w.install();
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        files_under(&outside),
        Vec::<PathBuf>::new(),
        "the rendered properties were written outside the state directory"
    );
    let live = release(&w).join(PROPERTIES);
    let meta = std::fs::symlink_metadata(&live).unwrap();
    assert!(meta.is_file(), "{} is not a regular file", live.display());
    let text = std::fs::read_to_string(&live).unwrap();
    assert!(text.contains("ksql.service.id=planted_links_"), "{text}");
    assert_eq!(mode(&live), 0o640);
}

#[test]
fn a_symlink_at_the_lock_file_creates_and_truncates_nothing_outside() {
    let (w, _pins, outside) = installed();
    let lock = w.state().join(".lock");
    // To a missing file: following it would create it; to an existing one: open it.
    for (target, content) in [("created", None), ("precious", Some("keep me\n"))] {
        let target = outside.join(target);
        if let Some(c) = content {
            std::fs::write(&target, c).unwrap();
        }
        std::fs::remove_file(&lock).unwrap();
        symlink(&target, &lock).unwrap();
        let out = w.install();
        assert_eq!(out.code, 0, "{out:?}");
        match content {
            None => assert!(!target.exists(), "{} was created", target.display()),
            Some(c) => {
                assert_eq!(std::fs::read_to_string(&target).unwrap(), c);
                assert_eq!(mode(&target), 0o644);
            }
        }
        let meta = std::fs::symlink_metadata(&lock).unwrap();
        assert!(meta.is_file(), "{} is still a symlink", lock.display());
        assert!(
            out.stderr.contains(".lock") && out.stderr.contains("symlink"),
            "the replaced link is not reported: {out:?}"
        );
    }
}

#[test]
fn a_symlink_planted_at_the_properties_file_is_replaced_and_its_target_never_read_or_written() {
    let (w, _pins, outside) = installed();
    add_override(&w, "replaced_link_");
    // Outside: a file root can read and the ksql user cannot (think /etc/shadow).
    let target = outside.join("secret.properties");
    std::fs::write(&target, "stolen.secret=TOP-SECRET-VALUE\n").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
    let live = release(&w).join(PROPERTIES);
    std::fs::remove_file(&live).unwrap();
    symlink(&target, &live).unwrap();
    let out = w.install();
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        "stolen.secret=TOP-SECRET-VALUE\n"
    );
    assert_eq!(mode(&target), 0o600);
    assert!(std::fs::symlink_metadata(&live).unwrap().is_file());
    let text = std::fs::read_to_string(&live).unwrap();
    assert!(text.contains("ksql.service.id=replaced_link_"), "{text}");
    assert!(
        !text.contains("TOP-SECRET-VALUE"),
        "the link's target was read into the rendered file:\n{text}"
    );
}

#[test]
fn a_symlink_planted_at_the_generated_log4j_file_is_replaced_and_its_target_never_written() {
    let (w, _pins, outside) = installed();
    w.host
        .write_dropin("50-log.toml", "[ksqldb]\nlog_level = \"WARN\"\n");
    let target = outside.join("precious");
    std::fs::write(&target, "keep me\n").unwrap();
    let generated = release(&w).join("etc/ksqldb/ksql-msk-log4j.properties");
    assert!(std::fs::symlink_metadata(&generated).unwrap().is_file());
    std::fs::remove_file(&generated).unwrap();
    symlink(&target, &generated).unwrap();
    let out = w.install();
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me\n");
    assert_eq!(files_under(&outside), [target]);
    let meta = std::fs::symlink_metadata(&generated).unwrap();
    assert!(
        meta.is_file(),
        "{} is not a regular file",
        generated.display()
    );
    let text = std::fs::read_to_string(&generated).unwrap();
    assert!(text.contains("\nlog4j.rootLogger=WARN, stdout\n"), "{text}");
    assert_eq!(mode(&generated), 0o644);
}

#[test]
fn a_directory_of_the_release_swapped_for_a_symlink_does_not_redirect_the_render() {
    let (w, _pins, outside) = installed();
    add_override(&w, "swapped_dir_");
    // releases/<v>/etc -> outside/etc: the render would write outside/etc/ksqldb/...
    let etc = release(&w).join("etc");
    std::fs::rename(&etc, outside.join("etc")).unwrap();
    symlink(outside.join("etc"), &etc).unwrap();
    let before: Vec<(PathBuf, Vec<u8>)> = files_under(&outside)
        .into_iter()
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect();
    // The warm start's check of the tree the manifest binds sees the link first: the
    // release is installed again (the link only removed), nothing is written through it.
    let out = w.install();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("etc: a symlink, recorded a directory"),
        "{out:?}"
    );
    assert!(std::fs::symlink_metadata(&etc).unwrap().is_dir());
    let text = std::fs::read_to_string(etc.join("ksqldb/ksql-server.properties")).unwrap();
    assert!(text.contains("ksql.service.id=swapped_dir_"), "{text}");
    let after: Vec<(PathBuf, Vec<u8>)> = files_under(&outside)
        .into_iter()
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect();
    assert_eq!(after, before, "a file outside the state directory changed");
}

#[test]
fn a_symlink_at_current_is_replaced_not_followed() {
    let (w, pins, outside) = installed();
    let current = w.state().join("current");
    // A planted `current` pointing outside: the swap replaces the link itself.
    std::fs::remove_file(&current).unwrap();
    symlink(&outside, &current).unwrap();
    w.configure(OLD, &pins);
    let out = w.install();
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        std::fs::read_link(&current).unwrap(),
        Path::new("releases").join(OLD)
    );
    assert_eq!(files_under(&outside), Vec::<PathBuf>::new());
}

/// Run install with `state_dir` and expect a 78 naming `agent.state_dir` and `why`.
fn assert_state_dir_refused(w: &World, pins: &Pins, state_dir: &Path, why: &str) {
    let pins = pins
        .clone()
        .agent(&format!("state_dir = \"{}\"", state_dir.display()));
    w.configure(OLD, &pins);
    let out = w.install();
    assert_eq!(out.code, 78, "{out:?}");
    let line = error_line(&out);
    assert!(
        line.contains("agent.state_dir") && line.contains(why),
        "error line lacks agent.state_dir or {why:?}: {line}"
    );
}

fn world() -> (World, Pins) {
    let w = World::new();
    let key = TestKey::generate("k <k@example.com>");
    let pins = Pins::strict(&key.fingerprint());
    w.publish(OLD, &tarball::ksqldb_tarball(OLD), &key);
    (w, pins)
}

#[test]
fn sticky_or_world_writable_state_dirs_are_refused_and_not_chmodded() {
    let (w, pins) = world();
    for (name, m, why) in [
        ("tmp-like", 0o1777, "sticky"),
        ("open", 0o777, "world-writable"),
        ("sticky-only", 0o1750, "sticky"),
    ] {
        let dir = w.host.dir.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(m)).unwrap();
        assert_state_dir_refused(&w, &pins, &dir, why);
        assert_eq!(mode(&dir), m, "{} was chmodded", dir.display());
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            0,
            "{name}: written to"
        );
    }
}

#[test]
fn a_symlinked_state_dir_is_refused() {
    let (w, pins) = world();
    let real = w.host.dir.path().join("real");
    std::fs::create_dir(&real).unwrap();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o750)).unwrap();
    let link = w.host.dir.path().join("state-link");
    symlink(&real, &link).unwrap();
    assert_state_dir_refused(&w, &pins, &link, "symlink");
    assert_eq!(std::fs::read_dir(&real).unwrap().count(), 0);
}

#[test]
fn a_non_empty_state_dir_of_another_user_is_refused() {
    if !is_root() {
        eprintln!("SKIPPED: chown needs root");
        return;
    }
    let (w, pins) = world();
    let dir = w.host.dir.path().join("alice");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), "alice's\n").unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(&dir, Some(54_321), Some(54_321)).unwrap();
    assert_state_dir_refused(&w, &pins, &dir, "owned by uid 54321");
    assert_eq!(mode(&dir), 0o755);
    assert_eq!(std::fs::metadata(&dir).unwrap().uid(), 54_321);
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
}

/// `/` is only ever refused: the agent checks before it changes anything. Should a
/// regression chmod it anyway, the mode is put back before the test fails.
#[test]
fn root_as_state_dir_is_refused_and_left_alone() {
    let (w, pins) = world();
    let before = mode(Path::new("/"));
    let entries = std::fs::read_dir("/").unwrap().count();
    let had_lock = std::fs::symlink_metadata("/.lock").is_ok();
    let pins_root = pins.clone().agent("state_dir = \"/\"");
    w.configure(OLD, &pins_root);
    let out = w.install();
    let after = mode(Path::new("/"));
    if after != before {
        std::fs::set_permissions("/", std::fs::Permissions::from_mode(before)).unwrap();
    }
    assert_eq!(after, before, "/ was chmodded: {out:?}");
    assert_eq!(out.code, 78, "{out:?}");
    let line = error_line(&out);
    assert!(
        line.contains("agent.state_dir") && line.contains("system directory"),
        "{line}"
    );
    assert_eq!(std::fs::read_dir("/").unwrap().count(), entries);
    if !had_lock {
        assert!(
            std::fs::symlink_metadata("/.lock").is_err(),
            "/.lock created"
        );
    }
}

#[test]
fn a_state_dir_the_agent_creates_is_0750_whatever_the_umask() {
    use std::os::unix::process::CommandExt;
    let (w, pins) = world();
    let dir = w.host.dir.path().join("new/state");
    let pins = pins
        .clone()
        .agent(&format!("state_dir = \"{}\"", dir.display()));
    w.configure(OLD, &pins);
    let mut cmd = w.host.command(&["install"]);
    // SAFETY: umask is async-signal-safe and touches only the child.
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0o077);
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    let out = crate::support::Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(mode(&dir), 0o750);
}

#[test]
fn a_linked_cache_or_releases_directory_is_refused_and_nothing_lands_outside() {
    for name in ["cache", "releases"] {
        let (w, pins) = world();
        w.configure(OLD, &pins);
        let outside = w.host.dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::create_dir(w.state()).unwrap();
        std::fs::set_permissions(w.state(), std::fs::Permissions::from_mode(0o750)).unwrap();
        symlink(&outside, w.state().join(name)).unwrap();
        let out = w.install();
        assert_eq!(out.code, 65, "{name}: {out:?}");
        assert!(
            error_line(&out).contains(&format!("{name} is a symlink")),
            "{name}: {out:?}"
        );
        assert_eq!(files_under(&outside), Vec::<PathBuf>::new(), "{name}");
    }
}

#[test]
fn a_hard_link_planted_at_the_properties_file_is_replaced_and_its_other_name_never_read() {
    let (w, _pins, outside) = installed();
    add_override(&w, "replaced_hard_link_");
    // Where fs.protected_hardlinks is off, the ksql user can link a file it cannot read.
    let target = outside.join("secret.properties");
    std::fs::write(&target, "stolen.secret=HARD-LINKED-SECRET\n").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
    let live = release(&w).join(PROPERTIES);
    std::fs::remove_file(&live).unwrap();
    std::fs::hard_link(&target, &live).unwrap();
    let out = w.install();
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        "stolen.secret=HARD-LINKED-SECRET\n"
    );
    let text = std::fs::read_to_string(&live).unwrap();
    assert!(
        text.contains("ksql.service.id=replaced_hard_link_"),
        "{text}"
    );
    assert!(
        !text.contains("HARD-LINKED-SECRET"),
        "the hard link's other name was read into the rendered file:\n{text}"
    );
}
