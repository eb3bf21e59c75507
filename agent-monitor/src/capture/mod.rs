//! The capture policy for text fields: prompts, model outputs, tool arguments
//! and results, argv.
//!
//! Every text field passes through [`Capture::apply`] (or
//! [`Capture::apply_all`] for argv) before it is written anywhere. The
//! [`Policy`] decides what is kept:
//!
//! - [`Policy::Full`] keeps the text as is;
//! - [`Policy::Redact`], the default, replaces each secret found by the
//!   built-in detectors with `[REDACTED:<kind>:<8 hex>]`, the 8 hex being the
//!   first 32 bits of HMAC-SHA256(key, secret), so equal secrets can be told
//!   apart from different ones without being revealed;
//! - [`Policy::Hash`] keeps `[HASH:hmac-sha256:<64 hex>]`, a keyed commitment
//!   that whoever holds the text and the key can check with
//!   [`Capture::verify_hash`];
//! - [`Policy::None`] keeps nothing.
//!
//! The key ([`CaptureKey`]) lives in its own file, apart from the evidence:
//! with the key, a short tag is enough to brute-force a low-entropy secret.
//! docs/capture.md lists the detectors and their limits.

mod detectors;
mod key;
mod refine;
mod scan;

use std::{borrow::Cow, fmt, path::PathBuf, str::FromStr};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

pub use detectors::KINDS;
pub use key::CaptureKey;

/// What is kept of a text field.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// The text as is.
    Full,
    /// The text with every detected secret replaced by a tag.
    #[default]
    Redact,
    /// A keyed hash of the text, nothing else.
    Hash,
    /// Nothing.
    None,
}

impl Policy {
    /// Every policy, in the order the names are listed to users.
    pub const ALL: [Policy; 4] = [Policy::Full, Policy::Redact, Policy::Hash, Policy::None];

    pub fn name(self) -> &'static str {
        match self {
            Policy::Full => "full",
            Policy::Redact => "redact",
            Policy::Hash => "hash",
            Policy::None => "none",
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Policy {
    type Err = CaptureError;

    /// Accepts the names `full`, `redact`, `hash` and `none`, in any case.
    fn from_str(s: &str) -> Result<Policy, CaptureError> {
        Policy::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| CaptureError::UnknownPolicy {
                given: s.to_string(),
            })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("unknown capture policy `{given}`: expected one of full, redact, hash, none")]
    UnknownPolicy { given: String },

    #[error("{action} capture key {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "capture key {} is not 64 hex characters and an optional newline: {detail}",
        path.display()
    )]
    BadKey { path: PathBuf, detail: String },

    #[error(
        "capture key {path} is accessible by group or others (mode {mode:04o}); \
         restrict it with `chmod 600 {path}`",
        path = path.display()
    )]
    Permissions { path: PathBuf, mode: u32 },

    #[error("reading random bytes for a new capture key: {0}")]
    Random(#[source] std::io::Error),
}

/// A capture policy with its key: turns text fields into what is kept.
#[derive(Clone, Debug)]
pub struct Capture {
    policy: Policy,
    key: CaptureKey,
}

/// Prefix and suffix of a hash commitment.
const HASH_PREFIX: &str = "[HASH:hmac-sha256:";
const TAG_END: &str = "]";

impl Capture {
    pub fn new(policy: Policy, key: CaptureKey) -> Capture {
        Capture { policy, key }
    }

    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// What is kept of `text`: `None` under [`Policy::None`], the text itself
    /// (borrowed) under [`Policy::Full`] and under [`Policy::Redact`] when no
    /// secret is found, an owned string otherwise.
    pub fn apply<'a>(&self, text: &'a str) -> Option<Cow<'a, str>> {
        match self.policy {
            Policy::Full => Some(Cow::Borrowed(text)),
            Policy::None => None,
            Policy::Hash => Some(Cow::Owned(self.hash_tag(text))),
            Policy::Redact => Some(self.redact(text)),
        }
    }

    /// [`Capture::apply`] for each element of an argv-like list. Under
    /// [`Policy::Redact`] the element after a lone secret-bearing flag
    /// (`--password`, `--api-key`, …) is redacted whole, and the password of
    /// the `user:password` after `-u`, `--user` or `--proxy-user`, both as
    /// kind `flag_value`.
    pub fn apply_all(&self, items: &[String]) -> Option<Vec<String>> {
        match self.policy {
            Policy::None => None,
            Policy::Full => Some(items.to_vec()),
            Policy::Hash => Some(items.iter().map(|s| self.hash_tag(s)).collect()),
            Policy::Redact => Some(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| {
                        let flag = i.checked_sub(1).map(|p| items[p].as_str());
                        match flag.and_then(|f| scan::after_flag(f, item)) {
                            Some(r) => format!(
                                "{}{}{}",
                                &item[..r.start],
                                self.redact_tag("flag_value", &item[r.clone()]),
                                &item[r.end..]
                            ),
                            None => self.redact(item).into_owned(),
                        }
                    })
                    .collect(),
            ),
        }
    }

    /// The detector kinds that find something in `text`, each once, in
    /// order of first appearance: what redaction replaces.
    pub fn detected_kinds(&self, text: &str) -> Vec<&'static str> {
        let mut kinds = Vec::new();
        for span in scan::find(text) {
            if !kinds.contains(&span.kind) {
                kinds.push(span.kind);
            }
        }
        kinds
    }

    /// `text` with every detected secret replaced by its tag; borrowed when
    /// nothing was found.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let spans = scan::find(text);
        if spans.is_empty() {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len() + 32 * spans.len());
        let mut at = 0;
        for span in spans {
            out.push_str(&text[at..span.range.start]);
            out.push_str(&self.redact_tag(span.kind, &text[span.range.clone()]));
            at = span.range.end;
        }
        out.push_str(&text[at..]);
        Cow::Owned(out)
    }

    /// `[REDACTED:<kind>:<first 8 hex of HMAC-SHA256(key, secret)>]`.
    pub fn redact_tag(&self, kind: &str, secret: &str) -> String {
        let mac = self.mac(secret);
        format!("[REDACTED:{kind}:{}]", hex(&mac[..4]))
    }

    /// `[HASH:hmac-sha256:<HMAC-SHA256(key, text) in hex>]`.
    pub fn hash_tag(&self, text: &str) -> String {
        format!("{HASH_PREFIX}{}{TAG_END}", hex(&self.mac(text)))
    }

    /// Whether `tag` is the hash commitment of `text` under this key. The
    /// comparison takes the same time whatever the tag.
    pub fn verify_hash(&self, text: &str, tag: &str) -> bool {
        let Some(digest) = tag
            .strip_prefix(HASH_PREFIX)
            .and_then(|t| t.strip_suffix(TAG_END))
            .and_then(unhex::<32>)
        else {
            return false;
        };
        let mut mac = self.key.mac();
        mac.update(text.as_bytes());
        mac.verify_slice(&digest).is_ok()
    }

    fn mac(&self, text: &str) -> [u8; 32] {
        let mut mac = self.key.mac();
        mac.update(text.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

type HmacSha256 = Hmac<Sha256>;

impl CaptureKey {
    fn mac(&self) -> HmacSha256 {
        <HmacSha256 as KeyInit>::new_from_slice(self.bytes())
            .expect("HMAC accepts a key of any length")
    }
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// `N` bytes from exactly `2 * N` hex digits of either case.
fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let digits = text.as_bytes();
    if digits.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let high = (pair[0] as char).to_digit(16)?;
        let low = (pair[1] as char).to_digit(16)?;
        *byte = (high * 16 + low) as u8;
    }
    Some(out)
}

#[cfg(test)]
mod context_tests;
#[cfg(test)]
mod detector_tests;
#[cfg(test)]
mod tests;
