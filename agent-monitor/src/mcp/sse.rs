//! Server-sent events, read from a copy of a `text/event-stream` body as it
//! streams by, for the `data` of each event: a streamable-HTTP MCP server
//! may answer a POST with the JSON-RPC response in such an event.
//!
//! Follows the WHATWG event-stream rules that matter here: lines end with
//! `\r\n`, `\n` or `\r` (split anywhere between reads); `data` fields of one
//! event join with `\n`; a blank line dispatches it; comments and other
//! fields are skipped; an event cut off by the end of the stream is
//! dropped.

/// The longest event data kept; a longer event is skipped, so memory stays
/// bounded whatever the server sends.
pub const MAX_EVENT: usize = 64 << 20;

#[derive(Debug)]
pub struct SseParser {
    limit: usize,
    line: Vec<u8>,
    data: Vec<u8>,
    has_data: bool,
    /// The event's data passed the limit: it is dropped at dispatch.
    overflow: bool,
    /// The last byte seen ended a line with `\r`: a `\n` right after it
    /// belongs to the same line ending.
    after_cr: bool,
    /// Nothing seen yet: a byte-order mark here is skipped.
    at_start: bool,
    /// The last `id` field set a non-empty event id.
    id_buffer_set: bool,
    /// An event was dispatched with a non-empty last event id: a client
    /// may resume the stream from it (`Last-Event-ID`) if it breaks off.
    resumable: bool,
}

impl Default for SseParser {
    fn default() -> SseParser {
        SseParser::new(MAX_EVENT)
    }
}

impl SseParser {
    pub fn new(limit: usize) -> SseParser {
        SseParser {
            limit,
            line: Vec::new(),
            data: Vec::new(),
            has_data: false,
            overflow: false,
            after_cr: false,
            at_start: true,
            id_buffer_set: false,
            resumable: false,
        }
    }

    /// Whether the client holds an event id to resume the stream from:
    /// then an answer that did not come on it may come on the stream the
    /// client resumes.
    pub fn resumable(&self) -> bool {
        self.resumable
    }

    /// Reads more of the stream; returns the data of each event it
    /// completes.
    pub fn push(&mut self, mut bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut events = Vec::new();
        if self.at_start && !bytes.is_empty() {
            // The mark may arrive split over reads; it is rare enough that
            // only a whole one at the start is looked for.
            bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
            self.at_start = false;
        }
        while !bytes.is_empty() {
            if std::mem::take(&mut self.after_cr) && bytes[0] == b'\n' {
                bytes = &bytes[1..];
                continue;
            }
            match bytes.iter().position(|&b| b == b'\r' || b == b'\n') {
                Some(at) => {
                    self.extend_line(&bytes[..at]);
                    self.after_cr = bytes[at] == b'\r';
                    bytes = &bytes[at + 1..];
                    if let Some(event) = self.end_line() {
                        events.push(event);
                    }
                }
                None => {
                    self.extend_line(bytes);
                    bytes = &[];
                }
            }
        }
        events
    }

    fn extend_line(&mut self, bytes: &[u8]) {
        if self.line.len() + bytes.len() > self.limit {
            self.overflow = true;
        } else {
            self.line.extend_from_slice(bytes);
        }
    }

    fn end_line(&mut self) -> Option<Vec<u8>> {
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            // The last event id is the client's on every dispatch, even
            // of an event with no data (MCP servers send such a "priming"
            // event to make a stream resumable).
            self.resumable = self.id_buffer_set;
            let data = std::mem::take(&mut self.data);
            let has_data = std::mem::take(&mut self.has_data);
            let overflow = std::mem::take(&mut self.overflow);
            return (has_data && !overflow).then(|| {
                let mut data = data;
                data.pop(); // the `\n` after the last data line
                data
            });
        }
        if line[0] == b':' {
            return None;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(at) => {
                let value = &line[at + 1..];
                (&line[..at], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (&line[..], &[][..]),
        };
        if field == b"id" && !value.contains(&0) {
            self.id_buffer_set = !value.is_empty();
        }
        if field == b"data" {
            if self.data.len() + value.len() >= self.limit {
                self.overflow = true;
            } else {
                self.data.extend_from_slice(value);
                self.data.push(b'\n');
            }
            self.has_data = true;
        }
        None
    }
}
