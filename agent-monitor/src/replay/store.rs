//! Reading an evidence store's Parquet files, table by table, and their
//! columns by name.
//!
//! Files live at `<dir>/<table>/date=…/hour=…/*.parquet`. Hidden names
//! (`.seg-….parquet.tmp`, unfinished) are skipped, and `journal/` is not
//! Parquet: rows still there are not replayed (the store notes how many
//! segments wait for `agent-monitor recover`).

use std::{
    fs::File,
    path::{Path, PathBuf},
};

use arrow_array::{Array, RecordBatch};
use parquet::arrow::{ProjectionMask, arrow_reader::ParquetRecordBatchReaderBuilder};

use super::error::ReplayError;
use crate::evidence::publish::TABLES;

/// An opened store: where it is, and what it lacks.
#[derive(Debug)]
pub(crate) struct Store {
    pub dir: PathBuf,
    /// Tables with no directory at all. `events` is never among them: a
    /// store without it is an error.
    pub missing: Vec<&'static str>,
    /// Journal segments not yet published as Parquet.
    pub unpublished_segments: usize,
}

impl Store {
    /// Checks that `dir` looks like an evidence store: a directory with
    /// `chain.log` or `events/`, and `events/` in any case.
    pub fn open(dir: &Path) -> Result<Store, ReplayError> {
        let meta = std::fs::metadata(dir).map_err(|source| ReplayError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        if !meta.is_dir() {
            return Err(ReplayError::NotAStore {
                dir: dir.to_path_buf(),
            });
        }
        let has_events = dir.join("events").is_dir();
        if !has_events && !dir.join("chain.log").is_file() {
            return Err(ReplayError::NotAStore {
                dir: dir.to_path_buf(),
            });
        }
        if !has_events {
            return Err(ReplayError::MissingTable {
                dir: dir.to_path_buf(),
                table: "events",
            });
        }
        let missing = TABLES
            .iter()
            .copied()
            .filter(|t| !dir.join(t).is_dir())
            .collect();
        let unpublished_segments = std::fs::read_dir(dir.join("journal"))
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with("seg-"))
                    .count()
            })
            .unwrap_or(0);
        Ok(Store {
            dir: dir.to_path_buf(),
            missing,
            unpublished_segments,
        })
    }

    /// Every published Parquet file of `table`, sorted by path (so by
    /// date and hour). A missing table has none.
    pub fn files(&self, table: &str) -> Result<Vec<PathBuf>, ReplayError> {
        let mut out = Vec::new();
        let mut stack = vec![self.dir.join(table)];
        while let Some(current) = stack.pop() {
            let entries = match std::fs::read_dir(&current) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(ReplayError::Io {
                        path: current,
                        source,
                    });
                }
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if entry.file_name().to_string_lossy().starts_with('.') {
                    continue;
                }
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "parquet") {
                    out.push(path);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Calls `each` with every batch of every file of `table`, in order.
    pub fn for_each_batch(
        &self,
        table: &str,
        each: impl FnMut(&Batch) -> Result<(), ReplayError>,
    ) -> Result<(), ReplayError> {
        self.read(table, None, each)
    }

    /// [`Store::for_each_batch`], reading only `columns` (those a file
    /// has): a pass over a large table that needs little of it.
    pub fn for_each_batch_of(
        &self,
        table: &str,
        columns: &[&str],
        each: impl FnMut(&Batch) -> Result<(), ReplayError>,
    ) -> Result<(), ReplayError> {
        self.read(table, Some(columns), each)
    }

    fn read(
        &self,
        table: &str,
        columns: Option<&[&str]>,
        mut each: impl FnMut(&Batch) -> Result<(), ReplayError>,
    ) -> Result<(), ReplayError> {
        for path in self.files(table)? {
            let file = File::open(&path).map_err(|source| ReplayError::Io {
                path: path.clone(),
                source,
            })?;
            let parquet = |source| ReplayError::Parquet {
                path: path.clone(),
                source,
            };
            let mut builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(parquet)?;
            if let Some(columns) = columns {
                let mask =
                    ProjectionMask::columns(builder.parquet_schema(), columns.iter().copied());
                builder = builder.with_projection(mask);
            }
            let reader = builder.build().map_err(parquet)?;
            for batch in reader {
                let batch = batch.map_err(|source| ReplayError::Arrow {
                    path: path.clone(),
                    source,
                })?;
                each(&Batch {
                    batch: &batch,
                    path: &path,
                })?;
            }
        }
        Ok(())
    }
}

/// One record batch and the file it came from, for error messages.
pub(crate) struct Batch<'a> {
    pub batch: &'a RecordBatch,
    pub path: &'a Path,
}

impl Batch<'_> {
    pub fn rows(&self) -> usize {
        self.batch.num_rows()
    }

    /// A column that must be there, of type `T`.
    pub fn required<T: Array + 'static>(&self, column: &'static str) -> Result<&T, ReplayError> {
        self.optional(column)?.ok_or_else(|| ReplayError::Column {
            path: self.path.to_path_buf(),
            column,
            problem: "missing".into(),
        })
    }

    /// A column that older files may lack; of type `T` when present.
    pub fn optional<T: Array + 'static>(
        &self,
        column: &'static str,
    ) -> Result<Option<&T>, ReplayError> {
        let Some(array) = self.batch.column_by_name(column) else {
            return Ok(None);
        };
        array
            .as_any()
            .downcast_ref::<T>()
            .map(Some)
            .ok_or_else(|| ReplayError::Column {
                path: self.path.to_path_buf(),
                column,
                problem: format!(
                    "has type {}, expected {}",
                    array.data_type(),
                    std::any::type_name::<T>()
                        .rsplit("::")
                        .next()
                        .unwrap_or("?")
                ),
            })
    }
}

/// The value at `row` of an optional string column, null as None.
pub(crate) fn text(column: Option<&arrow_array::StringArray>, row: usize) -> Option<String> {
    column
        .filter(|c| c.is_valid(row))
        .map(|c| c.value(row).to_string())
}

/// The value at `row` of an optional primitive column, null as None.
pub(crate) fn value<T: arrow_array::ArrowPrimitiveType>(
    column: Option<&arrow_array::PrimitiveArray<T>>,
    row: usize,
) -> Option<T::Native> {
    column.filter(|c| c.is_valid(row)).map(|c| c.value(row))
}
