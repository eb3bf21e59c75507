//! Newline framing for the stdio relay, without I/O and without changing a
//! byte: every piece it hands out is exactly the bytes that went in, line
//! endings and all, so the relay can write pieces as they are.
//!
//! Unlike the declaration socket's splitter (`declare::lines`), nothing is
//! stripped or skipped: `\r\n`, empty lines and odd whitespace belong to
//! the bytes being relayed.

/// The longest line scanned for messages: 64 MiB. MCP messages carry
/// whole files and images, so this is far above the declaration socket's
/// limit; memory stays bounded by it whatever a peer sends.
pub const MAX_LINE: usize = 64 << 20;

/// A piece of the stream, to relay in order.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece {
    /// A whole line, its `\n` included (the last line of the stream may
    /// have none): the unit the relay scans and writes.
    Line(Vec<u8>),
    /// Bytes of a line longer than the limit, handed out as they come and
    /// never scanned.
    Overlong(Vec<u8>),
}

/// Splits a byte stream at `\n`.
#[derive(Debug)]
pub struct LineFramer {
    limit: usize,
    buf: Vec<u8>,
    /// `buf` has no `\n` before this offset: saves rescanning a long
    /// partial line on every small read.
    scanned: usize,
    /// Inside a line already handed out as [`Piece::Overlong`]: bytes up to
    /// its `\n` follow it the same way.
    overlong: bool,
}

impl Default for LineFramer {
    fn default() -> LineFramer {
        LineFramer::new(MAX_LINE)
    }
}

impl LineFramer {
    pub fn new(limit: usize) -> LineFramer {
        LineFramer {
            limit,
            buf: Vec::new(),
            scanned: 0,
            overlong: false,
        }
    }

    /// Adds bytes and returns the pieces they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Piece> {
        self.buf.extend_from_slice(bytes);
        let mut pieces = Vec::new();
        loop {
            let newline = self.buf[self.scanned..]
                .iter()
                .position(|&b| b == b'\n')
                .map(|at| self.scanned + at);
            match newline {
                Some(at) => {
                    let rest = self.buf.split_off(at + 1);
                    let line = std::mem::replace(&mut self.buf, rest);
                    self.scanned = 0;
                    pieces.push(if std::mem::take(&mut self.overlong) {
                        Piece::Overlong(line)
                    } else {
                        Piece::Line(line)
                    });
                }
                None => {
                    if self.overlong || self.buf.len() > self.limit {
                        self.overlong = true;
                        self.scanned = 0;
                        if !self.buf.is_empty() {
                            pieces.push(Piece::Overlong(std::mem::take(&mut self.buf)));
                        }
                    } else {
                        self.scanned = self.buf.len();
                    }
                    return pieces;
                }
            }
        }
    }

    /// Whether the stream is in the middle of a line: bytes of its own may
    /// be put into the stream only between lines.
    pub fn mid_line(&self) -> bool {
        self.overlong || !self.buf.is_empty()
    }

    /// At the end of the stream: the last line, when it had no `\n`.
    pub fn finish(&mut self) -> Option<Piece> {
        let rest = std::mem::take(&mut self.buf);
        self.scanned = 0;
        if std::mem::take(&mut self.overlong) {
            return (!rest.is_empty()).then_some(Piece::Overlong(rest));
        }
        (!rest.is_empty()).then_some(Piece::Line(rest))
    }
}
