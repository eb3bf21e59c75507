use std::{fs, path::Path};

use super::*;
use crate::{
    evidence::store::{EvidenceStore, StoreOptions},
    sink::Sink,
    test_support::{actor, process_info},
    time::WallClock,
};

/// A store with `files` events files of two events each, closed in turn.
fn store_with(dir: &Path, files: usize) -> Vec<String> {
    let clock = WallClock::with_offset(1_795_730_726_000_000_000);
    let mut store = EvidenceStore::open(dir, clock, StoreOptions::default()).unwrap();
    let process = process_info(100, 1_000);
    for file in 0..files as u64 {
        for seq in [file * 2, file * 2 + 1] {
            let mut event = actor(100, 1_000, 1).exec("/bin/true", &["true"]);
            event.seq = seq;
            store.event(&event, &process, "agent").unwrap();
        }
        store.rotate().unwrap();
    }
    read_log(&dir.join(CHAIN_LOG))
        .unwrap()
        .into_iter()
        .map(|e| e.file)
        .collect()
}

fn problems(dir: &Path) -> Vec<Problem> {
    verify(dir).unwrap().problems
}

#[test]
fn a_clean_store_verifies_and_reports_its_head() {
    let dir = tempfile::tempdir().unwrap();
    let files = store_with(dir.path(), 3);
    assert_eq!(files.len(), 3);
    let report = verify(dir.path()).unwrap();
    assert!(report.intact(), "{:?}", report.problems);
    assert_eq!(report.files, 3);
    let log = read_log(&dir.path().join(CHAIN_LOG)).unwrap();
    assert_eq!(report.head, log[2].link);
}

#[test]
fn a_flipped_byte_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let files = store_with(dir.path(), 3);
    let path = dir.path().join(&files[1]);
    let mut bytes = fs::read(&path).unwrap();
    bytes[100] ^= 1;
    fs::write(&path, bytes).unwrap();
    assert_eq!(
        problems(dir.path()),
        vec![Problem::Altered {
            file: files[1].clone()
        }]
    );
}

#[test]
fn a_deleted_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let files = store_with(dir.path(), 3);
    fs::remove_file(dir.path().join(&files[0])).unwrap();
    assert_eq!(
        problems(dir.path()),
        vec![Problem::Removed {
            file: files[0].clone()
        }]
    );
}

#[test]
fn two_swapped_files_are_both_named() {
    let dir = tempfile::tempdir().unwrap();
    let files = store_with(dir.path(), 3);
    let (a, b) = (dir.path().join(&files[0]), dir.path().join(&files[2]));
    let tmp = dir.path().join("swap");
    fs::rename(&a, &tmp).unwrap();
    fs::rename(&b, &a).unwrap();
    fs::rename(&tmp, &b).unwrap();
    assert_eq!(
        problems(dir.path()),
        vec![
            Problem::Moved {
                file: files[0].clone(),
                chained_as: files[2].clone()
            },
            Problem::Moved {
                file: files[2].clone(),
                chained_as: files[0].clone()
            },
        ]
    );
}

#[test]
fn a_foreign_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let files = store_with(dir.path(), 2);
    // A real evidence file from another store, copied in.
    let other = tempfile::tempdir().unwrap();
    let foreign = store_with(other.path(), 1);
    let target = Path::new(&files[0]).with_file_name("intruder.parquet");
    fs::copy(other.path().join(&foreign[0]), dir.path().join(&target)).unwrap();
    assert_eq!(
        problems(dir.path()),
        vec![Problem::Inserted {
            file: target.to_string_lossy().into_owned()
        }]
    );
}

#[test]
fn a_forged_log_entry_breaks_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let files = store_with(dir.path(), 3);
    // Rewrite the middle entry's file hash as if the file had been
    // replaced and the log edited to match, without re-linking.
    let log_path = dir.path().join(CHAIN_LOG);
    let mut entries = read_log(&log_path).unwrap();
    let replaced = dir.path().join(&files[1]);
    let mut bytes = fs::read(&replaced).unwrap();
    bytes[100] ^= 1;
    fs::write(&replaced, &bytes).unwrap();
    entries[1].sha256 = hex(&file_sha256(&replaced).unwrap());
    let text: String = entries
        .iter()
        .map(|e| serde_json::to_string(e).unwrap() + "\n")
        .collect();
    fs::write(&log_path, text).unwrap();
    assert_eq!(
        problems(dir.path()),
        vec![Problem::BrokenLink {
            index: 1,
            file: files[1].clone()
        }]
    );
}

#[test]
fn reopening_continues_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    store_with(dir.path(), 2);
    store_with(dir.path(), 2);
    let report = verify(dir.path()).unwrap();
    assert!(report.intact(), "{:?}", report.problems);
    assert_eq!(report.files, 4);
}
