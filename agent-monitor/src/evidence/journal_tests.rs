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

/// The `events` table's values, and whether its tail was torn.
fn events_read(segment: &Path) -> (Vec<i64>, bool) {
    let read = read_table(segment, "events").unwrap().unwrap();
    (values(&read), read.torn_tail)
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

/// The LZ4 frames of a journal file, each decoded whole.
fn frames(file: &Path) -> Vec<Vec<u8>> {
    let mut reader = BufReader::new(File::open(file).unwrap());
    let mut frames = Vec::new();
    while !reader.fill_buf().unwrap().is_empty() {
        let mut frame = Vec::new();
        FrameDecoder::new(&mut reader)
            .read_to_end(&mut frame)
            .unwrap();
        frames.push(frame);
    }
    frames
}

/// The column names of each IPC stream in a journal file, as stored.
fn stored_columns(file: &Path) -> Vec<Vec<String>> {
    frames(file)
        .into_iter()
        .map(|frame| {
            let mut stream = StreamReader::try_new(Cursor::new(frame), None).unwrap();
            let names = stream
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            for batch in stream.by_ref() {
                batch.unwrap();
            }
            names
        })
        .collect()
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

    assert_eq!(events_read(&path), (vec![1, 2, 3], false));
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

    assert_eq!(events_read(&path), (vec![1, 2, 3, 4], false));
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

    assert_eq!(events_read(&path), (vec![1, 2], true));
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

    assert_eq!(events_read(&path), (vec![1], true));
}

#[test]
fn each_append_is_one_checksummed_frame_of_64_kib_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let mut segment = Segment::create(dir.path(), 1).unwrap();
    // 160 KiB of values: a frame of several blocks.
    let large: Vec<i64> = (0..20_000).collect();
    segment.append("events", &batch(&large)).unwrap();
    segment.append("events", &batch(&[7])).unwrap();
    let path = segment.close().unwrap();

    let file = path.join("events.arrows");
    let bytes = fs::read(&file).unwrap();
    assert_eq!(bytes[..4], FRAME_MAGIC);
    // The frame descriptor: FLG has the content checksum bit, BD says
    // blocks of at most 64 KiB (code 4).
    assert_eq!(bytes[4] & 0b0000_0100, 0b0000_0100);
    assert_eq!((bytes[5] >> 4) & 0b111, 4);
    assert_eq!(frames(&file).len(), 2);

    let read = read_table(&path, "events").unwrap().unwrap();
    assert_eq!(read.batches, vec![batch(&large), batch(&[7])]);
    assert!(!read.torn_tail);
}

#[test]
fn a_damaged_frame_ends_the_stream_and_keeps_what_came_before() {
    let dir = tempfile::tempdir().unwrap();
    let mut segment = Segment::create(dir.path(), 1).unwrap();
    segment.append("events", &batch(&[1, 2])).unwrap();
    let first_len = fs::metadata(segment.path().join("events.arrows"))
        .unwrap()
        .len();
    let large: Vec<i64> = (0..20_000).collect();
    segment.append("events", &batch(&large)).unwrap();
    segment.append("events", &batch(&[3])).unwrap();
    let path = segment.close().unwrap();

    // Flip a bit inside the second frame's first block: LZ4 still decodes
    // it (a literal byte changes), only the frame's checksum catches it.
    let file = path.join("events.arrows");
    let mut bytes = fs::read(&file).unwrap();
    let at = usize::try_from(first_len).unwrap() + 20_000;
    bytes[at] ^= 0x01;
    fs::write(&file, &bytes).unwrap();

    assert_eq!(events_read(&path), (vec![1, 2], true));
}

#[test]
fn a_journal_of_arrow_compressed_streams_still_reads_back() {
    // Segments left by a monitor that wrote each append as an IPC stream
    // whose buffers Arrow compressed, one LZ4 frame each.
    let dir = tempfile::tempdir().unwrap();
    let segment = Segment::create(dir.path(), 1).unwrap();
    let path = segment.close().unwrap();
    let batches = [
        wide(&[1, 2], &[Some("/a"), Some("/b")], &[None, Some(53)]),
        wide(&[3], &[Some("/c")], &[None]),
    ];
    let mut file = File::create(path.join("events.arrows")).unwrap();
    let options = arrow_ipc::writer::IpcWriteOptions::default()
        .try_with_compression(Some(arrow_ipc::CompressionType::LZ4_FRAME))
        .unwrap();
    for batch in &batches {
        let mut writer =
            StreamWriter::try_new_with_options(&mut file, &wide_schema(), options.clone()).unwrap();
        writer.write(batch).unwrap();
        writer.finish().unwrap();
    }
    // And a torn tail, as a crash left it.
    file.write_all(&[0xff, 0xff, 0xff]).unwrap();
    drop(file);

    let read = read_as(&path, "events", wide_schema()).unwrap().unwrap();
    assert_eq!(read.batches, batches);
    assert!(read.torn_tail);
}
