use super::*;

/// `kind` argument bit that sets kind_flag (it lands on bit 31 of `info`).
const KF: u32 = 0x80;

/// Tiny BTF writer for synthetic blobs; each type call returns the new type id.
struct Builder {
    types: Vec<u32>,
    strings: Vec<u8>,
    next_id: u32,
}

impl Builder {
    fn new() -> Self {
        Builder {
            types: Vec::new(),
            strings: vec![0],
            next_id: 1,
        }
    }

    fn string(&mut self, s: &str) -> u32 {
        let off = self.strings.len() as u32;
        self.strings.extend(s.bytes().chain([0]));
        if s.is_empty() { 0 } else { off }
    }

    fn raw(&mut self, name: &str, kind: u32, vlen: u32, size: u32, extra: &[u32]) -> u32 {
        let name_off = self.string(name);
        self.types
            .extend([name_off, (kind << 24) | vlen, size].iter().chain(extra));
        self.next_id += 1;
        self.next_id - 1
    }

    /// PTR/TYPEDEF/CONST/...: kinds that only refer to another type.
    fn refer(&mut self, name: &str, kind: u32, to: u32) -> u32 {
        self.raw(name, kind, 0, to, &[])
    }

    fn composite(&mut self, kind: u32, name: &str, size: u32, members: &[(&str, u32, u32)]) -> u32 {
        let mut extra = Vec::new();
        for &(n, ty, off) in members {
            extra.extend([self.string(n), ty, off]);
        }
        self.raw(name, kind, members.len() as u32, size, &extra)
    }

    fn build(&self, big_endian: bool) -> Vec<u8> {
        let word = |w: u32| {
            if big_endian {
                w.to_be_bytes()
            } else {
                w.to_le_bytes()
            }
        };
        let type_len = 4 * self.types.len() as u32;
        let mut out =
            [0xeb9f_u16.to_le_bytes(), 0xeb9f_u16.to_be_bytes()][usize::from(big_endian)].to_vec();
        out.extend([1, 0]);
        for w in [24, 0, type_len, type_len, self.strings.len() as u32]
            .iter()
            .chain(&self.types)
        {
            out.extend(word(*w));
        }
        out.extend(&self.strings);
        out
    }
}

/// struct outer { int a; int bits:3; inner_t nested; struct { long anon_a; int anon_b; };
///   union { int u1; long u2; }; struct outer *p; int arr[4]; int odd (at bit 644); }
/// with typedef const volatile struct inner { int x; long y; int z:3 (legacy) } inner_t.
fn fixture() -> Builder {
    let mut b = Builder::new();
    let int = b.raw("int", 1, 0, 4, &[32]);
    let long = b.raw("long", 1, 0, 8, &[64]);
    let int3 = b.raw("int", 1, 0, 4, &[3]); // legacy bitfield: encoded in the INT itself
    b.refer("outer", 7, 0); // FWD and an empty duplicate: both must be skipped
    b.composite(4, "outer", 0, &[]);
    let inner = b.composite(
        4,
        "inner",
        24,
        &[("x", int, 0), ("y", long, 64), ("z", int3, 128)],
    );
    let cnst = b.refer("", 10, inner);
    let vol = b.refer("", 9, cnst);
    let inner_t = b.refer("inner_t", 8, vol);
    let anon_s = b.composite(4, "", 16, &[("anon_a", long, 0), ("anon_b", int, 64)]);
    let anon_u = b.composite(5, "", 8, &[("u1", int, 0), ("u2", long, 0)]);
    let outer = b.next_id + 2;
    let ptr = b.refer("", 2, outer);
    let arr = b.raw("", 3, 0, 0, &[int, int, 4]);
    let members = [
        ("a", int, 0),
        ("bits", int, (3 << 24) | 32),
        ("nested", inner_t, 64),
        ("", anon_s, 256),
        ("", anon_u, 384),
        ("p", ptr, 448),
        ("arr", arr, 512),
        ("odd", int, 644),
    ];
    assert_eq!(b.composite(4 | KF, "outer", 88, &members), outer);
    let arg = b.string("arg");
    let proto = b.raw("", 13, 2, int, &[0, ptr, arg, int]);
    let fptr = b.refer("", 2, proto);
    b.refer("btf_trace_foo", 8, fptr);
    b.refer("not_fn", 8, int);
    b
}

fn parsed() -> Btf {
    Btf::parse(&fixture().build(false)).expect("fixture parses")
}

fn parse_err(bytes: &[u8]) -> String {
    format!("{:?}", Btf::parse(bytes).unwrap_err())
}

#[test]
fn plain_nested_anonymous_and_modifiers() {
    for btf in [
        parsed(),
        Btf::parse(&fixture().build(true)).expect("big-endian fixture"),
    ] {
        let cases = [
            ("a", 0, 4),
            ("nested", 8, 24),
            ("nested.x", 8, 4),
            ("nested.y", 16, 8),
            ("anon_a", 32, 8),
            ("anon_b", 40, 4),
            ("u1", 48, 4),
            ("u2", 48, 8),
            ("p", 56, 8),
            ("arr", 64, 16),
        ];
        for (path, off, size) in cases {
            assert_eq!(btf.field_offset("outer", path).unwrap(), off, "{path}");
            assert_eq!(btf.field_size("outer", path).unwrap(), size, "{path}");
        }
        assert_eq!(btf.field_offset("inner", "y").unwrap(), 8);
    }
}

#[test]
fn lookup_errors() {
    let btf = parsed();
    let err = |s, p| format!("{:?}", btf.field_offset(s, p).unwrap_err());
    let field =
        |variant: &str, f: &str| format!(r#"{variant} {{ strukt: "outer", field: "{f}" }}"#);
    for path in ["bits", "odd", "nested.z"] {
        assert_eq!(err("outer", path), field("Bitfield", path));
    }
    for path in ["nope", "", "nested..x", "nested.nope"] {
        assert_eq!(err("outer", path), field("FieldNotFound", path));
    }
    assert_eq!(err("outer", "a.x"), field("NotAStruct", "a"));
    assert_eq!(err("outer", "nested.y.q"), field("NotAStruct", "nested.y"));
    assert_eq!(err("outer", "p.a"), field("NotAStruct", "p"));
    assert_eq!(err("nope", "a"), r#"StructNotFound("nope")"#);
}

#[test]
fn fn_params() {
    let btf = parsed();
    assert_eq!(btf.typedef_fn_params("btf_trace_foo"), Some(2));
    assert_eq!(btf.typedef_fn_params("not_fn"), None);
    assert_eq!(btf.typedef_fn_params("missing"), None);
}

#[test]
fn malformed_input() {
    let blob = fixture().build(false);
    assert!(parse_err(&blob[..blob.len() - 1]).starts_with("Truncated"));
    assert!(parse_err(&blob[..10]).starts_with("Truncated"));
    assert!(parse_err(&[]).starts_with("Truncated"));
    let mut bad = blob.clone();
    bad[0] = 0;
    assert_eq!(parse_err(&bad), "BadMagic(60160)"); // 0xeb00
    let mut bad = blob.clone();
    bad[2] = 2;
    assert_eq!(parse_err(&bad), "UnsupportedVersion(2)");
    let mut b = fixture();
    b.refer("weird", 25, 0);
    assert_eq!(parse_err(&b.build(false)), "UnknownKind(25)");
}

#[test]
fn cyclic_types_do_not_hang() {
    let mut b = Builder::new();
    // A typedef loop, and an anonymous struct containing itself.
    b.refer("loop", 8, 2);
    b.refer("loop2", 8, 1);
    b.composite(4, "", 4, &[("", 3, 0), ("", 3, 0)]);
    b.composite(4, "s", 4, &[("t", 1, 0), ("", 3, 0)]);
    let btf = Btf::parse(&b.build(false)).unwrap();
    assert!(matches!(
        btf.field_offset("s", "x"),
        Err(BtfError::FieldNotFound { .. })
    ));
    assert!(matches!(
        btf.field_size("s", "t"),
        Err(BtfError::TooDeep(_))
    ));
    assert!(matches!(
        btf.field_offset("s", "t.x"),
        Err(BtfError::TooDeep(_))
    ));
}

/// Every prefix and many single-byte corruptions must yield Ok or Err, never a panic.
#[test]
fn fuzz_prefixes_and_flips() {
    let blob = fixture().build(false);
    let exercise = |bytes: &[u8]| {
        if let Ok(btf) = Btf::parse(bytes) {
            for path in [
                "a", "nested.y", "anon_b", "u2", "p", "arr", "bits", "a.x", "",
            ] {
                let _ = btf.field_offset("outer", path);
                let _ = btf.field_size("outer", path);
            }
            let _ = btf.typedef_fn_params("btf_trace_foo");
        }
    };
    for len in 0..=blob.len() {
        exercise(&blob[..len]);
    }
    for i in 0..blob.len() {
        for mask in [0x01, 0x10, 0x80, 0xff] {
            let mut copy = blob.clone();
            copy[i] ^= mask;
            exercise(&copy);
        }
    }
}

/// The lookups the kernel probes depend on, against this machine's kernel.
#[test]
fn real_vmlinux() {
    let btf = Btf::from_file(Path::new("/sys/kernel/btf/vmlinux"))
        .unwrap_or_else(|e| panic!("kernel BTF is required (CONFIG_DEBUG_INFO_BTF): {e}"));
    let needed = [
        ("task_struct", "tgid", 4),
        ("task_struct", "pid", 4),
        ("task_struct", "real_parent", 8),
        ("task_struct", "group_leader", 8),
        ("task_struct", "start_time", 8),
        ("task_struct", "exit_code", 4),
        ("task_struct", "mm", 8),
        ("task_struct", "signal", 8),
        ("signal_struct", "live.counter", 4),
        ("mm_struct", "arg_start", 8),
        ("mm_struct", "arg_end", 8),
        ("linux_binprm", "filename", 8),
    ];
    for (strukt, field, size) in needed {
        let lookup = |f: fn(&Btf, &str, &str) -> Result<u32, BtfError>| {
            f(&btf, strukt, field).unwrap_or_else(|e| panic!("{strukt}.{field}: {e}"))
        };
        let (off, got) = (lookup(Btf::field_offset), lookup(Btf::field_size));
        eprintln!("{strukt}.{field}: offset {off}, size {got}");
        assert!(off < 16384, "{strukt}.{field} offset {off} implausible");
        assert_eq!(got, size, "{strukt}.{field} size");
    }
    let params = btf.typedef_fn_params("btf_trace_sched_process_exit");
    eprintln!("btf_trace_sched_process_exit params: {params:?}");
    assert!(
        params.is_some_and(|n| n >= 2),
        "btf_trace_sched_process_exit: {params:?}"
    );
}
