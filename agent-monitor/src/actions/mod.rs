//! Observed actions: what a captured syscall means. The kernel sends raw
//! material ([`record::SyscallRecord`]); this module names it (`file.open`,
//! `net.connect`, …) and fills the fields of the event contract.

pub mod dns;
pub mod errno;
mod file;
mod net;
pub mod paths;
mod privilege;
pub mod record;

use agent_monitor_common::syscall::Family;

use record::SyscallRecord;

macro_rules! action_kinds {
    ($($variant:ident => $name:literal,)*) => {
        /// Every kind of observed action, by its dotted name.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ActionKind { $($variant,)* }

        impl ActionKind {
            pub const ALL: &[ActionKind] = &[$(ActionKind::$variant,)*];

            pub const fn name(self) -> &'static str {
                match self { $(ActionKind::$variant => $name,)* }
            }
        }
    };
}

action_kinds! {
    FileOpen => "file.open",
    FileUnlink => "file.unlink",
    FileRename => "file.rename",
    FileMkdir => "file.mkdir",
    FileChmod => "file.chmod",
    FileChown => "file.chown",
    FileLink => "file.link",
    FileTruncate => "file.truncate",
    NetConnect => "net.connect",
    NetBind => "net.bind",
    NetListen => "net.listen",
    NetAccept => "net.accept",
    NetSend => "net.send",
    DnsQuery => "dns.query",
    DnsAnswer => "dns.answer",
    PrivSetuid => "priv.setuid",
    PrivSetgid => "priv.setgid",
    PrivCapset => "priv.capset",
    ProcPtrace => "proc.ptrace",
    ProcSignal => "proc.signal",
    KernelModuleLoad => "kernel.module_load",
    KernelBpf => "kernel.bpf",
    FsMount => "fs.mount",
    FsUmount => "fs.umount",
    MemMemfdCreate => "mem.memfd_create",
}

/// `read`, `write` or `read_write`, from an open's access mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    ReadWrite,
}

impl Access {
    pub fn name(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
            Access::ReadWrite => "read_write",
        }
    }
}

/// Every kind-specific field of the event contract, all optional: each
/// kind fills the ones that apply. One flat struct, so that every output
/// (JSONL now, the Parquet columns next) has one place to read them from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ActionFields {
    // Files.
    pub path: Option<String>,
    pub raw_path: Option<String>,
    pub new_path: Option<String>,
    pub new_raw_path: Option<String>,
    pub flags: Option<u64>,
    pub mode: Option<u32>,
    pub access: Option<Access>,
    pub created: Option<bool>,
    pub truncated: Option<bool>,
    /// A captured string was cut at its bound or could not be read.
    pub path_incomplete: Option<bool>,
    pub symlink: Option<bool>,
    /// chown's new owner (-1: unchanged); not `uid`, which every event
    /// already has for the acting process.
    pub owner_uid: Option<i64>,
    pub owner_gid: Option<i64>,
    pub length: Option<i64>,
    // Network.
    pub family: Option<&'static str>,
    pub protocol: Option<&'static str>,
    pub addr: Option<String>,
    pub port: Option<u16>,
    pub unix_path: Option<String>,
    pub local_addr: Option<String>,
    pub local_port: Option<u16>,
    pub dns_name: Option<String>,
    // DNS.
    pub name: Option<String>,
    pub qtype: Option<String>,
    pub answers: Option<Vec<String>>,
    // Privilege and processes.
    pub ids: Option<Vec<i64>>,
    pub caps: Option<Vec<String>>,
    pub target_pid: Option<i64>,
    pub signal: Option<i64>,
    pub request: Option<i64>,
    pub bpf_cmd: Option<&'static str>,
    pub prog_type: Option<u32>,
    pub fstype: Option<String>,
}

/// One observed action of a tracked process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Action {
    pub kind: ActionKind,
    /// The syscall that carried it, by name.
    pub syscall: &'static str,
    /// The raw return value.
    pub result: i64,
    pub fields: ActionFields,
}

impl Action {
    /// The errno name when the syscall failed.
    pub fn error(&self) -> Option<&'static str> {
        errno::of_result(self.result)
    }

    /// Boxed from the start: the fields are hundreds of bytes, and every
    /// move of an unboxed action on its way into the event copied them.
    fn new(kind: ActionKind, syscall: &'static str, record: &SyscallRecord) -> Box<Action> {
        Box::new(Action {
            kind,
            syscall,
            result: record.ret,
            fields: ActionFields::default(),
        })
    }
}

/// What a captured syscall means, or `None` for a syscall this build does
/// not interpret (the kernel and userspace disagree on the hooked set).
pub fn interpret(record: &SyscallRecord) -> Option<Box<Action>> {
    match Family::of(record.nr)? {
        Family::File => file::interpret(record),
        Family::Net => net::interpret(record),
        Family::Privilege => privilege::interpret(record),
    }
}
