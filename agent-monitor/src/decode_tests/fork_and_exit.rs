//! fork and exit: the child, the wait status.

use super::*;

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
