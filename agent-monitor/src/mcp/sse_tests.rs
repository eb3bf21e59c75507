use super::sse::SseParser;

fn events(chunks: &[&[u8]]) -> Vec<String> {
    let mut parser = SseParser::new(1024);
    chunks
        .iter()
        .flat_map(|c| parser.push(c))
        .map(|e| String::from_utf8(e).unwrap())
        .collect()
}

#[test]
fn each_event_yields_its_data() {
    let stream = b"event: message\nid: 1\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n\
                   : a comment\n\ndata: second\n\n";
    assert_eq!(
        events(&[stream]),
        vec![r#"{"jsonrpc":"2.0","id":1,"result":{}}"#, "second"]
    );
}

#[test]
fn any_line_ending_split_anywhere_gives_the_same_events() {
    for ending in ["\n", "\r\n", "\r"] {
        let stream = format!(
            "data: a{e}data:b{e}data{e}{e}retry: 5{e}data: c{e}{e}",
            e = ending
        );
        for size in 1..=stream.len() {
            let chunks: Vec<&[u8]> = stream.as_bytes().chunks(size).collect();
            assert_eq!(
                events(&chunks),
                vec!["a\nb\n", "c"],
                "ending {ending:?}, chunks of {size}"
            );
        }
    }
}

#[test]
fn events_without_data_and_a_cut_off_last_event_yield_nothing() {
    assert_eq!(
        events(&[b"event: ping\nid: 3\n\n: keepalive\n\ndata: cut"]),
        Vec::<String>::new()
    );
}

#[test]
fn a_leading_byte_order_mark_is_skipped_and_only_one_space_is_stripped() {
    assert_eq!(events(&["\u{FEFF}data:  x\n\n".as_bytes()]), vec![" x"]);
}

#[test]
fn an_event_past_the_limit_is_dropped_and_the_next_one_is_read() {
    let big = format!("data: {}\n\ndata: small\n\n", "x".repeat(2000));
    assert_eq!(events(&[big.as_bytes()]), vec!["small"]);
    let many = format!("{}\ndata: next\n\n", "data: 0123456789\n".repeat(100));
    assert_eq!(events(&[many.as_bytes()]), vec!["next"]);
}

#[test]
fn a_stream_is_resumable_once_an_event_with_an_id_is_dispatched() {
    let mut parser = SseParser::new(1024);
    parser.push(b"data: no id\n\n");
    assert!(!parser.resumable());
    // An id in an event not yet dispatched does not count.
    parser.push(b"id: 7\n");
    assert!(!parser.resumable());
    // A priming event: an id and empty data.
    parser.push(b"data:\n\n");
    assert!(parser.resumable());
    // The id stays for later events; an empty one clears it.
    parser.push(b"data: more\n\n");
    assert!(parser.resumable());
    parser.push(b"id\n\n");
    assert!(!parser.resumable());
    // An id with a NUL is ignored.
    parser.push(b"id: 8\n\nid: a\0b\n\n");
    assert!(parser.resumable());
}
