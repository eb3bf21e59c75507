//! Which process a hook works for. Claude Code runs a command hook
//! through a shell (`sh -c '…'`), so the hook's parent may be that shell,
//! or a shell that shell started; the agent is the first ancestor that is
//! not one. A tool call is bound to that process: it is the one that then
//! performs the tool (reads the file, starts the command).

use std::{fs, io, path::Path};

use crate::discovery::proc_scan::{Stat, parse_stat};

/// Process names (`/proc/PID/comm`) of the shells an agent runs its hook
/// commands through.
pub const SHELLS: &[&str] = &["sh", "bash", "dash", "zsh"];

/// More shells than this in a row is no hook invocation: a loop in a
/// broken /proc, or a pathological nesting. The walk stops there.
const MAX_DEPTH: usize = 64;

/// The agent's process for a hook whose parent is `parent`: `parent`
/// itself unless it is a shell, else the first ancestor that is not a
/// shell. A shell whose parent is init (pid 1) or the idle task is taken
/// as the agent: an orphaned shell has no agent above it.
pub fn agent_process(parent: u32) -> io::Result<u32> {
    agent_process_in(Path::new("/proc"), parent)
}

/// [`agent_process`] against a /proc mounted at `proc_root`.
pub fn agent_process_in(proc_root: &Path, parent: u32) -> io::Result<u32> {
    let mut pid = parent;
    for _ in 0..MAX_DEPTH {
        let stat = read_stat(proc_root, pid)?;
        if !SHELLS.contains(&stat.comm.as_str()) || stat.ppid <= 1 {
            return Ok(pid);
        }
        pid = stat.ppid;
    }
    Ok(pid)
}

fn read_stat(proc_root: &Path, pid: u32) -> io::Result<Stat> {
    let path = proc_root.join(pid.to_string()).join("stat");
    let text = fs::read_to_string(&path)?;
    parse_stat(&text).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: not a /proc stat line", path.display()),
        )
    })
}

#[cfg(test)]
#[path = "ancestry_tests.rs"]
mod tests;
