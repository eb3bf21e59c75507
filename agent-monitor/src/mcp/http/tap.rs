//! A response body relayed frame by frame as it arrives, with a copy read
//! for the JSON-RPC responses that end declared calls: a whole
//! `application/json` body, or the `data` of each server-sent event. The
//! calls its request carried and it did not answer end with it.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use serde_json::json;

use super::pending::Pending;
use crate::mcp::{
    gate::Gate,
    jsonrpc,
    sse::{MAX_EVENT, SseParser},
};

const UNANSWERED: &str = "the response ended without an answer";
const BROKE_OFF: &str = "the upstream's response broke off";
const CLIENT_STOPPED: &str = "the client stopped reading the response before it ended";

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

    /// Whether the client may resume the stream from an event id.
    fn resumable(&self) -> bool {
        matches!(self, Reader::Events(parser) if parser.resumable())
    }
}

/// The body relayed to the client.
pub struct TapBody {
    inner: Incoming,
    reader: Reader,
    gate: Arc<Gate>,
    scope: String,
    /// The calls the request carried.
    pending: Pending,
    /// The scope is an MCP session's, whose other streams may answer.
    session: bool,
    ended: bool,
}

impl TapBody {
    pub(super) fn new(
        inner: Incoming,
        reader: Reader,
        gate: Arc<Gate>,
        scope: String,
        pending: Pending,
        session: bool,
    ) -> TapBody {
        TapBody {
            inner,
            reader,
            gate,
            scope,
            pending,
            session,
            ended: false,
        }
    }

    fn observe(&self, messages: Vec<Vec<u8>>) {
        for message in messages {
            if let Some(scan) = jsonrpc::responses(&message) {
                self.gate.observe(&self.scope, &scan);
            }
        }
    }

    /// The body is over: the calls its request carried that it did not
    /// answer are ended, as `error` with `why`, unless the client can
    /// resume the event stream in the session (MCP's resumability), when
    /// the resumed stream may answer them. They end then, or with the
    /// session, or when the proxy stops.
    fn end(&mut self, why: &str) {
        if std::mem::replace(&mut self.ended, true) {
            return;
        }
        let held = self.reader.finish();
        self.observe(held);
        if self.session && self.reader.resumable() {
            self.pending.keep_open();
        } else {
            self.pending.end(&json!({"unanswered": why}));
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
            Poll::Ready(Some(Err(_))) => self.end(BROKE_OFF),
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
        // Hyper stops polling at a known length, so a whole body may end
        // here; else the client went away (it closed the connection).
        let why = if self.inner.is_end_stream() {
            UNANSWERED
        } else {
            CLIENT_STOPPED
        };
        self.end(why);
    }
}
