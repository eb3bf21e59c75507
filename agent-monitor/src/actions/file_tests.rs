use agent_monitor_common::syscall::{FIELD_TRUNCATED, FIELD_UNREADABLE};

use super::*;
use crate::{
    actions::ActionFields,
    test_support::{Builder, action, base, s},
};

const AT_FDCWD: u64 = -100i64 as u64;
const O_RDWR: u64 = 0o2;
/// `FMODE_READ | FMODE_WRITE`: an open that did not create its file.
const FMODE_RW: u32 = 0b11;

/// A record whose first path is `raw`, relative to `dir` when not empty.
fn at(nr: u32, raw: &str, dir: &str) -> Builder {
    let b = Builder::new(nr).field(tag::PATH_0, raw);
    if dir.is_empty() {
        b
    } else {
        b.field(tag::BASE_0, base(dir))
    }
}

/// Just `path` and `raw_path`.
fn pathed(path: &str, raw: &str) -> ActionFields {
    ActionFields {
        path: s(path),
        raw_path: s(raw),
        ..Default::default()
    }
}

/// The fields of an open: no mode, not created, not truncated.
fn opened(path: &str, raw: &str, flags: u64, access: Access) -> ActionFields {
    ActionFields {
        flags: Some(flags),
        access: Some(access),
        created: Some(false),
        truncated: Some(false),
        ..pathed(path, raw)
    }
}

#[test]
fn openat_joins_a_relative_path_to_its_base() {
    let got = at(nr::OPENAT, "notes.txt", "/home/agent/work")
        .ret(3)
        .args(&[AT_FDCWD, 0x7ff0, 0, 0])
        .action();
    let fields = opened("/home/agent/work/notes.txt", "notes.txt", 0, Access::Read);
    assert_eq!(got, action(ActionKind::FileOpen, "openat", 3, fields));
    assert_eq!(got.error(), None);
    assert_eq!(got.kind.name(), "file.open");
}

#[test]
fn dot_and_dot_dot_are_folded_and_the_raw_path_kept() {
    let got = at(nr::OPEN, "/etc/../etc//./passwd", "").ret(4).action();
    let fields = opened("/etc/passwd", "/etc/../etc//./passwd", 0, Access::Read);
    assert_eq!(got, action(ActionKind::FileOpen, "open", 4, fields));

    let path = |raw, dir| at(nr::OPENAT, raw, dir).ret(5).action().fields.path;
    assert_eq!(path("../../etc/shadow", "/home/agent"), s("/etc/shadow"));
    assert_eq!(path("/etc/hosts", "/home/agent"), s("/etc/hosts"));
    // A relative path whose base was not captured has no absolute form.
    assert_eq!(path("x", ""), None);
}

#[test]
fn created_is_the_kernels_fmode_created() {
    let open = |file_mode: &[u8]| {
        at(nr::OPENAT, "/tmp/out", "")
            .ret(3)
            .args(&[AT_FDCWD, 0, O_CREAT | O_WRONLY, 0o644])
            .field(tag::FILE_MODE, file_mode)
            .action()
    };
    let created = open(&(FMODE_CREATED | FMODE_RW).to_ne_bytes());
    let fields = ActionFields {
        mode: Some(0o644),
        created: Some(true),
        ..opened("/tmp/out", "/tmp/out", 0o101, Access::Write)
    };
    assert_eq!(created, action(ActionKind::FileOpen, "openat", 3, fields));

    let existing = open(&FMODE_RW.to_ne_bytes());
    let f = existing.fields;
    assert_eq!((f.created, f.mode), (Some(false), Some(0o644)));
    // A mode of the wrong size says nothing.
    assert_eq!(open(&[0xff; 3]).fields.created, Some(false));
    assert_eq!(open(&[]).fields.created, Some(false));
}

#[test]
fn a_failed_open_is_an_error_and_neither_created_nor_truncated() {
    let got = at(nr::OPENAT, "missing/file", "/tmp")
        .ret(-2)
        .args(&[AT_FDCWD, 0, O_CREAT | O_WRONLY | O_TRUNC, 0o600])
        // Even a stray mode cannot make a failed open a creation.
        .field(tag::FILE_MODE, FMODE_CREATED.to_ne_bytes())
        .action();
    let fields = ActionFields {
        mode: Some(0o600),
        ..opened("/tmp/missing/file", "missing/file", 0o1101, Access::Write)
    };
    assert_eq!(got, action(ActionKind::FileOpen, "openat", -2, fields));
    assert_eq!(got.error(), Some("ENOENT"));
}

#[test]
fn access_comes_from_the_flags_and_truncated_needs_a_writable_open() {
    let open = |flags: u64, ret: i64| {
        let a = at(nr::OPEN, "/tmp/f", "")
            .ret(ret)
            .args(&[0, flags])
            .action();
        (a.fields.access, a.fields.truncated, a.fields.flags)
    };
    use Access::*;
    assert_eq!(open(0, 3), (Some(Read), Some(false), Some(0)));
    assert_eq!(open(O_WRONLY, 3), (Some(Write), Some(false), Some(1)));
    assert_eq!(open(O_RDWR, 3), (Some(ReadWrite), Some(false), Some(2)));
    // O_ACCMODE 3 is not a valid mode; it reads as both.
    assert_eq!(open(3, 3), (Some(ReadWrite), Some(false), Some(3)));
    // O_TRUNC counts only for a successful writable open.
    let (w, rw) = (O_WRONLY | O_TRUNC, O_RDWR | O_TRUNC);
    assert_eq!(open(O_TRUNC, 3), (Some(Read), Some(false), Some(O_TRUNC)));
    assert_eq!(open(w, 3), (Some(Write), Some(true), Some(w)));
    assert_eq!(open(rw, 3), (Some(ReadWrite), Some(true), Some(rw)));
    assert_eq!(open(rw, -13), (Some(ReadWrite), Some(false), Some(rw)));
    // Other bits (O_CLOEXEC) are kept in flags and change nothing.
    let cloexec = 0o2000000 | O_WRONLY;
    assert_eq!(open(cloexec, 3), (Some(Write), Some(false), Some(cloexec)));
}

#[test]
fn creat_is_a_writable_truncating_creating_open() {
    let got = at(nr::CREAT, "out.log", "/var/tmp")
        .ret(3)
        .args(&[0x7ff0, 0o600])
        .field(tag::FILE_MODE, (FMODE_CREATED | FMODE_RW).to_ne_bytes())
        .action();
    let fields = ActionFields {
        mode: Some(0o600),
        created: Some(true),
        truncated: Some(true),
        ..opened("/var/tmp/out.log", "out.log", 0o1101, Access::Write)
    };
    assert_eq!(got, action(ActionKind::FileOpen, "creat", 3, fields));
}

#[test]
fn openat2_reads_flags_and_mode_from_open_how() {
    let how: Vec<u8> = [O_RDWR | O_CREAT, 0o640, 0x08]
        .iter()
        .flat_map(|word| word.to_ne_bytes())
        .collect();
    let got = at(nr::OPENAT2, "db.sqlite", "/srv")
        .ret(7)
        .args(&[AT_FDCWD, 0x7ff0, 0x7fe0, 24])
        .field(tag::USER_STRUCT, &how)
        .field(tag::FILE_MODE, FMODE_RW.to_ne_bytes())
        .action();
    let fields = ActionFields {
        mode: Some(0o640),
        ..opened("/srv/db.sqlite", "db.sqlite", 0o102, Access::ReadWrite)
    };
    assert_eq!(got, action(ActionKind::FileOpen, "openat2", 7, fields));
}

#[test]
fn unlinkat_and_rmdir_carry_at_removedir() {
    let got = at(nr::UNLINKAT, "build", "/home/agent/project")
        .args(&[5, 0, 0x200])
        .action();
    let fields = ActionFields {
        flags: Some(512),
        ..pathed("/home/agent/project/build", "build")
    };
    assert_eq!(got, action(ActionKind::FileUnlink, "unlinkat", 0, fields));

    let got = at(nr::RMDIR, "/tmp/d", "").action();
    let fields = ActionFields {
        flags: Some(512),
        ..pathed("/tmp/d", "/tmp/d")
    };
    assert_eq!(got, action(ActionKind::FileUnlink, "rmdir", 0, fields));

    let got = at(nr::UNLINK, "/tmp/f", "").action();
    let fields = pathed("/tmp/f", "/tmp/f");
    assert_eq!(got, action(ActionKind::FileUnlink, "unlink", 0, fields));
}

#[test]
fn rename_resolves_both_paths_against_their_own_bases() {
    let fields = ActionFields {
        new_path: s("/tmp/b.txt"),
        new_raw_path: s("../../tmp/b.txt"),
        ..pathed("/home/agent/a.txt", "a.txt")
    };
    let got = at(nr::RENAME, "a.txt", "/home/agent")
        .field(tag::PATH_1, b"../../tmp/b.txt")
        .field(tag::BASE_1, base("/home/agent"))
        .action();
    let want = action(ActionKind::FileRename, "rename", 0, fields.clone());
    assert_eq!(got, want);

    let got = at(nr::RENAMEAT2, "a.txt", "/home/agent")
        .ret(-17)
        .args(&[3, 0, 4, 0, 1])
        .field(tag::PATH_1, b"b.txt")
        .field(tag::BASE_1, base("/tmp"))
        .action();
    let fields = ActionFields {
        new_raw_path: s("b.txt"),
        flags: Some(1),
        ..fields
    };
    assert_eq!(
        got,
        action(ActionKind::FileRename, "renameat2", -17, fields)
    );
    assert_eq!(got.error(), Some("EEXIST"));
}

#[test]
fn links_resolve_the_new_name_and_a_symlink_keeps_its_target_raw() {
    let got = at(nr::SYMLINK, "../lib/libfoo.so.1", "")
        .field(tag::PATH_1, b"libfoo.so")
        .field(tag::BASE_1, base("/opt/app/lib"))
        .action();
    let fields = ActionFields {
        raw_path: s("../lib/libfoo.so.1"),
        new_path: s("/opt/app/lib/libfoo.so"),
        new_raw_path: s("libfoo.so"),
        symlink: Some(true),
        ..Default::default()
    };
    assert_eq!(got, action(ActionKind::FileLink, "symlink", 0, fields));

    // An absolute target is not a path the call touched either.
    let got = at(nr::SYMLINKAT, "/etc/shadow", "")
        .field(tag::PATH_1, b"/tmp/s")
        .action();
    let fields = ActionFields {
        raw_path: s("/etc/shadow"),
        new_path: s("/tmp/s"),
        new_raw_path: s("/tmp/s"),
        symlink: Some(true),
        ..Default::default()
    };
    assert_eq!(got, action(ActionKind::FileLink, "symlinkat", 0, fields));

    // A hard link: the existing file is the path.
    let got = at(nr::LINKAT, "/etc/passwd", "")
        .args(&[AT_FDCWD, 0, AT_FDCWD, 0, 0x400])
        .field(tag::PATH_1, b"p")
        .field(tag::BASE_1, base("/tmp"))
        .action();
    let fields = ActionFields {
        new_path: s("/tmp/p"),
        new_raw_path: s("p"),
        flags: Some(0x400),
        ..pathed("/etc/passwd", "/etc/passwd")
    };
    assert_eq!(got, action(ActionKind::FileLink, "linkat", 0, fields));
}

#[test]
fn fchmod_names_its_file_by_the_fd_path_and_modes_are_kept() {
    let got = Builder::new(nr::FCHMOD)
        .args(&[4, 0o4755])
        .field(tag::FD_PATH, base("/usr/local/bin/tool"))
        .action();
    let fields = ActionFields {
        path: s("/usr/local/bin/tool"),
        mode: Some(0o4755),
        ..Default::default()
    };
    assert_eq!(got, action(ActionKind::FileChmod, "fchmod", 0, fields));

    let got = at(nr::FCHMODAT2, "/tmp/x", "")
        .args(&[AT_FDCWD, 0, 0o700, 0x100])
        .action();
    let fields = ActionFields {
        mode: Some(0o700),
        flags: Some(0x100),
        ..pathed("/tmp/x", "/tmp/x")
    };
    assert_eq!(got, action(ActionKind::FileChmod, "fchmodat2", 0, fields));
    let got = at(nr::MKDIRAT, "d", "/tmp")
        .args(&[AT_FDCWD, 0, 0o755])
        .action();
    let fields = ActionFields {
        mode: Some(0o755),
        ..pathed("/tmp/d", "d")
    };
    assert_eq!(got, action(ActionKind::FileMkdir, "mkdirat", 0, fields));
}

#[test]
fn chown_keeps_minus_one_as_unchanged() {
    let got = at(nr::CHOWN, "/srv/data", "")
        .args(&[0, 1000, 0xffff_ffff])
        .action();
    let fields = ActionFields {
        owner_uid: Some(1000),
        owner_gid: Some(-1),
        ..pathed("/srv/data", "/srv/data")
    };
    assert_eq!(got, action(ActionKind::FileChown, "chown", 0, fields));

    // A sign-extended -1, and fchownat's shifted arguments.
    let got = at(nr::FCHOWNAT, "/srv/data", "")
        .args(&[AT_FDCWD, 0, u64::MAX, 0, 0x1000])
        .action();
    let f = got.fields;
    assert_eq!(
        (f.owner_uid, f.owner_gid, f.flags),
        (Some(-1), Some(0), Some(0x1000))
    );
}

#[test]
fn truncate_carries_the_length() {
    let got = at(nr::TRUNCATE, "log", "/var/log/app")
        .args(&[0, 4096])
        .action();
    let fields = ActionFields {
        length: Some(4096),
        ..pathed("/var/log/app/log", "log")
    };
    assert_eq!(got, action(ActionKind::FileTruncate, "truncate", 0, fields));

    let got = Builder::new(nr::FTRUNCATE)
        .args(&[3, 0])
        .field(tag::FD_PATH, base("/tmp/f"))
        .action();
    let f = got.fields;
    assert_eq!((f.path, f.raw_path, f.length), (s("/tmp/f"), None, Some(0)));
}

#[test]
fn memfd_create_is_named_not_pathed() {
    let got = at(nr::MEMFD_CREATE, "jit-cache", "")
        .ret(3)
        .args(&[0x7ff0, 1])
        .action();
    let fields = ActionFields {
        name: s("jit-cache"),
        flags: Some(1),
        ..Default::default()
    };
    let want = action(ActionKind::MemMemfdCreate, "memfd_create", 3, fields);
    assert_eq!(got, want);
}

#[test]
fn mount_names_source_target_and_fstype() {
    let got = at(nr::MOUNT, "/dev/sdb1", "")
        .args(&[0, 0, 0, 1, 0])
        .field(tag::PATH_1, b"mnt/data")
        .field(tag::BASE_1, base("/root"))
        // The probe reads fstype as a string, stored without its NUL.
        .field(tag::USER_STRUCT, b"ext4")
        .action();
    let fields = ActionFields {
        name: s("/dev/sdb1"),
        fstype: s("ext4"),
        flags: Some(1),
        ..pathed("/root/mnt/data", "mnt/data")
    };
    assert_eq!(got, action(ActionKind::FsMount, "mount", 0, fields));

    let got = at(nr::UMOUNT2, "/root/mnt/data", "").args(&[0, 2]).action();
    let fields = ActionFields {
        flags: Some(2),
        ..pathed("/root/mnt/data", "/root/mnt/data")
    };
    assert_eq!(got, action(ActionKind::FsUmount, "umount2", 0, fields));
}

#[test]
fn module_loads_carry_their_parameters_and_file() {
    let got = Builder::new(nr::FINIT_MODULE)
        .ret(-1)
        .args(&[3, 0x7ff0, 0])
        .field(tag::FD_PATH, base("/lib/modules/6.8/extra/rootkit.ko"))
        .field(tag::PATH_0, b"debug=1")
        .action();
    let fields = ActionFields {
        name: s("debug=1"),
        path: s("/lib/modules/6.8/extra/rootkit.ko"),
        ..Default::default()
    };
    let want = action(ActionKind::KernelModuleLoad, "finit_module", -1, fields);
    assert_eq!(got, want);
    assert_eq!(got.error(), Some("EPERM"));

    // init_module's parameters are never a path, even when they look like one.
    let got = at(nr::INIT_MODULE, "/x=y", "").action();
    let fields = ActionFields {
        name: s("/x=y"),
        ..Default::default()
    };
    let want = action(ActionKind::KernelModuleLoad, "init_module", 0, fields);
    assert_eq!(got, want);
}

#[test]
fn a_cut_or_unreadable_path_is_flagged_incomplete() {
    let long = format!("/{}", "d/".repeat(100));
    let got = Builder::new(nr::OPEN)
        .ret(3)
        .flagged(tag::PATH_0, FIELD_TRUNCATED, long.as_bytes())
        .action();
    let fields = ActionFields {
        path_incomplete: Some(true),
        ..opened(&long[..long.len() - 1], &long, 0, Access::Read)
    };
    assert_eq!(got, action(ActionKind::FileOpen, "open", 3, fields));

    let incomplete = |b: Builder| b.action().fields.path_incomplete;
    let cut_base = at(nr::UNLINK, "f", "").flagged(tag::BASE_0, FIELD_TRUNCATED, base("/a"));
    assert_eq!(incomplete(cut_base), Some(true));
    let unreadable_new = at(nr::RENAME, "/a", "").flagged(tag::PATH_1, FIELD_UNREADABLE, b"");
    assert_eq!(incomplete(unreadable_new), Some(true));
    let cut_fd = Builder::new(nr::FCHMOD).flagged(tag::FD_PATH, FIELD_TRUNCATED, base("/a"));
    assert_eq!(incomplete(cut_fd), Some(true));
    assert_eq!(incomplete(at(nr::RENAME, "/a", "").dropped()), Some(true));
    // Flags on fields that are not paths do not count.
    let other = at(nr::OPEN, "/a", "").flagged(tag::USER_STRUCT, FIELD_TRUNCATED, b"x");
    assert_eq!(incomplete(other), None);
}

#[test]
fn only_file_syscalls_are_file_actions() {
    assert_eq!(interpret(&Builder::new(nr::CONNECT).record()), None);
    assert_eq!(crate::actions::interpret(&at(0, "/a", "").record()), None);
}
