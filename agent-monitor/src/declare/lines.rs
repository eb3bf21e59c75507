//! Newline framing without I/O: bytes go in with [`LineSplitter::feed`],
//! whole lines come out of [`LineSplitter::next_line`].
//!
//! Memory is bounded by the line limit, whatever a peer sends: a line that
//! passes the limit is reported once and the rest of it is dropped as it
//! arrives, never buffered. The socket code owns the reads; this type owns
//! only the framing, so the framing is tested (and fuzzed) without sockets.

/// The default longest line, in bytes, not counting its line ending.
pub const MAX_LINE: usize = 1 << 20;

/// A line was longer than the limit. It is reported once, as soon as the
/// limit is passed; the splitter then drops everything up to the next
/// newline and carries on with the line after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line longer than {limit} bytes ({len_seen} seen)")]
pub struct Oversize {
    /// The bytes of the line seen when it was reported: more than `limit`,
    /// but not the line's full length when the limit was passed before its
    /// newline arrived (the rest is never looked at).
    pub len_seen: usize,
    /// The limit it broke.
    pub limit: usize,
}

/// Splits a byte stream into lines ended by `\n` (a `\r` before it is
/// dropped too). Empty lines are skipped.
///
/// Use: after each [`feed`](Self::feed), call [`next_line`](Self::next_line)
/// until it returns `None`. Then at most `limit + 1` bytes stay buffered (a
/// partial line, plus room for a `\r`), so the buffer never holds more than
/// that plus the last chunk fed. At end of input, [`finish`](Self::finish)
/// returns the last line if it had no newline.
#[derive(Debug)]
pub struct LineSplitter {
    limit: usize,
    buf: Vec<u8>,
    /// Start of the first line not yet returned.
    start: usize,
    /// `buf[start..scanned]` has no newline: saves rescanning a long
    /// partial line on every small feed.
    scanned: usize,
    /// Inside an oversize line already reported: input is dropped up to and
    /// including the next newline.
    skipping: bool,
}

impl Default for LineSplitter {
    fn default() -> LineSplitter {
        LineSplitter::new(MAX_LINE)
    }
}

impl LineSplitter {
    /// A splitter whose lines may have up to `limit` bytes (line ending not
    /// counted).
    pub fn new(limit: usize) -> LineSplitter {
        LineSplitter {
            limit,
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            skipping: false,
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes held: the partial line, plus whatever was fed and not yet taken
    /// out with [`next_line`](Self::next_line).
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Takes the next chunk of the stream.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        if self.skipping {
            // The buffer is empty while skipping (it was dropped when the
            // oversize line was reported): the excess is never copied.
            match memchr_newline(bytes) {
                Some(at) => {
                    self.skipping = false;
                    bytes = &bytes[at + 1..];
                }
                None => return,
            }
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole line, without its line ending; `None` when no whole
    /// line is buffered.
    pub fn next_line(&mut self) -> Option<Result<Vec<u8>, Oversize>> {
        loop {
            let from = self.scanned.max(self.start);
            let Some(at) = memchr_newline(&self.buf[from..]).map(|i| from + i) else {
                return self.partial();
            };
            let line = strip_cr(&self.buf[self.start..at]);
            let (len, start) = (line.len(), self.start);
            self.start = at + 1;
            self.scanned = self.start;
            if len > self.limit {
                return Some(Err(self.oversize(len)));
            }
            if len > 0 {
                return Some(Ok(self.buf[start..start + len].to_vec()));
            }
        }
    }

    /// Ends the stream: returns the last line when it had no newline. Call
    /// it once [`next_line`](Self::next_line) has returned `None`; the
    /// splitter is then empty and ready for a new stream. The rest of an
    /// oversize line being skipped is dropped (its error was returned
    /// already).
    pub fn finish(&mut self) -> Option<Result<Vec<u8>, Oversize>> {
        // Exactly what a final newline would do, so the last line gets the
        // same treatment (`\r`, limit, empty) as every other.
        self.feed(b"\n");
        self.next_line()
    }

    /// No newline buffered: report a partial line that is already past the
    /// limit, otherwise compact and wait for more input.
    fn partial(&mut self) -> Option<Result<Vec<u8>, Oversize>> {
        let pending = self.buf.len() - self.start;
        // One byte of slack: it may be the `\r` of a line exactly at the
        // limit. A line of `limit + 1` bytes not ending in `\r` is caught
        // when its newline (or next byte) arrives.
        if pending > self.limit.saturating_add(1) {
            self.buf.clear();
            self.start = 0;
            self.scanned = 0;
            self.skipping = true;
            return Some(Err(self.oversize(pending)));
        }
        // Compacting only here keeps many lines in one feed linear.
        self.buf.drain(..self.start);
        self.start = 0;
        self.scanned = self.buf.len();
        None
    }

    fn oversize(&self, len_seen: usize) -> Oversize {
        Oversize {
            len_seen,
            limit: self.limit,
        }
    }
}

fn memchr_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}
