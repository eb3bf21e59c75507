//! The raw syscall record the kernel sends: head and tagged fields.

use agent_monitor_common::syscall::{
    FIELD_TRUNCATED, FIELD_UNREADABLE, FieldHead, SYSCALL_FIELDS_DROPPED, SyscallHead, tag,
};

use crate::decode::{DecodeError, read_struct};

/// One captured field, borrowed from the record: interpreting a field
/// copies only what the event keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field<'a> {
    pub tag: u8,
    pub bytes: &'a [u8],
    pub truncated: bool,
    pub unreadable: bool,
}

/// A hooked syscall as captured, before interpretation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyscallRecord<'a> {
    pub nr: u32,
    pub ret: i64,
    pub args: [u64; 6],
    pub fields: Vec<Field<'a>>,
    /// Some field did not fit in the record and was left out.
    pub fields_dropped: bool,
}

impl<'a> SyscallRecord<'a> {
    pub fn field(&self, tag: u8) -> Option<&Field<'a>> {
        self.fields.iter().find(|f| f.tag == tag)
    }

    pub fn bytes(&self, tag: u8) -> Option<&'a [u8]> {
        self.field(tag).map(|f| f.bytes)
    }

    /// A string field, lossily decoded.
    pub fn text(&self, tag: u8) -> Option<String> {
        self.bytes(tag).map(crate::decode::text)
    }

    pub fn arg(&self, i: usize) -> u64 {
        self.args[i]
    }

    /// Whether any of these fields was cut short or unreadable.
    pub fn incomplete(&self, tags: &[u8]) -> bool {
        self.fields_dropped
            || self
                .fields
                .iter()
                .any(|f| tags.contains(&f.tag) && (f.truncated || f.unreadable))
    }
}

/// Parses a syscall record (header included) into its head and fields.
pub fn parse(bytes: &[u8]) -> Result<(SyscallHead, SyscallRecord<'_>), DecodeError> {
    let head: SyscallHead = read_struct(bytes, "syscall record")?;
    let mut data = &bytes[size_of::<SyscallHead>()..];
    let claimed = usize::from(head.data_len);
    if claimed > data.len() {
        return Err(DecodeError::FieldLength {
            claimed,
            carried: data.len(),
        });
    }
    data = &data[..claimed];
    let mut fields = Vec::new();
    while !data.is_empty() {
        let field: FieldHead = read_struct(data, "field header")?;
        let len = usize::from(field.len);
        let rest = &data[size_of::<FieldHead>()..];
        if len > rest.len() {
            return Err(DecodeError::FieldLength {
                claimed: len,
                carried: rest.len(),
            });
        }
        if !(tag::PATH_0..=tag::PAYLOAD_1).contains(&field.tag) {
            return Err(DecodeError::UnknownField(field.tag));
        }
        fields.push(Field {
            tag: field.tag,
            bytes: &rest[..len],
            truncated: field.flags & FIELD_TRUNCATED != 0,
            unreadable: field.flags & FIELD_UNREADABLE != 0,
        });
        data = &rest[len..];
    }
    let record = SyscallRecord {
        nr: head.nr,
        ret: head.ret,
        args: head.args,
        fields,
        fields_dropped: head.flags & SYSCALL_FIELDS_DROPPED != 0,
    };
    Ok((head, record))
}

#[cfg(test)]
#[path = "record_tests.rs"]
mod tests;
