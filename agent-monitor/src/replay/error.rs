//! What can stop a replay: each error names the file or table at fault.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{dir} is not an evidence store: it has neither chain.log nor an events/ directory \
         (give the directory `agent-monitor run --evidence` wrote)"
    )]
    NotAStore { dir: PathBuf },
    /// The monitor's own baseline entries could not be added.
    #[error("extending the policy's baseline: {0}")]
    Policy(#[from] crate::policy::PolicyError),
    #[error(
        "{dir}: the evidence store has no `{table}` table ({dir}/{table}/ is missing); \
         if the monitor was killed, run `agent-monitor recover {dir}` first"
    )]
    MissingTable { dir: PathBuf, table: &'static str },
    #[error("{path}: not a readable Parquet file: {source}")]
    Parquet {
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },
    #[error("{path}: reading a record batch: {source}")]
    Arrow {
        path: PathBuf,
        #[source]
        source: arrow_schema::ArrowError,
    },
    #[error("{path}: column `{column}`: {problem}")]
    Column {
        path: PathBuf,
        column: &'static str,
        problem: String,
    },
}
