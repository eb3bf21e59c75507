//! `agent-monitor verify DIR`: every file and every link of the chain.

use std::{
    collections::{BTreeSet, HashMap},
    fmt,
    fs::File,
    path::Path,
};

use parquet::file::reader::{FileReader, SerializedFileReader};

use crate::evidence::{
    EvidenceError,
    chain::{CHAIN_LOG, GENESIS, META_INDEX, META_PREV, file_sha256, hex, link, read_log, unhex},
    journal,
    signing::LinkVerifier,
};

/// Something wrong with the store, naming the file it concerns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// The file's bytes are not the ones chained.
    Altered { file: String },
    /// A chained file is gone.
    Removed { file: String },
    /// A Parquet file in the store that the chain does not list.
    Inserted { file: String },
    /// The file holds what the chain lists under another name.
    Moved { file: String, chained_as: String },
    /// A log entry whose link does not follow from the one before.
    BrokenLink { index: u64, file: String },
    /// The file's own record of its place in the chain disagrees with the
    /// log: files were reordered or a log entry was forged.
    WrongPlace { file: String, detail: String },
    /// Checked against a public key: the entry carries no signature.
    Unsigned { index: u64, file: String },
    /// Checked against a public key: the signature is not that key's over
    /// this link.
    BadSignature {
        index: u64,
        file: String,
        detail: String,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Altered { file } => {
                write!(f, "altered: {file} does not match its chained hash")
            }
            Problem::Removed { file } => write!(f, "removed: {file} is in the chain but missing"),
            Problem::Inserted { file } => write!(f, "inserted: {file} is not in the chain"),
            Problem::Moved { file, chained_as } => {
                write!(
                    f,
                    "reordered: {file} holds the chained content of {chained_as}"
                )
            }
            Problem::BrokenLink { index, file } => {
                write!(
                    f,
                    "broken chain: entry {index} ({file}) does not follow from the entry before"
                )
            }
            Problem::WrongPlace { file, detail } => write!(f, "out of place: {file}: {detail}"),
            Problem::Unsigned { index, file } => {
                write!(f, "unsigned: entry {index} ({file}) carries no signature")
            }
            Problem::BadSignature {
                index,
                file,
                detail,
            } => write!(f, "bad signature: entry {index} ({file}): {detail}"),
        }
    }
}

#[derive(Debug)]
pub struct Report {
    pub files: usize,
    pub head: String,
    pub problems: Vec<Problem>,
    /// Entries that carry a signature (checked only with a public key).
    pub signed: usize,
    /// Journal segments not yet published into Parquet: the store was not
    /// closed (`agent-monitor recover` publishes them).
    pub pending_segments: usize,
}

impl Report {
    pub fn intact(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks every file and every link; with `key`, also that every link is
/// signed by it.
pub fn verify(dir: &Path, key: Option<&LinkVerifier>) -> Result<Report, EvidenceError> {
    let entries = read_log(&dir.join(CHAIN_LOG))?;
    let mut problems = Vec::new();
    let by_hash: HashMap<&str, &str> = entries
        .iter()
        .map(|e| (e.sha256.as_str(), e.file.as_str()))
        .collect();

    let mut prev = GENESIS;
    for (i, entry) in entries.iter().enumerate() {
        let chained_sha = unhex(&entry.sha256);
        let expected = chained_sha.map(|sha| hex(&link(&prev, &sha)));
        if entry.index != i as u64
            || entry.prev != hex(&prev)
            || expected.as_deref() != Some(&entry.link)
        {
            problems.push(Problem::BrokenLink {
                index: entry.index,
                file: entry.file.clone(),
            });
        }
        prev = unhex(&entry.link).unwrap_or(GENESIS);
        if let Some(key) = key
            && let Some(problem) = signature_problem(key, entry)
        {
            problems.push(problem);
        }

        let path = dir.join(&entry.file);
        if !path.exists() {
            problems.push(Problem::Removed {
                file: entry.file.clone(),
            });
            continue;
        }
        let actual = hex(&file_sha256(&path)?);
        if actual != entry.sha256 {
            match by_hash.get(actual.as_str()) {
                Some(other) => problems.push(Problem::Moved {
                    file: entry.file.clone(),
                    chained_as: other.to_string(),
                }),
                None => problems.push(Problem::Altered {
                    file: entry.file.clone(),
                }),
            }
            continue;
        }
        if let Some(detail) = place_mismatch(&path, entry.index, &entry.prev) {
            problems.push(Problem::WrongPlace {
                file: entry.file.clone(),
                detail,
            });
        }
    }

    let chained: BTreeSet<&str> = entries.iter().map(|e| e.file.as_str()).collect();
    for file in parquet_files(dir) {
        if !chained.contains(file.as_str()) {
            problems.push(Problem::Inserted { file });
        }
    }
    Ok(Report {
        files: entries.len(),
        head: hex(&prev),
        problems,
        signed: entries.iter().filter(|e| e.sig.is_some()).count(),
        pending_segments: journal::segments(dir)?.len(),
    })
}

fn signature_problem(
    key: &LinkVerifier,
    entry: &crate::evidence::chain::ChainEntry,
) -> Option<Problem> {
    let Some(sig) = &entry.sig else {
        return Some(Problem::Unsigned {
            index: entry.index,
            file: entry.file.clone(),
        });
    };
    let bad = |detail: String| Problem::BadSignature {
        index: entry.index,
        file: entry.file.clone(),
        detail,
    };
    let Some(link) = unhex(&entry.link) else {
        return Some(bad("the link is not a SHA-256".into()));
    };
    match key.verify(entry.index, &link, sig) {
        Ok(()) => None,
        Err(problem) => {
            let signer = entry.key_id.as_deref().unwrap_or("an unnamed key");
            let detail = if signer == key.key_id() {
                problem.to_string()
            } else {
                format!(
                    "{problem} (signed by key {signer}, checked with {})",
                    key.key_id()
                )
            };
            Some(bad(detail))
        }
    }
}

/// What the file's metadata says of its place, if it disagrees.
fn place_mismatch(path: &Path, index: u64, prev: &str) -> Option<String> {
    let reader = match File::open(path).map(SerializedFileReader::new) {
        Ok(Ok(reader)) => reader,
        Ok(Err(e)) => return Some(format!("not readable as Parquet: {e}")),
        Err(e) => return Some(format!("not readable: {e}")),
    };
    let metadata = reader.metadata().file_metadata().key_value_metadata();
    let value = |key: &str| {
        metadata
            .and_then(|kv| kv.iter().find(|kv| kv.key == key))
            .and_then(|kv| kv.value.clone())
    };
    match (value(META_INDEX), value(META_PREV)) {
        (Some(i), Some(p)) if i == index.to_string() && p == prev => None,
        (i, p) => Some(format!(
            "its metadata says index {} after {}, the chain says index {index} after {prev}",
            i.unwrap_or_default(),
            p.unwrap_or_default()
        )),
    }
}

/// Every `*.parquet` file under `dir`, relative, sorted.
fn parquet_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet")
                && let Ok(relative) = path.strip_prefix(dir)
            {
                out.push(relative.to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
