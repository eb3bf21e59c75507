//! The hash chain over closed evidence files.
//!
//! Each closed file gets a link: `SHA-256(previous link ‖ SHA-256(file))`,
//! starting from 32 zero bytes. The link of the file before is written into
//! each file's Parquet key-value metadata before it is closed (a file
//! cannot hold its own hash), and every link is appended to `chain.log`,
//! one JSON line per file, synced before the file becomes visible.

use std::{
    collections::HashMap,
    fs::{File, OpenOptions},
    io::{BufRead, BufReader, Read, Write},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::evidence::{EvidenceError, signing::LinkSigner};

pub const CHAIN_LOG: &str = "chain.log";
/// Key-value metadata keys written into every evidence file.
pub const META_INDEX: &str = "agent_monitor.chain.index";
pub const META_PREV: &str = "agent_monitor.chain.prev";
/// The journal segment the file was published from.
pub const META_SEGMENT: &str = "agent_monitor.journal.segment";

pub type Hash = [u8; 32];
pub const GENESIS: Hash = [0; 32];

/// One line of `chain.log`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainEntry {
    pub index: u64,
    pub table: String,
    /// Relative to the evidence directory.
    pub file: String,
    pub sha256: String,
    pub prev: String,
    pub link: String,
    /// The journal segment the file was published from: how recovery
    /// knows a segment's file was already chained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
    /// Ed25519 signature over the link (see [`crate::evidence::signing`]),
    /// when the store is signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sig: Option<String>,
    /// Which key signed: the first 16 hex digits of its SHA-256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

pub fn link(prev: &Hash, file: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update(prev);
    hasher.update(file);
    hasher.finalize().into()
}

pub fn hex(hash: &Hash) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn unhex(text: &str) -> Option<Hash> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

/// SHA-256 of a file's bytes.
pub fn file_sha256(path: &Path) -> Result<Hash, EvidenceError> {
    let mut file = File::open(path)
        .map_err(|e| EvidenceError::io(format!("opening {}", path.display()), e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| EvidenceError::io(format!("reading {}", path.display()), e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().into())
}

/// Every entry of a chain log, in order.
pub fn read_log(path: &Path) -> Result<Vec<ChainEntry>, EvidenceError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(EvidenceError::io(format!("opening {}", path.display()), e)),
    };
    let mut entries = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| EvidenceError::io(format!("reading {}", path.display()), e))?;
        if line.trim().is_empty() {
            continue;
        }
        let entry = serde_json::from_str(&line).map_err(|e| EvidenceError::ChainLog {
            path: path.display().to_string(),
            line: i + 1,
            detail: e.to_string(),
        })?;
        entries.push(entry);
    }
    Ok(entries)
}

/// The chain's writer: its head and the log it appends to.
pub struct Chain {
    log: File,
    log_path: PathBuf,
    head: Hash,
    next_index: u64,
    /// Chained files by (segment, table).
    from_segments: HashMap<(String, String), String>,
    signer: Option<LinkSigner>,
    /// The last entry was signed: continuing the chain needs the key.
    signed: bool,
}

impl Chain {
    /// Opens the chain of `dir`, continuing from the last entry of its log.
    pub fn open(dir: &Path) -> Result<Chain, EvidenceError> {
        let log_path = dir.join(CHAIN_LOG);
        let entries = read_log(&log_path)?;
        let (head, next_index) = match entries.last() {
            Some(last) => (
                unhex(&last.link).ok_or_else(|| EvidenceError::ChainLog {
                    path: log_path.display().to_string(),
                    line: entries.len(),
                    detail: "the last link is not a SHA-256".into(),
                })?,
                last.index + 1,
            ),
            None => (GENESIS, 0),
        };
        let from_segments = entries
            .iter()
            .filter_map(|e| {
                let segment = e.segment.clone()?;
                Some(((segment, e.table.clone()), e.file.clone()))
            })
            .collect();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| EvidenceError::io(format!("opening {}", log_path.display()), e))?;
        Ok(Chain {
            log,
            log_path,
            head,
            next_index,
            from_segments,
            signer: None,
            signed: entries.last().is_some_and(|e| e.sig.is_some()),
        })
    }

    /// Opens the chain of `dir` to append to it. A signed chain is only
    /// continued with a key: unsigned links after signed ones would read
    /// as tampering.
    pub fn open_for_append(dir: &Path, signer: Option<LinkSigner>) -> Result<Chain, EvidenceError> {
        let mut chain = Chain::open(dir)?;
        if chain.signed && signer.is_none() {
            return Err(EvidenceError::SigningKeyNeeded {
                dir: dir.display().to_string(),
            });
        }
        chain.signer = signer;
        Ok(chain)
    }

    /// The file already chained for this segment's table, if any.
    pub fn published(&self, segment: &str, table: &str) -> Option<String> {
        self.from_segments
            .get(&(segment.to_string(), table.to_string()))
            .cloned()
    }

    /// The link of the last closed file (all zeros before the first).
    pub fn head(&self) -> Hash {
        self.head
    }

    pub fn next_index(&self) -> u64 {
        self.next_index
    }

    /// Adds a closed file to the chain and syncs the log.
    pub fn append(
        &mut self,
        table: &str,
        file: &str,
        sha256: &Hash,
        segment: Option<&str>,
    ) -> Result<ChainEntry, EvidenceError> {
        let next = link(&self.head, sha256);
        let entry = ChainEntry {
            index: self.next_index,
            table: table.into(),
            file: file.into(),
            sha256: hex(sha256),
            prev: hex(&self.head),
            link: hex(&next),
            segment: segment.map(str::to_string),
            sig: self.signer.as_ref().map(|s| s.sign(self.next_index, &next)),
            key_id: self.signer.as_ref().map(LinkSigner::key_id),
        };
        let mut line = serde_json::to_vec(&entry).expect("plain struct");
        line.push(b'\n');
        let context = || format!("appending to {}", self.log_path.display());
        let before = self
            .log
            .metadata()
            .map_err(|e| EvidenceError::io(context(), e))?
            .len();
        if let Err(e) = self
            .log
            .write_all(&line)
            .and_then(|()| self.log.sync_data())
        {
            // A torn line would make the whole log unreadable; a full disk
            // must leave the log as it was.
            let _ = self.log.set_len(before);
            return Err(EvidenceError::io(context(), e));
        }
        if let Some(segment) = segment {
            self.from_segments
                .insert((segment.to_string(), table.to_string()), file.to_string());
        }
        self.head = next;
        self.next_index += 1;
        Ok(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_chain_and_hex_round_trips() {
        let a = link(&GENESIS, &[1; 32]);
        let b = link(&a, &[2; 32]);
        assert_ne!(a, b);
        assert_eq!(unhex(&hex(&b)), Some(b));
        assert_eq!(unhex("zz"), None);
    }

    #[test]
    fn the_log_continues_across_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let mut chain = Chain::open(dir.path()).unwrap();
        let first = chain
            .append("events", "events/a.parquet", &[7; 32], Some("seg-1"))
            .unwrap();
        drop(chain);
        let mut chain = Chain::open(dir.path()).unwrap();
        assert_eq!(chain.next_index(), 1);
        assert_eq!(
            chain.published("seg-1", "events").as_deref(),
            Some("events/a.parquet")
        );
        assert_eq!(chain.published("seg-1", "gaps"), None);
        let second = chain
            .append("events", "events/b.parquet", &[8; 32], None)
            .unwrap();
        assert_eq!(second.prev, first.link);
        assert_eq!(
            read_log(&dir.path().join(CHAIN_LOG)).unwrap(),
            vec![first, second]
        );
    }
}
