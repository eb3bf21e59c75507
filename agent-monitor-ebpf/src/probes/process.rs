//! Process lifecycle: fork, exec and exit, on the `sched` raw tracepoints.
//!
//! These programs maintain the tracked-process map: a child of a tracked
//! process is tracked before it first runs, and the entry goes when its last
//! thread exits. Untracked processes cost one hash lookup.

use agent_monitor_common::{
    EventKind,
    maps::{AGENT_PENDING, Counter, RULE_EXE_LEN, TrackedProcess},
    process::{
        ARGV_CAP, EXEC_ARGV_TRUNCATED, EXEC_ARGV_UNREADABLE, EXEC_DATA_CAP,
        EXEC_FILENAME_TRUNCATED, EXEC_FIXED_LEN, ExecEvent, ExitEvent, ForkEvent, PATH_CAP,
    },
};
use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
        bpf_probe_read_kernel_str_bytes, generated,
    },
    macros::raw_tracepoint,
    programs::RawTracePointContext,
};

use crate::{
    emit::{BPF_RB_FORCE_WAKEUP, header, send, send_bytes, wakeup},
    maps::{
        EXEC_SCRATCH, RULE_KEY_SCRATCH, RULES_COMM, RULES_EXE, RULES_UID, TRACKED, count,
        mark_tracked, scratch, tracked,
    },
    task::{Task, offset, read},
};

#[inline(always)]
fn current_tgid() -> u32 {
    (bpf_get_current_pid_tgid() >> 32) as u32
}

/// `sched_process_fork(struct task_struct *parent, struct task_struct *child)`.
///
/// Runs in the parent before the child is woken, so the child is tracked
/// from its first instruction. Threads share their group's entry.
#[raw_tracepoint(tracepoint = "sched_process_fork")]
pub fn sched_process_fork(ctx: RawTracePointContext) -> i32 {
    match try_fork(&ctx) {
        Ok(()) | Err(_) => 0,
    }
}

fn try_fork(ctx: &RawTracePointContext) -> Result<(), i64> {
    let Some(parent) = tracked(current_tgid()) else {
        return Ok(());
    };
    let child = Task::from_ptr(ctx.arg::<*const u8>(1));
    let child_pid = child.pid()?;
    if child_pid != child.tgid()? {
        return Ok(());
    }
    let child_start_ns = child.start_boottime().unwrap_or_default();
    let entry = TrackedProcess {
        agent: parent.agent,
        tool_call: parent.tool_call,
        start_ns: child_start_ns,
        ..TrackedProcess::default()
    };
    if TRACKED.insert(child_pid, entry, 0).is_ok() {
        mark_tracked(child_pid, true);
    } else {
        count(Counter::TrackFull);
    }
    let state = scratch().ok_or(-1i64)?;
    let header = header(
        EventKind::ProcessFork,
        &parent,
        &mut state.seq,
        bpf_get_current_pid_tgid(),
    );
    let flags = wakeup(&header, &mut state.woken_ns);
    send(
        ForkEvent {
            header,
            child_pid,
            _pad: 0,
            child_start_ns,
        },
        flags,
    );
    Ok(())
}

/// `sched_process_exec(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)`.
#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn sched_process_exec(ctx: RawTracePointContext) -> i32 {
    match try_exec(&ctx) {
        Ok(()) | Err(_) => 0,
    }
}

fn try_exec(ctx: &RawTracePointContext) -> Result<(), i64> {
    let bprm = ctx.arg::<*const u8>(2);
    let filename = read::<*const u8>(bprm, offset!(binprm_filename))?;
    // A process a rule tracks here wakes the reader at once: until the
    // daemon reads this exec, the syscall probes may be detached (an exec
    // the exec gate did not hold), and what the process does meanwhile
    // is not seen.
    let mut by_rule = false;
    let process = match tracked(current_tgid()) {
        Some(process) => process,
        None if matches_rule(filename) => {
            by_rule = true;
            // Tracked from this exec on, as pending: userspace checks the
            // whole rule when it reads the exec, and gives the process an
            // agent or drops it.
            let entry = TrackedProcess {
                agent: AGENT_PENDING,
                ..TrackedProcess::default()
            };
            if TRACKED.insert(current_tgid(), entry, 0).is_err() {
                count(Counter::TrackFull);
                return Ok(());
            }
            tracked(current_tgid()).ok_or(-1i64)?
        }
        None => return Ok(()),
    };
    // A process put in the map from userspace (the command `run` launches)
    // gets its pre-filter bit here, at its first exec.
    mark_tracked(current_tgid(), true);
    let event = EXEC_SCRATCH.get_ptr_mut(0).ok_or(-1i64)?;
    // SAFETY: this CPU's scratch slot, used by nothing else while we run
    // (tracepoint programs do not nest on one CPU).
    let event: &mut ExecEvent = unsafe { &mut *event };
    let state = scratch().ok_or(-1i64)?;
    event.head.header = header(
        EventKind::ProcessExec,
        &process,
        &mut state.seq,
        bpf_get_current_pid_tgid(),
    );
    event.head.flags = 0;
    event.head._pad = 0;
    event.head._pad2 = 0;

    // SAFETY: the helper bounds the copy by the slice and checks the source.
    let filename_len =
        match unsafe { bpf_probe_read_kernel_str_bytes(filename, &mut event.data[..PATH_CAP]) } {
            Ok(name) => name.len(),
            Err(_) => 0,
        };
    if filename_len >= PATH_CAP - 1 {
        event.head.flags |= EXEC_FILENAME_TRUNCATED;
    }
    event.head.filename_len = filename_len as u16;

    let argv_len = read_argv(event, filename_len);
    event.head.argv_len = argv_len as u16;

    let len = EXEC_FIXED_LEN + filename_len + argv_len;
    if len <= core::mem::size_of::<ExecEvent>() {
        let flags = if by_rule {
            BPF_RB_FORCE_WAKEUP
        } else {
            wakeup(&event.head.header, &mut state.woken_ns)
        };
        // SAFETY: `len` is within the scratch value, which is plain bytes.
        let bytes =
            unsafe { core::slice::from_raw_parts(event as *const ExecEvent as *const u8, len) };
        send_bytes(bytes, flags);
    }
    Ok(())
}

/// Whether an exec by an untracked process hits a discovery rule's key:
/// its uid, its new task name, or the path `execve` received. Costs an
/// untracked exec three hash lookups and one string copy; execs are rare
/// next to the syscalls the pre-filter spares.
#[inline(always)]
fn matches_rule(filename: *const u8) -> bool {
    let uid = bpf_get_current_uid_gid() as u32;
    // SAFETY: reading a map value as a lookup key; nothing holds it.
    if unsafe { RULES_UID.get(uid) }.is_some() {
        return true;
    }
    if let Ok(comm) = bpf_get_current_comm()
        && unsafe { RULES_COMM.get(comm) }.is_some()
    {
        return true;
    }
    let Some(key) = RULE_KEY_SCRATCH.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: this CPU's scratch slot, used by nothing else while we run.
    let key: &mut [u8; RULE_EXE_LEN] = unsafe { &mut *key };
    // Keys are NUL-padded: clear what an earlier, longer path left.
    for word in key.chunks_exact_mut(8) {
        word.copy_from_slice(&[0; 8]);
    }
    // SAFETY: the helper bounds the copy by the slice and checks the source.
    // A path that fills the key is longer than any rule's exe (the
    // config refuses those), so its missing tail cannot make a false hit.
    if unsafe { bpf_probe_read_kernel_str_bytes(filename, &mut key[..RULE_EXE_LEN]) }.is_err() {
        return false;
    }
    // SAFETY: as above.
    unsafe { RULES_EXE.get(key) }.is_some()
}

/// Copies the NUL-separated argument block after the filename and returns
/// how many bytes it copied, flagging truncation and failure.
#[inline(always)]
fn read_argv(event: &mut ExecEvent, filename_len: usize) -> usize {
    let Ok((start, end)) = Task::current().arg_range() else {
        event.head.flags |= EXEC_ARGV_UNREADABLE;
        event.head.argv_total_len = 0;
        return 0;
    };
    let total = end.saturating_sub(start);
    event.head.argv_total_len = total.min(u32::MAX as u64) as u32;
    let mut len = total as usize;
    if len > ARGV_CAP {
        len = ARGV_CAP;
        event.head.flags |= EXEC_ARGV_TRUNCATED;
    }
    // The masks restate bounds the verifier must see: the copy starts inside
    // the filename's share and fits in the rest of the buffer.
    let at = filename_len & (PATH_CAP - 1);
    let len = len & (2 * ARGV_CAP - 1);
    if at + len > EXEC_DATA_CAP {
        event.head.flags |= EXEC_ARGV_UNREADABLE;
        return 0;
    }
    // SAFETY: `at + len` is within `data`; the helper checks the source.
    let ret = unsafe {
        generated::bpf_probe_read_user(
            event.data.as_mut_ptr().add(at).cast(),
            len as u32,
            start as *const core::ffi::c_void,
        )
    };
    if ret < 0 {
        event.head.flags |= EXEC_ARGV_UNREADABLE;
        return 0;
    }
    len
}

/// `sched_process_exit(struct task_struct *p, ...)`: emits `process.exit`
/// once, when the last thread of a tracked process exits, and forgets it.
#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn sched_process_exit(ctx: RawTracePointContext) -> i32 {
    match try_exit(&ctx) {
        Ok(()) | Err(_) => 0,
    }
}

fn try_exit(_ctx: &RawTracePointContext) -> Result<(), i64> {
    let tgid = current_tgid();
    let Some(process) = tracked(tgid) else {
        return Ok(());
    };
    let task = Task::current();
    if !task.group_dead()? {
        return Ok(());
    }
    // Two threads can both see the group dead; the delete lets one report it.
    if TRACKED.remove(tgid).is_err() {
        return Ok(());
    }
    mark_tracked(tgid, false);
    let state = scratch().ok_or(-1i64)?;
    let header = header(
        EventKind::ProcessExit,
        &process,
        &mut state.seq,
        bpf_get_current_pid_tgid(),
    );
    let flags = wakeup(&header, &mut state.woken_ns);
    send(
        ExitEvent {
            header,
            status: task.exit_code().unwrap_or_default(),
            _pad: 0,
        },
        flags,
    );
    Ok(())
}
