use std::{fs, path::Path, sync::Arc, time::Duration};

use arrow_array::UInt64Array;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::*;
use crate::{
    evidence::{
        chain::{CHAIN_LOG, read_log},
        publish,
        verify::verify,
    },
    test_support::{actor, process_info},
};

fn clock() -> WallClock {
    WallClock::with_offset(1_795_730_726_000_000_000)
}

/// Journals on every flush and never rotates on its own.
fn options() -> StoreOptions {
    StoreOptions {
        rotate_every: Duration::from_secs(3600),
        max_rows: 1 << 20,
        journal_every: Duration::ZERO,
        signer: None,
    }
}

fn append(store: &mut EvidenceStore, seqs: std::ops::Range<u64>) {
    let process = process_info(100, 1_000);
    for seq in seqs {
        let mut event = actor(100, 1_000, 1).exec("/bin/true", &["true"]);
        event.seq = seq;
        store
            .event(&event, &process, &Attribution::agent("agent"))
            .unwrap();
    }
}

/// Every `seq` in the published events files, sorted.
fn published_seqs(dir: &Path) -> Vec<u64> {
    let mut seqs = Vec::new();
    for entry in read_log(&dir.join(CHAIN_LOG)).unwrap() {
        if entry.table != "events" {
            continue;
        }
        let file = fs::File::open(dir.join(&entry.file)).unwrap();
        for batch in ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap()
        {
            let batch = batch.unwrap();
            let seq = batch
                .column_by_name("seq")
                .unwrap()
                .as_any()
                .downcast_ref::<UInt64Array>()
                .unwrap();
            seqs.extend(seq.values().iter().copied());
        }
    }
    seqs.sort_unstable();
    seqs
}

/// A store that rotates every 8 rows, given `seqs` and flushed.
fn published_in_files_of_8(dir: &Path, seqs: std::ops::Range<u64>) {
    let options = StoreOptions {
        max_rows: 8,
        ..options()
    };
    let mut store = EvidenceStore::open(dir, clock(), options).unwrap();
    append(&mut store, seqs);
    store.flush().unwrap();
}

/// The Parquet metadata of the first events file in the chain.
fn first_events_file(dir: &Path) -> Arc<parquet::file::metadata::ParquetMetaData> {
    let entry = read_log(&dir.join(CHAIN_LOG))
        .unwrap()
        .into_iter()
        .find(|e| e.table == "events")
        .unwrap();
    let file = fs::File::open(dir.join(&entry.file)).unwrap();
    ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .metadata()
        .clone()
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn journaled_rows_survive_a_store_that_never_closed() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = EvidenceStore::open(dir.path(), clock(), options()).unwrap();
    append(&mut store, 0..10);
    store.flush().unwrap();
    append(&mut store, 10..15);
    store.flush().unwrap();
    // Buffered but never journaled: lost with the process, as documented.
    append(&mut store, 15..17);
    // A kill: nothing runs on the way out.
    std::mem::forget(store);
    assert!(published_seqs(dir.path()).is_empty());

    let recovered = recover(dir.path(), None).unwrap();
    assert_eq!(recovered.segments, 1);
    assert_eq!(recovered.published.rows, 15);
    assert_eq!(published_seqs(dir.path()), (0..15).collect::<Vec<_>>());
    assert!(journal::segments(dir.path()).unwrap().is_empty());
    assert!(verify(dir.path(), None).unwrap().intact());
}

#[test]
fn opening_a_store_recovers_the_journal_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = EvidenceStore::open(dir.path(), clock(), options()).unwrap();
    append(&mut store, 0..4);
    store.flush().unwrap();
    std::mem::forget(store);

    let mut store = EvidenceStore::open(dir.path(), clock(), options()).unwrap();
    append(&mut store, 100..102);
    store.close().unwrap();
    assert_eq!(published_seqs(dir.path()), vec![0, 1, 2, 3, 100, 101]);
    let report = verify(dir.path(), None).unwrap();
    assert!(report.intact(), "{:?}", report.problems);
}

#[test]
fn a_segment_chained_before_a_crash_is_not_published_twice() {
    let dir = tempfile::tempdir().unwrap();
    let saved = tempfile::tempdir().unwrap();
    let mut store = EvidenceStore::open(dir.path(), clock(), options()).unwrap();
    append(&mut store, 0..5);
    store.flush().unwrap();
    let segment = store.segment.as_ref().unwrap().path().to_path_buf();
    copy_dir(&segment, saved.path());
    store.rotate().unwrap();
    assert!(!segment.exists());
    // The crash came after chaining, before the segment was removed.
    copy_dir(saved.path(), &segment);

    let recovered = recover(dir.path(), None).unwrap();
    assert_eq!(recovered.published.rows, 0);
    assert_eq!(recovered.published.already_chained, 1);
    assert!(!segment.exists());
    assert_eq!(published_seqs(dir.path()), (0..5).collect::<Vec<_>>());
    assert!(verify(dir.path(), None).unwrap().intact());
}

#[test]
fn a_file_chained_but_not_yet_published_is_published_by_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let saved = tempfile::tempdir().unwrap();
    let mut store = EvidenceStore::open(dir.path(), clock(), options()).unwrap();
    append(&mut store, 0..3);
    store.flush().unwrap();
    let segment = store.segment.as_ref().unwrap().path().to_path_buf();
    copy_dir(&segment, saved.path());
    store.rotate().unwrap();
    // The crash came between chaining and publishing: the file is still
    // under its temporary name and the segment is still there.
    let file = read_log(&dir.path().join(CHAIN_LOG)).unwrap()[0]
        .file
        .clone();
    let published = dir.path().join(&file);
    fs::rename(&published, publish::temporary(&published)).unwrap();
    copy_dir(saved.path(), &segment);
    assert!(!verify(dir.path(), None).unwrap().intact());

    recover(dir.path(), None).unwrap();
    assert!(published.exists());
    assert!(!publish::temporary(&published).exists());
    assert_eq!(published_seqs(dir.path()), vec![0, 1, 2]);
    assert!(verify(dir.path(), None).unwrap().intact());
}

#[test]
fn a_temporary_file_never_chained_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = EvidenceStore::open(dir.path(), clock(), options()).unwrap();
    append(&mut store, 0..3);
    store.flush().unwrap();
    std::mem::forget(store);
    // A crash while writing the Parquet file, before it was chained.
    let partition = dir.path().join("events/date=2026-11-26/hour=10");
    fs::create_dir_all(&partition).unwrap();
    let stray = partition.join(".host-0-0.parquet.tmp");
    fs::write(&stray, b"PAR1 half a file").unwrap();

    let recovered = recover(dir.path(), None).unwrap();
    assert_eq!(recovered.orphans_removed, 1);
    assert!(!stray.exists());
    assert_eq!(published_seqs(dir.path()), vec![0, 1, 2]);
}

#[test]
fn a_lost_batch_becomes_one_storage_gap() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = EvidenceStore::open(dir.path(), clock(), options()).unwrap();
    store.lose("events", 10, 5, 9);
    store.lose("events", 4, 2, 7);
    store.lose("processes", 1, 3, 3);
    assert_eq!(
        store.gaps,
        vec![
            Gap {
                lost: "events",
                cause: "storage",
                cpu: None,
                count: 14,
                since_ns: 2,
                until_ns: 9
            },
            Gap {
                lost: "processes",
                cause: "storage",
                cpu: None,
                count: 1,
                since_ns: 3,
                until_ns: 3
            }
        ]
    );
}

#[test]
fn rotation_by_row_count_publishes_without_waiting_for_time() {
    let dir = tempfile::tempdir().unwrap();
    published_in_files_of_8(dir.path(), 0..10);
    assert_eq!(published_seqs(dir.path()), (0..10).collect::<Vec<_>>());
    assert!(journal::segments(dir.path()).unwrap().is_empty());
    // The files written alongside the journal were published, not left.
    assert_eq!(publish::remove_orphans(dir.path()).unwrap(), 0);
}

#[test]
fn unordered_columns_carry_no_statistics_and_the_selective_ones_do() {
    let dir = tempfile::tempdir().unwrap();
    published_in_files_of_8(dir.path(), 0..8);
    let metadata = first_events_file(dir.path());
    let group = metadata.row_group(0);
    let statistics = |name: &str| {
        group
            .columns()
            .iter()
            .find(|c| c.column_path().string() == name)
            .unwrap_or_else(|| panic!("no column {name}"))
            .statistics()
            .is_some_and(|s| s.min_bytes_opt().is_some())
    };
    for unordered in ["filename", "process_key", "argv.list.item"] {
        assert!(!statistics(unordered), "{unordered} has statistics");
    }
    for selective in ["seq", "ts", "kind", "agent", "pid"] {
        assert!(statistics(selective), "{selective} has no statistics");
    }
}
