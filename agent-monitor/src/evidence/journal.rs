//! The write-ahead journal: every row reaches disk here, as Arrow IPC
//! batches, before it goes into a Parquet file.
//!
//! A segment is a directory, `<dir>/journal/seg-<opened wall ns>/`, with one
//! file per table (`events.arrows`, …). Batches are appended and synced by
//! the store at least every 200 ms. When the store closes its files, the
//! segment is read back and published into Parquet (the same code path
//! that recovers a segment left behind by a crash), then removed.
//!
//! Each append is one LZ4 frame (64 KiB blocks, content checksum) holding
//! a whole, uncompressed Arrow IPC stream (schema, batch, end marker) of
//! only the columns that hold a value in that batch. A batch of `events` is
//! mostly null columns (a file open has no address, no argv, no DNS
//! answers), and IPC writes every null column out in full: leaving them out
//! is most of the journal's cost. Reading widens every batch back to its
//! table's schema.
//!
//! The frame is ours rather than Arrow's IPC compression because Arrow
//! compresses each buffer in a frame of its own, sized from the buffer:
//! every buffer over 256 KiB got 4 MiB blocks, and that encoder's buffers
//! (about 10 MiB) were the largest single item of the monitor's heap at
//! high event rates. Journals written that way, by earlier versions, are
//! still read.
//!
//! A crash can cut the last batch short. Reading stops at the first
//! incomplete or damaged frame and keeps every complete batch before it, so
//! nothing that was synced is lost. A failed append truncates the file back
//! to its last complete batch, so a full disk cannot leave a torn batch in
//! the middle of a file either.

use std::{
    cell::RefCell,
    fs::{self, File, OpenOptions},
    io::{self, BufRead, BufReader, BufWriter, Cursor, Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
    rc::Rc,
    sync::Arc,
};

use arrow_array::{RecordBatch, RecordBatchOptions, new_null_array};
use arrow_ipc::{reader::StreamReader, writer::StreamWriter};
use arrow_schema::{ArrowError, Schema, SchemaRef};
use lz4_flex::frame::{BlockSize, FrameDecoder, FrameEncoder, FrameInfo};

use crate::evidence::EvidenceError;

pub const JOURNAL_DIR: &str = "journal";
const SEGMENT_PREFIX: &str = "seg-";
const STREAM_SUFFIX: &str = ".arrows";
/// How every append of this version starts: the LZ4 frame magic number,
/// as stored. Earlier journals start with an IPC message instead.
const FRAME_MAGIC: [u8; 4] = 0x184D_2204u32.to_le_bytes();

/// One table's file in an open segment.
struct Stream {
    file: File,
    path: PathBuf,
    /// Bytes of complete appends: where a failed append is cut back to.
    good_len: u64,
}

/// The segment being written.
pub struct Segment {
    dir: PathBuf,
    streams: Vec<(&'static str, Stream)>,
}

impl Segment {
    /// Creates a new, empty segment. `opened_ns` (wall clock) names it, so
    /// segments sort in the order they were opened.
    pub fn create(store_dir: &Path, opened_ns: i64) -> Result<Segment, EvidenceError> {
        let journal = store_dir.join(JOURNAL_DIR);
        fs::create_dir_all(&journal)
            .map_err(|e| EvidenceError::io(format!("creating {}", journal.display()), e))?;
        // The suffix keeps two segments opened in the same nanosecond (a
        // coarse clock) apart.
        let mut attempt = 0u32;
        let dir = loop {
            let dir = journal.join(format!("{SEGMENT_PREFIX}{opened_ns:020}-{attempt}"));
            match fs::create_dir(&dir) {
                Ok(()) => break dir,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 1000 => {
                    attempt += 1;
                }
                Err(e) => {
                    return Err(EvidenceError::io(format!("creating {}", dir.display()), e));
                }
            }
        };
        sync_dir(&journal);
        Ok(Segment {
            dir,
            streams: Vec::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Appends a batch to its table's file (not yet synced). On failure
    /// the file is cut back to its last complete batch.
    pub fn append(
        &mut self,
        table: &'static str,
        batch: &RecordBatch,
    ) -> Result<(), EvidenceError> {
        let index = match self.streams.iter().position(|(t, _)| *t == table) {
            Some(index) => index,
            None => {
                let stream = self.open_stream(table)?;
                self.streams.push((table, stream));
                self.streams.len() - 1
            }
        };
        let stream = &mut self.streams[index].1;
        let compact = columns_with_values(batch)?;
        let written = write_stream(&mut stream.file, &compact)
            .map_err(|source| EvidenceError::Journal {
                path: stream.path.display().to_string(),
                source,
            })
            .and_then(|()| {
                stream
                    .file
                    .stream_position()
                    .map_err(|e| EvidenceError::io(format!("writing {}", stream.path.display()), e))
            });
        match written {
            Ok(end) => {
                stream.good_len = end;
                Ok(())
            }
            Err(err) => {
                let _ = stream.file.set_len(stream.good_len);
                let _ = stream.file.seek(SeekFrom::Start(stream.good_len));
                Err(err)
            }
        }
    }

    fn open_stream(&self, table: &str) -> Result<Stream, EvidenceError> {
        let path = self.dir.join(format!("{table}{STREAM_SUFFIX}"));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| EvidenceError::io(format!("creating {}", path.display()), e))?;
        Ok(Stream {
            file,
            path,
            good_len: 0,
        })
    }

    /// Makes every appended batch durable.
    pub fn sync(&mut self) -> Result<(), EvidenceError> {
        for (_, stream) in &mut self.streams {
            stream
                .file
                .sync_data()
                .map_err(|e| EvidenceError::io(format!("syncing {}", stream.path.display()), e))?;
        }
        sync_dir(&self.dir);
        Ok(())
    }

    /// Ends the segment: every appended batch is synced.
    pub fn close(mut self) -> Result<PathBuf, EvidenceError> {
        self.sync()?;
        Ok(self.dir)
    }
}

/// The batch without its columns that are null in every row. Columns that
/// cannot be null are always kept, so no batch loses its row count.
fn columns_with_values(batch: &RecordBatch) -> Result<RecordBatch, EvidenceError> {
    let rows = batch.num_rows();
    let schema = batch.schema();
    let (fields, columns): (Vec<_>, Vec<_>) = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .filter(|(field, column)| !field.is_nullable() || column.null_count() < rows)
        .map(|(field, column)| (field.clone(), column.clone()))
        .unzip();
    if fields.len() == schema.fields().len() {
        return Ok(batch.clone());
    }
    let options = RecordBatchOptions::new().with_row_count(Some(rows));
    Ok(RecordBatch::try_new_with_options(
        Arc::new(Schema::new(fields)),
        columns,
        &options,
    )?)
}

/// Writes one batch as one LZ4 frame holding a whole IPC stream: schema,
/// batch, end marker.
fn write_stream(file: &mut File, batch: &RecordBatch) -> Result<(), ArrowError> {
    // LZ4 because the journal sits on the hot path; zstd is for the Parquet
    // files that are kept. 64 KiB blocks keep the encoder's buffers small
    // and in cache; the checksum lets a reader tell a damaged frame from a
    // whole one. The buffer gathers the blocks' small writes.
    let frame = FrameInfo::new()
        .block_size(BlockSize::Max64KB)
        .content_checksum(true);
    let out = BufWriter::with_capacity(64 << 10, file);
    let encoder = FrameEncoder::with_frame_info(frame, out);
    let mut writer = StreamWriter::try_new(encoder, &batch.schema())?;
    writer.write(batch)?;
    // Writes the end marker; then the frame's end and checksum.
    let encoder = writer.into_inner()?;
    let mut out = encoder.finish().map_err(io::Error::from)?;
    out.flush()?;
    Ok(())
}

/// Best effort: a directory's new entries are durable once it is synced.
pub fn sync_dir(dir: &Path) {
    if let Ok(dir) = File::open(dir) {
        let _ = dir.sync_all();
    }
}

/// Removes a segment once everything in it is published.
pub fn remove_segment(store_dir: &Path, segment: &Path) -> Result<(), EvidenceError> {
    fs::remove_dir_all(segment)
        .map_err(|e| EvidenceError::io(format!("removing {}", segment.display()), e))?;
    sync_dir(&store_dir.join(JOURNAL_DIR));
    Ok(())
}

/// The segments of a store, oldest first.
pub fn segments(store_dir: &Path) -> Result<Vec<PathBuf>, EvidenceError> {
    let journal = store_dir.join(JOURNAL_DIR);
    let entries = match fs::read_dir(&journal) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(EvidenceError::io(
                format!("reading {}", journal.display()),
                e,
            ));
        }
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry =
            entry.map_err(|e| EvidenceError::io(format!("reading {}", journal.display()), e))?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with(SEGMENT_PREFIX) {
            found.push(entry.path());
        }
    }
    // Names are zero-padded, so text order is time order.
    found.sort();
    Ok(found)
}

/// The segment's name, as the chain records it.
pub fn segment_name(segment: &Path) -> String {
    segment
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The wall-clock time a segment was opened, from its name.
pub fn segment_opened_ns(segment: &Path) -> Option<i64> {
    let name = segment_name(segment);
    let stamp = name.strip_prefix(SEGMENT_PREFIX)?.split('-').next()?;
    stamp.parse().ok()
}

/// A table's file in a segment, read one batch at a time, so that
/// publishing a segment holds one batch in memory, not the whole segment.
pub struct TableStream {
    file: Shared,
    format: Format,
    /// The IPC stream being read; None between streams.
    reader: Option<StreamReader<Body>>,
    schema: SchemaRef,
    /// Set once the file holds nothing more that can be read.
    ended: bool,
    torn_tail: bool,
}

/// How a journal file stores its batches: a file is written by one
/// version of the monitor, so its first bytes tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    /// One LZ4 frame per append, each holding an uncompressed IPC stream.
    Frames,
    /// IPC streams back to back, compressed (if at all) buffer by buffer by
    /// Arrow: the journals of earlier versions.
    Streams,
}

/// Where an IPC stream is read from.
enum Body {
    /// An append's frame, decoded whole (its checksum checked) first.
    Frame(Cursor<Vec<u8>>),
    /// The file itself, for journals of the `Streams` format.
    File(Shared),
}

impl Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Body::Frame(frame) => frame.read(buf),
            Body::File(file) => file.read(buf),
        }
    }
}

/// The file's reader, handed to one IPC stream after another: a stream's
/// reader buffers ahead, so the next stream must start from the same
/// buffer, not from the file's offset.
#[derive(Clone)]
struct Shared(Rc<RefCell<BufReader<File>>>);

impl Read for Shared {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.borrow_mut().read(buf)
    }
}

impl TableStream {
    /// The file ended inside a batch (a crash while appending it), held a
    /// damaged frame, or held a batch that does not fit its table: that
    /// batch and anything after it are not returned. Known once the stream
    /// is exhausted.
    pub fn torn_tail(&self) -> bool {
        self.torn_tail
    }

    fn stop(&mut self, torn: bool) -> Option<RecordBatch> {
        self.reader = None;
        self.ended = true;
        self.torn_tail |= torn;
        None
    }

    /// The next IPC stream's source. The file holds more bytes.
    fn next_body(&self) -> io::Result<Body> {
        match self.format {
            Format::Frames => {
                // A frame decoder stops at its frame's end, leaving the
                // file's reader at the next one.
                let mut file = self.file.0.borrow_mut();
                let mut frame = Vec::new();
                FrameDecoder::new(&mut *file).read_to_end(&mut frame)?;
                Ok(Body::Frame(Cursor::new(frame)))
            }
            Format::Streams => Ok(Body::File(self.file.clone())),
        }
    }
}

impl Iterator for TableStream {
    type Item = RecordBatch;

    fn next(&mut self) -> Option<RecordBatch> {
        while !self.ended {
            let Some(reader) = self.reader.as_mut() else {
                let more = self.file.0.borrow_mut().fill_buf().map(|b| !b.is_empty());
                match more {
                    Ok(true) => {}
                    Ok(false) => return self.stop(false),
                    Err(_) => return self.stop(true),
                }
                let Ok(body) = self.next_body() else {
                    // Cut inside a frame, or a frame that fails its checksum.
                    return self.stop(true);
                };
                match StreamReader::try_new(body, None) {
                    Ok(reader) => self.reader = Some(reader),
                    // Cut inside a schema message.
                    Err(_) => return self.stop(true),
                }
                continue;
            };
            match reader.next() {
                Some(Ok(batch)) => match widen(&batch, &self.schema) {
                    Ok(batch) => return Some(batch),
                    Err(_) => return self.stop(true),
                },
                Some(Err(_)) => return self.stop(true),
                None => self.reader = None,
            }
        }
        None
    }
}

/// A journaled batch with the columns it left out put back, as nulls, in
/// `schema`'s order.
fn widen(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, ArrowError> {
    if batch.schema_ref() == schema {
        return Ok(batch.clone());
    }
    let rows = batch.num_rows();
    let mut columns = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        columns.push(match batch.column_by_name(field.name()) {
            Some(column) if column.data_type() == field.data_type() => column.clone(),
            Some(column) => {
                return Err(ArrowError::SchemaError(format!(
                    "journal column {} is {}, its table has {}",
                    field.name(),
                    column.data_type(),
                    field.data_type()
                )));
            }
            None => new_null_array(field.data_type(), rows),
        });
    }
    if let Some(extra) = batch
        .schema_ref()
        .fields()
        .iter()
        .find(|f| schema.field_with_name(f.name()).is_err())
    {
        return Err(ArrowError::SchemaError(format!(
            "journal column {} is not in its table",
            extra.name()
        )));
    }
    let options = RecordBatchOptions::new().with_row_count(Some(rows));
    RecordBatch::try_new_with_options(schema.clone(), columns, &options)
}

/// Opens one table's file in a segment, whose batches are read back in
/// `schema`; `None` if the segment has no file for it.
pub fn stream_table(
    segment: &Path,
    table: &str,
    schema: SchemaRef,
) -> Result<Option<TableStream>, EvidenceError> {
    let path = segment.join(format!("{table}{STREAM_SUFFIX}"));
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(EvidenceError::io(format!("opening {}", path.display()), e)),
    };
    let mut file = BufReader::new(file);
    // An empty file (a crash right after it was created) holds nothing, in
    // either format; a file too short for the magic number is torn, which
    // reading it as frames reports.
    let first = file
        .fill_buf()
        .map_err(|e| EvidenceError::io(format!("reading {}", path.display()), e))?;
    let format = if first.len() >= FRAME_MAGIC.len() && !first.starts_with(&FRAME_MAGIC) {
        Format::Streams
    } else {
        Format::Frames
    };
    Ok(Some(TableStream {
        file: Shared(Rc::new(RefCell::new(file))),
        format,
        reader: None,
        schema,
        ended: false,
        torn_tail: false,
    }))
}

#[cfg(test)]
#[path = "journal_tests.rs"]
mod tests;
