//! Syscall capture: the records `probes/syscall.rs` and the per-family exit
//! programs (`probes/file.rs`, `probes/net.rs`, `probes/privilege.rs`) send.
//!
//! The kernel side captures raw material (the syscall number, its arguments,
//! its result, and the strings, addresses and paths they point at) as a
//! list of tagged fields. Userspace gives it meaning. That keeps the kernel
//! programs small and generic, and the interpretation testable without a
//! kernel.

use crate::{EventHeader, assert_layout};

/// x86_64 syscall numbers of every hooked syscall.
pub mod nr {
    pub const OPEN: u32 = 2;
    pub const CONNECT: u32 = 42;
    pub const ACCEPT: u32 = 43;
    pub const SENDTO: u32 = 44;
    pub const RECVFROM: u32 = 45;
    pub const SENDMSG: u32 = 46;
    pub const RECVMSG: u32 = 47;
    pub const BIND: u32 = 49;
    pub const LISTEN: u32 = 50;
    pub const KILL: u32 = 62;
    pub const TRUNCATE: u32 = 76;
    pub const FTRUNCATE: u32 = 77;
    pub const RENAME: u32 = 82;
    pub const MKDIR: u32 = 83;
    pub const RMDIR: u32 = 84;
    pub const CREAT: u32 = 85;
    pub const LINK: u32 = 86;
    pub const UNLINK: u32 = 87;
    pub const SYMLINK: u32 = 88;
    pub const CHMOD: u32 = 90;
    pub const FCHMOD: u32 = 91;
    pub const CHOWN: u32 = 92;
    pub const FCHOWN: u32 = 93;
    pub const LCHOWN: u32 = 94;
    pub const PTRACE: u32 = 101;
    pub const SETUID: u32 = 105;
    pub const SETGID: u32 = 106;
    pub const SETREUID: u32 = 113;
    pub const SETREGID: u32 = 114;
    pub const SETRESUID: u32 = 117;
    pub const SETRESGID: u32 = 119;
    pub const SETFSUID: u32 = 122;
    pub const SETFSGID: u32 = 123;
    pub const CAPSET: u32 = 126;
    pub const MOUNT: u32 = 165;
    pub const UMOUNT2: u32 = 166;
    pub const INIT_MODULE: u32 = 175;
    pub const TKILL: u32 = 200;
    pub const TGKILL: u32 = 234;
    pub const OPENAT: u32 = 257;
    pub const MKDIRAT: u32 = 258;
    pub const FCHOWNAT: u32 = 260;
    pub const UNLINKAT: u32 = 263;
    pub const RENAMEAT: u32 = 264;
    pub const LINKAT: u32 = 265;
    pub const SYMLINKAT: u32 = 266;
    pub const FCHMODAT: u32 = 268;
    pub const ACCEPT4: u32 = 288;
    pub const RECVMMSG: u32 = 299;
    pub const SENDMMSG: u32 = 307;
    pub const FINIT_MODULE: u32 = 313;
    pub const RENAMEAT2: u32 = 316;
    pub const MEMFD_CREATE: u32 = 319;
    pub const BPF: u32 = 321;
    pub const OPENAT2: u32 = 437;
    pub const FCHMODAT2: u32 = 452;
}

/// Which exit program handles a syscall: the index of that program in the
/// tail-call table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Family {
    File = 0,
    Net = 1,
    Privilege = 2,
}

impl Family {
    pub const COUNT: u32 = 3;

    pub const fn of(syscall: u32) -> Option<Family> {
        use nr::*;
        Some(match syscall {
            OPEN | CREAT | OPENAT | OPENAT2 | UNLINK | UNLINKAT | RMDIR | RENAME | RENAMEAT
            | RENAMEAT2 | MKDIR | MKDIRAT | CHMOD | FCHMOD | FCHMODAT | FCHMODAT2 | CHOWN
            | FCHOWN | LCHOWN | FCHOWNAT | LINK | LINKAT | SYMLINK | SYMLINKAT | TRUNCATE
            | FTRUNCATE | MEMFD_CREATE | MOUNT | UMOUNT2 | INIT_MODULE | FINIT_MODULE => {
                Family::File
            }
            CONNECT | BIND | LISTEN | ACCEPT | ACCEPT4 | SENDTO | SENDMSG | SENDMMSG | RECVFROM
            | RECVMSG | RECVMMSG => Family::Net,
            SETUID | SETGID | SETREUID | SETREGID | SETRESUID | SETRESGID | SETFSUID | SETFSGID
            | CAPSET | PTRACE | KILL | TKILL | TGKILL | BPF => Family::Privilege,
            _ => return None,
        })
    }
}

/// Highest syscall number the bitmap covers.
pub const MAX_NR: u32 = 512;

/// Bit `n` is set when syscall `n` is hooked: one load and a mask decide,
/// for every syscall on the host, whether to look further.
pub const HOOKED: [u64; (MAX_NR / 64) as usize] = {
    let mut bits = [0u64; (MAX_NR / 64) as usize];
    let mut n = 0;
    while n < MAX_NR {
        if Family::of(n).is_some() {
            bits[(n / 64) as usize] |= 1 << (n % 64);
        }
        n += 1;
    }
    bits
};

/// The fixed part of a syscall record; `data_len` bytes of fields follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct SyscallHead {
    pub header: EventHeader,
    pub nr: u32,
    /// `SYSCALL_*` flags.
    pub flags: u16,
    pub data_len: u16,
    /// The raw return value.
    pub ret: i64,
    pub args: [u64; 6],
}
assert_layout!(SyscallHead, 144);

/// `SyscallHead::flags`: some field did not fit and was left out.
pub const SYSCALL_FIELDS_DROPPED: u16 = 1 << 0;

/// Bytes of fields a record can carry.
pub const SYSCALL_DATA_CAP: usize = 16384;
/// Most bytes one field can hold: a path with its NUL.
pub const FIELD_CAP: usize = 4096;
/// Scratch space: the data cap plus one whole field of slack, so a write
/// starting anywhere below the cap stays inside the buffer.
pub const SYSCALL_SCRATCH: usize = core::mem::size_of::<SyscallHead>()
    + SYSCALL_DATA_CAP
    + core::mem::size_of::<FieldHead>()
    + FIELD_CAP;

/// Starts every field in a syscall record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct FieldHead {
    /// A `tag::*` value.
    pub tag: u8,
    /// `FIELD_*` flags.
    pub flags: u8,
    /// Bytes that follow.
    pub len: u16,
}
assert_layout!(FieldHead, 4);

/// `FieldHead::flags`: the content was cut at the field's bound.
pub const FIELD_TRUNCATED: u8 = 1 << 0;
/// `FieldHead::flags`: the content could not be read.
pub const FIELD_UNREADABLE: u8 = 1 << 1;

/// Field tags. The `_0`/`_1` pairs are a syscall's first and second path.
pub mod tag {
    /// A path string as the process passed it (no NUL).
    pub const PATH_0: u8 = 1;
    pub const PATH_1: u8 = 2;
    /// The directory a relative `PATH_n` starts from (the working directory
    /// or the dirfd's), as NUL-terminated components from leaf to root.
    pub const BASE_0: u8 = 3;
    pub const BASE_1: u8 = 4;
    /// The path of the file behind an fd argument, components leaf to root.
    pub const FD_PATH: u8 = 5;
    /// A `struct sockaddr` as the process passed or received it.
    pub const SOCKADDR: u8 = 6;
    /// A [`super::SockInfo`] read from the kernel's socket.
    pub const SOCK: u8 = 7;
    /// Datagram payload (DNS only).
    pub const PAYLOAD: u8 = 8;
    /// `file->f_mode` of the file an open returned.
    pub const FILE_MODE: u8 = 9;
    /// A small user struct the syscall points at (`open_how`, capset data).
    pub const USER_STRUCT: u8 = 10;
    /// A second payload (the second message of `sendmmsg`/`recvmmsg`).
    pub const PAYLOAD_1: u8 = 11;
}

/// What the kernel's socket says about itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct SockInfo {
    pub family: u16,
    /// `SOCK_STREAM`, `SOCK_DGRAM`, …
    pub kind: u16,
    /// Host byte order.
    pub local_port: u16,
    /// Host byte order.
    pub peer_port: u16,
    /// IPv4 in the first 4 bytes, or IPv6.
    pub local_addr: [u8; 16],
    pub peer_addr: [u8; 16],
}
assert_layout!(SockInfo, 40);

/// Most payload bytes captured of a DNS datagram.
pub const PAYLOAD_CAP: usize = 1024;
/// DNS: the only port whose datagrams are captured.
pub const DNS_PORT: u16 = 53;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bitmap_holds_exactly_the_hooked_syscalls() {
        let hooked = |n: u32| HOOKED[(n / 64) as usize] & (1 << (n % 64)) != 0;
        assert!(hooked(nr::OPENAT) && hooked(nr::CONNECT) && hooked(nr::FCHMODAT2));
        assert!(
            !hooked(0) && !hooked(1) && !hooked(59),
            "read, write, execve"
        );
        let count: u32 = HOOKED.iter().map(|w| w.count_ones()).sum();
        assert_eq!(
            count,
            (0..MAX_NR).filter(|n| Family::of(*n).is_some()).count() as u32
        );
    }
}
