use super::{LineSplitter, MAX_LINE, Oversize};

type Item = Result<Vec<u8>, Oversize>;

/// Everything the splitter returns for `chunks`, `finish` included.
fn split(limit: usize, chunks: &[&[u8]]) -> Vec<Item> {
    let mut splitter = LineSplitter::new(limit);
    let mut out = Vec::new();
    for chunk in chunks {
        splitter.feed(chunk);
        while let Some(item) = splitter.next_line() {
            out.push(item);
        }
    }
    out.extend(splitter.finish());
    out
}

fn ok(line: &str) -> Item {
    Ok(line.as_bytes().to_vec())
}

#[test]
fn default_limit_is_one_mebibyte() {
    assert_eq!(LineSplitter::default().limit(), 1 << 20);
    assert_eq!(MAX_LINE, 1_048_576);
}

#[test]
fn many_lines_in_one_feed() {
    let got = split(100, &[b"one\ntwo\nthree\n"]);
    assert_eq!(got, vec![ok("one"), ok("two"), ok("three")]);
}

#[test]
fn one_line_split_across_many_feeds() {
    let line = br#"{"type":"prompt","text":"hello"}"#;
    let chunks: Vec<&[u8]> = line.chunks(1).chain([&b"\n"[..]]).collect();
    let got = split(100, &chunks);
    assert_eq!(got, vec![Ok(line.to_vec())]);
}

#[test]
fn crlf_endings_are_stripped() {
    let got = split(100, &[b"one\r\ntwo\r", b"\nthree\n"]);
    assert_eq!(got, vec![ok("one"), ok("two"), ok("three")]);
}

#[test]
fn only_the_final_cr_is_stripped() {
    let got = split(100, &[b"a\rb\r\r\n"]);
    assert_eq!(got, vec![ok("a\rb\r")]);
}

#[test]
fn empty_lines_are_ignored() {
    let got = split(100, &[b"\n\r\n\none\n\n\ntwo\n\r\n"]);
    assert_eq!(got, vec![ok("one"), ok("two")]);
}

#[test]
fn finish_returns_a_last_line_without_newline() {
    let mut splitter = LineSplitter::new(100);
    splitter.feed(b"one\ntw");
    assert_eq!(splitter.next_line(), Some(ok("one")));
    assert_eq!(splitter.next_line(), None);
    splitter.feed(b"o\r");
    assert_eq!(splitter.next_line(), None);
    assert_eq!(splitter.finish(), Some(ok("two")));
    assert_eq!(splitter.finish(), None);
    assert_eq!(splitter.buffered(), 0);
}

#[test]
fn finish_on_an_empty_stream_returns_nothing() {
    assert_eq!(split(100, &[]), vec![]);
    assert_eq!(split(100, &[b"one\n"]), vec![ok("one")]);
}

#[test]
fn a_line_at_the_limit_is_accepted_with_either_ending() {
    let line = "x".repeat(10);
    for ending in ["\n", "\r\n"] {
        let input = format!("{line}{ending}");
        assert_eq!(
            split(10, &[input.as_bytes()]),
            vec![ok(&line)],
            "{ending:?}"
        );
        let bytes: Vec<&[u8]> = input.as_bytes().chunks(1).collect();
        assert_eq!(split(10, &bytes), vec![ok(&line)], "{ending:?} bytewise");
    }
}

#[test]
fn a_line_one_byte_over_is_refused() {
    let got = split(10, &[b"xxxxxxxxxxx\nok\n"]);
    let oversize = Oversize {
        len_seen: 11,
        limit: 10,
    };
    assert_eq!(got, vec![Err(oversize), ok("ok")]);
    // Byte by byte, the same line is caught at its newline.
    let input = b"xxxxxxxxxxx\nok\n";
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(split(10, &bytes), vec![Err(oversize), ok("ok")]);
}

#[test]
fn oversize_line_then_good_line() {
    let long = vec![b'a'; 5000];
    let mut splitter = LineSplitter::new(1000);
    splitter.feed(b"first\n");
    splitter.feed(&long[..2000]);
    assert_eq!(splitter.next_line(), Some(ok("first")));
    // Reported as soon as the limit is passed, before the newline.
    assert_eq!(
        splitter.next_line(),
        Some(Err(Oversize {
            len_seen: 2000,
            limit: 1000
        }))
    );
    assert_eq!(splitter.next_line(), None);
    assert_eq!(splitter.buffered(), 0);
    // The rest of the long line is dropped without being buffered.
    splitter.feed(&long[2000..]);
    assert_eq!(splitter.buffered(), 0);
    assert_eq!(splitter.next_line(), None);
    splitter.feed(b"aaaa\r\nsecond\n");
    assert_eq!(splitter.next_line(), Some(ok("second")));
    assert_eq!(splitter.next_line(), None);
}

#[test]
fn oversize_line_reported_once_however_it_arrives() {
    let mut input = vec![b'z'; 300];
    input.extend_from_slice(b"\nafter\n");
    for size in [1, 7, 64, 301, 1000] {
        let chunks: Vec<&[u8]> = input.chunks(size).collect();
        let got = split(100, &chunks);
        assert_eq!(got.len(), 2, "chunk size {size}: {got:?}");
        let Err(oversize) = got[0] else {
            panic!("chunk size {size}: expected an oversize error, got {got:?}");
        };
        assert!(oversize.len_seen > 100, "chunk size {size}: {oversize:?}");
        assert_eq!(got[1], ok("after"), "chunk size {size}");
    }
}

#[test]
fn oversize_last_line_without_newline() {
    let got = split(4, &[b"ok\n", b"toolong"]);
    let oversize = Oversize {
        len_seen: 7,
        limit: 4,
    };
    assert_eq!(got, vec![ok("ok"), Err(oversize)]);
    // Caught while skipping at EOF: reported once, nothing after.
    let got = split(4, &[b"toolong", b"still going"]);
    assert_eq!(got, vec![Err(oversize)]);
}

#[test]
fn buffer_stays_within_the_limit_after_draining() {
    let mut splitter = LineSplitter::new(64);
    for _ in 0..1000 {
        splitter.feed(&[b'q'; 50]);
        while splitter.next_line().is_some() {}
        assert!(splitter.buffered() <= 65, "{}", splitter.buffered());
    }
}

#[test]
fn splitter_is_reusable_after_finish() {
    let mut splitter = LineSplitter::new(100);
    splitter.feed(b"one");
    assert_eq!(splitter.finish(), Some(ok("one")));
    splitter.feed(b"two\n");
    assert_eq!(splitter.next_line(), Some(ok("two")));
}

#[test]
fn extreme_limits() {
    assert_eq!(split(usize::MAX, &[b"a\nb"]), vec![ok("a"), ok("b")]);
    let zero = Oversize {
        len_seen: 1,
        limit: 0,
    };
    assert_eq!(split(0, &[b"\na\n\n"]), vec![Err(zero)]);
}
