//! Text fields (comm, invalid and multibyte UTF-8) and sequence numbers.

use super::*;

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
