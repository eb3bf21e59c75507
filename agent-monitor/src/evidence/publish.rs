//! Turning journal segments into chained Parquet files.
//!
//! The store publishes each segment it closes through [`Publisher`], and
//! recovery after a crash publishes the segments left behind through the
//! same code. Publication is idempotent: each chain entry records the
//! segment and table it came from, so a segment whose files were already
//! chained (the crash came between chaining and removing the segment) is
//! never published twice.

use std::{
    fs::{self, File},
    io,
    path::{Path, PathBuf},
};

use arrow_array::{Array, RecordBatch, TimestampNanosecondArray, UInt64Array};
use parquet::{
    arrow::ArrowWriter,
    basic::{Compression, Encoding, ZstdLevel},
    file::{
        metadata::KeyValue,
        properties::{EnabledStatistics, WriterProperties},
    },
};

use crate::{
    evidence::{
        EvidenceError,
        chain::{Chain, META_INDEX, META_PREV, META_SEGMENT, file_sha256, hex},
        journal::{self, sync_dir},
        schema,
    },
    time::rfc3339,
};

/// Every table, in the order a segment's files are chained.
pub const TABLES: [&str; 8] = [
    "events",
    "processes",
    "sessions",
    "messages",
    "tool_calls",
    "decisions",
    "alerts",
    "gaps",
];

/// The column whose first value places a table's file in time; tables
/// without one are placed by the time their segment was opened.
fn time_column(table: &str) -> Option<&'static str> {
    match table {
        "events" | "messages" | "decisions" | "alerts" => Some("ts"),
        "sessions" | "tool_calls" => Some("started"),
        "gaps" => Some("since"),
        _ => None,
    }
}

/// What publishing a segment did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Published {
    /// Files written and chained, relative to the store.
    pub files: Vec<String>,
    pub rows: usize,
    /// Tables already chained from this segment before (a crash after
    /// chaining), skipped.
    pub already_chained: usize,
    /// Streams that ended inside a batch: that batch had not been synced.
    pub torn_tails: usize,
}

pub struct Publisher<'a> {
    pub dir: &'a Path,
    pub host: &'a str,
    pub chain: &'a mut Chain,
}

fn first_timestamp(batch: &RecordBatch, column: &str) -> Option<i64> {
    let array = batch.column_by_name(column)?;
    let array = array.as_any().downcast_ref::<TimestampNanosecondArray>()?;
    (!array.is_empty() && array.is_valid(0)).then(|| array.value(0))
}

fn first_seq(batch: &RecordBatch) -> Option<u64> {
    let array = batch.column_by_name("seq")?;
    let array = array.as_any().downcast_ref::<UInt64Array>()?;
    (!array.is_empty()).then(|| array.value(0))
}

impl Published {
    /// Adds what publishing another segment did.
    pub fn absorb(&mut self, other: Published) {
        self.files.extend(other.files);
        self.rows += other.rows;
        self.already_chained += other.already_chained;
        self.torn_tails += other.torn_tails;
    }
}

impl Publisher<'_> {
    /// Publishes every table of a segment, then removes the segment.
    pub fn publish_segment(&mut self, segment: &Path) -> Result<Published, EvidenceError> {
        let name = journal::segment_name(segment);
        let opened_ns = journal::segment_opened_ns(segment).unwrap_or_default();
        let mut published = Published::default();
        for table in TABLES {
            if let Some(file) = self.chain.published(&name, table) {
                self.finish_publication(&file)?;
                published.already_chained += 1;
                continue;
            }
            let schema = schema::of_table(table).expect("every published table has a schema");
            let Some(mut stream) = journal::stream_table(segment, table, schema)? else {
                continue;
            };
            // An empty table is still published (queries need the file),
            // but a stream cut inside its schema has nothing to publish.
            // The file is placed in time by the first batch with rows.
            let mut pending = Vec::new();
            let first = loop {
                match stream.next() {
                    Some(batch) if batch.num_rows() == 0 => pending.push(batch),
                    Some(batch) => break Some(batch),
                    None => break pending.pop(),
                }
            };
            let Some(first) = first else {
                published.torn_tails += usize::from(stream.torn_tail());
                continue;
            };
            let (file, rows) = self.write(table, opened_ns, &name, first, &mut stream)?;
            published.torn_tails += usize::from(stream.torn_tail());
            published.files.push(file);
            published.rows += rows;
        }
        journal::remove_segment(self.dir, segment)?;
        Ok(published)
    }

    /// Writes one table's batches, `first` then the rest of `stream`, into
    /// a file and publishes it; returns its name and its rows.
    fn write(
        &mut self,
        table: &'static str,
        ts_ns: i64,
        segment: &str,
        first: RecordBatch,
        stream: &mut journal::TableStream,
    ) -> Result<(String, usize), EvidenceError> {
        let mut file = TableFile::create(self.dir, table, segment, ts_ns, &first)?;
        let mut rows = 0;
        for batch in std::iter::once(first).chain(stream) {
            rows += batch.num_rows();
            if let Err(err) = file.write(&batch) {
                file.discard();
                return Err(err);
            }
        }
        Ok((self.publish_file(file, segment)?, rows))
    }

    /// Closes a table's file, chains it, and only then publishes it under
    /// its name: a reader never sees a partial file.
    pub fn publish_file(
        &mut self,
        file: TableFile,
        segment: &str,
    ) -> Result<String, EvidenceError> {
        let index = self.chain.next_index();
        let name = match (file.table, file.first_seq) {
            ("events", Some(seq)) => format!("{}-{seq}-{index}", self.host),
            (table, _) => format!("{}-{table}-{index}", self.host),
        };
        let relative = format!("{}/{name}.parquet", file.partition);
        let final_path = self.dir.join(&relative);
        let staged = temporary(&final_path);
        let table = file.table;
        let meta = [
            (META_INDEX, index.to_string()),
            (META_PREV, hex(&self.chain.head())),
            (META_SEGMENT, segment.to_string()),
        ];
        let closed = file.close(&meta, &staged);
        let sha = match closed.and_then(|()| file_sha256(&staged)) {
            Ok(sha) => sha,
            Err(err) => {
                // A full disk must not leave half a file behind.
                let _ = fs::remove_file(&staged);
                return Err(err);
            }
        };
        if let Err(err) = self.chain.append(table, &relative, &sha, Some(segment)) {
            let _ = fs::remove_file(&staged);
            return Err(err);
        }
        self.finish_publication(&relative)?;
        if let Some(dir) = final_path.parent() {
            sync_dir(dir);
        }
        Ok(relative)
    }

    /// Moves a chained file from its temporary name to its name. Called
    /// again by recovery for a file chained just before a crash.
    fn finish_publication(&self, relative: &str) -> Result<(), EvidenceError> {
        let final_path = self.dir.join(relative);
        let tmp_path = temporary(&final_path);
        if !tmp_path.exists() {
            // Published already, or removed by hand (verify names it).
            return Ok(());
        }
        // A hard link, not a rename: it fails rather than replace a file
        // that is already there, so evidence is never overwritten.
        match fs::hard_link(&tmp_path, &final_path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(EvidenceError::io(
                    format!("publishing {}", final_path.display()),
                    e,
                ));
            }
        }
        fs::remove_file(&tmp_path)
            .map_err(|e| EvidenceError::io(format!("removing {}", tmp_path.display()), e))
    }
}

/// One table's Parquet file of a journal segment, written batch by batch
/// under a hidden name in its partition while the segment is open, so that
/// closing the segment does not have to read the journal back.
pub struct TableFile {
    table: &'static str,
    writer: ArrowWriter<File>,
    /// `.<segment>-<table>.parquet.tmp`, in the partition directory.
    path: PathBuf,
    /// `<table>/date=…/hour=…`, from the first row (or `fallback_ns`).
    partition: String,
    first_seq: Option<u64>,
}

/// Columns whose every value is new (the stream position and the clock):
/// a dictionary would only cost a hash per row before Parquet gives up on
/// it, and delta encoding suits them better.
const UNIQUE_COLUMNS: [&str; 2] = ["seq", "ts"];

/// Columns written without statistics: long values in no particular order
/// (paths, process keys, argv). A page's minimum and maximum of those
/// spans nearly every value, so no query can skip a page by them, and
/// computing them compares every value twice. The columns a query selects
/// by (`ts`, `seq`, `session_id`, `kind`, `agent`, `pid`, `verdict`, …)
/// keep theirs. Paths are dotted, as a list's values are named
/// (`argv.list.item`).
const UNORDERED_COLUMNS: [&str; 11] = [
    "path",
    "raw_path",
    "new_path",
    "new_raw_path",
    "unix_path",
    "cwd",
    "filename",
    "exe",
    "process_key",
    "child_process_key",
    "argv.list.item",
];

/// Rows per Parquet row group. The writer holds one row group in memory
/// while it encodes it; the default (a million rows) would hold a whole
/// segment, which is what bounded the monitor's memory at high rates.
pub const ROW_GROUP_ROWS: usize = 1 << 16;

fn writer_properties() -> Result<WriterProperties, EvidenceError> {
    let mut builder = WriterProperties::builder()
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
        .set_dictionary_enabled(true)
        .set_statistics_enabled(EnabledStatistics::Page);
    for column in UNIQUE_COLUMNS {
        let column = parquet::schema::types::ColumnPath::from(column);
        builder = builder
            .set_column_dictionary_enabled(column.clone(), false)
            .set_column_encoding(column, Encoding::DELTA_BINARY_PACKED);
    }
    for column in UNORDERED_COLUMNS {
        let column =
            parquet::schema::types::ColumnPath::new(column.split('.').map(String::from).collect());
        builder = builder.set_column_statistics_enabled(column, EnabledStatistics::None);
    }
    Ok(builder.build())
}

impl TableFile {
    /// Starts the file of `table` for `segment`, placed in time by the
    /// first batch's first row, or at `fallback_ns` for tables without a
    /// time column or without rows.
    pub fn create(
        dir: &Path,
        table: &'static str,
        segment: &str,
        fallback_ns: i64,
        first: &RecordBatch,
    ) -> Result<TableFile, EvidenceError> {
        let ts = time_column(table)
            .and_then(|column| first_timestamp(first, column))
            .unwrap_or(fallback_ns);
        let stamp = rfc3339(i128::from(ts));
        let partition = format!("{table}/date={}/hour={}", &stamp[..10], &stamp[11..13]);
        let partition_dir = dir.join(&partition);
        fs::create_dir_all(&partition_dir)
            .map_err(|e| EvidenceError::io(format!("creating {}", partition_dir.display()), e))?;
        let path = partition_dir.join(format!(".{segment}-{table}.parquet.tmp"));
        let file = File::create(&path)
            .map_err(|e| EvidenceError::io(format!("creating {}", path.display()), e))?;
        let writer = match ArrowWriter::try_new(file, first.schema(), Some(writer_properties()?)) {
            Ok(writer) => writer,
            Err(err) => {
                let _ = fs::remove_file(&path);
                return Err(err.into());
            }
        };
        Ok(TableFile {
            table,
            writer,
            path,
            partition,
            first_seq: first_seq(first),
        })
    }

    pub fn table(&self) -> &'static str {
        self.table
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), EvidenceError> {
        if self.first_seq.is_none() {
            self.first_seq = first_seq(batch);
        }
        Ok(self.writer.write(batch)?)
    }

    /// Finishes the file with its chain metadata, syncs it, and moves it to
    /// `staged`.
    fn close(mut self, meta: &[(&str, String)], staged: &Path) -> Result<(), EvidenceError> {
        for (key, value) in meta {
            self.writer
                .append_key_value_metadata(KeyValue::new(key.to_string(), value.clone()));
        }
        let path = self.path;
        let file = match self.writer.into_inner() {
            Ok(file) => file,
            Err(err) => {
                let _ = fs::remove_file(&path);
                return Err(err.into());
            }
        };
        let synced = file
            .sync_all()
            .and_then(|()| fs::rename(&path, staged))
            .map_err(|e| EvidenceError::io(format!("closing {}", path.display()), e));
        if synced.is_err() {
            let _ = fs::remove_file(&path);
        }
        synced
    }

    /// Drops the file: its rows are still in the journal.
    pub fn discard(self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// The hidden name a file is written under before it is published.
pub fn temporary(final_path: &Path) -> PathBuf {
    let name = final_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    final_path.with_file_name(format!(".{name}.tmp"))
}

/// Temporary files that no chain entry will ever claim: left by a crash
/// before their file was chained. Removed once every segment is published,
/// since the segment they came from has been published again by then.
pub fn remove_orphans(dir: &Path) -> Result<usize, EvidenceError> {
    let mut removed = 0;
    for table in TABLES {
        removed += remove_tmp_under(&dir.join(table))?;
    }
    Ok(removed)
}

fn remove_tmp_under(dir: &Path) -> Result<usize, EvidenceError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(EvidenceError::io(format!("reading {}", dir.display()), e)),
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            removed += remove_tmp_under(&path)?;
        } else if name.starts_with('.') && name.ends_with(".parquet.tmp") {
            fs::remove_file(&path)
                .map_err(|e| EvidenceError::io(format!("removing {}", path.display()), e))?;
            removed += 1;
        }
    }
    Ok(removed)
}
