//! Property tests: whatever a peer sends, the decoder does not panic and
//! the splitter's memory stays bounded.

use proptest::prelude::*;

use super::*;

/// Fragments that make random input look like requests, so the fuzzing
/// reaches past the JSON parser into the field checks.
const FRAGMENTS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "\n",
    "\r\n",
    "null",
    "true",
    "1",
    "-0.5e9",
    "\"type\"",
    "\"session.start\"",
    "\"prompt\"",
    "\"model.output\"",
    "\"tool.start\"",
    "\"tool.end\"",
    "\"session.end\"",
    "\"text\"",
    "\"call_id\"",
    "\"tool\"",
    "\"args\"",
    "\"effects\"",
    "\"file.read\"",
    "\"dns\"",
    "\"status\"",
    "\"ok\"",
    "\"error\"",
    "\"id\"",
    "\"agent\"",
    "\"tool_calls\"",
    "\"result\"",
    "\"/srv/**\"",
    "\"\"",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "é",
];

fn jsonish() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            3 => prop::sample::select(FRAGMENTS).prop_map(str::to_owned),
            1 => any::<String>(),
        ],
        0..40,
    )
    .prop_map(|parts| parts.concat())
}

/// One well-formed request of each type, to mutate.
fn request() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        r#"{"type":"session.start","session_id":"s","task":"t","parent_session_id":"p"}"#,
        r#"{"type":"prompt","text":"hello","id":1}"#,
        r#"{"type":"model.output","text":"x","tool_calls":["a",{"call_id":"b","args":{}}]}"#,
        r#"{"type":"tool.start","call_id":"c","tool":"t","args":{},"effects":{"exec":["/bin/ls"]}}"#,
        r#"{"type":"tool.end","call_id":"c","status":"ok","result":[1]}"#,
        r#"{"type":"session.end","agent":"a"}"#,
    ])
    .prop_map(str::to_owned)
}

/// Turns about one byte in six into a `\n` or `\r`, so that random chunks
/// hold lines of every length around the limit. (Cheaper than choosing each
/// byte with `prop_oneof!`.)
fn with_line_endings(bytes: &[u8]) -> Vec<u8> {
    bytes
        .iter()
        .map(|&b| match b % 12 {
            0 => b'\n',
            1 => b'\r',
            _ => b,
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decode_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_with_id(&bytes);
    }

    #[test]
    fn decode_never_panics_on_jsonish(text in jsonish()) {
        if let Err(rejected) = decode_with_id(text.as_bytes()) {
            // Every refusal makes a one-line reply.
            let line = Reply::from(rejected).to_line();
            prop_assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
        }
    }

    #[test]
    fn mutated_requests_never_panic(
        line in request(),
        cut in 0usize..200,
        insert in jsonish(),
    ) {
        let mut line = line.into_bytes();
        let at = cut.min(line.len());
        line.splice(at..at, insert.into_bytes());
        let _ = decode_with_id(&line);
    }

    #[test]
    fn splitter_memory_is_bounded(
        limit in 1usize..128,
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..30),
    ) {
        let mut splitter = LineSplitter::new(limit);
        for chunk in chunks.iter().map(|chunk| with_line_endings(chunk)) {
            splitter.feed(&chunk);
            prop_assert!(splitter.buffered() <= limit + 1 + chunk.len());
            while let Some(item) = splitter.next_line() {
                match item {
                    Ok(line) => {
                        prop_assert!(!line.is_empty() && line.len() <= limit);
                        prop_assert!(!line.contains(&b'\n'));
                        let _ = decode_with_id(&line);
                    }
                    Err(oversize) => prop_assert!(oversize.len_seen > limit),
                }
            }
            prop_assert!(splitter.buffered() <= limit + 1);
        }
        if let Some(Ok(line)) = splitter.finish() {
            prop_assert!(!line.is_empty() && line.len() <= limit);
        }
        prop_assert_eq!(splitter.buffered(), 0);
    }

    /// However the stream is cut into chunks, the same lines come out.
    #[test]
    fn chunking_does_not_change_the_lines(
        lines in prop::collection::vec("[a-z\r]{0,12}", 0..20),
        cuts in prop::collection::vec(1usize..16, 1..40),
    ) {
        let stream = lines.join("\n").into_bytes();
        let collect = |sizes: &[usize]| {
            let mut splitter = LineSplitter::new(8);
            let mut out = Vec::new();
            let mut rest = &stream[..];
            for &size in sizes.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (chunk, tail) = rest.split_at(size.min(rest.len()));
                rest = tail;
                splitter.feed(chunk);
                while let Some(item) = splitter.next_line() {
                    out.push(item.map_err(|_| ()));
                }
            }
            out.extend(splitter.finish().map(|item| item.map_err(|_| ())));
            out
        };
        prop_assert_eq!(collect(&cuts), collect(&[stream.len().max(1)]));
    }
}
