//! The table of every kernel program: what it hooks and whether the monitor
//! can run without it. Attaching walks this table; nothing else names a hook.

use agent_monitor_common::{maps::EXIT_PROGRAMS, programs, syscall::Family};
use aya::{Ebpf, maps::ProgramArray, programs::RawTracePoint};

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    /// A raw tracepoint, by its tracepoint name.
    RawTracepoint(&'static str),
    /// Not attached: entered by tail call from `sys_exit`, at this index of
    /// the exit-program array.
    SyscallExit(Family),
}

#[derive(Clone, Copy, Debug)]
pub struct ProgramSpec {
    pub program: &'static str,
    pub hook: Hook,
    /// A required program that fails to attach stops the monitor; an
    /// optional one is reported and the monitor runs without it.
    pub required: bool,
}

/// In attach order: the exit programs go in the tail-call array before
/// `sys_exit` can call them.
pub const PROGRAMS: &[ProgramSpec] = &[
    ProgramSpec {
        program: programs::SCHED_PROCESS_FORK,
        hook: Hook::RawTracepoint("sched_process_fork"),
        required: true,
    },
    ProgramSpec {
        program: programs::SCHED_PROCESS_EXEC,
        hook: Hook::RawTracepoint("sched_process_exec"),
        required: true,
    },
    ProgramSpec {
        program: programs::SCHED_PROCESS_EXIT,
        hook: Hook::RawTracepoint("sched_process_exit"),
        required: true,
    },
    ProgramSpec {
        program: programs::FILE_EXIT,
        hook: Hook::SyscallExit(Family::File),
        required: false,
    },
    ProgramSpec {
        program: programs::NET_EXIT,
        hook: Hook::SyscallExit(Family::Net),
        required: false,
    },
    ProgramSpec {
        program: programs::PRIVILEGE_EXIT,
        hook: Hook::SyscallExit(Family::Privilege),
        required: false,
    },
    ProgramSpec {
        program: programs::SYS_EXIT,
        hook: Hook::RawTracepoint("sys_exit"),
        required: false,
    },
];

/// An optional program that could not be attached.
#[derive(Debug)]
pub struct Unattached {
    pub program: &'static str,
    pub reason: String,
}

/// Loads and attaches every program in [`PROGRAMS`]. Returns the optional
/// ones that failed, for the caller to report.
pub fn attach_all(ebpf: &mut Ebpf) -> Result<Vec<Unattached>> {
    let mut unattached = Vec::new();
    for spec in PROGRAMS {
        match attach(ebpf, spec) {
            Ok(()) => {}
            Err(err) if !spec.required => unattached.push(Unattached {
                program: spec.program,
                reason: err.to_string(),
            }),
            Err(err) => return Err(err),
        }
    }
    Ok(unattached)
}

fn attach(ebpf: &mut Ebpf, spec: &ProgramSpec) -> Result<()> {
    let target = match spec.hook {
        Hook::RawTracepoint(target) => target,
        Hook::SyscallExit(_) => "sys_exit (tail call)",
    };
    let attach_error = |source| Error::Attach {
        program: spec.program,
        target,
        source: Box::new(source),
    };
    let program: &mut RawTracePoint = ebpf
        .program_mut(spec.program)
        .ok_or(Error::MissingProgram {
            program: spec.program,
        })?
        .try_into()
        .map_err(attach_error)?;
    program.load().map_err(attach_error)?;
    match spec.hook {
        Hook::RawTracepoint(target) => {
            program.attach(target).map_err(attach_error)?;
        }
        Hook::SyscallExit(family) => {
            let fd = program
                .fd()
                .map_err(attach_error)?
                .try_clone()
                .map_err(|e| Error::io(format!("duplicating the fd of {}", spec.program), e))?;
            let map = ebpf.map_mut(EXIT_PROGRAMS).ok_or(Error::Map {
                map: EXIT_PROGRAMS,
                detail: "not in the object".into(),
            })?;
            let mut exits = ProgramArray::try_from(map).map_err(|e| Error::Map {
                map: EXIT_PROGRAMS,
                detail: e.to_string(),
            })?;
            exits.set(family as u32, &fd, 0).map_err(|e| Error::Map {
                map: EXIT_PROGRAMS,
                detail: e.to_string(),
            })?;
        }
    }
    Ok(())
}
