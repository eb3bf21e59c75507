//! exec: header fields, filename and argument block, flags, lengths.

use super::*;

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
            comm: "agent-tool".into(),
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
