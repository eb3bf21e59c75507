//! The table of every kernel program: what it hooks and whether the monitor
//! can run without it. Attaching walks this table; nothing else names a hook.

use std::{
    ffi::CStr,
    os::fd::{AsFd as _, OwnedFd},
};

use agent_monitor_common::{maps::EXIT_PROGRAMS, programs, syscall::Family};
use aya::{Ebpf, maps::ProgramArray, programs::RawTracePoint};

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    /// A raw tracepoint, by its tracepoint name.
    RawTracepoint(&'static str),
    /// A raw tracepoint attached only while a process is or could become
    /// tracked: loaded here, switched by `kernel::syscall_hook`.
    WhileTracking(&'static CStr),
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
        hook: Hook::WhileTracking(c"sys_exit"),
        required: false,
    },
];

/// An optional program that could not be attached.
#[derive(Debug)]
pub struct Unattached {
    pub program: &'static str,
    pub reason: String,
}

/// A program loaded for `kernel::syscall_hook` to attach.
pub struct WhileTracking {
    pub program: &'static str,
    pub tracepoint: &'static CStr,
    pub fd: OwnedFd,
}

/// What [`attach_all`] did.
pub struct Attached {
    /// Optional programs that failed, for the caller to report.
    pub unattached: Vec<Unattached>,
    /// The program attached only while tracking, loaded.
    pub while_tracking: Option<WhileTracking>,
}

/// Loads every program in [`PROGRAMS`] and attaches all but the one
/// attached only while tracking.
pub fn attach_all(ebpf: &mut Ebpf) -> Result<Attached> {
    let mut attached = Attached {
        unattached: Vec::new(),
        while_tracking: None,
    };
    for spec in PROGRAMS {
        match attach(ebpf, spec) {
            Ok(None) => {}
            Ok(Some(fd)) => {
                if let Hook::WhileTracking(tracepoint) = spec.hook {
                    attached.while_tracking = Some(WhileTracking {
                        program: spec.program,
                        tracepoint,
                        fd,
                    });
                }
            }
            Err(err) if !spec.required => attached.unattached.push(Unattached {
                program: spec.program,
                reason: err.to_string(),
            }),
            Err(err) => return Err(err),
        }
    }
    Ok(attached)
}

/// Attaches one program; for one attached only while tracking, loads it
/// and returns its fd instead.
fn attach(ebpf: &mut Ebpf, spec: &ProgramSpec) -> Result<Option<OwnedFd>> {
    let target = match spec.hook {
        Hook::RawTracepoint(target) => target,
        Hook::WhileTracking(target) => target.to_str().unwrap_or("?"),
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
    let duplicate_fd = |program: &RawTracePoint| -> Result<OwnedFd> {
        let fd = program.fd().map_err(attach_error)?;
        fd.as_fd()
            .try_clone_to_owned()
            .map_err(|e| Error::io(format!("duplicating the fd of {}", spec.program), e))
    };
    match spec.hook {
        Hook::RawTracepoint(target) => {
            program.attach(target).map_err(attach_error)?;
        }
        Hook::WhileTracking(_) => return duplicate_fd(program).map(Some),
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
    Ok(None)
}
