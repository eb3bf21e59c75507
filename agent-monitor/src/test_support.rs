//! Builders shared by the unit tests: records in the kernel's exact wire
//! layout, made from the real structs of agent-monitor-common, and the
//! values the crate decodes from them.
//!
//! - [`Actor`]: the process a record is about. It builds the `process.*`
//!   records (`exec_record`, `fork_record`, `exit_record`) and the decoded
//!   [`Event`]s (`exec`, `fork`, `exit`).
//! - [`Builder`]: a syscall record, field by field, and its parse and
//!   interpretation.

use agent_monitor_common::{
    EventHeader, EventKind,
    process::{ExecHead, ExitEvent, ForkEvent},
    syscall::{FieldHead, SYSCALL_FIELDS_DROPPED, SockInfo, SyscallHead},
};

use crate::{
    actions::{
        Action, ActionFields, ActionKind, interpret,
        record::{SyscallRecord, parse},
    },
    decode::decode,
    event::Event,
    process_table::{ProcessInfo, ProcessKey},
};

// ---------------------------------------------------------------------------
// Bytes
// ---------------------------------------------------------------------------

/// A shared record struct whose every byte is initialised: `repr(C)`,
/// integers only, padding explicit (sizes asserted in agent-monitor-common).
pub trait Wire: Copy {}

impl Wire for EventHeader {}
impl Wire for ExecHead {}
impl Wire for ForkEvent {}
impl Wire for ExitEvent {}
impl Wire for SyscallHead {}
impl Wire for FieldHead {}
impl Wire for SockInfo {}

/// The raw bytes of a shared record struct, as the kernel sends them.
pub fn bytes_of<T: Wire>(value: &T) -> Vec<u8> {
    // SAFETY: `value` is a valid reference to `size_of::<T>()` initialised
    // bytes (`Wire`); the slice lives only for the copy.
    unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
}

/// A `comm` field: `name`, NUL-padded to 16 bytes.
pub fn comm(name: &[u8]) -> [u8; 16] {
    let mut comm = [0u8; 16];
    comm[..name.len()].copy_from_slice(name);
    comm
}

/// An argument block: each argument followed by its NUL.
pub fn argv_block(args: &[&str]) -> Vec<u8> {
    let mut argv = Vec::new();
    for arg in args {
        argv.extend_from_slice(arg.as_bytes());
        argv.push(0);
    }
    argv
}

pub fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

/// A record that must decode, as the reader's record `seq`.
pub fn decoded(bytes: &[u8], seq: u64) -> Event {
    decode(bytes, seq).expect("the record decodes")
}

// ---------------------------------------------------------------------------
// process.* records and events
// ---------------------------------------------------------------------------

/// The process a record is about: the header every record starts with, but
/// for its kind.
#[derive(Clone, Copy)]
pub struct Actor {
    head: EventHeader,
}

/// Process `pid`, started at `start_ns`, child of `ppid`: uid and gid 1000,
/// agent slot 1, no tool call, comm "test", its only thread; on CPU 0 with
/// sequence number 0, 10 µs after boot.
pub fn actor(pid: u32, start_ns: u64, ppid: u32) -> Actor {
    Actor {
        head: EventHeader {
            kind: 0,
            cpu: 0,
            cpu_seq: 0,
            ts_ns: 10_000,
            start_ns,
            tool_call: 0,
            pid,
            tid: pid,
            ppid,
            uid: 1000,
            gid: 1000,
            agent: 1,
            comm: comm(b"test"),
        },
    }
}

/// An actor whose every header field holds a distinct value, so a swapped
/// or misplaced field shows.
pub fn distinct_actor() -> Actor {
    let actor = actor(4242, 555_000, 4000)
        .tid(4243)
        .on_cpu(3, 77)
        .at(1_000_000_123)
        .agent(2)
        .comm(b"agent-tool");
    Actor {
        head: EventHeader {
            tool_call: 9,
            uid: 1001,
            gid: 1002,
            ..actor.head
        },
    }
}

impl Actor {
    /// Runs as `uid`, and as the group of the same number.
    pub fn uid(self, uid: u32) -> Actor {
        self.with(|h| {
            h.uid = uid;
            h.gid = uid;
        })
    }

    pub fn agent(self, agent: u32) -> Actor {
        self.with(|h| h.agent = agent)
    }

    /// Acts `ts_ns` after boot.
    pub fn at(self, ts_ns: u64) -> Actor {
        self.with(|h| h.ts_ns = ts_ns)
    }

    /// Acts in thread `tid`.
    pub fn tid(self, tid: u32) -> Actor {
        self.with(|h| h.tid = tid)
    }

    /// Acts on `cpu`, as that CPU's record `cpu_seq`.
    pub fn on_cpu(self, cpu: u32, cpu_seq: u64) -> Actor {
        self.with(|h| {
            h.cpu = cpu;
            h.cpu_seq = cpu_seq;
        })
    }

    pub fn comm(self, name: &[u8]) -> Actor {
        self.with(|h| h.comm = comm(name))
    }

    fn with(mut self, change: impl FnOnce(&mut EventHeader)) -> Actor {
        change(&mut self.head);
        self
    }

    pub fn key(self) -> ProcessKey {
        ProcessKey {
            pid: self.head.pid,
            start_ns: self.head.start_ns,
        }
    }

    /// The header of a record of `kind`, known or not.
    pub fn header(self, kind: u32) -> EventHeader {
        EventHeader { kind, ..self.head }
    }

    /// The fixed part of an exec record claiming these lengths.
    pub fn exec_head(self, filename_len: usize, argv_len: usize, flags: u16) -> ExecHead {
        ExecHead {
            header: self.header(EventKind::ProcessExec as u32),
            filename_len: filename_len.try_into().expect("filename fits u16"),
            argv_len: argv_len.try_into().expect("argv fits u16"),
            flags,
            _pad: 0,
            argv_total_len: argv_len.try_into().expect("argv fits u32"),
            _pad2: 0,
        }
    }

    /// An exec record carrying exactly `filename` then `argv`, as the probe
    /// sends it.
    pub fn exec_record(self, filename: &[u8], argv: &[u8], flags: u16) -> Vec<u8> {
        let mut bytes = bytes_of(&self.exec_head(filename.len(), argv.len(), flags));
        bytes.extend_from_slice(filename);
        bytes.extend_from_slice(argv);
        bytes
    }

    pub fn fork_record(self, child_pid: u32, child_start_ns: u64) -> Vec<u8> {
        bytes_of(&ForkEvent {
            header: self.header(EventKind::ProcessFork as u32),
            child_pid,
            _pad: 0,
            child_start_ns,
        })
    }

    pub fn exit_record(self, status: u32) -> Vec<u8> {
        bytes_of(&ExitEvent {
            header: self.header(EventKind::ProcessExit as u32),
            status,
            _pad: 0,
        })
    }

    /// The decoded exec of `filename` with `args`, record 0.
    pub fn exec(self, filename: &str, args: &[&str]) -> Event {
        decoded(
            &self.exec_record(filename.as_bytes(), &argv_block(args), 0),
            0,
        )
    }

    /// The decoded fork, record 0.
    pub fn fork(self, child_pid: u32, child_start_ns: u64) -> Event {
        decoded(&self.fork_record(child_pid, child_start_ns), 0)
    }

    /// The decoded exit with a wait `status`, record 0.
    pub fn exit(self, status: u32) -> Event {
        decoded(&self.exit_record(status), 0)
    }
}

/// Process `pid@start_ns` as the table holds it when nothing more is known:
/// ppid 1, agent slot 1, uid 1000, alive.
pub fn process_info(pid: u32, start_ns: u64) -> ProcessInfo {
    ProcessInfo {
        key: ProcessKey { pid, start_ns },
        parent: None,
        ppid: 1,
        agent_slot: 1,
        exe: None,
        argv: Vec::new(),
        cwd: None,
        uid: 1000,
        identity: Default::default(),
        exit: None,
        exit_ns: None,
    }
}

// ---------------------------------------------------------------------------
// Syscall records
// ---------------------------------------------------------------------------

/// A syscall record as `capture.rs` writes it: the head, then each field
/// as a `FieldHead` and its bytes, in the order they were added. The header
/// is [`distinct_actor`]'s.
pub struct Builder {
    head: SyscallHead,
    data: Vec<u8>,
}

impl Builder {
    pub fn new(nr: u32) -> Builder {
        Builder {
            head: SyscallHead {
                header: distinct_actor().header(EventKind::Syscall as u32),
                nr,
                flags: 0,
                data_len: 0,
                ret: 0,
                args: [0; 6],
            },
            data: Vec::new(),
        }
    }

    pub fn ret(mut self, ret: i64) -> Builder {
        self.head.ret = ret;
        self
    }

    /// The first `args.len()` arguments; the rest stay 0.
    pub fn args(mut self, args: &[u64]) -> Builder {
        self.head.args[..args.len()].copy_from_slice(args);
        self
    }

    pub fn field(self, tag: u8, bytes: impl AsRef<[u8]>) -> Builder {
        self.flagged(tag, 0, bytes)
    }

    /// A field with `FIELD_*` flags.
    pub fn flagged(self, tag: u8, flags: u8, bytes: impl AsRef<[u8]>) -> Builder {
        let bytes = bytes.as_ref();
        let len = bytes.len().try_into().expect("field fits u16");
        self.raw_field(FieldHead { tag, flags, len }, bytes)
    }

    /// A field head followed by `bytes`, whatever length the head claims.
    pub fn raw_field(mut self, head: FieldHead, bytes: &[u8]) -> Builder {
        self.data.extend_from_slice(&bytes_of(&head));
        self.data.extend_from_slice(bytes);
        self
    }

    /// `SYSCALL_FIELDS_DROPPED`: some field did not fit.
    pub fn dropped(mut self) -> Builder {
        self.head.flags |= SYSCALL_FIELDS_DROPPED;
        self
    }

    /// The head as sent: `data_len` covers the fields.
    pub fn head(&self) -> SyscallHead {
        SyscallHead {
            data_len: self.data.len().try_into().expect("data fits u16"),
            ..self.head
        }
    }

    /// The record's bytes, with `data_len` claiming `data_len` bytes.
    pub fn bytes_claiming(&self, data_len: u16) -> Vec<u8> {
        let mut bytes = bytes_of(&SyscallHead {
            data_len,
            ..self.head
        });
        bytes.extend_from_slice(&self.data);
        bytes
    }

    pub fn bytes(&self) -> Vec<u8> {
        self.bytes_claiming(self.head().data_len)
    }

    /// The parsed record. It borrows its bytes, which are leaked so that a
    /// test can keep the record past this call (a few bytes per test).
    pub fn record(&self) -> SyscallRecord<'static> {
        let bytes: &'static [u8] = self.bytes().leak();
        let (head, record) = parse(bytes).expect("the record parses");
        assert_eq!(head, self.head(), "the head round-trips");
        record
    }

    /// The interpretation of the record, which must have one.
    pub fn action(&self) -> Action {
        *interpret(&self.record()).expect("the syscall is interpreted")
    }
}

/// A directory as the kernel walks it: components leaf to root, each
/// NUL-terminated (`"/home/agent"` → `b"agent\0home\0"`).
pub fn base(dir: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for part in dir.split('/').filter(|p| !p.is_empty()).rev() {
        out.extend_from_slice(part.as_bytes());
        out.push(0);
    }
    out
}

/// An expected action.
pub fn action(
    kind: ActionKind,
    syscall: &'static str,
    result: i64,
    fields: ActionFields,
) -> Action {
    Action {
        kind,
        syscall,
        result,
        fields,
    }
}

pub fn s(text: &str) -> Option<String> {
    Some(text.to_owned())
}
