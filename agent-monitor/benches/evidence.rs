//! Throughput of the userspace pipeline on recorded events: decoding, the
//! processing stage, and the evidence store (Arrow batches, zstd Parquet,
//! the hash chain), on one core. Decoding alone is the baseline.
//!
//! `cargo bench -p agent-monitor --bench evidence` (run by `cargo xtask bench`).

use std::{hint::black_box, io, sync::Arc};

use agent_monitor::{
    alerts::{AlertConfig, Alerter},
    correlate::{Correlator, Now, Peer, SessionSpec},
    decode::decode,
    event::{Event, LossReport, Record},
    evidence::{
        declared::SessionRow,
        events::EventsBuilder,
        store::{EvidenceStore, StoreOptions},
    },
    pipeline::{Agents, Processor},
    policy::Policy,
    process_table::ProcessInfo,
    sink::{Attribution, Discard, Sink},
    time::WallClock,
};
use agent_monitor_common::{
    EventHeader, EventKind,
    syscall::{FieldHead, SyscallHead, nr, tag},
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const EVENTS: usize = 100_000;
/// Events of the sustained run: enough for the store's fixed costs to weigh
/// about 2%, and for it to rotate its files as it does at run time.
const SUSTAINED: usize = 1_000_000;

fn bytes_of<T: Copy>(value: &T) -> Vec<u8> {
    // SAFETY: only the plain-integer wire structs of agent-monitor-common
    // are passed here.
    unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
}

/// A build-like stream of `events` records: opens of a few hundred
/// distinct paths by a few processes, as a compiler run makes them, under
/// kernel tool-call slot `tool_call` (0: none).
fn recorded(tool_call: u64, events: usize) -> Vec<Vec<u8>> {
    (0..events)
        .map(|i| {
            let pid = 1000 + (i % 8) as u32;
            let path = format!("/usr/include/x86_64-linux-gnu/bits/header{}.h\0", i % 300);
            let path = &path.as_bytes()[..path.len() - 1];
            let field = FieldHead {
                tag: tag::PATH_0,
                flags: 0,
                len: path.len() as u16,
            };
            let head = SyscallHead {
                header: EventHeader {
                    kind: EventKind::Syscall as u32,
                    cpu: 0,
                    cpu_seq: i as u64,
                    ts_ns: 1_000_000_000 + i as u64 * 1_000,
                    start_ns: 500,
                    tool_call,
                    pid,
                    tid: pid,
                    ppid: 999,
                    uid: 1000,
                    gid: 1000,
                    agent: 1,
                    comm: *b"cc1\0\0\0\0\0\0\0\0\0\0\0\0\0",
                },
                nr: nr::OPENAT,
                flags: 0,
                data_len: (size_of::<FieldHead>() + path.len()) as u16,
                ret: 3,
                args: [u64::MAX - 99, 0, 0, 0, 0, 0],
            };
            let mut bytes = bytes_of(&head);
            bytes.extend(bytes_of(&field));
            bytes.extend_from_slice(path);
            bytes
        })
        .collect()
}

fn pipeline(c: &mut Criterion) {
    let records = recorded(0, EVENTS);
    let in_call = recorded(1, EVENTS);
    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.sample_size(10);

    group.bench_function("decode", |b| {
        b.iter(|| {
            for (seq, bytes) in records.iter().enumerate() {
                black_box(decode(bytes, seq as u64).expect("valid record"));
            }
        })
    });

    // Compiled once, as a run compiles its policy once.
    let policy = Arc::new(Policy::default_policy());
    let stage = |sink| judged(sink, &policy);

    group.bench_function("decode+process", |b| {
        b.iter(|| black_box(feed(stage(Discard), &records).into_parts()))
    });

    // The same stream inside a declared `bash` call that covers it: the
    // common case of an agent at work, with no alert to write.
    group.bench_function("decode+process(declared)", |b| {
        b.iter(|| {
            let mut processor = stage(Discard);
            declare_build(processor.correlator_mut());
            black_box(feed(processor, &in_call).into_parts())
        })
    });

    group.bench_function("decode+process+arrow", |b| {
        b.iter(|| {
            let processor = feed(
                judged(ArrowOnly(EventsBuilder::default()), &policy),
                &records,
            );
            let (_, _, mut sink) = processor.into_parts();
            black_box(sink.0.finish().expect("batch"));
        })
    });

    // A store opened, filled and closed. On this short run its fixed costs
    // (about 20 ms: a temp directory, the journal's files, the syncs when
    // it closes) weigh about 15%.
    let whole = |records: &[Vec<u8>]| {
        let dir = tempfile::tempdir().expect("temp dir");
        let clock = WallClock::with_offset(0);
        let store =
            EvidenceStore::open(dir.path(), clock, StoreOptions::default()).expect("store opens");
        let (_, _, mut store) = feed(judged(store, &policy), records).into_parts();
        agent_monitor::sink::Sink::close(&mut store).expect("store closes");
    };
    group.bench_function("decode+process+parquet", |b| b.iter(|| whole(&records)));

    // Sustained: a million events through one store, which rotates its
    // files as it does at run time; the fixed costs weigh about 2%.
    let sustained = recorded(0, SUSTAINED);
    group.throughput(Throughput::Elements(SUSTAINED as u64));
    group.bench_function("decode+process+parquet(sustained)", |b| {
        b.iter(|| whole(&sustained))
    });
    group.finish();
}

/// The processing stage of a run of agent `bench`, judging by `policy`,
/// with the alerter every run has.
fn judged<S: Sink>(sink: S, policy: &Arc<Policy>) -> Processor<S> {
    let mut agents = Agents::default();
    agents.add("bench");
    Processor::judged_by(sink, Correlator::new(policy.clone(), agents))
        .with_cwd_lookup(|_| None)
        .with_alerter(quiet_alerter())
}

/// Decodes and handles every record, as the reader and the stage do.
fn feed<S: Sink>(mut processor: Processor<S>, records: &[Vec<u8>]) -> Processor<S> {
    for (seq, bytes) in records.iter().enumerate() {
        processor.handle(Record::Event(
            decode(bytes, seq as u64).expect("valid record"),
        ));
    }
    processor
}

/// The alerter every run has, with no sink: repeats and excess alerts are
/// held back before they reach the store, as in a run.
fn quiet_alerter() -> Alerter {
    Alerter::new(
        AlertConfig {
            stderr: false,
            ..AlertConfig::default()
        },
        Vec::new(),
    )
}

/// Opens a session for agent 1 and declares, from pid 1000, the `bash`
/// call (`make`) that gets slot 1.
fn declare_build(correlator: &mut Correlator) {
    correlator.open_session(SessionSpec {
        row: SessionRow {
            session_id: "bench".into(),
            ..SessionRow::default()
        },
        agent_slot: 1,
        cwd: Some("/src".into()),
    });
    correlator.connect(
        1,
        Peer {
            pid: 1000,
            start_ns: 500,
            uid: 1000,
            agent_slot: Some(1),
        },
    );
    let start = agent_monitor::declare::decode(
        br#"{"type":"tool.start","call_id":"build","tool":"bash","args":{"command":"make"}}"#,
    )
    .expect("a valid declaration");
    let outcome = correlator.declare(1, start, Now::default());
    assert_eq!(
        outcome.slots.first().map(|s| s.slot),
        Some(1),
        "{:?}",
        outcome.reply
    );
}

/// Appends to the Arrow builders and stops there: the cost of the store
/// without its journal and Parquet files.
struct ArrowOnly(EventsBuilder);

impl Sink for ArrowOnly {
    fn event(&mut self, event: &Event, process: &ProcessInfo, who: &Attribution) -> io::Result<()> {
        self.0
            .append(event, process, who, WallClock::with_offset(0));
        if self.0.len() >= 1 << 16 {
            black_box(self.0.finish().map_err(io::Error::other)?);
        }
        Ok(())
    }

    fn loss(&mut self, _: &LossReport) -> io::Result<()> {
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
