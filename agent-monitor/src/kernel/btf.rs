//! Minimal BTF (BPF Type Format) reader used to resolve kernel struct field offsets.
//!
//! aya's Rust eBPF programs get no CO-RE relocations, so the kernel side reads
//! `task_struct` and friends with `bpf_probe_read_kernel` at byte offsets that
//! userspace looks up here, in the running kernel's `/sys/kernel/btf/vmlinux`,
//! before loading the programs. Only what those lookups need is modelled; the
//! format is described in the kernel's `Documentation/bpf/btf.rst`.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

const HEADER_LEN: u32 = 24;
/// Bound on typedef/modifier hops, anonymous-member nesting and array nesting.
/// Real kernels need a handful; the limit only exists so corrupt input with
/// reference cycles cannot loop forever or overflow the stack.
const MAX_DEPTH: usize = 64;

/// Errors from parsing BTF or resolving a field in it.
#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error("cannot read BTF from {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("bad BTF magic {0:#06x} (expected 0xeb9f)")]
    BadMagic(u16),
    #[error("unsupported BTF version {0} (expected 1)")]
    UnsupportedVersion(u8),
    #[error("BTF data truncated or out of bounds while reading {what}")]
    Truncated { what: &'static str },
    #[error("unknown BTF type kind {0}")]
    UnknownKind(u32),
    #[error("BTF string offset {0} is out of bounds or not a NUL-terminated UTF-8 string")]
    BadString(u32),
    #[error("BTF type id {0} is out of range")]
    BadTypeId(u32),
    #[error("BTF type chain at id {0} is too deep or cyclic")]
    TooDeep(u32),
    #[error("struct or union `{0}` not found in BTF")]
    StructNotFound(String),
    #[error("field `{field}` not found in `{strukt}`")]
    FieldNotFound { strukt: String, field: String },
    #[error("field `{field}` of `{strukt}` is a bitfield; only whole-byte fields can be read")]
    Bitfield { strukt: String, field: String },
    #[error("field `{field}` of `{strukt}` is not a struct or union, cannot descend into it")]
    NotAStruct { strukt: String, field: String },
    #[error("field `{field}` of `{strukt}` has a type without a known size")]
    Unsized { strukt: String, field: String },
    #[error("offset or size of field `{field}` of `{strukt}` does not fit in 32 bits")]
    Overflow { strukt: String, field: String },
}

/// BTF type kinds, numbered as in the kernel (`Void` is the implicit type id 0).
#[rustfmt::skip]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Kind {
    #[default] Void, Int, Ptr, Array, Struct, Union, Enum, Fwd, Typedef, Volatile, Const,
    Restrict, Func, FuncProto, Var, Datasec, Float, DeclTag, TypeTag, Enum64,
}

impl Kind {
    fn from_raw(raw: u32) -> Option<Kind> {
        use Kind::*;
        // 0 (BTF_KIND_UNKN) is only valid as the implicit void type, never in the section.
        const KINDS: [Kind; 19] = [
            Int, Ptr, Array, Struct, Union, Enum, Fwd, Typedef, Volatile, Const, Restrict, Func,
            FuncProto, Var, Datasec, Float, DeclTag, TypeTag, Enum64,
        ];
        KINDS
            .get(usize::try_from(raw).ok()?.checked_sub(1)?)
            .copied()
    }

    /// Kinds that only qualify or rename another type and do not affect layout.
    fn is_modifier(self) -> bool {
        matches!(
            self,
            Kind::Typedef | Kind::Volatile | Kind::Const | Kind::Restrict | Kind::TypeTag
        )
    }

    fn is_composite(self) -> bool {
        matches!(self, Kind::Struct | Kind::Union)
    }
}

/// One parsed type. `extra` is the INT encoding word for INT, and the index of
/// the first entry in `Btf::members` for STRUCT/UNION/FUNC_PROTO/ARRAY.
#[derive(Clone, Copy, Debug, Default)]
struct Type {
    kind: Kind,
    kind_flag: bool,
    vlen: u16,
    name_off: u32,
    size_or_type: u32,
    extra: u32,
}

/// Struct/union member or func_proto parameter (offset 0). An ARRAY stores a
/// single entry: element type in `type_id`, element count in `offset`.
#[derive(Clone, Copy, Debug)]
struct Member {
    name_off: u32,
    type_id: u32,
    offset: u32,
}

/// A member found by name, with its bit offset relative to the searched type.
struct Found {
    bit_offset: u64,
    bitfield: bool,
    type_id: u32,
}

/// Parsed BTF: all types (indexed by type id, id 0 = void) plus the string table.
pub struct Btf {
    types: Vec<Type>,
    members: Vec<Member>,
    strings: Vec<u8>,
    /// First STRUCT/UNION with members for each name (forward declarations skipped).
    composites: HashMap<String, u32>,
    typedefs: HashMap<String, u32>,
}

impl fmt::Debug for Btf {
    // The tables are huge for vmlinux; show only their sizes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Btf")
            .field("types", &self.types.len())
            .field("strings_len", &self.strings.len())
            .finish_non_exhaustive()
    }
}

/// Bounds-checked reader over one section, honouring the blob's byte order.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    big_endian: bool,
}

impl<'a> Cursor<'a> {
    fn new(buf: &'a [u8], big_endian: bool) -> Self {
        Cursor {
            buf,
            pos: 0,
            big_endian,
        }
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], BtfError> {
        let end = self.pos.saturating_add(n); // saturated ends are out of bounds anyway
        let bytes = self
            .buf
            .get(self.pos..end)
            .ok_or(BtfError::Truncated { what })?;
        self.pos = end;
        Ok(bytes)
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, BtfError> {
        let b: [u8; 4] = self
            .take(4, what)?
            .try_into()
            .map_err(|_| BtfError::Truncated { what })?;
        Ok(if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }

    fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }
}

/// The section at `hdr_len + off` of length `len`, bounds-checked.
fn section<'a>(
    bytes: &'a [u8],
    hdr_len: u32,
    off: u32,
    len: u32,
    what: &'static str,
) -> Result<&'a [u8], BtfError> {
    let mut c = Cursor::new(bytes, false);
    c.take((hdr_len as usize).saturating_add(off as usize), what)?;
    c.take(len as usize, what)
}

impl Btf {
    /// Reads and parses a BTF file, typically `/sys/kernel/btf/vmlinux`.
    pub fn from_file(path: &Path) -> Result<Btf, BtfError> {
        let bytes = std::fs::read(path).map_err(|source| BtfError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Btf::parse(&bytes)
    }

    /// Parses raw BTF (little-endian as the kernel exposes it; big-endian also accepted).
    pub fn parse(bytes: &[u8]) -> Result<Btf, BtfError> {
        let big_endian = match bytes.get(..2) {
            Some([0x9f, 0xeb]) => false,
            Some([0xeb, 0x9f]) => true,
            Some(&[a, b]) => return Err(BtfError::BadMagic(u16::from_le_bytes([a, b]))),
            _ => return Err(BtfError::Truncated { what: "header" }),
        };
        let mut hdr = Cursor::new(bytes, big_endian);
        let [_, _, version, _flags] = hdr.take(4, "header")? else {
            return Err(BtfError::Truncated { what: "header" });
        };
        if *version != 1 {
            return Err(BtfError::UnsupportedVersion(*version));
        }
        let hdr_len = hdr.u32("header")?;
        let (type_off, type_len) = (hdr.u32("header")?, hdr.u32("header")?);
        let (str_off, str_len) = (hdr.u32("header")?, hdr.u32("header")?);
        // hdr_len may grow in future versions (extra fields are skipped), never shrink.
        if hdr_len < HEADER_LEN {
            return Err(BtfError::Truncated { what: "header" });
        }
        let type_sec = section(bytes, hdr_len, type_off, type_len, "type section")?;
        let strings = section(bytes, hdr_len, str_off, str_len, "string section")?.to_vec();

        let mut types = vec![Type::default()]; // id 0: void
        let mut members = Vec::new();
        let mut c = Cursor::new(type_sec, big_endian);
        while !c.is_empty() {
            let name_off = c.u32("type header")?;
            let info = c.u32("type header")?;
            let size_or_type = c.u32("type header")?;
            let raw_kind = (info >> 24) & 0x1f;
            let kind = Kind::from_raw(raw_kind).ok_or(BtfError::UnknownKind(raw_kind))?;
            let vlen = (info & 0xffff) as u16; // masked to 16 bits, lossless
            let n = usize::from(vlen);
            // Member indices fit in u32: each entry consumes >= 8 bytes of a u32-sized section.
            let first = members.len() as u32;
            let mut extra = first;
            match kind {
                Kind::Int => extra = c.u32("int encoding")?,
                Kind::Array => {
                    let elem = c.u32("array")?;
                    let _index_type = c.u32("array")?;
                    let nelems = c.u32("array")?;
                    members.push(Member {
                        name_off: 0,
                        type_id: elem,
                        offset: nelems,
                    });
                }
                Kind::Struct | Kind::Union | Kind::FuncProto => {
                    for _ in 0..n {
                        let (name_off, type_id) = (c.u32("member")?, c.u32("member")?);
                        let is_param = kind == Kind::FuncProto; // params have no offset word
                        let offset = if is_param { 0 } else { c.u32("member")? };
                        members.push(Member {
                            name_off,
                            type_id,
                            offset,
                        });
                    }
                }
                // Data we never look at; n <= 0xffff so the products cannot overflow.
                Kind::Enum => _ = c.take(8 * n, "enum values")?,
                Kind::Datasec | Kind::Enum64 => _ = c.take(12 * n, "datasec/enum64 entries")?,
                Kind::Var | Kind::DeclTag => _ = c.take(4, "var/decl_tag")?,
                _ => {}
            }
            let kind_flag = info >> 31 == 1;
            types.push(Type {
                kind,
                kind_flag,
                vlen,
                name_off,
                size_or_type,
                extra,
            });
        }

        let (mut composites, mut typedefs) = (HashMap::new(), HashMap::new());
        for (id, t) in types.iter().enumerate() {
            let map = match t.kind {
                Kind::Struct | Kind::Union if t.vlen > 0 => &mut composites,
                Kind::Typedef => &mut typedefs,
                _ => continue,
            };
            let name = std::str::from_utf8(c_str(&strings, t.name_off)?)
                .map_err(|_| BtfError::BadString(t.name_off))?;
            if !name.is_empty() {
                // or_insert: the first definition wins. Ids fit in u32 (< section bytes / 12).
                map.entry(name.to_owned()).or_insert(id as u32);
            }
        }
        Ok(Btf {
            types,
            members,
            strings,
            composites,
            typedefs,
        })
    }

    /// Byte offset of a dotted field path inside the named struct (or union), e.g.
    /// ("task_struct", "tgid"), ("mm_struct", "arg_start"), ("signal_struct", "live.counter").
    /// Fields inside anonymous struct/union members are found transparently (mm_struct's
    /// fields sit in an anonymous struct in 6.x kernels; task_struct has anonymous unions).
    /// Each dotted step descends into the member's type, skipping typedef/const/volatile/
    /// restrict/type_tag modifiers. Bitfield members are an error (we only read whole bytes).
    /// Offsets are summed.
    pub fn field_offset(&self, strukt: &str, path: &str) -> Result<u32, BtfError> {
        self.lookup(strukt, path).map(|(offset, _)| offset)
    }

    /// Size in bytes of that field (resolving typedefs/modifiers; pointers are 8, ints their
    /// size, arrays elem*nelems, structs their size).
    pub fn field_size(&self, strukt: &str, path: &str) -> Result<u32, BtfError> {
        let (_, type_id) = self.lookup(strukt, path)?;
        let size = self.size_of(type_id, 0)?.ok_or_else(|| BtfError::Unsized {
            strukt: strukt.into(),
            field: path.into(),
        })?;
        u32::try_from(size).map_err(|_| BtfError::Overflow {
            strukt: strukt.into(),
            field: path.into(),
        })
    }

    /// Number of parameters of a function prototype named by a typedef, e.g.
    /// "btf_trace_sched_process_exit" (typedef -> ptr -> func_proto). None when the typedef
    /// does not exist (or does not name a function prototype).
    pub fn typedef_fn_params(&self, name: &str) -> Option<usize> {
        let &id = self.typedefs.get(name)?;
        let (_, mut t) = self.resolve(id).ok()?;
        if t.kind == Kind::Ptr {
            t = self.resolve(t.size_or_type).ok()?.1;
        }
        (t.kind == Kind::FuncProto).then_some(usize::from(t.vlen))
    }

    /// Walks `path` from `strukt`, returning the byte offset and type id of the final member.
    fn lookup(&self, strukt: &str, path: &str) -> Result<(u32, u32), BtfError> {
        let &root = self
            .composites
            .get(strukt)
            .ok_or_else(|| BtfError::StructNotFound(strukt.to_owned()))?;
        let names = |field: &str| (strukt.to_owned(), field.to_owned());
        let (mut type_id, mut bits, mut walked) = (root, 0u64, 0usize);
        for step in path.split('.') {
            let (resolved, t) = self.resolve(type_id)?;
            if !t.kind.is_composite() {
                // `walked` is the prefix of path naming the member we cannot descend into.
                let (strukt, field) = names(&path[..walked.saturating_sub(1)]);
                return Err(BtfError::NotAStruct { strukt, field });
            }
            walked += step.len() + 1;
            // An empty step would otherwise match the first anonymous member.
            let found = match step {
                "" => None,
                _ => self.find_member(resolved, t, step.as_bytes(), &mut HashSet::new(), 0)?,
            };
            let Some(found) = found else {
                let (strukt, field) = names(path);
                return Err(BtfError::FieldNotFound { strukt, field });
            };
            if found.bitfield {
                let (strukt, field) = names(path);
                return Err(BtfError::Bitfield { strukt, field });
            }
            bits = bits.saturating_add(found.bit_offset); // saturated sums fail below
            type_id = found.type_id;
        }
        let Ok(offset) = u32::try_from(bits / 8) else {
            let (strukt, field) = names(path);
            return Err(BtfError::Overflow { strukt, field });
        };
        Ok((offset, type_id))
    }

    /// Finds `name` among the members of composite `parent`, descending into
    /// anonymous struct/union members like C name lookup does. `visited` holds
    /// anonymous types already searched, so each is searched at most once and
    /// corrupt input cannot make the search cyclic or exponential.
    fn find_member(
        &self,
        parent_id: u32,
        parent: &Type,
        name: &[u8],
        visited: &mut HashSet<u32>,
        depth: usize,
    ) -> Result<Option<Found>, BtfError> {
        if depth > MAX_DEPTH {
            return Err(BtfError::TooDeep(parent_id));
        }
        for m in self.members_of(parent) {
            let (bit_offset, bitfield_size) = match parent.kind_flag {
                true => (m.offset & 0xff_ffff, m.offset >> 24),
                false => (m.offset, 0),
            };
            let member_name = c_str(&self.strings, m.name_off)?;
            if member_name == name {
                let bitfield =
                    bitfield_size != 0 || bit_offset % 8 != 0 || self.is_partial_int(m.type_id)?;
                return Ok(Some(Found {
                    bit_offset: bit_offset.into(),
                    bitfield,
                    type_id: m.type_id,
                }));
            }
            if !member_name.is_empty() {
                continue;
            }
            let (id, inner) = self.resolve(m.type_id)?;
            if !inner.kind.is_composite() || !visited.insert(id) {
                continue;
            }
            if let Some(mut f) = self.find_member(id, inner, name, visited, depth + 1)? {
                f.bit_offset += u64::from(bit_offset);
                f.bitfield |= bit_offset % 8 != 0;
                return Ok(Some(f));
            }
        }
        Ok(None)
    }

    /// Without kind_flag, legacy BTF encodes bitfields in the INT type itself
    /// (fewer bits than its byte size, or a bit offset within it).
    fn is_partial_int(&self, type_id: u32) -> Result<bool, BtfError> {
        let (_, t) = self.resolve(type_id)?;
        if t.kind != Kind::Int {
            return Ok(false);
        }
        let (nr_bits, bit_off) = (u64::from(t.extra & 0xff), (t.extra >> 16) & 0xff);
        Ok(nr_bits != u64::from(t.size_or_type) * 8 || bit_off != 0)
    }

    /// Size in bytes of a type, or None for types without one (void, fwd, func).
    fn size_of(&self, type_id: u32, depth: usize) -> Result<Option<u64>, BtfError> {
        if depth > MAX_DEPTH {
            return Err(BtfError::TooDeep(type_id));
        }
        let (_, t) = self.resolve(type_id)?;
        Ok(match t.kind {
            Kind::Int | Kind::Enum | Kind::Enum64 | Kind::Struct | Kind::Union | Kind::Float => {
                Some(t.size_or_type.into())
            }
            // BTF does not record pointer width; the monitor only targets 64-bit kernels.
            Kind::Ptr => Some(8),
            Kind::Array => {
                let Some(a) = self.members_of(t).first() else {
                    return Ok(None);
                };
                let elem = self.size_of(a.type_id, depth + 1)?;
                elem.and_then(|e| e.checked_mul(a.offset.into()))
            }
            _ => None,
        })
    }

    /// Follows typedef/qualifier/type_tag links to the type that determines layout.
    fn resolve(&self, start: u32) -> Result<(u32, &Type), BtfError> {
        let mut id = start;
        for _ in 0..MAX_DEPTH {
            let t = self.types.get(id as usize).ok_or(BtfError::BadTypeId(id))?;
            if !t.kind.is_modifier() {
                return Ok((id, t));
            }
            id = t.size_or_type;
        }
        Err(BtfError::TooDeep(start))
    }

    fn members_of(&self, t: &Type) -> &[Member] {
        let n = match t.kind {
            Kind::Array => 1,
            _ => usize::from(t.vlen),
        };
        let start = t.extra as usize;
        // Always in range for types built by `parse`; `get` just keeps this panic-free.
        self.members
            .get(start..start.saturating_add(n))
            .unwrap_or(&[])
    }
}

/// The NUL-terminated string at `off` in the string section, without the NUL.
fn c_str(strings: &[u8], off: u32) -> Result<&[u8], BtfError> {
    let rest = strings
        .get(off as usize..)
        .ok_or(BtfError::BadString(off))?;
    let nul = rest
        .iter()
        .position(|&b| b == 0)
        .ok_or(BtfError::BadString(off))?;
    Ok(&rest[..nul])
}

#[cfg(test)]
#[path = "btf_tests.rs"]
mod tests;
