//! The evidence store: observed events as Parquet files that DuckDB reads
//! as is, closed into a hash chain that `agent-monitor verify` checks.
//!
//! Layout: `<dir>/<table>/date=YYYY-MM-DD/hour=HH/<host>-<first_seq>-<index>.parquet`
//! (Hive partitions; `index` is the file's place in the chain, which keeps
//! names unique across runs), and `<dir>/chain.log`, one JSON line per
//! closed file.

pub mod chain;
pub mod columns;
pub mod declared;
pub mod events;
pub mod journal;
pub mod publish;
pub mod reserve;
pub mod schema;
pub mod signing;
pub mod store;
pub mod verify;

#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("building a record batch: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    #[error("writing Parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("journal {path}: {source}")]
    Journal {
        path: String,
        #[source]
        source: arrow_schema::ArrowError,
    },
    #[error(transparent)]
    Signing(#[from] signing::SigningError),
    #[error("the chain in {dir} is signed: continue it only with its signing key (--signing-key)")]
    SigningKeyNeeded { dir: String },
    #[error("chain log {path}: line {line}: {detail}")]
    ChainLog {
        path: String,
        line: usize,
        detail: String,
    },
}

impl EvidenceError {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> EvidenceError {
        EvidenceError::Io {
            context: context.into(),
            source,
        }
    }
}
