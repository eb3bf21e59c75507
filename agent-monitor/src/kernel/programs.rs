//! The table of every kernel program: what it hooks and whether the monitor
//! can run without it. Attaching walks this table; nothing else names a hook.

use agent_monitor_common::programs;
use aya::{Ebpf, programs::RawTracePoint};

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    /// A raw tracepoint, by its tracepoint name.
    RawTracepoint(&'static str),
}

#[derive(Clone, Copy, Debug)]
pub struct ProgramSpec {
    pub program: &'static str,
    pub hook: Hook,
    /// A required program that fails to attach stops the monitor; an
    /// optional one is reported and the monitor runs without it.
    pub required: bool,
}

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
    let Hook::RawTracepoint(target) = spec.hook;
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
    program.attach(target).map_err(attach_error)?;
    Ok(())
}
