use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};

use super::*;

/// A whole table's stream, read to its end.
struct TableRead {
    batches: Vec<RecordBatch>,
    torn_tail: bool,
}

fn read_table(segment: &Path, table: &str) -> Result<Option<TableRead>, EvidenceError> {
    read_as(segment, table, v_schema())
}

fn read_as(
    segment: &Path,
    table: &str,
    schema: SchemaRef,
) -> Result<Option<TableRead>, EvidenceError> {
    Ok(
        stream_table(segment, table, schema)?.map(|mut stream| TableRead {
            batches: stream.by_ref().collect(),
            torn_tail: stream.torn_tail(),
        }),
    )
}

fn v_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]))
}

fn batch(values: &[i64]) -> RecordBatch {
    RecordBatch::try_new(
        v_schema(),
        vec![Arc::new(Int64Array::from(values.to_vec()))],
    )
    .unwrap()
}

/// A table like `events`: one column always set, two that are often null.
fn wide_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("seq", DataType::Int64, false),
        Field::new("path", DataType::Utf8, true),
        Field::new("port", DataType::Int64, true),
    ]))
}

fn wide(seq: &[i64], path: &[Option<&str>], port: &[Option<i64>]) -> RecordBatch {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(seq.to_vec())),
        Arc::new(StringArray::from(path.to_vec())),
        Arc::new(Int64Array::from(port.to_vec())),
    ];
    RecordBatch::try_new(wide_schema(), columns).unwrap()
}

/// The column names of each IPC stream in a journal file, as stored.
fn stored_columns(file: &Path) -> Vec<Vec<String>> {
    let mut reader = BufReader::new(File::open(file).unwrap());
    let mut streams = Vec::new();
    while !reader.fill_buf().unwrap().is_empty() {
        let mut stream = StreamReader::try_new(&mut reader, None).unwrap();
        let names = stream
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        for batch in stream.by_ref() {
            batch.unwrap();
        }
        streams.push(names);
    }
    streams
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

#[test]
fn null_columns_are_left_out_and_read_back_as_nulls() {
    let dir = tempfile::tempdir().unwrap();
    let mut segment = Segment::create(dir.path(), 1).unwrap();
    let opens = wide(&[1, 2], &[Some("/a"), Some("/b")], &[None, None]);
    let mixed = wide(&[3, 4], &[None, Some("/c")], &[Some(443), None]);
    let bare = wide(&[5], &[None], &[None]);
    let empty = wide(&[], &[], &[]);
    for batch in [&opens, &mixed, &bare, &empty] {
        segment.append("events", batch).unwrap();
    }
    let path = segment.close().unwrap();

    assert_eq!(
        stored_columns(&path.join("events.arrows")),
        vec![
            vec!["seq", "path"],
            vec!["seq", "path", "port"],
            vec!["seq"],
            vec!["seq"],
        ]
    );
    let read = read_as(&path, "events", wide_schema()).unwrap().unwrap();
    assert_eq!(read.batches, vec![opens, mixed, bare, empty]);
    assert!(!read.torn_tail);
}

#[test]
fn a_journal_of_one_stream_per_file_still_reads_back() {
    // Segments left by a monitor that wrote each table as one IPC stream of
    // full-width batches.
    let dir = tempfile::tempdir().unwrap();
    let segment = Segment::create(dir.path(), 1).unwrap();
    let path = segment.close().unwrap();
    let batches = [
        wide(&[1], &[Some("/a")], &[None]),
        wide(&[2], &[None], &[Some(53)]),
    ];
    let file = File::create(path.join("events.arrows")).unwrap();
    let mut writer = StreamWriter::try_new(file, &wide_schema()).unwrap();
    for batch in &batches {
        writer.write(batch).unwrap();
    }
    writer.finish().unwrap();

    let read = read_as(&path, "events", wide_schema()).unwrap().unwrap();
    assert_eq!(read.batches, batches);
    assert!(!read.torn_tail);
}

#[test]
fn a_batch_that_does_not_fit_its_table_ends_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let mut segment = Segment::create(dir.path(), 1).unwrap();
    segment.append("events", &batch(&[1])).unwrap();
    segment
        .append("events", &wide(&[2], &[Some("/a")], &[None]))
        .unwrap();
    segment.append("events", &batch(&[3])).unwrap();
    let path = segment.close().unwrap();

    let read = read_table(&path, "events").unwrap().unwrap();
    assert_eq!(values(&read), vec![1]);
    assert!(read.torn_tail);
}
