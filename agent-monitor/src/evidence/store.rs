//! Writing the evidence directory. Rows are appended to Arrow builders,
//! journaled (Arrow IPC, synced at least every 200 ms), and published as
//! chained Parquet files when the segment closes: every 60 s, at a size
//! limit, and at exit.
//!
//! Storage failures never stop the monitor. Rows the journal cannot take
//! are counted and become a `gaps` row (cause `storage`) once it can; a
//! segment that cannot be published stays in the journal and is retried at
//! the next rotation, and by `agent-monitor recover`.

use std::{
    fs,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use arrow_array::{Array, RecordBatch, TimestampNanosecondArray};

use crate::{
    event::{Event, LossReport},
    evidence::{
        EvidenceError,
        chain::Chain,
        declared::{Declared, DeclaredBuffer},
        events::{EventsBuilder, Gap, ProcessesBuilder, gaps_batch},
        journal::{self, Segment},
        publish::{Published, Publisher, TABLES, TableFile, remove_orphans},
        reserve::Reserve,
        schema,
        signing::LinkSigner,
    },
    process_table::ProcessInfo,
    sink::{Attribution, Sink},
    time::WallClock,
};

#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Publish the journal into Parquet at least this often.
    pub rotate_every: Duration,
    /// Publish once the segment holds this many event rows.
    pub max_rows: usize,
    /// Journal buffered rows at least this often. The journal is synced
    /// right after, so with the processing stage's 100 ms tick a row is
    /// durable within 200 ms.
    pub journal_every: Duration,
    /// Signs every chain link with this Ed25519 key.
    pub signer: Option<LinkSigner>,
}

impl Default for StoreOptions {
    fn default() -> StoreOptions {
        StoreOptions {
            rotate_every: Duration::from_secs(60),
            max_rows: 1 << 18,
            journal_every: Duration::from_millis(100),
            signer: None,
        }
    }
}

/// Rows buffered in memory before they are journaled in one batch: bounds
/// memory between two journal writes at high event rates. At 65,536 rows
/// the batch's builders and its LZ4 output were about 25 MiB of the peak
/// resident memory at 400,000 events/s. 8,192 rows cost the pipeline no
/// throughput and took 7 MiB off the peak against 16,384; 4,096 took
/// 1 MiB more and cost 3-5% (Parquet still gathers 65,536 rows per row
/// group).
const JOURNAL_BATCH_ROWS: usize = 1 << 13;
/// While storage is failing, how often to try again.
const RETRY_EVERY: Duration = Duration::from_secs(1);

pub struct EvidenceStore {
    dir: PathBuf,
    host: String,
    clock: WallClock,
    options: StoreOptions,
    chain: Chain,
    events: EventsBuilder,
    processes: ProcessesBuilder,
    /// Agent-side rows. Unlike events they are never dropped when storage
    /// fails: they wait in memory for the next try.
    declared: DeclaredBuffer,
    gaps: Vec<Gap>,
    segment: Option<Segment>,
    /// The open segment's Parquet files; `None` once one failed to write.
    files: Option<Vec<TableFile>>,
    /// Event rows journaled in the open segment.
    segment_rows: usize,
    segment_opened: Instant,
    journaled_at: Instant,
    /// Closed segments not yet published (storage failed), oldest first.
    backlog: Vec<PathBuf>,
    reserve: Reserve,
    /// Storage is failing: reported once, when it starts and when it ends.
    failing: bool,
    failed_at: Option<Instant>,
}

/// The host name, for file names: several hosts can share one directory.
pub fn host_name() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty() && !h.contains('/'))
        .unwrap_or_else(|| "host".into())
}

/// What [`recover`] did.
#[derive(Debug, Default)]
pub struct Recovered {
    pub segments: usize,
    pub published: Published,
    pub orphans_removed: usize,
}

/// Publishes every journal segment left in `dir` by a monitor that did not
/// close it (a crash, a kill, a full disk), oldest first.
pub fn recover(dir: &Path, signer: Option<LinkSigner>) -> Result<Recovered, EvidenceError> {
    let mut chain = Chain::open_for_append(dir, signer)?;
    recover_into(dir, &host_name(), &mut chain)
}

fn recover_into(dir: &Path, host: &str, chain: &mut Chain) -> Result<Recovered, EvidenceError> {
    let mut publisher = Publisher { dir, host, chain };
    let mut recovered = Recovered::default();
    for segment in journal::segments(dir)? {
        recovered
            .published
            .absorb(publisher.publish_segment(&segment)?);
        recovered.segments += 1;
    }
    recovered.orphans_removed = remove_orphans(dir)?;
    Ok(recovered)
}

fn wall_range(batch: &RecordBatch, column: &str) -> Option<(i64, i64)> {
    let ts = batch
        .column_by_name(column)?
        .as_any()
        .downcast_ref::<TimestampNanosecondArray>()?;
    let values = ts.values();
    Some((*values.iter().min()?, *values.iter().max()?))
}

impl EvidenceStore {
    /// Opens the store, first recovering whatever an earlier run left in
    /// its journal.
    pub fn open(
        dir: &Path,
        clock: WallClock,
        options: StoreOptions,
    ) -> Result<EvidenceStore, EvidenceError> {
        fs::create_dir_all(dir)
            .map_err(|e| EvidenceError::io(format!("creating {}", dir.display()), e))?;
        let host = host_name();
        let mut chain = Chain::open_for_append(dir, options.signer.clone())?;
        let recovered = recover_into(dir, &host, &mut chain)?;
        if recovered.segments > 0 {
            eprintln!(
                "agent-monitor: recovered {} rows from {} journal segment(s) into {} file(s)",
                recovered.published.rows,
                recovered.segments,
                recovered.published.files.len()
            );
        }
        let now = Instant::now();
        Ok(EvidenceStore {
            dir: dir.to_path_buf(),
            host,
            clock,
            options,
            chain,
            events: EventsBuilder::default(),
            processes: ProcessesBuilder::default(),
            declared: DeclaredBuffer::default(),
            gaps: Vec::new(),
            segment: None,
            files: Some(Vec::new()),
            segment_rows: 0,
            segment_opened: now,
            journaled_at: now,
            backlog: Vec::new(),
            reserve: Reserve::create(&dir.join(journal::JOURNAL_DIR)),
            failing: false,
            failed_at: None,
        })
    }

    fn now_wall(&self) -> i64 {
        self.clock.wall_ns(WallClock::boot_now_ns()) as i64
    }

    /// Reports a storage failure once, and starts the retry clock.
    fn storage_failed(&mut self, err: &EvidenceError) {
        if !self.failing {
            eprintln!(
                "agent-monitor: evidence storage failing, rows are counted as lost until it recovers: {err}"
            );
            self.failing = true;
        }
        self.failed_at = Some(Instant::now());
        // Free the reserved space so the gap rows themselves can be kept.
        self.reserve.release();
    }

    fn storage_recovered(&mut self) {
        if std::mem::take(&mut self.failing) {
            eprintln!("agent-monitor: evidence storage writable again");
        }
        self.failed_at = None;
    }

    fn retry_due(&self) -> bool {
        self.failed_at.is_none_or(|at| at.elapsed() >= RETRY_EVERY)
    }

    /// Journals one batch into the open segment, opening one if needed.
    fn journal_batch(
        &mut self,
        table: &'static str,
        batch: &RecordBatch,
    ) -> Result<(), EvidenceError> {
        if self.segment.is_none() {
            self.segment = Some(Segment::create(&self.dir, self.now_wall())?);
            self.segment_opened = Instant::now();
            self.segment_rows = 0;
        }
        let segment = self.segment.as_mut().expect("opened above");
        if let Err(err) = segment.append(table, batch) {
            // The stream was cut back to its last whole batch; seal the
            // segment so it is never appended to again, and publish it from
            // the journal later.
            if let Some((segment, files)) = self.seal_segment() {
                self.defer(segment, files);
            }
            return Err(err);
        }
        self.write_file(table, batch);
        Ok(())
    }

    /// Writes a journaled batch into its table's Parquet file too. If that
    /// fails the segment's files are dropped: the segment is published from
    /// the journal instead.
    fn write_file(&mut self, table: &'static str, batch: &RecordBatch) {
        let Some(files) = self.files.as_mut() else {
            return;
        };
        let written = match files.iter_mut().find(|f| f.table() == table) {
            Some(file) => file.write(batch),
            None => {
                let segment = self.segment.as_ref().expect("a segment is open");
                let name = journal::segment_name(segment.path());
                let opened = journal::segment_opened_ns(segment.path()).unwrap_or_default();
                TableFile::create(&self.dir, table, &name, opened, batch).and_then(|mut file| {
                    let written = file.write(batch);
                    files.push(file);
                    written
                })
            }
        };
        if written.is_err() {
            for file in self.files.take().into_iter().flatten() {
                file.discard();
            }
        }
    }

    /// Closes the open segment. Returns it with its Parquet files when they
    /// are whole; otherwise queues it to be published from the journal.
    fn seal_segment(&mut self) -> Option<(PathBuf, Vec<TableFile>)> {
        let segment = self.segment.take()?;
        let path = segment.path().to_path_buf();
        let files = self.files.replace(Vec::new());
        if let Err(err) = segment.close() {
            eprintln!("agent-monitor: closing journal segment: {err}");
        }
        match files {
            Some(files) => Some((path, files)),
            None => {
                self.backlog.push(path);
                None
            }
        }
    }

    /// Leaves a segment to be published from its journal: its Parquet files
    /// are dropped, its rows are all in the journal.
    fn defer(&mut self, segment: PathBuf, files: impl IntoIterator<Item = TableFile>) {
        for file in files {
            file.discard();
        }
        self.backlog.push(segment);
    }

    /// Publishes the files written alongside a segment, then removes it. A
    /// failure leaves the segment to be published from the journal (the
    /// files already chained are not published twice).
    fn publish_streamed(
        &mut self,
        segment: PathBuf,
        files: Vec<TableFile>,
    ) -> Result<(), EvidenceError> {
        let name = journal::segment_name(&segment);
        let mut publisher = Publisher {
            dir: &self.dir,
            host: &self.host,
            chain: &mut self.chain,
        };
        let mut files = files;
        files.sort_by_key(|f| TABLES.iter().position(|t| *t == f.table()));
        let mut files = files.into_iter();
        for file in files.by_ref() {
            if let Err(err) = publisher.publish_file(file, &name) {
                self.defer(segment, files);
                return Err(err);
            }
        }
        journal::remove_segment(&self.dir, &segment)
    }

    /// Moves every buffered row into the journal and syncs it. Rows the
    /// journal cannot take are counted into a `storage` gap.
    pub fn journal_pending(&mut self) {
        self.journal(true);
    }

    /// Moves every buffered row into the journal; with `sync`, makes the
    /// journal durable too. A batch cut by size is not synced on its own:
    /// the timed flush, at most 100 ms later, syncs it with whatever came
    /// since, so a burst costs one sync per interval, not one per batch.
    fn journal(&mut self, sync: bool) {
        if !self.retry_due() {
            return;
        }
        if sync {
            self.journaled_at = Instant::now();
        }
        let mut failed = None;
        if !self.events.is_empty() {
            let rows = self.events.len();
            match self.events.finish() {
                Ok(batch) => match self.journal_batch("events", &batch) {
                    Ok(()) => self.segment_rows += rows,
                    Err(err) => {
                        let now = self.now_wall();
                        let (since, until) = wall_range(&batch, "ts").unwrap_or((now, now));
                        self.lose("events", rows, since, until);
                        failed = Some(err);
                    }
                },
                Err(err) => failed = Some(err),
            }
        }
        if !self.processes.is_empty() {
            let rows = self.processes.len();
            let batch = self.processes.finish();
            if let Err(err) = batch.and_then(|b| self.journal_batch("processes", &b)) {
                let now = self.now_wall();
                self.lose("processes", rows, now, now);
                failed.get_or_insert(err);
            }
        }
        match self.declared.batches() {
            Ok(batches) => {
                for (table, batch) in batches {
                    match self.journal_batch(table, &batch) {
                        Ok(()) => self.declared.clear(table),
                        Err(err) => {
                            failed.get_or_insert(err);
                        }
                    }
                }
            }
            Err(err) => {
                failed.get_or_insert(err);
            }
        }
        // Gaps last, so that they include the rows just lost. They are
        // small, and a failed write above was cut back, so they usually fit
        // even when the rows did not; if not, they wait for the next try.
        if !self.gaps.is_empty() {
            match gaps_batch(&self.gaps).and_then(|b| self.journal_batch("gaps", &b)) {
                Ok(()) => self.gaps.clear(),
                Err(err) => {
                    failed.get_or_insert(err);
                }
            }
        }
        let synced = match self.segment.as_mut() {
            Some(segment) if sync => segment.sync(),
            _ => Ok(()),
        };
        match failed.map_or(synced, Err) {
            Ok(()) => self.storage_recovered(),
            Err(err) => self.storage_failed(&err),
        }
    }

    /// Counts rows the journal could not take; consecutive losses of one
    /// table merge into one gap row.
    fn lose(&mut self, lost: &'static str, rows: usize, since_ns: i64, until_ns: i64) {
        if let Some(gap) = self
            .gaps
            .iter_mut()
            .find(|g| g.lost == lost && g.cause == "storage")
        {
            gap.count += rows as u64;
            gap.since_ns = gap.since_ns.min(since_ns);
            gap.until_ns = gap.until_ns.max(until_ns);
            return;
        }
        self.gaps.push(Gap {
            lost,
            cause: "storage",
            cpu: None,
            count: rows as u64,
            since_ns,
            until_ns,
        });
    }

    /// Journals what is buffered, closes the segment, and publishes every
    /// closed segment into Parquet. Segments that cannot be published stay
    /// in the journal for the next attempt.
    pub fn rotate(&mut self) -> Result<(), EvidenceError> {
        self.journal_pending();
        let current = self.seal_segment();
        let mut result = self.publish_backlog();
        if let Some((segment, files)) = current {
            if result.is_ok() {
                result = self.publish_streamed(segment, files);
            } else {
                // Older segments go first, to keep the chain in time order.
                self.defer(segment, files);
            }
        }
        self.segment_opened = Instant::now();
        match result {
            Ok(()) => {
                if self.failing && self.gaps.is_empty() {
                    self.storage_recovered();
                }
                self.reserve.restore();
                Ok(())
            }
            Err(err) => {
                self.storage_failed(&err);
                Err(err)
            }
        }
    }

    /// Publishes the segments queued after a failure, oldest first.
    fn publish_backlog(&mut self) -> Result<(), EvidenceError> {
        let mut publisher = Publisher {
            dir: &self.dir,
            host: &self.host,
            chain: &mut self.chain,
        };
        let mut result = Ok(());
        while let Some(segment) = self.backlog.first() {
            match publisher.publish_segment(segment) {
                Ok(published) => {
                    if published.torn_tails > 0 {
                        eprintln!(
                            "agent-monitor: {}: a batch cut short by a failed write was dropped",
                            segment.display()
                        );
                    }
                    self.backlog.remove(0);
                }
                Err(err) => {
                    result = Err(err);
                    break;
                }
            }
        }
        result
    }

    fn rotation_due(&self) -> bool {
        self.segment_rows >= self.options.max_rows
            || (self.segment.is_some() || !self.backlog.is_empty())
                && self.segment_opened.elapsed() >= self.options.rotate_every
    }

    /// Queries read every table, and a table with no file at all is an
    /// error to DuckDB ("no files found"): the first time a store closes,
    /// each table it has no file for gets an empty one.
    fn publish_missing_tables(&mut self) -> Result<(), EvidenceError> {
        let missing: Vec<&'static str> = TABLES
            .into_iter()
            .filter(|table| !self.dir.join(table).exists())
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        for table in missing {
            let schema = schema::of_table(table).expect("every published table has a schema");
            self.journal_batch(table, &RecordBatch::new_empty(schema))?;
        }
        self.rotate()
    }
}

fn to_io(err: EvidenceError) -> std::io::Error {
    std::io::Error::other(err)
}

impl Sink for EvidenceStore {
    fn event(
        &mut self,
        event: &Event,
        process: &ProcessInfo,
        who: &Attribution,
    ) -> std::io::Result<()> {
        self.events.append(event, process, who, self.clock);
        if self.events.len() >= JOURNAL_BATCH_ROWS {
            self.journal(false);
            if self.segment_rows >= self.options.max_rows && self.retry_due() {
                self.rotate().map_err(to_io)?;
            }
        }
        Ok(())
    }

    fn loss(&mut self, loss: &LossReport) -> std::io::Result<()> {
        self.gaps.push(Gap::from_loss(loss, self.clock));
        Ok(())
    }

    fn process(&mut self, process: &ProcessInfo, agent: &str) -> std::io::Result<()> {
        self.processes.append(process, agent, self.clock);
        Ok(())
    }

    fn declared(&mut self, record: &Declared) -> std::io::Result<()> {
        self.declared.push(record.clone());
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.journaled_at.elapsed() >= self.options.journal_every {
            self.journal_pending();
        }
        if self.rotation_due() && self.retry_due() {
            self.rotate().map_err(to_io)?;
        }
        Ok(())
    }

    fn close(&mut self) -> std::io::Result<()> {
        // One last attempt even while failing: this is the last chance to
        // record the gap.
        self.failed_at = None;
        let result = self.rotate();
        if result.is_ok() {
            self.publish_missing_tables().map_err(to_io)?;
        }
        if !self.gaps.is_empty() {
            let lost: u64 = self.gaps.iter().map(|g| g.count).sum();
            eprintln!(
                "agent-monitor: {lost} rows were lost to storage failures and the gap could not be recorded"
            );
        }
        if !self.backlog.is_empty() {
            eprintln!(
                "agent-monitor: {} journal segment(s) kept in {}; `agent-monitor recover {}` publishes them",
                self.backlog.len(),
                self.dir.join(journal::JOURNAL_DIR).display(),
                self.dir.display()
            );
        }
        result.map_err(to_io)
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
