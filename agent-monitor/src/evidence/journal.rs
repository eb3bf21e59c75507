//! The write-ahead journal: every row reaches disk here, as Arrow IPC
//! batches, before it goes into a Parquet file.
//!
//! A segment is a directory, `<dir>/journal/seg-<opened wall ns>/`, with one
//! Arrow IPC stream per table (`events.arrows`, …). Batches are appended and
//! synced by the store at least every 200 ms. When the store closes its
//! files, the segment is read back and published into Parquet (the same code
//! path that recovers a segment left behind by a crash), then removed.
//!
//! A crash can cut the last batch of a stream short. Reading stops at the
//! first incomplete message and keeps every complete batch before it, so
//! nothing that was synced is lost. A failed append truncates the stream
//! back to its last complete batch, so a full disk cannot leave a torn
//! batch in the middle of a stream either.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, BufReader, Seek, SeekFrom},
    path::{Path, PathBuf},
};

use arrow_array::RecordBatch;
use arrow_ipc::{
    CompressionType,
    reader::StreamReader,
    writer::{IpcWriteOptions, StreamWriter},
};

use crate::evidence::EvidenceError;

pub const JOURNAL_DIR: &str = "journal";
const SEGMENT_PREFIX: &str = "seg-";
const STREAM_SUFFIX: &str = ".arrows";

/// One table's stream in an open segment.
struct Stream {
    writer: StreamWriter<File>,
    path: PathBuf,
    /// Bytes of complete, flushed messages: where a failed append is cut
    /// back to.
    good_len: u64,
}

/// The segment being written.
pub struct Segment {
    dir: PathBuf,
    streams: Vec<(&'static str, Stream)>,
}

fn options() -> Result<IpcWriteOptions, EvidenceError> {
    // LZ4 because the journal sits on the hot path: it compresses the
    // mostly-null columns well at several GB/s; zstd is for the Parquet
    // files that are kept.
    Ok(IpcWriteOptions::default().try_with_compression(Some(CompressionType::LZ4_FRAME))?)
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

    /// Appends a batch to its table's stream (not yet synced). On failure
    /// the stream is cut back to its last complete batch.
    pub fn append(
        &mut self,
        table: &'static str,
        batch: &RecordBatch,
    ) -> Result<(), EvidenceError> {
        let index = match self.streams.iter().position(|(t, _)| *t == table) {
            Some(index) => index,
            None => {
                let stream = self.open_stream(table, batch)?;
                self.streams.push((table, stream));
                self.streams.len() - 1
            }
        };
        let stream = &mut self.streams[index].1;
        let written =
            stream
                .writer
                .write(batch)
                .and_then(|()| stream.writer.flush())
                .map_err(|source| EvidenceError::Journal {
                    path: stream.path.display().to_string(),
                    source,
                })
                .and_then(|()| {
                    stream.writer.get_mut().stream_position().map_err(|e| {
                        EvidenceError::io(format!("writing {}", stream.path.display()), e)
                    })
                });
        match written {
            Ok(end) => {
                stream.good_len = end;
                Ok(())
            }
            Err(err) => {
                let file = stream.writer.get_mut();
                let _ = file.set_len(stream.good_len);
                let _ = file.seek(SeekFrom::Start(stream.good_len));
                Err(err)
            }
        }
    }

    fn open_stream(&self, table: &str, batch: &RecordBatch) -> Result<Stream, EvidenceError> {
        let path = self.dir.join(format!("{table}{STREAM_SUFFIX}"));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| EvidenceError::io(format!("creating {}", path.display()), e))?;
        let mut writer = match StreamWriter::try_new_with_options(file, &batch.schema(), options()?)
        {
            Ok(writer) => writer,
            Err(source) => {
                // A stream without even its schema is useless; leave none.
                let _ = fs::remove_file(&path);
                return Err(EvidenceError::Journal {
                    path: path.display().to_string(),
                    source,
                });
            }
        };
        match writer.get_mut().stream_position() {
            Ok(good_len) => Ok(Stream {
                writer,
                path,
                good_len,
            }),
            Err(e) => {
                // A stream without even its schema is useless; leave none.
                let _ = fs::remove_file(&path);
                Err(EvidenceError::io(format!("writing {}", path.display()), e))
            }
        }
    }

    /// Makes every appended batch durable.
    pub fn sync(&mut self) -> Result<(), EvidenceError> {
        for (_, stream) in &mut self.streams {
            stream
                .writer
                .get_mut()
                .sync_data()
                .map_err(|e| EvidenceError::io(format!("syncing {}", stream.path.display()), e))?;
        }
        sync_dir(&self.dir);
        Ok(())
    }

    /// Ends the segment: the streams get their end marker and are synced.
    /// A stream whose end marker cannot be written is still readable: the
    /// reader stops at the end of its last complete batch.
    pub fn close(mut self) -> Result<PathBuf, EvidenceError> {
        for (_, stream) in &mut self.streams {
            let _ = stream.writer.finish();
        }
        self.sync()?;
        Ok(self.dir)
    }
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

/// A table's stream in a segment, read one batch at a time, so that
/// publishing a segment holds one batch in memory, not the whole segment.
pub struct TableStream {
    /// None: the stream was cut inside its schema message, so it holds no
    /// batch at all.
    reader: Option<StreamReader<BufReader<File>>>,
    torn_tail: bool,
}

impl TableStream {
    /// The stream ended inside a batch (a crash while appending it): that
    /// batch was never synced and is not returned. Known once the stream
    /// is exhausted.
    pub fn torn_tail(&self) -> bool {
        self.torn_tail
    }
}

impl Iterator for TableStream {
    type Item = RecordBatch;

    fn next(&mut self) -> Option<RecordBatch> {
        match self.reader.as_mut()?.next()? {
            Ok(batch) => Some(batch),
            Err(_) => {
                self.torn_tail = true;
                self.reader = None;
                None
            }
        }
    }
}

/// Opens one table's stream in a segment; `None` if the segment has no
/// stream for it.
pub fn stream_table(segment: &Path, table: &str) -> Result<Option<TableStream>, EvidenceError> {
    let path = segment.join(format!("{table}{STREAM_SUFFIX}"));
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(EvidenceError::io(format!("opening {}", path.display()), e)),
    };
    Ok(Some(
        match StreamReader::try_new(BufReader::new(file), None) {
            Ok(reader) => TableStream {
                reader: Some(reader),
                torn_tail: false,
            },
            Err(_) => TableStream {
                reader: None,
                torn_tail: true,
            },
        },
    ))
}

#[cfg(test)]
#[path = "journal_tests.rs"]
mod tests;
