//! Privilege and tampering: uid/gid changes, capset, ptrace, signals aimed
//! outside the agent's tree, and bpf() loads and attaches. The arguments in
//! the record head say most of it; capset and bpf add the structs they
//! point at.

use agent_monitor_common::syscall::{nr, tag};
use aya_ebpf::{macros::raw_tracepoint, programs::RawTracePointContext};

use crate::{capture::Record, maps::tracked, probes::syscall::Syscall};

/// bpf() commands that load or attach programs; the others (map lookups,
/// queries) are left out.
const BPF_PROG_LOAD: u64 = 5;
const BPF_PROG_ATTACH: u64 = 8;
const BPF_RAW_TRACEPOINT_OPEN: u64 = 17;
const BPF_LINK_CREATE: u64 = 28;

/// Tail-called by `sys_exit` for [`agent_monitor_common::syscall::Family::Privilege`].
#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn privilege_exit(_ctx: RawTracePointContext) -> i32 {
    let Some(mut record) = Record::handed_over() else {
        return 0;
    };
    let call = *record.call();
    if !reportable(&call) {
        return 0;
    }
    record.begin();
    let a = call.args;
    match call.nr {
        // struct __user_cap_data_struct[2]: effective, permitted, inheritable.
        nr::CAPSET => record.user_bytes(tag::USER_STRUCT, a[1], 24, 24),
        // The head of union bpf_attr: program type, instruction count, …
        nr::BPF => record.user_bytes(tag::USER_STRUCT, a[1], a[2], 64),
        _ => {}
    }
    record.send();
    0
}

#[inline(always)]
fn reportable(call: &Syscall) -> bool {
    let a = call.args;
    match call.nr {
        nr::BPF => matches!(
            a[0],
            BPF_PROG_LOAD | BPF_PROG_ATTACH | BPF_RAW_TRACEPOINT_OPEN | BPF_LINK_CREATE
        ),
        // A signal inside the agent's own tree is its own business.
        nr::KILL => outside_tree(a[0] as i32, call),
        nr::TKILL => outside_tree(a[0] as i32, call),
        nr::TGKILL => outside_tree(a[0] as i32, call),
        _ => true,
    }
}

/// Whether a signal target lies outside the caller's agent. Process groups
/// (0 and negative pids) are always reported: their members cannot be
/// checked here.
#[inline(always)]
fn outside_tree(target: i32, call: &Syscall) -> bool {
    if target <= 0 {
        return true;
    }
    match tracked(target as u32) {
        Some(other) => other.agent != call.process.agent,
        None => true,
    }
}
