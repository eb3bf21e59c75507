//! Writing the evidence directory: rows buffered per table, closed into
//! Parquet files by time and by size, each file made visible only once it
//! is complete and chained.

use std::{
    fs::{self, File},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use arrow_array::RecordBatch;
use parquet::{
    arrow::ArrowWriter,
    basic::{Compression, ZstdLevel},
    file::{metadata::KeyValue, properties::WriterProperties},
};

use crate::{
    event::{Event, LossReport},
    evidence::{
        EvidenceError,
        chain::{Chain, META_INDEX, META_PREV, file_sha256, hex},
        events::{EventsBuilder, ProcessesBuilder, gaps_batch},
    },
    process_table::ProcessInfo,
    sink::Sink,
    time::{WallClock, rfc3339},
};

#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Close the open files at least this often.
    pub rotate_every: Duration,
    /// Close the events file once it holds this many rows. Bounds memory:
    /// every string column keeps a 4-byte offset per row even when null.
    pub max_rows: usize,
}

impl Default for StoreOptions {
    fn default() -> StoreOptions {
        StoreOptions {
            rotate_every: Duration::from_secs(60),
            max_rows: 1 << 18,
        }
    }
}

pub struct EvidenceStore {
    dir: PathBuf,
    host: String,
    clock: WallClock,
    options: StoreOptions,
    chain: Chain,
    events: EventsBuilder,
    /// Sequence number and wall time of the open events file's first row.
    first: Option<(u64, i64)>,
    gaps: Vec<LossReport>,
    processes: ProcessesBuilder,
    opened: Instant,
}

/// The host name, for file names: several hosts can share one directory.
fn host_name() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty() && !h.contains('/'))
        .unwrap_or_else(|| "host".into())
}

impl EvidenceStore {
    pub fn open(
        dir: &Path,
        clock: WallClock,
        options: StoreOptions,
    ) -> Result<EvidenceStore, EvidenceError> {
        fs::create_dir_all(dir)
            .map_err(|e| EvidenceError::io(format!("creating {}", dir.display()), e))?;
        Ok(EvidenceStore {
            dir: dir.to_path_buf(),
            host: host_name(),
            clock,
            options,
            chain: Chain::open(dir)?,
            events: EventsBuilder::default(),
            first: None,
            gaps: Vec::new(),
            processes: ProcessesBuilder::default(),
            opened: Instant::now(),
        })
    }

    /// Closes the buffered rows of every table into files.
    pub fn close_files(&mut self) -> Result<(), EvidenceError> {
        if let Some((first_seq, first_ts)) = self.first.take() {
            // The chain index keeps names unique across runs, whose
            // sequence numbers each start at 0.
            let name = format!("{}-{first_seq}-{}", self.host, self.chain.next_index());
            let batch = self.events.finish()?;
            self.write("events", first_ts, &name, &batch)?;
        }
        if !self.processes.is_empty() {
            let name = format!("{}-processes-{}", self.host, self.chain.next_index());
            let now = self.clock.wall_ns(WallClock::boot_now_ns()) as i64;
            let batch = self.processes.finish()?;
            self.write("processes", now, &name, &batch)?;
        }
        if !self.gaps.is_empty() {
            let gaps = std::mem::take(&mut self.gaps);
            let ts = self.clock.wall_ns(gaps[0].since_ns) as i64;
            let name = format!("{}-gaps-{}", self.host, self.chain.next_index());
            let batch = gaps_batch(&gaps, self.clock)?;
            self.write("gaps", ts, &name, &batch)?;
        }
        self.opened = Instant::now();
        Ok(())
    }

    /// Writes one file: under a temporary name, chained, then renamed into
    /// place, so a reader never sees a partial file.
    fn write(
        &mut self,
        table: &str,
        ts_ns: i64,
        name: &str,
        batch: &RecordBatch,
    ) -> Result<(), EvidenceError> {
        let stamp = rfc3339(i128::from(ts_ns));
        let partition = format!("{table}/date={}/hour={}", &stamp[..10], &stamp[11..13]);
        let dir = self.dir.join(&partition);
        fs::create_dir_all(&dir)
            .map_err(|e| EvidenceError::io(format!("creating {}", dir.display()), e))?;
        let relative = format!("{partition}/{name}.parquet");
        let final_path = self.dir.join(&relative);
        let tmp_path = dir.join(format!(".{name}.parquet.tmp"));

        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
            .set_dictionary_enabled(true)
            .set_statistics_enabled(parquet::file::properties::EnabledStatistics::Page)
            .build();
        let file = File::create(&tmp_path)
            .map_err(|e| EvidenceError::io(format!("creating {}", tmp_path.display()), e))?;
        let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(props))?;
        writer.write(batch)?;
        writer.append_key_value_metadata(KeyValue::new(
            META_INDEX.into(),
            self.chain.next_index().to_string(),
        ));
        writer.append_key_value_metadata(KeyValue::new(META_PREV.into(), hex(&self.chain.head())));
        let file = writer.into_inner()?;
        file.sync_all()
            .map_err(|e| EvidenceError::io(format!("syncing {}", tmp_path.display()), e))?;
        let sha = file_sha256(&tmp_path)?;
        self.chain.append(table, &relative, &sha)?;
        // A hard link, not a rename: it fails rather than replace a file
        // that is already there, so evidence is never overwritten.
        fs::hard_link(&tmp_path, &final_path)
            .map_err(|e| EvidenceError::io(format!("publishing {}", final_path.display()), e))?;
        fs::remove_file(&tmp_path)
            .map_err(|e| EvidenceError::io(format!("removing {}", tmp_path.display()), e))?;
        if let Ok(dir) = File::open(&dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }

    fn due(&self) -> bool {
        self.events.len() >= self.options.max_rows
            || self.opened.elapsed() >= self.options.rotate_every
    }
}

fn to_io(err: EvidenceError) -> std::io::Error {
    std::io::Error::other(err)
}

impl Sink for EvidenceStore {
    fn event(&mut self, event: &Event, process: &ProcessInfo, agent: &str) -> std::io::Result<()> {
        self.first
            .get_or_insert((event.seq, self.clock.wall_ns(event.ts_ns) as i64));
        self.events.append(event, process, agent, self.clock);
        if self.events.len() >= self.options.max_rows {
            self.close_files().map_err(to_io)?;
        }
        Ok(())
    }

    fn loss(&mut self, loss: &LossReport) -> std::io::Result<()> {
        self.gaps.push(*loss);
        Ok(())
    }

    fn process(&mut self, process: &ProcessInfo, agent: &str) -> std::io::Result<()> {
        self.processes.append(process, agent, self.clock);
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.due() {
            self.close_files().map_err(to_io)?;
        }
        Ok(())
    }

    fn close(&mut self) -> std::io::Result<()> {
        self.close_files().map_err(to_io)?;
        // Queries read every table; a table with no file at all is an error
        // to DuckDB ("no files found"), so an empty gaps table is written
        // once, the first time a store closes without losses.
        if !self.dir.join("gaps").exists() {
            let name = format!("{}-gaps-{}", self.host, self.chain.next_index());
            let batch = gaps_batch(&[], self.clock).map_err(to_io)?;
            let now = self.clock.wall_ns(WallClock::boot_now_ns()) as i64;
            self.write("gaps", now, &name, &batch).map_err(to_io)?;
        }
        Ok(())
    }
}
