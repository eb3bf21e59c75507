use super::*;

// ---------------------------------------------------------------------------
// Record builders: the real shared structs, serialised the way the kernel
// sends them (the fixed part as raw bytes, then the used data prefix).
// ---------------------------------------------------------------------------

/// The raw bytes of a shared record struct.
///
/// Only called with `EventHeader`, `ExecHead`, `ForkEvent` and `ExitEvent`:
/// `repr(C)`, integers only, explicit padding (sizes asserted in
/// agent-monitor-common), so every byte is initialised.
fn bytes_of<T: Copy>(value: &T) -> Vec<u8> {
    // SAFETY: `value` is a valid reference to `size_of::<T>()` initialised
    // bytes (see above); the slice lives only for the copy.
    unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
}

fn comm(name: &[u8]) -> [u8; 16] {
    let mut comm = [0u8; 16];
    comm[..name.len()].copy_from_slice(name);
    comm
}

/// A header whose every field holds a distinct value, so a swapped or
/// misplaced field shows.
fn header(kind: u32) -> EventHeader {
    EventHeader {
        kind,
        cpu: 3,
        cpu_seq: 77,
        ts_ns: 1_000_000_123,
        start_ns: 555_000,
        tool_call: 9,
        pid: 4242,
        tid: 4243,
        ppid: 4000,
        uid: 1001,
        gid: 1002,
        agent: 2,
        comm: comm(b"agent-tool"),
    }
}

fn exec_head(filename_len: usize, argv_len: usize, flags: u16) -> ExecHead {
    ExecHead {
        header: header(EventKind::ProcessExec as u32),
        filename_len: filename_len.try_into().expect("filename fits u16"),
        argv_len: argv_len.try_into().expect("argv fits u16"),
        flags,
        _pad: 0,
        argv_total_len: argv_len as u32,
        _pad2: 0,
    }
}

/// An exec record carrying exactly `filename` then `argv`, as the probe
/// sends it.
fn exec_record(filename: &[u8], argv: &[u8], flags: u16) -> Vec<u8> {
    let mut bytes = bytes_of(&exec_head(filename.len(), argv.len(), flags));
    bytes.extend_from_slice(filename);
    bytes.extend_from_slice(argv);
    bytes
}

fn fork_record(child_pid: u32, child_start_ns: u64) -> Vec<u8> {
    bytes_of(&ForkEvent {
        header: header(EventKind::ProcessFork as u32),
        child_pid,
        _pad: 0,
        child_start_ns,
    })
}

fn exit_record(status: u32) -> Vec<u8> {
    bytes_of(&ExitEvent {
        header: header(EventKind::ProcessExit as u32),
        status,
        _pad: 0,
    })
}

fn exec_of(bytes: &[u8]) -> Exec {
    match decode(bytes, 1).expect("exec record decodes").detail {
        Detail::Exec(exec) => exec,
        other => panic!("expected an exec detail, got {other:?}"),
    }
}

fn argv_of(bytes: &[u8]) -> Vec<String> {
    exec_of(bytes).argv
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

// ---------------------------------------------------------------------------
// Layout sanity: the builders produce the sizes the kernel sends.
// ---------------------------------------------------------------------------

#[test]
fn builders_produce_the_kernel_record_sizes() {
    assert_eq!(bytes_of(&header(1)).len(), 80);
    assert_eq!(EXEC_FIXED_LEN, 96);
    assert_eq!(exec_record(b"/bin/ls", b"ls\0", 0).len(), 96 + 7 + 3);
    assert_eq!(fork_record(1, 2).len(), 96);
    assert_eq!(exit_record(0).len(), 88);
}

// ---------------------------------------------------------------------------
// exec
// ---------------------------------------------------------------------------

#[test]
fn exec_decodes_every_header_field_filename_and_argv() {
    let bytes = exec_record(b"/usr/bin/git", b"git\0status\0--short\0", 0);
    let event = decode(&bytes, 17).expect("decodes");
    assert_eq!(
        event,
        Event {
            seq: 17,
            cpu_seq: 77,
            ts_ns: 1_000_000_123,
            cpu: 3,
            pid: 4242,
            tid: 4243,
            ppid: 4000,
            uid: 1001,
            gid: 1002,
            start_ns: 555_000,
            agent_slot: 2,
            tool_call: 9,
            comm: "agent-tool".to_string(),
            detail: Detail::Exec(Exec {
                filename: "/usr/bin/git".to_string(),
                filename_truncated: false,
                argv: strings(&["git", "status", "--short"]),
                argv_truncated: false,
                argv_unreadable: false,
            }),
        }
    );
    assert_eq!(event.kind(), EventKind::ProcessExec);
}

#[test]
fn exec_keeps_empty_arguments_in_the_middle_and_at_the_end() {
    assert_eq!(
        argv_of(&exec_record(b"/bin/sh", b"sh\0\0-c\0", 0)),
        strings(&["sh", "", "-c"])
    );
    assert_eq!(
        argv_of(&exec_record(b"/usr/bin/printf", b"printf\0%s\0\0", 0)),
        strings(&["printf", "%s", ""])
    );
    assert_eq!(
        argv_of(&exec_record(b"/bin/x", b"x\0\0\0\0y\0", 0)),
        strings(&["x", "", "", "", "y"])
    );
}

#[test]
fn exec_block_without_trailing_nul_keeps_the_partial_last_argument() {
    let exec = exec_of(&exec_record(
        b"/bin/echo",
        b"echo\0first\0partial-ar",
        EXEC_ARGV_TRUNCATED,
    ));
    assert_eq!(
        exec,
        Exec {
            filename: "/bin/echo".to_string(),
            filename_truncated: false,
            argv: strings(&["echo", "first", "partial-ar"]),
            argv_truncated: true,
            argv_unreadable: false,
        }
    );
    // The same block with its NUL gives the same arguments: only the flag
    // says the block was cut.
    let whole = exec_of(&exec_record(b"/bin/echo", b"echo\0first\0partial-ar\0", 0));
    assert_eq!(whole.argv, exec.argv);
    assert!(!whole.argv_truncated);
}

#[test]
fn exec_without_arguments_has_an_empty_argv() {
    let exec = exec_of(&exec_record(b"/bin/true", b"", 0));
    assert_eq!(exec.filename, "/bin/true");
    assert_eq!(exec.argv, Vec::<String>::new());
}

/// Since Linux 5.18 an execve with an empty argv runs with argv = {""}, so
/// the argument block is one NUL: one empty argument, not none. It must be
/// told apart from an empty block (argv_len 0).
#[test]
fn exec_with_a_single_empty_argument_keeps_it() {
    assert_eq!(
        argv_of(&exec_record(b"/usr/bin/pkexec", b"\0", 0)),
        strings(&[""])
    );
    assert_eq!(
        argv_of(&exec_record(b"/usr/bin/pkexec", b"", 0)),
        Vec::<String>::new()
    );
}

#[test]
fn exec_flags_map_to_their_own_fields() {
    let unreadable = exec_of(&exec_record(b"/bin/ls", b"", EXEC_ARGV_UNREADABLE));
    assert_eq!(
        unreadable,
        Exec {
            filename: "/bin/ls".to_string(),
            filename_truncated: false,
            argv: Vec::new(),
            argv_truncated: false,
            argv_unreadable: true,
        }
    );

    let filename_cut = exec_of(&exec_record(b"/very/long", b"a\0", EXEC_FILENAME_TRUNCATED));
    assert!(filename_cut.filename_truncated);
    assert!(!filename_cut.argv_truncated);
    assert!(!filename_cut.argv_unreadable);

    let all = exec_of(&exec_record(
        b"/x",
        b"a",
        EXEC_FILENAME_TRUNCATED | EXEC_ARGV_TRUNCATED | EXEC_ARGV_UNREADABLE,
    ));
    assert!(all.filename_truncated && all.argv_truncated && all.argv_unreadable);

    // Bits the decoder does not know are ignored, not misread as flags.
    let unknown = exec_of(&exec_record(b"/x", b"a\0", 0x8000));
    assert!(!unknown.filename_truncated && !unknown.argv_truncated && !unknown.argv_unreadable);
}

#[test]
fn exec_bytes_after_the_claimed_lengths_are_ignored() {
    // The filename is "/bin/ls" only: argv starts right after its 7 bytes.
    let mut bytes = exec_record(b"/bin/ls", b"ls\0-l\0", 0);
    bytes.extend_from_slice(b"junk\0more\0");
    let exec = exec_of(&bytes);
    assert_eq!(exec.filename, "/bin/ls");
    assert_eq!(exec.argv, strings(&["ls", "-l"]));
}

#[test]
fn exec_filename_of_the_full_path_cap_decodes() {
    let filename = vec![b'a'; agent_monitor_common::process::PATH_CAP - 1];
    let argv = vec![b'b'; 300];
    let exec = exec_of(&exec_record(&filename, &argv, EXEC_FILENAME_TRUNCATED));
    assert_eq!(exec.filename.len(), 4095);
    assert!(exec.filename.bytes().all(|b| b == b'a'));
    assert_eq!(exec.argv, vec!["b".repeat(300)]);
    assert!(exec.filename_truncated);
}

#[test]
fn exec_lengths_beyond_the_carried_bytes_are_rejected() {
    // Claims 10 + 20 bytes but carries 25.
    let mut bytes = bytes_of(&exec_head(10, 20, 0));
    bytes.extend_from_slice(&[b'x'; 25]);
    assert_eq!(
        decode(&bytes, 0),
        Err(DecodeError::ExecLength {
            claimed: 30,
            carried: 25
        })
    );

    // The fixed part alone, claiming one byte of filename.
    let bytes = bytes_of(&exec_head(1, 0, 0));
    assert_eq!(
        decode(&bytes, 0),
        Err(DecodeError::ExecLength {
            claimed: 1,
            carried: 0
        })
    );

    // Only the argument length is too long.
    let mut bytes = bytes_of(&exec_head(2, 5, 0));
    bytes.extend_from_slice(b"/xa\0b");
    assert_eq!(
        decode(&bytes, 0),
        Err(DecodeError::ExecLength {
            claimed: 7,
            carried: 5
        })
    );

    // Exactly the claimed bytes is fine.
    let mut bytes = bytes_of(&exec_head(2, 5, 0));
    bytes.extend_from_slice(b"/xa\0bc\0");
    assert_eq!(exec_of(&bytes).argv, strings(&["a", "bc"]));
}

// ---------------------------------------------------------------------------
// fork and exit
// ---------------------------------------------------------------------------

#[test]
fn fork_decodes_the_child_and_the_header() {
    let event = decode(&fork_record(4300, 999_888_777), 5).expect("decodes");
    assert_eq!(
        event.detail,
        Detail::Fork {
            child_pid: 4300,
            child_start_ns: 999_888_777
        }
    );
    assert_eq!(event.kind(), EventKind::ProcessFork);
    assert_eq!(event.seq, 5);
    assert_eq!(event.pid, 4242);
    assert_eq!(event.start_ns, 555_000);
    assert_eq!(event.ppid, 4000);
    assert_eq!(event.cpu_seq, 77);
    assert_eq!(event.comm, "agent-tool");
}

#[test]
fn exit_decodes_codes_signals_and_core_dumps() {
    let cases = [
        (0, ExitStatus::Exited(0)),
        (3 << 8, ExitStatus::Exited(3)),
        (255 << 8, ExitStatus::Exited(255)),
        (
            9,
            ExitStatus::Killed {
                signal: 9,
                core_dumped: false,
            },
        ),
        (
            15,
            ExitStatus::Killed {
                signal: 15,
                core_dumped: false,
            },
        ),
        (
            0x80 | 11,
            ExitStatus::Killed {
                signal: 11,
                core_dumped: true,
            },
        ),
    ];
    for (status, expected) in cases {
        let event = decode(&exit_record(status), 8).expect("decodes");
        assert_eq!(event.detail, Detail::Exit(expected), "status {status:#x}");
        assert_eq!(event.kind(), EventKind::ProcessExit);
        assert_eq!(event.pid, 4242);
    }
}

#[test]
fn fork_and_exit_ignore_trailing_bytes() {
    let mut fork = fork_record(7, 8);
    fork.extend_from_slice(&[0xAA; 8]);
    assert_eq!(
        decode(&fork, 0).expect("decodes").detail,
        Detail::Fork {
            child_pid: 7,
            child_start_ns: 8
        }
    );
    let mut exit = exit_record(2 << 8);
    exit.extend_from_slice(&[0xAA; 8]);
    assert_eq!(
        decode(&exit, 0).expect("decodes").detail,
        Detail::Exit(ExitStatus::Exited(2))
    );
}

// ---------------------------------------------------------------------------
// Rejected records
// ---------------------------------------------------------------------------

#[test]
fn unknown_kinds_are_rejected() {
    // Values this build does not know, wherever EventKind::ALL ends.
    let past_the_last = EventKind::ALL
        .iter()
        .map(|kind| *kind as u32)
        .max()
        .expect("kinds exist")
        + 1;
    for kind in [0, past_the_last, 0xdead, u32::MAX] {
        // A full-size record, so only the kind is wrong.
        let mut bytes = bytes_of(&header(kind));
        bytes.extend_from_slice(&[0; 16]);
        assert_eq!(
            decode(&bytes, 0),
            Err(DecodeError::UnknownKind(UnknownEventKind(kind))),
            "kind {kind}"
        );
    }
}

#[test]
fn records_shorter_than_the_header_are_rejected() {
    assert_eq!(
        decode(&[], 0),
        Err(DecodeError::Short {
            what: "event header",
            len: 0,
            need: 80
        })
    );
    let bytes = exit_record(0);
    assert_eq!(
        decode(&bytes[..79], 0),
        Err(DecodeError::Short {
            what: "event header",
            len: 79,
            need: 80
        })
    );
}

#[test]
fn records_shorter_than_their_payload_are_rejected() {
    let fork = fork_record(1, 2);
    assert_eq!(
        decode(&fork[..80], 0),
        Err(DecodeError::Short {
            what: "fork record",
            len: 80,
            need: 96
        })
    );
    assert_eq!(
        decode(&fork[..95], 0),
        Err(DecodeError::Short {
            what: "fork record",
            len: 95,
            need: 96
        })
    );

    let exit = exit_record(0);
    assert_eq!(
        decode(&exit[..87], 0),
        Err(DecodeError::Short {
            what: "exit record",
            len: 87,
            need: 88
        })
    );

    let exec = exec_record(b"/bin/ls", b"ls\0", 0);
    assert_eq!(
        decode(&exec[..95], 0),
        Err(DecodeError::Short {
            what: "exec record",
            len: 95,
            need: 96
        })
    );
    assert_eq!(
        decode(&exec[..80], 0),
        Err(DecodeError::Short {
            what: "exec record",
            len: 80,
            need: 96
        })
    );
}

#[test]
fn errors_read_as_one_line_each() {
    assert_eq!(
        DecodeError::Short {
            what: "fork record",
            len: 80,
            need: 96
        }
        .to_string(),
        "record of 80 bytes is shorter than the 96-byte fork record"
    );
    assert_eq!(
        DecodeError::UnknownKind(UnknownEventKind(42)).to_string(),
        "unknown event kind 42"
    );
    assert_eq!(
        DecodeError::ExecLength {
            claimed: 30,
            carried: 25
        }
        .to_string(),
        "exec record claims 30 bytes of filename and arguments but carries 25"
    );
}

// ---------------------------------------------------------------------------
// Text fields
// ---------------------------------------------------------------------------

#[test]
fn comm_of_sixteen_bytes_without_nul_is_kept_whole() {
    let mut head = header(EventKind::ProcessExit as u32);
    head.comm = *b"abcdefghijklmnop";
    let mut bytes = bytes_of(&ExitEvent {
        header: head,
        status: 0,
        _pad: 0,
    });
    assert_eq!(decode(&bytes, 0).expect("decodes").comm, "abcdefghijklmnop");

    // A NUL ends the name; whatever follows it is not part of it.
    bytes[head_comm_offset()..head_comm_offset() + 16].copy_from_slice(b"ls\0garbage\0\0\0\0\0\0");
    assert_eq!(decode(&bytes, 0).expect("decodes").comm, "ls");

    // An all-NUL comm is empty.
    bytes[head_comm_offset()..head_comm_offset() + 16].copy_from_slice(&[0; 16]);
    assert_eq!(decode(&bytes, 0).expect("decodes").comm, "");
}

/// Where `comm` sits in the header: its last 16 bytes.
fn head_comm_offset() -> usize {
    size_of::<EventHeader>() - 16
}

#[test]
fn non_utf8_bytes_are_replaced_not_rejected() {
    let mut head = exec_head(9, 8, 0);
    head.header.comm = comm(b"x\xffy");
    let mut bytes = bytes_of(&head);
    bytes.extend_from_slice(b"/tmp/\xffbin");
    bytes.extend_from_slice(b"a\xfe\0ok\0\xc3\0");
    let event = decode(&bytes, 0).expect("invalid UTF-8 still decodes");
    assert_eq!(event.comm, "x\u{FFFD}y");
    match event.detail {
        Detail::Exec(exec) => {
            assert_eq!(exec.filename, "/tmp/\u{FFFD}bin");
            assert_eq!(exec.argv, strings(&["a\u{FFFD}", "ok", "\u{FFFD}"]));
        }
        other => panic!("expected exec, got {other:?}"),
    }
}

#[test]
fn multibyte_utf8_is_kept() {
    let exec = exec_of(&exec_record(
        "/home/zoë/bin/ツール".as_bytes(),
        "ツール\0--naïve\0".as_bytes(),
        0,
    ));
    assert_eq!(exec.filename, "/home/zoë/bin/ツール");
    assert_eq!(exec.argv, strings(&["ツール", "--naïve"]));
}

// ---------------------------------------------------------------------------
// Sequence numbers
// ---------------------------------------------------------------------------

#[test]
fn seq_is_passed_through_and_cpu_seq_comes_from_the_header() {
    let mut head = header(EventKind::ProcessExit as u32);
    head.cpu_seq = 123_456_789_012;
    head.cpu = 63;
    let bytes = bytes_of(&ExitEvent {
        header: head,
        status: 0,
        _pad: 0,
    });
    for seq in [0, 1, 99, u64::MAX] {
        let event = decode(&bytes, seq).expect("decodes");
        assert_eq!(event.seq, seq);
        assert_eq!(event.cpu_seq, 123_456_789_012);
        assert_eq!(event.cpu, 63);
    }
}
