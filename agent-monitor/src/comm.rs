//! A task's name (`comm`) as text, held inline.
//!
//! Every event carries the acting thread's name: at most 16 bytes from the
//! kernel, nearly always short ASCII. A `String` each was a heap allocation
//! and a free per event on the hottest path of the monitor; this keeps
//! names up to [`INLINE`] bytes in the value itself. Anything longer (a
//! name of invalid UTF-8, replaced character by character with U+FFFD,
//! which takes three bytes, or a long name read back from a file) goes to
//! the heap, so every string converts and none is cut.

use std::{fmt, ops::Deref};

/// Bytes kept inline: the value is as large as a `String` plus one word.
pub const INLINE: usize = 30;

#[derive(Clone, PartialEq, Eq)]
pub struct Comm(Repr);

// A tag byte, the inline bytes and their length fill the four words.
const _: () = assert!(size_of::<Comm>() == 32);

#[derive(Clone, PartialEq, Eq)]
enum Repr {
    /// `bytes[..len]` is valid UTF-8: built only from a `&str`.
    Inline {
        len: u8,
        bytes: [u8; INLINE],
    },
    Heap(Box<str>),
}

impl Comm {
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Inline { len, bytes } => {
                let text = &bytes[..usize::from(*len)];
                // SAFETY: `Inline` is only built by `From<&str>`, which
                // copies a whole `str`, so its bytes are valid UTF-8.
                unsafe { std::str::from_utf8_unchecked(text) }
            }
            Repr::Heap(text) => text,
        }
    }

    /// Text from the kernel's bytes, invalid UTF-8 replaced by U+FFFD.
    pub fn from_bytes(bytes: &[u8]) -> Comm {
        match std::str::from_utf8(bytes) {
            Ok(text) => Comm::from(text),
            Err(_) => Comm::from(&*String::from_utf8_lossy(bytes)),
        }
    }
}

impl From<&str> for Comm {
    fn from(text: &str) -> Comm {
        if text.len() <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..text.len()].copy_from_slice(text.as_bytes());
            Comm(Repr::Inline {
                len: text.len() as u8,
                bytes,
            })
        } else {
            Comm(Repr::Heap(text.into()))
        }
    }
}

impl Deref for Comm {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for Comm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Comm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq<str> for Comm {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Comm {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_stay_inline_and_long_ones_go_whole_to_the_heap() {
        let short = Comm::from("cc1");
        assert!(matches!(short.0, Repr::Inline { len: 3, .. }));
        assert_eq!(short, "cc1");

        let exact = "a".repeat(INLINE);
        assert!(matches!(Comm::from(exact.as_str()).0, Repr::Inline { .. }));
        assert_eq!(Comm::from(exact.as_str()).as_str(), exact);

        let long = "é".repeat(INLINE);
        let comm = Comm::from(long.as_str());
        assert!(matches!(comm.0, Repr::Heap(_)));
        assert_eq!(comm.as_str(), long);
    }

    #[test]
    fn invalid_bytes_become_replacement_characters_and_nothing_is_cut() {
        // Sixteen invalid bytes: 48 bytes of U+FFFD, past the inline room.
        let comm = Comm::from_bytes(&[0xff; 16]);
        assert_eq!(comm.as_str(), "\u{FFFD}".repeat(16));
        assert_eq!(Comm::from_bytes(b"x\xffy"), "x\u{FFFD}y");
        assert_eq!(Comm::from_bytes(b""), "");
    }

    #[test]
    fn shows_as_its_text() {
        let comm = Comm::from("node");
        assert_eq!(format!("{comm} {comm:?}"), "node \"node\"");
        assert_eq!(comm.len(), 4);
    }
}
