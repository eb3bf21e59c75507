use std::sync::Arc;

use arrow_array::{Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};

use super::*;

/// A whole table's stream, read to its end.
struct TableRead {
    batches: Vec<RecordBatch>,
    torn_tail: bool,
}

fn read_table(segment: &Path, table: &str) -> Result<Option<TableRead>, EvidenceError> {
    Ok(stream_table(segment, table)?.map(|mut stream| TableRead {
        batches: stream.by_ref().collect(),
        torn_tail: stream.torn_tail(),
    }))
}

fn batch(values: &[i64]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
    RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values.to_vec()))]).unwrap()
}

fn values(read: &TableRead) -> Vec<i64> {
    read.batches
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .values()
                .to_vec()
        })
        .collect()
}

#[test]
fn batches_read_back_in_order_per_table() {
    let dir = tempfile::tempdir().unwrap();
    let mut segment = Segment::create(dir.path(), 42).unwrap();
    segment.append("events", &batch(&[1, 2])).unwrap();
    segment.append("gaps", &batch(&[9])).unwrap();
    segment.append("events", &batch(&[3])).unwrap();
    segment.sync().unwrap();
    let path = segment.close().unwrap();

    let events = read_table(&path, "events").unwrap().unwrap();
    assert_eq!(values(&events), vec![1, 2, 3]);
    assert!(!events.torn_tail);
    assert_eq!(
        values(&read_table(&path, "gaps").unwrap().unwrap()),
        vec![9]
    );
    assert!(read_table(&path, "processes").unwrap().is_none());
    assert_eq!(segment_opened_ns(&path), Some(42));
    assert_eq!(segments(dir.path()).unwrap(), vec![path]);
}

#[test]
fn an_unclosed_segment_reads_back_whole() {
    // A crash after a sync: no end marker, every synced batch is there.
    let dir = tempfile::tempdir().unwrap();
    let mut segment = Segment::create(dir.path(), 1).unwrap();
    segment.append("events", &batch(&[1, 2, 3])).unwrap();
    segment.append("events", &batch(&[4])).unwrap();
    segment.sync().unwrap();
    let path = segment.path().to_path_buf();
    std::mem::forget(segment);

    let events = read_table(&path, "events").unwrap().unwrap();
    assert_eq!(values(&events), vec![1, 2, 3, 4]);
    assert!(!events.torn_tail);
}

#[test]
fn a_torn_last_batch_is_dropped_and_the_rest_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut segment = Segment::create(dir.path(), 1).unwrap();
    segment.append("events", &batch(&[1, 2])).unwrap();
    segment.append("events", &batch(&[3, 4, 5])).unwrap();
    segment.sync().unwrap();
    let path = segment.path().to_path_buf();
    drop(segment);
    let stream = path.join("events.arrows");
    let len = fs::metadata(&stream).unwrap().len();
    // Cut inside the second batch (and its end marker).
    OpenOptions::new()
        .write(true)
        .open(&stream)
        .unwrap()
        .set_len(len - 20)
        .unwrap();

    let events = read_table(&path, "events").unwrap().unwrap();
    assert_eq!(values(&events), vec![1, 2]);
    assert!(events.torn_tail);
}

#[test]
fn a_stream_cut_inside_its_schema_holds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut segment = Segment::create(dir.path(), 1).unwrap();
    segment.append("events", &batch(&[1])).unwrap();
    let path = segment.path().to_path_buf();
    drop(segment);
    OpenOptions::new()
        .write(true)
        .open(path.join("events.arrows"))
        .unwrap()
        .set_len(5)
        .unwrap();
    let events = read_table(&path, "events").unwrap().unwrap();
    assert!(events.batches.is_empty());
    assert!(events.torn_tail);
}

#[test]
fn segments_sort_by_opening_time_and_never_collide() {
    let dir = tempfile::tempdir().unwrap();
    let late = Segment::create(dir.path(), 2_000).unwrap();
    let early = Segment::create(dir.path(), 999).unwrap();
    let same = Segment::create(dir.path(), 999).unwrap();
    assert_ne!(early.path(), same.path());
    let found = segments(dir.path()).unwrap();
    assert_eq!(
        found,
        vec![
            early.path().to_path_buf(),
            same.path().to_path_buf(),
            late.path().to_path_buf()
        ]
    );
}
