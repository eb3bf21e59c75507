//! Unit tests of the process table, by theme:
//! - `lifecycle`: a process registered, forked, exec'd and exited, and the
//!   counts that follow;
//! - `reuse_and_orphans`: reused pids, and processes first seen without
//!   their fork (lost events, reparenting).

mod lifecycle;
mod reuse_and_orphans;

use super::*;

use crate::test_support::{actor, process_info, strings};

// ---------------------------------------------------------------------------
// Events come from `test_support`'s actors: the shared structs as bytes, then
// decoded, so the table sees exactly what the pipeline would give it.
// ---------------------------------------------------------------------------

fn no_cwd() -> ExecContext {
    ExecContext::default()
}

fn cwd(dir: &str) -> ExecContext {
    ExecContext {
        cwd: Some(dir.to_string()),
    }
}

/// The command `run` launches, registered before its first event: its start
/// time is not known yet.
fn launched_root(pid: u32) -> ProcessInfo {
    ProcessInfo {
        argv: strings(&["claude", "-p", "hi"]),
        cwd: Some("/home/u/project".to_string()),
        ..process_info(pid, 0)
    }
}

fn live(table: &ProcessTable, pid: u32) -> &ProcessInfo {
    table
        .get(pid)
        .unwrap_or_else(|| panic!("pid {pid} should be live"))
}
