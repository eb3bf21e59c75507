//! Errors the library reports. Each message is one line that names what is
//! missing and how to get it.

use std::{io, path::PathBuf};

use crate::kernel::btf::BtfError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "agent-monitor needs root, or the capabilities CAP_BPF and CAP_PERFMON (missing: {missing}); run it with sudo"
    )]
    Privileges { missing: String },

    #[error(
        "kernel BTF is missing at {path}: use a kernel built with CONFIG_DEBUG_INFO_BTF=y (most distribution kernels since 2021)"
    )]
    NoBtf { path: PathBuf },

    #[error("cannot read kernel BTF: {0}")]
    Btf(#[from] BtfError),

    #[error(
        "tracefs is not mounted at /sys/kernel/tracing and mounting it failed ({0}); mount it with `mount -t tracefs tracefs /sys/kernel/tracing`"
    )]
    Tracefs(io::Error),

    #[error(
        "this binary was built without its kernel programs (AYA_BUILD_SKIP was set); rebuild with `cargo xtask build`"
    )]
    NoPrograms,

    #[error(transparent)]
    Capture(#[from] crate::capture::CaptureError),

    #[error("loading the kernel programs failed: {0}")]
    Load(#[source] Box<aya::EbpfError>),

    #[error("kernel program {program} is missing from the object")]
    MissingProgram { program: &'static str },

    #[error(
        "cannot attach {program} to {target}: {source} (tracepoints need CONFIG_TRACEPOINTS and a kernel of 5.8 or newer)"
    )]
    Attach {
        program: &'static str,
        target: &'static str,
        #[source]
        source: Box<aya::programs::ProgramError>,
    },

    #[error("kernel map {map} is missing or of the wrong type: {detail}")]
    Map { map: &'static str, detail: String },

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },

    #[error("{command}: command not found")]
    CommandNotFound { command: String },

    #[error("{command}: permission denied")]
    CommandNotExecutable { command: String },
}

impl Error {
    pub fn io(context: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// The exit status for this failure: 127 and 126 as a shell gives them
    /// for a command it cannot run, 125 for a failure of the monitor itself
    /// (as `timeout` and `env` do), so a caller can tell it from the command's own.
    pub fn exit_status(&self) -> i32 {
        match self {
            Error::CommandNotFound { .. } => 127,
            Error::CommandNotExecutable { .. } => 126,
            _ => 125,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
