//! The host module's own tests: planted links, temp names, hand-over.

use super::atomic::random_hex;
use super::*;
use crate::exit::ExitCode;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn root() -> bool {
    let root = rustix::process::geteuid().is_root();
    if !root {
        eprintln!("SKIPPED: chown needs root");
    }
    root
}

fn owner(p: &Path) -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let m = fs::symlink_metadata(p).unwrap();
    (m.uid(), m.gid())
}

pub(crate) fn mkfifo(path: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
}

const THEIRS: (u32, u32) = (54_322, 54_323);

#[test]
fn the_umask_root_takes_is_the_units() {
    let unit = include_str!("../../systemd/ksql-msk.service");
    assert!(
        unit.lines()
            .any(|l| l == format!("UMask={SERVICE_UMASK:04o}")),
        "systemd/ksql-msk.service has another UMask= than {SERVICE_UMASK:04o}"
    );
}

#[test]
fn handing_a_tree_over_never_follows_a_link_or_enters_what_is_theirs() {
    if !root() {
        return;
    }
    let outside = tempfile::tempdir().unwrap();
    let precious = outside.path().join("precious");
    fs::write(&precious, "root's").unwrap();
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("staging");
    fs::create_dir_all(tree.join("bin/deep")).unwrap();
    fs::write(tree.join("bin/deep/run"), "x").unwrap();
    std::os::unix::fs::symlink(&precious, tree.join("bin/link")).unwrap();
    std::os::unix::fs::symlink(outside.path(), tree.join("dirlink")).unwrap();
    // A directory already theirs: its entries are theirs to plant, so not entered.
    fs::create_dir(tree.join("theirs")).unwrap();
    fs::hard_link(&precious, tree.join("theirs/planted")).unwrap();
    std::os::unix::fs::lchown(tree.join("theirs"), Some(THEIRS.0), Some(THEIRS.1)).unwrap();

    Dir::open(&tree).unwrap().hand_over_tree_to(THEIRS).unwrap();
    for p in [
        "",
        "bin",
        "bin/deep",
        "bin/deep/run",
        "bin/link",
        "dirlink",
        "theirs",
    ] {
        assert_eq!(owner(&tree.join(p)), THEIRS, "{p}");
    }
    assert_eq!(owner(&precious), (0, 0), "chowned through a link");
    assert_eq!(owner(outside.path()), (0, 0), "chowned through a link");
}

#[test]
fn a_link_swapped_for_something_else_is_refused_not_given() {
    if !root() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let dir = Dir::open(t.path()).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", t.path().join("l")).unwrap();
    dir.give_link_to(OsStr::new("l"), THEIRS).unwrap();
    assert_eq!(owner(&t.path().join("l")), THEIRS);
    assert_eq!(owner(Path::new("/etc/passwd")), (0, 0));
    // A file (a hard link planted in its place) is not the link just made.
    fs::write(t.path().join("f"), "").unwrap();
    let err = dir.give_link_to(OsStr::new("f"), THEIRS).unwrap_err();
    assert!(
        format!("{err:#}").contains("the symlink just made"),
        "{err:#}"
    );
    assert_eq!(owner(&t.path().join("f")), (0, 0));
}

#[test]
fn replaces_content_and_sets_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.conf");
    fs::write(&path, "old").unwrap();
    write_atomic(&path, b"new", 0o640).unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap(), "new");
    let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    // No temp file left behind.
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn temps_of_dead_processes_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.conf");
    // pid_max is at most 2^22: this pid cannot be alive.
    let dead = dir.path().join(".a.conf.tmp-99999999");
    let ours_alive = dir.path().join(format!(
        ".a.conf.tmp-{}",
        std::os::unix::process::parent_id()
    ));
    let other = dir.path().join(".b.conf.tmp-99999999");
    for p in [&dead, &ours_alive, &other] {
        fs::write(p, "partial").unwrap();
    }
    write_atomic(&path, b"new", 0o640).unwrap();
    assert!(!dead.exists(), "the dead process's temp file stayed");
    assert!(
        ours_alive.exists(),
        "a live process's temp file was removed"
    );
    assert!(other.exists(), "another file's temp file was removed");
}

#[test]
fn failure_leaves_target_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing-dir").join("a.conf");
    assert!(write_atomic(&path, b"x", 0o644).is_err());
}

#[test]
fn space_check_names_dir_and_numbers() {
    let dir = tempfile::tempdir().unwrap();
    check_space(dir.path(), 1).unwrap();
    let err = check_space(dir.path(), u64::MAX / 2).unwrap_err();
    assert_eq!(crate::exit::exit_code_of(&err), ExitCode::Io);
    let msg = err.to_string();
    assert!(
        msg.contains(&dir.path().display().to_string()) && msg.contains("MB free"),
        "{msg}"
    );
}

#[test]
fn free_space_of_missing_dir_uses_ancestor() {
    let (free, on) = free_space_near(Path::new("/tmp/does/not/exist/yet")).unwrap();
    assert!(free > 0);
    assert!(Path::new("/tmp").starts_with(&on) || on == Path::new("/"));
}

fn code(e: &anyhow::Error) -> ExitCode {
    crate::exit::exit_code_of(e)
}

#[test]
fn links_planted_at_temp_names_redirect_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.conf");
    // The old predictable name for this very process, and new-style names.
    let pid = std::process::id();
    let planted = [
        format!(".a.conf.tmp-{pid}"),
        format!(".a.conf.tmp-{pid}-0000000000000000"),
    ];
    for (i, name) in planted.iter().enumerate() {
        std::os::unix::fs::symlink(
            outside.path().join(format!("leak{i}")),
            dir.path().join(name),
        )
        .unwrap();
    }
    write_atomic(&path, b"secret", 0o640).unwrap();
    assert_eq!(
        fs::read_dir(outside.path()).unwrap().count(),
        0,
        "written outside"
    );
    assert!(fs::symlink_metadata(&path).unwrap().is_file());
    assert_eq!(fs::read(&path).unwrap(), b"secret");
}

#[test]
fn a_symlink_at_the_target_is_replaced_and_its_target_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    fs::write(&victim, "precious").unwrap();
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o600)).unwrap();
    let path = dir.path().join("a.conf");
    std::os::unix::fs::symlink(&victim, &path).unwrap();
    write_atomic(&path, b"new", 0o644).unwrap();
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
    assert_eq!(
        fs::metadata(&victim).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(fs::symlink_metadata(&path).unwrap().is_file());
    // The same through copy_atomic, which also sets the mode exactly.
    fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink(&victim, &path).unwrap();
    let src = dir.path().join("src");
    fs::write(&src, "copied").unwrap();
    let (d, name) = Dir::parent_of(&path).unwrap();
    d.copy_atomic(&name, &src, 0o644).unwrap();
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
    assert_eq!(
        fs::metadata(&victim).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(fs::read_to_string(&path).unwrap(), "copied");
}

#[test]
fn copy_atomic_does_not_read_through_a_symlinked_source() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("shadow");
    fs::write(&secret, "root:hash").unwrap();
    let src = dir.path().join("cached.jar");
    std::os::unix::fs::symlink(&secret, &src).unwrap();
    let dst = dir.path().join("installed.jar");
    let (d, name) = Dir::parent_of(&dst).unwrap();
    let err = d.copy_atomic(&name, &src, 0o644).unwrap_err();
    assert_eq!(code(&err), ExitCode::Data, "{err:#}");
    assert!(err.to_string().contains("symlink"), "{err:#}");
    assert!(!dst.exists());
}

#[test]
fn stale_temps_of_either_name_scheme_go_and_a_planted_link_there_is_only_unlinked() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    fs::write(&victim, "precious").unwrap();
    let dead_new = dir.path().join(".a.conf.tmp-99999999-0123456789abcdef");
    fs::write(&dead_new, "partial").unwrap();
    let dead_link = dir.path().join(".a.conf.tmp-99999998-0123456789abcdef");
    std::os::unix::fs::symlink(&victim, &dead_link).unwrap();
    let alive = dir.path().join(format!(
        ".a.conf.tmp-{}-0123456789abcdef",
        std::os::unix::process::parent_id()
    ));
    fs::write(&alive, "partial").unwrap();
    write_atomic(&dir.path().join("a.conf"), b"new", 0o640).unwrap();
    assert!(fs::symlink_metadata(&dead_new).is_err(), "dead temp stayed");
    assert!(
        fs::symlink_metadata(&dead_link).is_err(),
        "dead link stayed"
    );
    assert!(alive.exists(), "a live process's temp file was removed");
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
}

#[test]
fn temp_names_are_unpredictable() {
    let (a, b) = (random_hex(), random_hex());
    assert_eq!(a.len(), 16);
    assert_ne!(a, b);
}

#[test]
fn open_beneath_refuses_a_symlinked_component_and_dot_dot() {
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    fs::create_dir_all(root.path().join("releases/1")).unwrap();
    std::os::unix::fs::symlink(outside.path(), root.path().join("releases/1/etc")).unwrap();
    let err = Dir::open_beneath(root.path(), Path::new("releases/1/etc")).unwrap_err();
    assert_eq!(code(&err), ExitCode::Data, "{err:#}");
    assert!(err.to_string().contains("is a symlink"), "{err:#}");
    let err =
        Dir::create_beneath(root.path(), Path::new("releases/1/etc/ksqldb"), 0o755).unwrap_err();
    assert_eq!(code(&err), ExitCode::Data, "{err:#}");
    assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
    let err = Dir::open_beneath(root.path(), Path::new("releases/../..")).unwrap_err();
    assert_eq!(code(&err), ExitCode::Data, "{err:#}");
    // The root itself must not be a symlink either.
    let link = root.path().join("link");
    std::os::unix::fs::symlink(outside.path(), &link).unwrap();
    assert!(Dir::open(&link).is_err());
}

#[test]
fn create_beneath_sets_the_mode_of_what_it_creates_only() {
    let root = tempfile::tempdir().unwrap();
    fs::create_dir(root.path().join("old")).unwrap();
    fs::set_permissions(root.path().join("old"), fs::Permissions::from_mode(0o711)).unwrap();
    // 0770: group-writable, which the usual umask (022) takes away at mkdir.
    let made = Dir::create_beneath(root.path(), Path::new("old/new/deeper"), 0o770).unwrap();
    let mode = |p: &str| {
        fs::metadata(root.path().join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("old"), 0o711);
    assert_eq!(mode("old/new"), 0o770);
    assert_eq!(mode("old/new/deeper"), 0o770);
    made.write_atomic("f", b"x", 0o644).unwrap();
    assert_eq!(made.entries().unwrap(), vec![OsString::from("f")]);
    assert!(
        made.create_dir("f", 0o755).is_err(),
        "a file taken for a directory"
    );
}

#[test]
fn read_and_append_refuse_links_and_special_files() {
    let root = tempfile::tempdir().unwrap();
    let dir = Dir::open(root.path()).unwrap();
    assert_eq!(dir.read("missing").unwrap(), None);
    fs::write(root.path().join("f"), "data").unwrap();
    assert_eq!(dir.read("f").unwrap().unwrap(), b"data");
    std::os::unix::fs::symlink(root.path().join("f"), root.path().join("l")).unwrap();
    let err = dir.read("l").unwrap_err();
    assert_eq!(code(&err), ExitCode::Data, "{err:#}");
    assert_eq!(dir.kind("l").unwrap(), Some(Kind::Symlink));
    assert!(dir.open_append("l").is_err());
    mkfifo(&root.path().join("fifo"));
    let err = dir.read("fifo").unwrap_err();
    assert!(err.to_string().contains("special file"), "{err:#}");
    let mut f = dir.open_append("f").unwrap();
    f.write_all(b"+more").unwrap();
    assert_eq!(fs::read(root.path().join("f")).unwrap(), b"data+more");
    let mut f = dir.create_new("g", 0o600).unwrap();
    f.write_all(b"new").unwrap();
    assert!(
        dir.create_new("g", 0o600).is_err(),
        "create_new opened an existing file"
    );
    assert!(
        dir.create_new("l", 0o600).is_err(),
        "create_new followed a link"
    );
}

#[test]
fn symlink_atomic_replaces_what_was_planted() {
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let dir = Dir::open(root.path()).unwrap();
    let target = Path::new("releases/1");
    assert!(dir.symlink_atomic_at("current", target, "x").unwrap());
    assert!(!dir.symlink_atomic_at("current", target, "x").unwrap());
    // A link to outside, or a plain file, at `current`: replaced by the link.
    std::fs::remove_file(root.path().join("current")).unwrap();
    std::os::unix::fs::symlink(outside.path(), root.path().join("current")).unwrap();
    assert!(dir.symlink_atomic_at("current", target, "x").unwrap());
    assert_eq!(fs::read_link(root.path().join("current")).unwrap(), target);
    assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
    assert_eq!(dir.entries().unwrap(), vec![OsString::from("current")]);
}
