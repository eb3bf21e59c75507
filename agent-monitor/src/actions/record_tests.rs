//! Tests of the syscall record parser, on records written by the shared
//! [`Builder`] in the kernel's exact wire layout.

use agent_monitor_common::syscall::{FIELD_TRUNCATED, FIELD_UNREADABLE, FieldHead, nr};

use super::*;
use crate::test_support::{Builder, base};

fn field(tag: u8, bytes: &[u8]) -> Field<'_> {
    Field {
        tag,
        bytes,
        truncated: false,
        unreadable: false,
    }
}

// ---------------------------------------------------------------------------
// Parsing.
// ---------------------------------------------------------------------------

#[test]
fn the_wire_layout_matches_the_shared_structs() {
    let bytes = Builder::new(nr::OPENAT)
        .ret(-2)
        .args(&[1, 2])
        .field(tag::PATH_0, b"abc")
        .bytes();
    assert_eq!(bytes.len(), 144 + 4 + 3);
    assert_eq!(
        &bytes[80..84],
        &nr::OPENAT.to_ne_bytes(),
        "nr after the header"
    );
    assert_eq!(&bytes[86..88], &7u16.to_ne_bytes(), "data_len");
    assert_eq!(&bytes[88..96], &(-2i64).to_ne_bytes(), "ret");
    assert_eq!(&bytes[96..104], &1u64.to_ne_bytes(), "args[0]");
    assert_eq!(&bytes[144..148], &[tag::PATH_0, 0, 3, 0][..], "field head");
    assert_eq!(base("/home/agent/"), b"agent\0home\0");
    assert_eq!(base("/"), b"");
}

#[test]
fn several_fields_are_read_in_order() {
    let builder = Builder::new(nr::OPENAT)
        .ret(3)
        .args(&[0xffff_ff9c, 0x7f00, 0o1101, 0o644, 5, 6])
        .field(tag::PATH_0, b"notes.txt")
        .field(tag::BASE_0, b"work\0tmp\0")
        .field(tag::FILE_MODE, 0x10_001fu32.to_ne_bytes());
    let record = builder.record();
    assert_eq!(
        record,
        SyscallRecord {
            nr: nr::OPENAT,
            ret: 3,
            args: [0xffff_ff9c, 0x7f00, 0o1101, 0o644, 5, 6],
            fields: vec![
                field(tag::PATH_0, b"notes.txt"),
                field(tag::BASE_0, b"work\0tmp\0"),
                field(tag::FILE_MODE, &0x10_001fu32.to_ne_bytes()),
            ],
            fields_dropped: false,
        }
    );
    assert_eq!(record.text(tag::PATH_0).as_deref(), Some("notes.txt"));
    assert_eq!(record.bytes(tag::BASE_0), Some(&b"work\0tmp\0"[..]));
    assert_eq!(record.bytes(tag::SOCK), None);
    assert_eq!(record.arg(3), 0o644);
    assert!(!record.incomplete(&[tag::PATH_0, tag::BASE_0]));
}

#[test]
fn an_empty_field_list_parses() {
    let builder = Builder::new(nr::SETUID).args(&[1000]);
    assert_eq!(builder.bytes().len(), size_of::<SyscallHead>());
    let record = builder.record();
    assert_eq!(record.fields, vec![]);
    assert!(!record.fields_dropped);
    assert_eq!(record.args, [1000, 0, 0, 0, 0, 0]);
}

#[test]
fn a_zero_length_field_is_kept() {
    let record = Builder::new(nr::OPEN).field(tag::PATH_0, b"").record();
    assert_eq!(record.fields, vec![field(tag::PATH_0, b"")]);
    assert_eq!(record.text(tag::PATH_0).as_deref(), Some(""));
}

#[test]
fn bytes_after_data_len_are_ignored() {
    let builder = Builder::new(nr::OPEN).field(tag::PATH_0, b"/a");
    let mut bytes = builder.bytes();
    bytes.extend_from_slice(&[0xee; 10]);
    let (_, record) = parse(&bytes).expect("padding after the fields is ignored");
    assert_eq!(record.fields, vec![field(tag::PATH_0, b"/a")]);
}

#[test]
fn a_field_longer_than_the_data_is_an_error() {
    let head = FieldHead {
        tag: tag::PATH_0,
        flags: 0,
        len: 10,
    };
    let bytes = Builder::new(nr::OPEN).raw_field(head, b"/etc").bytes();
    assert_eq!(
        parse(&bytes),
        Err(DecodeError::FieldLength {
            claimed: 10,
            carried: 4
        })
    );
    // The second field overruns, after a good first one.
    let bytes = Builder::new(nr::RENAME)
        .field(tag::PATH_0, b"a")
        .raw_field(FieldHead { len: 2, ..head }, b"b")
        .bytes();
    assert_eq!(
        parse(&bytes),
        Err(DecodeError::FieldLength {
            claimed: 2,
            carried: 1
        })
    );
}

#[test]
fn data_len_beyond_the_record_is_an_error() {
    let builder = Builder::new(nr::OPEN).field(tag::PATH_0, b"/etc/passwd");
    assert_eq!(builder.head().data_len, 15);
    assert_eq!(
        parse(&builder.bytes_claiming(16)),
        Err(DecodeError::FieldLength {
            claimed: 16,
            carried: 15
        })
    );
    let bare = Builder::new(nr::OPEN);
    assert_eq!(
        parse(&bare.bytes_claiming(u16::MAX)),
        Err(DecodeError::FieldLength {
            claimed: 65535,
            carried: 0
        })
    );
}

#[test]
fn a_cut_field_head_or_record_head_is_short() {
    // data_len claims 2 bytes: half a field head.
    let mut bytes = Builder::new(nr::OPEN).bytes_claiming(2);
    bytes.extend_from_slice(&[tag::PATH_0, 0]);
    assert_eq!(
        parse(&bytes),
        Err(DecodeError::Short {
            what: "field header",
            len: 2,
            need: 4
        })
    );
    let bytes = Builder::new(nr::OPEN).bytes();
    assert_eq!(
        parse(&bytes[..143]),
        Err(DecodeError::Short {
            what: "syscall record",
            len: 143,
            need: 144
        })
    );
}

#[test]
fn an_unknown_tag_is_an_error() {
    for unknown in [0, tag::PAYLOAD_1 + 1, 0xff] {
        let bytes = Builder::new(nr::OPEN)
            .field(tag::PATH_0, b"/a")
            .field(unknown, b"xy")
            .bytes();
        assert_eq!(
            parse(&bytes),
            Err(DecodeError::UnknownField(unknown)),
            "tag {unknown}"
        );
    }
    // Every defined tag is accepted.
    for known in tag::PATH_0..=tag::PAYLOAD_1 {
        let record = Builder::new(nr::OPEN).field(known, b"x").record();
        assert_eq!(record.fields, vec![field(known, b"x")]);
    }
}

#[test]
fn truncated_and_unreadable_flags_are_carried() {
    let record = Builder::new(nr::RENAME)
        .flagged(tag::PATH_0, FIELD_TRUNCATED, b"/very/long")
        .flagged(tag::PATH_1, FIELD_UNREADABLE, b"")
        .flagged(tag::BASE_0, FIELD_TRUNCATED | FIELD_UNREADABLE, b"a\0")
        .field(tag::BASE_1, b"b\0")
        .record();
    let flags: Vec<(u8, bool, bool)> = record
        .fields
        .iter()
        .map(|f| (f.tag, f.truncated, f.unreadable))
        .collect();
    assert_eq!(
        flags,
        vec![
            (tag::PATH_0, true, false),
            (tag::PATH_1, false, true),
            (tag::BASE_0, true, true),
            (tag::BASE_1, false, false),
        ]
    );
    assert_eq!(record.bytes(tag::PATH_0), Some(&b"/very/long"[..]));
    assert!(record.incomplete(&[tag::PATH_0]));
    assert!(record.incomplete(&[tag::PATH_1]));
    assert!(!record.incomplete(&[tag::BASE_1, tag::SOCK]));
    assert!(!record.fields_dropped);
}

#[test]
fn the_fields_dropped_flag_is_carried() {
    let record = Builder::new(nr::RENAME)
        .field(tag::PATH_0, b"/a")
        .dropped()
        .record();
    assert!(record.fields_dropped);
    assert_eq!(record.fields, vec![field(tag::PATH_0, b"/a")]);
    assert!(
        record.incomplete(&[]),
        "a dropped field makes any set incomplete"
    );
    let record = Builder::new(nr::RENAME).field(tag::PATH_0, b"/a").record();
    assert!(!record.fields_dropped);
}

#[test]
fn the_first_of_repeated_tags_is_the_one_read() {
    let record = Builder::new(nr::OPEN)
        .field(tag::PATH_0, b"/first")
        .field(tag::PATH_0, b"/second")
        .record();
    assert_eq!(record.fields.len(), 2);
    assert_eq!(record.text(tag::PATH_0).as_deref(), Some("/first"));
}
