//! Unit tests of record decoding, by theme:
//! - `exec`, `fork_and_exit`: each kind's payload;
//! - `rejected`: records that do not decode, and how the errors read;
//! - `text_and_seq`: comm and other text, sequence numbers.

mod exec;
mod fork_and_exit;
mod rejected;
mod text_and_seq;

use super::*;

use crate::test_support::{bytes_of, comm, distinct_actor, strings};

// ---------------------------------------------------------------------------
// Records of one process whose every header field holds a distinct value, so
// a swapped or misplaced field shows; built by `test_support` from the real
// shared structs.
// ---------------------------------------------------------------------------

fn header(kind: u32) -> EventHeader {
    distinct_actor().header(kind)
}

fn exec_head(filename_len: usize, argv_len: usize, flags: u16) -> ExecHead {
    distinct_actor().exec_head(filename_len, argv_len, flags)
}

fn exec_record(filename: &[u8], argv: &[u8], flags: u16) -> Vec<u8> {
    distinct_actor().exec_record(filename, argv, flags)
}

fn fork_record(child_pid: u32, child_start_ns: u64) -> Vec<u8> {
    distinct_actor().fork_record(child_pid, child_start_ns)
}

fn exit_record(status: u32) -> Vec<u8> {
    distinct_actor().exit_record(status)
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
