use super::*;

use agent_monitor_common::{
    maps::Counter,
    process::{EXEC_ARGV_TRUNCATED, EXEC_ARGV_UNREADABLE, EXEC_FILENAME_TRUNCATED},
};
use serde_json::{Value, json};

use crate::test_support::{Actor, actor, decoded, process_info};

// ---------------------------------------------------------------------------
// Events built by `test_support` as the kernel sends them, then decoded.
// ---------------------------------------------------------------------------

/// 2026-11-26T22:05:26Z in Unix-epoch nanoseconds.
const WALL_BASE_NS: i128 = 1_795_730_726_000_000_000;
/// Boot-clock time of the test events: 123.456789012 s after boot.
const BOOT_TS_NS: u64 = 123_456_789_012;

/// A clock on which `BOOT_TS_NS` reads 2026-11-26T22:05:26.456789012Z.
fn clock() -> WallClock {
    WallClock::with_offset(WALL_BASE_NS - 123_000_000_000)
}

/// The process every event here is about: claude, pid 4242 in thread 4243,
/// record 12 of CPU 1, at `BOOT_TS_NS`.
fn claude() -> Actor {
    actor(4242, 5_000_000, 4000)
        .tid(4243)
        .on_cpu(1, 12)
        .at(BOOT_TS_NS)
        .comm(b"claude")
}

fn exec_event(seq: u64, filename: &[u8], argv: &[u8], flags: u16) -> Event {
    decoded(&claude().exec_record(filename, argv, flags), seq)
}

fn fork_event(seq: u64, child_pid: u32) -> Event {
    decoded(&claude().fork_record(child_pid, 6_000_000), seq)
}

fn exit_event(seq: u64, status: u32) -> Event {
    decoded(&claude().exit_record(status), seq)
}

/// The acting process as the table would hold it after the event.
fn process(exe: Option<&str>, cwd: Option<&str>) -> ProcessInfo {
    ProcessInfo {
        // Not the event's 4000: the line's ppid is the one at the event.
        ppid: 1,
        exe: exe.map(str::to_string),
        cwd: cwd.map(str::to_string),
        ..process_info(4242, 5_000_000)
    }
}

/// The one line `event` writes, checked for framing, as raw text.
fn raw_line(event: &Event, process: &ProcessInfo, agent: &str) -> String {
    let mut sink = JsonlSink::new(Vec::new(), clock());
    sink.event(event, process, &Attribution::agent(agent))
        .expect("writes");
    let text = String::from_utf8(sink.into_inner()).expect("UTF-8 output");
    assert!(text.ends_with('\n'), "line ends in a newline: {text:?}");
    assert_eq!(text.matches('\n').count(), 1, "exactly one line: {text:?}");
    text
}

fn line(event: &Event, process: &ProcessInfo, agent: &str) -> Value {
    serde_json::from_str(&raw_line(event, process, agent)).expect("valid JSON")
}

fn loss_line(loss: &LossReport) -> Value {
    let mut sink = JsonlSink::new(Vec::new(), clock());
    sink.loss(loss).expect("writes");
    let text = String::from_utf8(sink.into_inner()).expect("UTF-8 output");
    assert!(text.ends_with('\n'));
    assert_eq!(text.matches('\n').count(), 1);
    serde_json::from_str(&text).expect("valid JSON")
}

// ---------------------------------------------------------------------------

#[test]
fn exec_line_has_the_contract_fields() {
    let event = exec_event(7, b"bin/git", b"git\0status\0\0--short\0", 0);
    let value = line(
        &event,
        &process(Some("/repo/bin/git"), Some("/repo")),
        "claude-code",
    );
    assert_eq!(
        value,
        json!({
            "seq": 7,
            "ts": "2026-11-26T22:05:26.456789012Z",
            "kind": "process.exec",
            "agent": "claude-code",
            "pid": 4242,
            "ppid": 4000,
            "tid": 4243,
            "uid": 1000,
            "comm": "claude",
            "exe": "/repo/bin/git",
            "process_key": "4242@5000000",
            "filename": "bin/git",
            "argv": ["git", "status", "", "--short"],
            "argv_truncated": false,
            "cwd": "/repo",
        })
    );
}

#[test]
fn exec_line_flags_optional_fields_only_when_set() {
    let event = exec_event(
        8,
        b"/x",
        b"",
        EXEC_FILENAME_TRUNCATED | EXEC_ARGV_TRUNCATED | EXEC_ARGV_UNREADABLE,
    );
    let value = line(&event, &process(Some("/x"), None), "a");
    assert_eq!(
        value,
        json!({
            "seq": 8,
            "ts": "2026-11-26T22:05:26.456789012Z",
            "kind": "process.exec",
            "agent": "a",
            "pid": 4242,
            "ppid": 4000,
            "tid": 4243,
            "uid": 1000,
            "comm": "claude",
            "exe": "/x",
            "process_key": "4242@5000000",
            "filename": "/x",
            "argv": [],
            "argv_truncated": true,
            "filename_truncated": true,
            "argv_unreadable": true,
            "cwd": null,
        })
    );

    let only_truncated = line(
        &exec_event(9, b"/x", b"a\0par", EXEC_ARGV_TRUNCATED),
        &process(Some("/x"), None),
        "a",
    );
    assert_eq!(only_truncated["argv"], json!(["a", "par"]));
    assert_eq!(only_truncated["argv_truncated"], json!(true));
    assert_eq!(only_truncated.get("filename_truncated"), None);
    assert_eq!(only_truncated.get("argv_unreadable"), None);
}

#[test]
fn fork_line_has_the_contract_fields() {
    let value = line(&fork_event(3, 4300), &process(None, None), "claude-code");
    assert_eq!(
        value,
        json!({
            "seq": 3,
            "ts": "2026-11-26T22:05:26.456789012Z",
            "kind": "process.fork",
            "agent": "claude-code",
            "pid": 4242,
            "ppid": 4000,
            "tid": 4243,
            "uid": 1000,
            "comm": "claude",
            "exe": null,
            "process_key": "4242@5000000",
            "child_pid": 4300,
            "child_process_key": "4300@6000000",
        })
    );
}

#[test]
fn exit_line_with_a_code_has_a_null_signal() {
    let value = line(
        &exit_event(4, 3 << 8),
        &process(Some("/bin/false"), Some("/")),
        "claude-code",
    );
    assert_eq!(
        value,
        json!({
            "seq": 4,
            "ts": "2026-11-26T22:05:26.456789012Z",
            "kind": "process.exit",
            "agent": "claude-code",
            "pid": 4242,
            "ppid": 4000,
            "tid": 4243,
            "uid": 1000,
            "comm": "claude",
            "exe": "/bin/false",
            "process_key": "4242@5000000",
            "exit_code": 3,
            "signal": null,
        })
    );
}

#[test]
fn exit_line_with_a_signal_has_a_null_code() {
    let value = line(&exit_event(5, 9), &process(None, None), "claude-code");
    assert_eq!(
        value,
        json!({
            "seq": 5,
            "ts": "2026-11-26T22:05:26.456789012Z",
            "kind": "process.exit",
            "agent": "claude-code",
            "pid": 4242,
            "ppid": 4000,
            "tid": 4243,
            "uid": 1000,
            "comm": "claude",
            "exe": null,
            "process_key": "4242@5000000",
            "exit_code": null,
            "signal": 9,
        })
    );
}

#[test]
fn exit_line_with_a_core_dump_says_so() {
    let value = line(&exit_event(6, 0x80 | 11), &process(None, None), "x");
    assert_eq!(value["exit_code"], Value::Null);
    assert_eq!(value["signal"], json!(11));
    assert_eq!(value["core_dumped"], json!(true));
    assert_eq!(value.as_object().expect("an object").len(), 14);

    // A clean exit 0 carries neither a signal nor core_dumped.
    let zero = line(&exit_event(6, 0), &process(None, None), "x");
    assert_eq!(zero["exit_code"], json!(0));
    assert_eq!(zero["signal"], Value::Null);
    assert_eq!(zero.get("core_dumped"), None);
}

#[test]
fn line_starts_with_seq_and_is_one_compact_object() {
    let text = raw_line(&fork_event(1, 2), &process(None, None), "a");
    assert!(text.starts_with("{\"seq\":1,\"ts\":"), "{text}");
    assert!(text.ends_with("}\n"), "{text}");
    assert!(!text.contains(": "), "compact JSON: {text}");
}

#[test]
fn text_that_needs_escaping_stays_on_one_line() {
    let event = exec_event(
        2,
        b"/bin/sh",
        b"sh\0-c\0echo \"hi\"\nrm -rf /tmp/x\0\t\\\0",
        0,
    );
    let value = line(&event, &process(Some("/bin/sh"), None), "quote\"agent");
    assert_eq!(
        value["argv"],
        json!(["sh", "-c", "echo \"hi\"\nrm -rf /tmp/x", "\t\\"])
    );
    assert_eq!(value["agent"], json!("quote\"agent"));
}

#[test]
fn replaced_bytes_are_written_as_the_replacement_character() {
    let event = exec_event(2, b"/tmp/\xff", b"\xfe\0", 0);
    let value = line(&event, &process(Some("/tmp/\u{FFFD}"), None), "a");
    assert_eq!(value["filename"], json!("/tmp/\u{FFFD}"));
    assert_eq!(value["argv"], json!(["\u{FFFD}"]));
}

#[test]
fn one_line_per_event_in_order() {
    let mut sink = JsonlSink::new(Vec::new(), clock());
    let p = process(None, None);
    sink.event(&fork_event(1, 10), &p, &Attribution::agent("a"))
        .expect("writes");
    sink.event(
        &exec_event(2, b"/bin/a", b"a\0", 0),
        &p,
        &Attribution::agent("a"),
    )
    .expect("writes");
    sink.loss(&LossReport {
        counter: Counter::RingbufFull,
        cpu: 0,
        count: 1,
        since_ns: 0,
        until_ns: 0,
    })
    .expect("writes");
    sink.event(&exit_event(3, 0), &p, &Attribution::agent("a"))
        .expect("writes");
    let text = String::from_utf8(sink.into_inner()).expect("UTF-8");
    assert!(text.ends_with('\n'));
    let kinds: Vec<(Value, Value)> = text
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("each line is JSON");
            (
                v["kind"].clone(),
                v.get("seq").cloned().unwrap_or(Value::Null),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            (json!("process.fork"), json!(1)),
            (json!("process.exec"), json!(2)),
            (json!("monitor.loss"), Value::Null),
            (json!("process.exit"), json!(3)),
        ]
    );
}

#[test]
fn ts_is_rfc3339_with_nanoseconds_from_the_clock_offset() {
    let cases: [(i128, &str); 4] = [
        // Wall = boot + offset; all nine fractional digits are kept.
        (
            WALL_BASE_NS - 123_000_000_000,
            "2026-11-26T22:05:26.456789012Z",
        ),
        (
            WALL_BASE_NS - BOOT_TS_NS as i128,
            "2026-11-26T22:05:26.000000000Z",
        ),
        (-(BOOT_TS_NS as i128), "1970-01-01T00:00:00.000000000Z"),
        (
            951_782_400_000_000_000 - BOOT_TS_NS as i128 + 1,
            "2000-02-29T00:00:00.000000001Z",
        ),
    ];
    for (offset, expected) in cases {
        let mut sink = JsonlSink::new(Vec::new(), WallClock::with_offset(offset));
        sink.event(
            &fork_event(1, 2),
            &process(None, None),
            &Attribution::agent("a"),
        )
        .expect("writes");
        let value: Value = serde_json::from_slice(&sink.into_inner()).expect("valid JSON");
        assert_eq!(value["ts"], json!(expected), "offset {offset}");
    }
}

#[test]
fn loss_of_events_has_the_loss_shape() {
    let value = loss_line(&LossReport {
        counter: Counter::RingbufFull,
        cpu: 3,
        count: 17,
        since_ns: 100_000_000_000,
        until_ns: 101_500_000_001,
    });
    assert_eq!(
        value,
        json!({
            "kind": "monitor.loss",
            "lost": "events",
            "cpu": 3,
            "count": 17,
            "since": "2026-11-26T22:05:03.000000000Z",
            "until": "2026-11-26T22:05:04.500000001Z",
        })
    );
}

#[test]
fn loss_of_tracked_processes_has_the_loss_shape() {
    let value = loss_line(&LossReport {
        counter: Counter::TrackFull,
        cpu: 0,
        count: u64::MAX,
        since_ns: 123_000_000_000,
        until_ns: 123_000_000_000,
    });
    assert_eq!(
        value,
        json!({
            "kind": "monitor.loss",
            "lost": "tracked_processes",
            "cpu": 0,
            "count": u64::MAX,
            "since": "2026-11-26T22:05:26.000000000Z",
            "until": "2026-11-26T22:05:26.000000000Z",
        })
    );
}

// ---------------------------------------------------------------------------
// The writer underneath
// ---------------------------------------------------------------------------

/// A writer that records flushes and can be told to fail.
#[derive(Default)]
struct Probe {
    written: Vec<u8>,
    flushes: usize,
    fail_writes: bool,
    fail_flush: bool,
}

impl Write for Probe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.fail_writes {
            return Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"));
        }
        self.written.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flushes += 1;
        if self.fail_flush {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "pipe closed"));
        }
        Ok(())
    }
}

#[test]
fn flush_passes_through_to_the_writer() {
    let mut sink = JsonlSink::new(Probe::default(), clock());
    sink.event(
        &fork_event(1, 2),
        &process(None, None),
        &Attribution::agent("a"),
    )
    .expect("writes");
    assert_eq!(sink.out.flushes, 0, "events alone do not flush");
    sink.flush().expect("flushes");
    sink.flush().expect("flushes");
    let probe = sink.into_inner();
    assert_eq!(probe.flushes, 2);
    assert_eq!(probe.written.iter().filter(|b| **b == b'\n').count(), 1);
}

#[test]
fn flush_errors_pass_through() {
    let mut sink = JsonlSink::new(
        Probe {
            fail_flush: true,
            ..Probe::default()
        },
        clock(),
    );
    let err = sink.flush().expect_err("the writer's flush fails");
    assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    assert_eq!(err.to_string(), "pipe closed");
}

#[test]
fn write_errors_are_returned() {
    let mut sink = JsonlSink::new(
        Probe {
            fail_writes: true,
            ..Probe::default()
        },
        clock(),
    );
    let err = sink
        .event(
            &fork_event(1, 2),
            &process(None, None),
            &Attribution::agent("a"),
        )
        .expect_err("the writer fails");
    assert!(err.to_string().contains("disk full"), "{err}");
    let err = sink
        .loss(&LossReport {
            counter: Counter::TrackFull,
            cpu: 0,
            count: 1,
            since_ns: 0,
            until_ns: 0,
        })
        .expect_err("the writer fails");
    assert!(err.to_string().contains("disk full"), "{err}");
    assert!(sink.into_inner().written.is_empty());
}

/// The keys of a JSON object in the order written, duplicates kept (a
/// `Value` would silently keep only the last of two equal keys).
fn keys_of(line: &str) -> Vec<String> {
    struct Keys(Vec<String>);
    impl<'de> serde::Deserialize<'de> for Keys {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct Visit;
            impl<'de> serde::de::Visitor<'de> for Visit {
                type Value = Keys;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> Result<Keys, A::Error> {
                    let mut keys = Vec::new();
                    while let Some((key, _)) = map.next_entry::<String, serde::de::IgnoredAny>()? {
                        keys.push(key);
                    }
                    Ok(Keys(keys))
                }
            }
            d.deserialize_map(Visit)
        }
    }
    serde_json::from_str::<Keys>(line).expect("a JSON object").0
}

#[test]
fn no_action_field_repeats_a_common_field() {
    use crate::actions::{Access, Action, ActionFields, ActionKind};
    let s = |v: &str| Some(v.to_string());
    // Every kind-specific field set at once: a key that any kind could
    // write twice shows up here.
    let fields = ActionFields {
        path: s("/p"),
        raw_path: s("p"),
        new_path: s("/q"),
        new_raw_path: s("q"),
        flags: Some(1),
        mode: Some(2),
        access: Some(Access::Write),
        created: Some(true),
        truncated: Some(false),
        path_incomplete: Some(true),
        symlink: Some(true),
        owner_uid: Some(3),
        owner_gid: Some(4),
        length: Some(5),
        family: Some("inet"),
        protocol: Some("tcp"),
        addr: s("127.0.0.1"),
        port: Some(6),
        unix_path: s("/u"),
        local_addr: s("127.0.0.2"),
        local_port: Some(7),
        dns_name: s("n"),
        name: s("m"),
        qtype: s("A"),
        answers: Some(vec!["1.2.3.4".into()]),
        ids: Some(vec![8]),
        caps: Some(vec!["0x0".into()]),
        target_pid: Some(9),
        signal: Some(10),
        request: Some(11),
        bpf_cmd: Some("prog_load"),
        prog_type: Some(12),
        fstype: s("tmpfs"),
    };
    let mut event = exit_event(1, 0);
    event.detail = Detail::Action(Box::new(Action {
        kind: ActionKind::FileChown,
        syscall: "chown",
        result: -1,
        fields,
    }));
    let line = raw_line(&event, &process(Some("/bin/x"), None), "a");
    let keys = keys_of(line.trim_end());
    let mut unique = keys.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(keys.len(), unique.len(), "a key appears twice: {keys:?}");
}
