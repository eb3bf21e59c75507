//! `priv.*`, `proc.ptrace`, `proc.signal` and `kernel.bpf`.

use agent_monitor_common::syscall::{nr, tag};

use super::{Action, ActionKind, record::SyscallRecord};

pub(super) fn interpret(r: &SyscallRecord) -> Option<Box<Action>> {
    use ActionKind::*;
    let a = r.args;
    // uid_t and pid_t are 32-bit; -1 ("unchanged") must read as -1.
    let id = |i: usize| a[i] as u32 as i32 as i64;
    let (kind, syscall, ids) = match r.nr {
        nr::SETUID => (PrivSetuid, "setuid", 1),
        nr::SETREUID => (PrivSetuid, "setreuid", 2),
        nr::SETRESUID => (PrivSetuid, "setresuid", 3),
        nr::SETFSUID => (PrivSetuid, "setfsuid", 1),
        nr::SETGID => (PrivSetgid, "setgid", 1),
        nr::SETREGID => (PrivSetgid, "setregid", 2),
        nr::SETRESGID => (PrivSetgid, "setresgid", 3),
        nr::SETFSGID => (PrivSetgid, "setfsgid", 1),
        nr::CAPSET => (PrivCapset, "capset", 0),
        nr::PTRACE => (ProcPtrace, "ptrace", 0),
        nr::KILL => (ProcSignal, "kill", 0),
        nr::TKILL => (ProcSignal, "tkill", 0),
        nr::TGKILL => (ProcSignal, "tgkill", 0),
        nr::BPF => (KernelBpf, "bpf", 0),
        _ => return None,
    };
    let mut action = Action::new(kind, syscall, r);
    let f = &mut action.fields;
    if ids > 0 {
        f.ids = Some((0..ids).map(id).collect());
    }
    match r.nr {
        // Data the kernel could not read is no capabilities, not zero ones.
        nr::CAPSET => {
            f.caps = r
                .field(tag::USER_STRUCT)
                .filter(|f| !f.unreadable && f.bytes.len() >= 24)
                .map(|f| capabilities(f.bytes))
        }
        nr::PTRACE => {
            f.request = Some(a[0] as i64);
            f.target_pid = Some(id(1));
        }
        nr::KILL | nr::TKILL => {
            f.target_pid = Some(id(0));
            f.signal = Some(id(1));
        }
        nr::TGKILL => {
            f.target_pid = Some(id(0));
            f.signal = Some(id(2));
        }
        nr::BPF => {
            f.bpf_cmd = Some(match a[0] {
                5 => "prog_load",
                8 => "prog_attach",
                17 => "raw_tracepoint_open",
                28 => "link_create",
                _ => "other",
            });
            if a[0] == 5 {
                f.prog_type = r
                    .bytes(tag::USER_STRUCT)
                    .and_then(|b| b.get(..4)?.try_into().ok())
                    .map(u32::from_ne_bytes);
            }
        }
        _ => {}
    }
    Some(action)
}

/// `struct __user_cap_data_struct[2]` as three 64-bit masks in hex:
/// effective, permitted, inheritable.
fn capabilities(bytes: &[u8]) -> Vec<String> {
    let word = |i: usize| {
        bytes
            .get(i * 4..i * 4 + 4)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u32::from_ne_bytes)
    };
    (0..3)
        .map(|i| {
            format!(
                "{:#018x}",
                u64::from(word(i)) | (u64::from(word(i + 3)) << 32)
            )
        })
        .collect()
}

#[cfg(test)]
#[path = "privilege_tests.rs"]
mod tests;
