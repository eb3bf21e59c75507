//! OTLP's protobuf encoding (`application/x-protobuf`): the few messages of
//! opentelemetry-proto the receiver reads, written by hand with the field
//! numbers of `collector/trace/v1/trace_service.proto`,
//! `trace/v1/trace.proto` and `common/v1/common.proto`. Fields left out
//! (resources, scopes, links, flags, …) are skipped by the decoder, as
//! protobuf skips any unknown field.

use prost::Message;
use serde_json::{Map, Value};

use super::{
    DecodeError,
    spans::{Span, SpanEvent, StatusCode},
};

#[derive(Clone, PartialEq, Message)]
pub struct ExportTraceServiceRequest {
    #[prost(message, repeated, tag = "1")]
    pub resource_spans: Vec<ResourceSpans>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ResourceSpans {
    #[prost(message, repeated, tag = "2")]
    pub scope_spans: Vec<ScopeSpans>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ScopeSpans {
    #[prost(message, repeated, tag = "2")]
    pub spans: Vec<ProtoSpan>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ProtoSpan {
    #[prost(bytes = "vec", tag = "1")]
    pub trace_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub span_id: Vec<u8>,
    #[prost(string, tag = "5")]
    pub name: String,
    #[prost(fixed64, tag = "7")]
    pub start_time_unix_nano: u64,
    #[prost(fixed64, tag = "8")]
    pub end_time_unix_nano: u64,
    #[prost(message, repeated, tag = "9")]
    pub attributes: Vec<KeyValue>,
    #[prost(message, repeated, tag = "11")]
    pub events: Vec<Event>,
    #[prost(message, optional, tag = "15")]
    pub status: Option<Status>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Event {
    #[prost(fixed64, tag = "1")]
    pub time_unix_nano: u64,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(message, repeated, tag = "3")]
    pub attributes: Vec<KeyValue>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Status {
    #[prost(string, tag = "2")]
    pub message: String,
    /// `StatusCode`, read as its number so that a code added later is no
    /// decoding error.
    #[prost(int32, tag = "3")]
    pub code: i32,
}

#[derive(Clone, PartialEq, Message)]
pub struct KeyValue {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<AnyValue>,
}

#[derive(Clone, PartialEq, Message)]
pub struct AnyValue {
    #[prost(oneof = "Any", tags = "1, 2, 3, 4, 5, 6, 7")]
    pub value: Option<Any>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Any {
    #[prost(string, tag = "1")]
    String(String),
    #[prost(bool, tag = "2")]
    Bool(bool),
    #[prost(int64, tag = "3")]
    Int(i64),
    #[prost(double, tag = "4")]
    Double(f64),
    #[prost(message, tag = "5")]
    Array(ArrayValue),
    #[prost(message, tag = "6")]
    KvList(KeyValueList),
    #[prost(bytes = "vec", tag = "7")]
    Bytes(Vec<u8>),
}

#[derive(Clone, PartialEq, Message)]
pub struct ArrayValue {
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<AnyValue>,
}

#[derive(Clone, PartialEq, Message)]
pub struct KeyValueList {
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<KeyValue>,
}

/// `ExportTraceServiceResponse`: what a receiver answers.
#[derive(Clone, PartialEq, Message)]
pub struct ExportTraceServiceResponse {
    #[prost(message, optional, tag = "1")]
    pub partial_success: Option<ExportTracePartialSuccess>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ExportTracePartialSuccess {
    #[prost(int64, tag = "1")]
    pub rejected_spans: i64,
    #[prost(string, tag = "2")]
    pub error_message: String,
}

/// `google.rpc.Status`: the body of an OTLP error response.
#[derive(Clone, PartialEq, Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

/// The spans of an `ExportTraceServiceRequest`.
pub fn decode(body: &[u8]) -> Result<Vec<Span>, DecodeError> {
    let request = ExportTraceServiceRequest::decode(body).map_err(DecodeError::Protobuf)?;
    Ok(request
        .resource_spans
        .into_iter()
        .flat_map(|r| r.scope_spans)
        .flat_map(|s| s.spans)
        .map(span)
        .collect())
}

fn span(span: ProtoSpan) -> Span {
    let status = span.status.unwrap_or_default();
    Span {
        trace_id: hex(&span.trace_id),
        span_id: hex(&span.span_id),
        name: span.name,
        start_ns: span.start_time_unix_nano,
        end_ns: span.end_time_unix_nano,
        attributes: attributes(span.attributes),
        events: span
            .events
            .into_iter()
            .map(|e| SpanEvent {
                name: e.name,
                time_ns: e.time_unix_nano,
                attributes: attributes(e.attributes),
            })
            .collect(),
        status: StatusCode::from_code(status.code.into()),
        status_message: status.message,
    }
}

fn attributes(list: Vec<KeyValue>) -> Map<String, Value> {
    list.into_iter()
        .map(|kv| (kv.key, kv.value.map_or(Value::Null, any)))
        .collect()
}

fn any(value: AnyValue) -> Value {
    match value.value {
        None => Value::Null,
        Some(Any::String(s)) => Value::String(s),
        Some(Any::Bool(b)) => Value::Bool(b),
        Some(Any::Int(i)) => Value::from(i),
        Some(Any::Double(d)) => super::double(d),
        Some(Any::Array(a)) => Value::Array(a.values.into_iter().map(any).collect()),
        Some(Any::KvList(kv)) => Value::Object(attributes(kv.values)),
        Some(Any::Bytes(b)) => Value::String(base64(&b)),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Standard base64 with padding: how OTLP/JSON writes a bytes value, so
/// that both encodings give a span the same attributes.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_pads_like_the_json_encoding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(&[0xff, 0xfe, 0x00, 0x01]), "//4AAQ==");
    }

    #[test]
    fn every_any_value_kind_becomes_json() {
        let kv = |key: &str, value: Any| KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
        };
        let list = vec![
            kv("s", Any::String("x".into())),
            kv("b", Any::Bool(true)),
            kv("i", Any::Int(-7)),
            kv("d", Any::Double(1.5)),
            kv("nan", Any::Double(f64::NAN)),
            kv(
                "a",
                Any::Array(ArrayValue {
                    values: vec![AnyValue {
                        value: Some(Any::Int(1)),
                    }],
                }),
            ),
            kv(
                "kv",
                Any::KvList(KeyValueList {
                    values: vec![kv("k", Any::String("v".into()))],
                }),
            ),
            kv("bytes", Any::Bytes(vec![1, 2, 3])),
            KeyValue {
                key: "empty".into(),
                value: None,
            },
        ];
        assert_eq!(
            Value::Object(attributes(list)),
            serde_json::json!({
                "s": "x", "b": true, "i": -7, "d": 1.5, "nan": "NaN",
                "a": [1], "kv": {"k": "v"}, "bytes": "AQID", "empty": null
            })
        );
    }
}
