//! Why a request line was refused. Each error has a stable code for
//! programs and a one-line message for people; both go into the reply.

use super::message::Request;

/// The longest part of a peer's input quoted back in a message: an error
/// about a 1 MiB `type` should not be 1 MiB long.
pub(crate) const MAX_QUOTE: usize = 64;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("not valid JSON: {detail}")]
    NotJson { detail: String },

    #[error("a request must be a JSON object")]
    NotAnObject,

    #[error(
        "unknown message type `{given}`; expected session.start, prompt, model.output, tool.start, tool.end, session.end, agent.register or status"
    )]
    UnknownType { given: String },

    #[error("missing field `{field}`")]
    MissingField { field: String },

    #[error("field `{field}`: {detail}")]
    BadField { field: String, detail: String },

    #[error("request longer than {limit} bytes")]
    Oversize { limit: usize },
}

impl ProtocolError {
    /// The machine-readable code, stable across releases.
    pub fn code(&self) -> &'static str {
        match self {
            ProtocolError::NotJson { .. } => "bad_json",
            ProtocolError::NotAnObject => "not_object",
            ProtocolError::UnknownType { .. } => "unknown_type",
            ProtocolError::MissingField { .. } => "missing_field",
            ProtocolError::BadField { .. } => "bad_field",
            ProtocolError::Oversize { .. } => "too_large",
        }
    }

    /// Every code [`code`](Self::code) can return.
    pub const CODES: [&'static str; 6] = [
        "bad_json",
        "not_object",
        "unknown_type",
        "missing_field",
        "bad_field",
        "too_large",
    ];

    pub(crate) fn missing(field: impl Into<String>) -> ProtocolError {
        ProtocolError::MissingField {
            field: field.into(),
        }
    }

    pub(crate) fn bad(field: impl Into<String>, detail: impl Into<String>) -> ProtocolError {
        ProtocolError::BadField {
            field: field.into(),
            detail: detail.into(),
        }
    }

    pub(crate) fn unknown_type(given: &str) -> ProtocolError {
        debug_assert!(!Request::TYPES.contains(&given));
        ProtocolError::UnknownType {
            given: quote(given),
        }
    }
}

impl From<super::lines::Oversize> for ProtocolError {
    fn from(oversize: super::lines::Oversize) -> ProtocolError {
        ProtocolError::Oversize {
            limit: oversize.limit,
        }
    }
}

/// `text` cut to [`MAX_QUOTE`] bytes at a character boundary, with `…`
/// when cut.
pub(crate) fn quote(text: &str) -> String {
    if text.len() <= MAX_QUOTE {
        return text.to_owned();
    }
    let mut end = MAX_QUOTE;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}
