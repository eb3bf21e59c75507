use super::framing::{LineFramer, MAX_LINE, Piece};

/// Everything the framer hands out for `chunks`, `finish` included.
fn frame(limit: usize, chunks: &[&[u8]]) -> Vec<Piece> {
    let mut framer = LineFramer::new(limit);
    let mut pieces = Vec::new();
    for chunk in chunks {
        pieces.extend(framer.push(chunk));
    }
    pieces.extend(framer.finish());
    pieces
}

fn bytes(pieces: &[Piece]) -> Vec<u8> {
    pieces
        .iter()
        .flat_map(|p| match p {
            Piece::Line(b) | Piece::Overlong(b) => b.clone(),
        })
        .collect()
}

fn line(text: &[u8]) -> Piece {
    Piece::Line(text.to_vec())
}

#[test]
fn lines_keep_their_endings_and_empty_lines_stay() {
    let got = frame(100, &[b"one\r\ntwo\n\n  \t\nlast"]);
    assert_eq!(
        got,
        vec![
            line(b"one\r\n"),
            line(b"two\n"),
            line(b"\n"),
            line(b"  \t\n"),
            line(b"last")
        ]
    );
}

#[test]
fn every_way_of_cutting_the_input_gives_back_the_same_bytes() {
    let input: &[u8] = "{\"a\":1}\r\n\n héllo \u{1F600}\nno newline at the end \r".as_bytes();
    for size in 1..=input.len() {
        let chunks: Vec<&[u8]> = input.chunks(size).collect();
        let got = frame(100, &chunks);
        assert_eq!(bytes(&got), input, "chunks of {size}");
        assert_eq!(got.len(), 4, "chunks of {size}: {got:?}");
        assert!(got.iter().all(|p| matches!(p, Piece::Line(_))));
    }
}

#[test]
fn a_line_past_the_limit_streams_by_unscanned_and_the_next_is_a_line_again() {
    let got = frame(8, &[b"0123", b"456789ab", b"cd\nok\n"]);
    assert_eq!(
        got,
        vec![
            Piece::Overlong(b"0123456789ab".to_vec()),
            Piece::Overlong(b"cd\n".to_vec()),
            line(b"ok\n"),
        ]
    );
    // Exactly the limit, newline not counted, is still a line.
    assert_eq!(frame(8, &[b"01234567", b"\n"]), vec![line(b"01234567\n")]);
}

#[test]
fn mid_line_says_whether_a_line_is_unfinished() {
    let mut framer = LineFramer::new(4);
    assert!(!framer.mid_line());
    assert_eq!(framer.push(b"ab"), vec![]);
    assert!(framer.mid_line());
    assert_eq!(framer.push(b"c\n"), vec![line(b"abc\n")]);
    assert!(!framer.mid_line());
    framer.push(b"0123456");
    assert!(framer.mid_line(), "inside an overlong line");
    framer.push(b"\n");
    assert!(!framer.mid_line());
    assert_eq!(framer.finish(), None);
}

#[test]
fn the_default_limit_holds_a_large_message() {
    assert_eq!(LineFramer::default().push(&vec![b'x'; 1 << 20]), vec![]);
    assert_eq!(MAX_LINE, 64 << 20);
}
