use std::{fs, path::Path};

use super::*;
use crate::{
    evidence::{
        EvidenceError,
        chain::Chain,
        signing::{LinkSigner, generate, public_path},
        store::{EvidenceStore, StoreOptions},
    },
    sink::{Attribution, Sink},
    test_support::{actor, process_info},
    time::WallClock,
};

/// A store with `files` events files of two events each, closed in turn.
fn store_with(dir: &Path, files: usize) -> Vec<String> {
    signed_store_with(dir, files, None)
}

fn signed_store_with(dir: &Path, files: usize, signer: Option<LinkSigner>) -> Vec<String> {
    let clock = WallClock::with_offset(1_795_730_726_000_000_000);
    let options = StoreOptions {
        signer,
        ..StoreOptions::default()
    };
    let mut store = EvidenceStore::open(dir, clock, options).unwrap();
    let process = process_info(100, 1_000);
    for file in 0..files as u64 {
        for seq in [file * 2, file * 2 + 1] {
            let mut event = actor(100, 1_000, 1).exec("/bin/true", &["true"]);
            event.seq = seq;
            store
                .event(&event, &process, &Attribution::agent("agent"))
                .unwrap();
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
    verify(dir, None).unwrap().problems
}

#[test]
fn a_clean_store_verifies_and_reports_its_head() {
    let dir = tempfile::tempdir().unwrap();
    let files = store_with(dir.path(), 3);
    assert_eq!(files.len(), 3);
    let report = verify(dir.path(), None).unwrap();
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
    let report = verify(dir.path(), None).unwrap();
    assert!(report.intact(), "{:?}", report.problems);
    assert_eq!(report.files, 4);
}

/// A fresh key pair in `dir`: the signer and the public key's verifier.
fn key_pair(dir: &Path, name: &str) -> (LinkSigner, LinkVerifier) {
    let private = dir.join(name);
    let signer = generate(&private).unwrap();
    let verifier = LinkVerifier::load(&public_path(&private)).unwrap();
    (signer, verifier)
}

#[test]
fn a_signed_store_verifies_with_its_key_and_not_with_another() {
    let keys = tempfile::tempdir().unwrap();
    let (signer, verifier) = key_pair(keys.path(), "store.key");
    let (_, stranger) = key_pair(keys.path(), "other.key");
    let dir = tempfile::tempdir().unwrap();
    let files = signed_store_with(dir.path(), 2, Some(signer));

    let report = verify(dir.path(), Some(&verifier)).unwrap();
    assert!(report.intact(), "{:?}", report.problems);
    assert_eq!(report.signed, 2);
    let report = verify(dir.path(), Some(&stranger)).unwrap();
    assert_eq!(report.problems.len(), 2);
    assert!(matches!(
        &report.problems[0],
        Problem::BadSignature { index: 0, file, detail } if *file == files[0] && detail.contains("signed by key")
    ));
}

#[test]
fn a_rewritten_chain_log_fails_the_signature_check() {
    // Someone who can write the directory replaces a file and recomputes
    // every hash and link: only the signatures give it away.
    let keys = tempfile::tempdir().unwrap();
    let (signer, verifier) = key_pair(keys.path(), "store.key");
    let dir = tempfile::tempdir().unwrap();
    let files = signed_store_with(dir.path(), 2, Some(signer));
    let forged = dir.path().join(&files[1]);
    fs::copy(dir.path().join(&files[0]), &forged).unwrap();
    let log_path = dir.path().join(CHAIN_LOG);
    let mut entries = read_log(&log_path).unwrap();
    let sha = file_sha256(&forged).unwrap();
    let prev = unhex(&entries[1].prev).unwrap();
    entries[1].sha256 = hex(&sha);
    entries[1].link = hex(&link(&prev, &sha));
    let text: String = entries
        .iter()
        .map(|e| serde_json::to_string(e).unwrap() + "\n")
        .collect();
    fs::write(&log_path, text).unwrap();

    let report = verify(dir.path(), None).unwrap();
    // The metadata inside the copied file still names its old place.
    assert!(
        report
            .problems
            .iter()
            .all(|p| matches!(p, Problem::WrongPlace { .. })),
        "{:?}",
        report.problems
    );
    let report = verify(dir.path(), Some(&verifier)).unwrap();
    assert!(report.problems.contains(&Problem::BadSignature {
        index: 1,
        file: files[1].clone(),
        detail: "signature does not match the link, its index and the public key".into()
    }));
}

#[test]
fn an_unsigned_store_checked_with_a_key_names_every_entry() {
    let keys = tempfile::tempdir().unwrap();
    let (_, verifier) = key_pair(keys.path(), "store.key");
    let dir = tempfile::tempdir().unwrap();
    let files = store_with(dir.path(), 1);
    assert_eq!(
        verify(dir.path(), Some(&verifier)).unwrap().problems,
        vec![Problem::Unsigned {
            index: 0,
            file: files[0].clone()
        }]
    );
}

#[test]
fn a_signed_chain_is_not_continued_without_its_key() {
    let keys = tempfile::tempdir().unwrap();
    let (signer, _) = key_pair(keys.path(), "store.key");
    let dir = tempfile::tempdir().unwrap();
    signed_store_with(dir.path(), 1, Some(signer));
    assert!(matches!(
        Chain::open_for_append(dir.path(), None),
        Err(EvidenceError::SigningKeyNeeded { .. })
    ));
}
