//! Why a policy did not load. Each error names the line and, after a
//! successful parse, the field: a typo in a security policy must be found
//! before the policy runs, not after it silently allowed something.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("reading policy {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The text is not valid TOML, or does not have the policy's shape
    /// (an unknown key, a wrong type, an unknown value).
    #[error("policy line {line}: {message}")]
    Parse { line: usize, message: String },
    /// The shape is right but a value is not: a bad glob, CIDR, port or
    /// template, a name used twice.
    #[error("policy line {line}: {field}: {message}")]
    Invalid {
        line: usize,
        field: String,
        message: String,
    },
    /// A directory the daemon asked to protect is not usable.
    #[error("protecting {path}: {message}")]
    Protect { path: String, message: String },
}

impl PolicyError {
    /// The 1-based line the error is about.
    pub fn line(&self) -> Option<usize> {
        match self {
            PolicyError::Read { .. } | PolicyError::Protect { .. } => None,
            PolicyError::Parse { line, .. } | PolicyError::Invalid { line, .. } => Some(*line),
        }
    }
}

/// The 1-based line of byte `offset` in `text`.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}
