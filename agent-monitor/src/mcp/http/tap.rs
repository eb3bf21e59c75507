//! A response body relayed frame by frame as it arrives, with a copy read
//! for the JSON-RPC responses that end declared calls: a whole
//! `application/json` body, or the `data` of each server-sent event.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};

use crate::mcp::{
    gate::Gate,
    jsonrpc,
    sse::{MAX_EVENT, SseParser},
};

const UNANSWERED: &str = "the response ended without an answer";

/// How a response body is read.
pub enum Reader {
    /// `text/event-stream`.
    Events(SseParser),
    /// `application/json`: kept until the end, up to the limit.
    Json { body: Vec<u8>, overflow: bool },
    /// Anything else: relayed unread.
    Unread,
}

impl Reader {
    /// The reader for a response's `Content-Type`.
    pub fn for_content_type(content_type: &str) -> Reader {
        let media = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match media.as_str() {
            "text/event-stream" => Reader::Events(SseParser::default()),
            "application/json" => Reader::Json {
                body: Vec::new(),
                overflow: false,
            },
            _ => Reader::Unread,
        }
    }

    /// Reads a chunk; returns the messages it completes.
    pub(super) fn feed(&mut self, chunk: &[u8]) -> Vec<Vec<u8>> {
        match self {
            Reader::Events(parser) => parser.push(chunk),
            Reader::Json { body, overflow } => {
                if body.len() + chunk.len() > MAX_EVENT {
                    *overflow = true;
                    body.clear();
                } else if !*overflow {
                    body.extend_from_slice(chunk);
                }
                Vec::new()
            }
            Reader::Unread => Vec::new(),
        }
    }

    /// At the end of the body: what was held for it.
    pub(super) fn finish(&mut self) -> Vec<Vec<u8>> {
        match self {
            Reader::Json {
                body,
                overflow: false,
            } => vec![std::mem::take(body)],
            _ => Vec::new(),
        }
    }
}

/// The body relayed to the client.
pub struct TapBody {
    inner: Incoming,
    reader: Reader,
    gate: Arc<Gate>,
    scope: String,
    /// The scope is this request's alone (no MCP session): its calls that
    /// are still open when the body ends will never be answered.
    scope_is_request: bool,
    ended: bool,
}

impl TapBody {
    pub fn new(
        inner: Incoming,
        reader: Reader,
        gate: Arc<Gate>,
        scope: String,
        scope_is_request: bool,
    ) -> TapBody {
        TapBody {
            inner,
            reader,
            gate,
            scope,
            scope_is_request,
            ended: false,
        }
    }

    fn observe(&self, messages: Vec<Vec<u8>>) {
        for message in messages {
            if let Some(scan) = jsonrpc::scan(&message) {
                self.gate.observe(&self.scope, &scan);
            }
        }
    }

    fn end(&mut self, why: &str) {
        if std::mem::replace(&mut self.ended, true) {
            return;
        }
        let held = self.reader.finish();
        self.observe(held);
        if self.scope_is_request {
            self.gate.end_scope(&self.scope, why);
        }
    }
}

impl Body for TapBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let messages = self.reader.feed(data);
                    self.observe(messages);
                }
            }
            Poll::Ready(None) => self.end(UNANSWERED),
            Poll::Ready(Some(Err(_))) => self.end("the upstream's response broke off"),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for TapBody {
    fn drop(&mut self) {
        // The body ended without its end being polled (hyper stops at a
        // known length), or the client stopped reading.
        self.end(UNANSWERED);
    }
}
