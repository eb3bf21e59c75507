use super::tap::Reader;

fn read(reader: &mut Reader, chunks: &[&[u8]]) -> Vec<String> {
    let mut messages: Vec<Vec<u8>> = chunks.iter().flat_map(|c| reader.feed(c)).collect();
    messages.extend(reader.finish());
    messages
        .into_iter()
        .map(|m| String::from_utf8(m).unwrap())
        .collect()
}

#[test]
fn an_event_stream_yields_each_event_as_it_completes() {
    let mut reader = Reader::for_content_type("text/event-stream; charset=utf-8");
    assert_eq!(
        reader.feed(b"event: message\r\ndata: {\"id\":1}\r\n"),
        Vec::<Vec<u8>>::new()
    );
    assert_eq!(reader.feed(b"\r\n"), vec![b"{\"id\":1}".to_vec()]);
    assert_eq!(
        read(&mut reader, &[b"data: {\"id\":2}\n\ndata: cut"]),
        ["{\"id\":2}"]
    );
}

#[test]
fn a_json_body_is_read_whole_at_its_end() {
    let mut reader = Reader::for_content_type("Application/JSON");
    assert_eq!(
        read(
            &mut reader,
            &[b"{\"jsonrpc\":\"2.0\",", b"\"id\":1,\"result\":{}}"]
        ),
        ["{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}"]
    );
}

#[test]
fn a_json_body_past_the_limit_is_not_read() {
    let mut reader = Reader::for_content_type("application/json");
    let big = vec![b' '; super::super::sse::MAX_EVENT];
    assert!(read(&mut reader, &[b"{}", &big]).is_empty());
}

#[test]
fn other_bodies_are_not_read() {
    for content_type in ["text/plain", "", "application/jsonl"] {
        let mut reader = Reader::for_content_type(content_type);
        assert!(
            read(&mut reader, &[b"{\"id\":1,\"result\":{}}"]).is_empty(),
            "{content_type}"
        );
    }
}
