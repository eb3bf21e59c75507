//! Rejected records: unknown kinds, short records, and how the errors read.

use super::*;

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
