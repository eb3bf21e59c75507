//! OTLP/JSON (`application/json`): protobuf's JSON mapping with OTLP's
//! differences. Field names are lowerCamelCase (the proto names are
//! accepted too, as protobuf's JSON parsers do); trace and span ids are
//! hex, not base64; enums are numbers (their names are accepted too);
//! 64-bit integers are strings or numbers; `null` is a field's default.
//! Unknown fields are ignored, as OTLP requires.

use serde::{Deserialize, Deserializer, de::Error as _};
use serde_json::{Map, Value};

use super::{
    DecodeError,
    spans::{Span, SpanEvent, StatusCode},
};

/// The spans of an OTLP/JSON `ExportTraceServiceRequest`.
pub fn decode(body: &[u8]) -> Result<Vec<Span>, DecodeError> {
    let request: Request = serde_json::from_slice(body).map_err(DecodeError::Json)?;
    Ok(request
        .resource_spans
        .into_iter()
        .flat_map(|r| r.scope_spans)
        .flat_map(|s| s.spans)
        .map(JsonSpan::into_span)
        .collect())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request {
    #[serde(default, alias = "resource_spans", deserialize_with = "nullable")]
    resource_spans: Vec<ResourceSpans>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResourceSpans {
    #[serde(default, alias = "scope_spans", deserialize_with = "nullable")]
    scope_spans: Vec<ScopeSpans>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScopeSpans {
    #[serde(default, deserialize_with = "nullable")]
    spans: Vec<JsonSpan>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonSpan {
    #[serde(default, alias = "trace_id", deserialize_with = "hex_id")]
    trace_id: String,
    #[serde(default, alias = "span_id", deserialize_with = "hex_id")]
    span_id: String,
    #[serde(default, deserialize_with = "nullable")]
    name: String,
    #[serde(default, alias = "start_time_unix_nano", deserialize_with = "uint64")]
    start_time_unix_nano: u64,
    #[serde(default, alias = "end_time_unix_nano", deserialize_with = "uint64")]
    end_time_unix_nano: u64,
    #[serde(default, deserialize_with = "nullable")]
    attributes: Vec<KeyValue>,
    #[serde(default, deserialize_with = "nullable")]
    events: Vec<Event>,
    #[serde(default, deserialize_with = "nullable")]
    status: Status,
}

impl JsonSpan {
    fn into_span(self) -> Span {
        Span {
            trace_id: self.trace_id,
            span_id: self.span_id,
            name: self.name,
            start_ns: self.start_time_unix_nano,
            end_ns: self.end_time_unix_nano,
            attributes: attributes(self.attributes),
            events: self
                .events
                .into_iter()
                .map(|e| SpanEvent {
                    name: e.name,
                    time_ns: e.time_unix_nano,
                    attributes: attributes(e.attributes),
                })
                .collect(),
            status: self.status.code,
            status_message: self.status.message,
        }
    }
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    #[serde(default, alias = "time_unix_nano", deserialize_with = "uint64")]
    time_unix_nano: u64,
    #[serde(default, deserialize_with = "nullable")]
    name: String,
    #[serde(default, deserialize_with = "nullable")]
    attributes: Vec<KeyValue>,
}

#[derive(Default, Deserialize)]
struct Status {
    #[serde(default, deserialize_with = "nullable")]
    message: String,
    #[serde(default, deserialize_with = "status_code")]
    code: StatusCode,
}

#[derive(Default, Deserialize)]
struct KeyValue {
    #[serde(default, deserialize_with = "nullable")]
    key: String,
    #[serde(default, deserialize_with = "nullable")]
    value: AnyValue,
}

/// `AnyValue`: an object with one of its fields set, or none (an empty
/// value).
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AnyValue {
    #[serde(default, alias = "string_value")]
    string_value: Option<String>,
    #[serde(default, alias = "bool_value")]
    bool_value: Option<bool>,
    #[serde(default, alias = "int_value", deserialize_with = "int64")]
    int_value: Option<i64>,
    #[serde(default, alias = "double_value", deserialize_with = "double")]
    double_value: Option<Value>,
    #[serde(default, alias = "array_value")]
    array_value: Option<Values>,
    #[serde(default, alias = "kvlist_value")]
    kvlist_value: Option<KeyValues>,
    /// Base64, as protobuf's JSON mapping writes bytes; kept so.
    #[serde(default, alias = "bytes_value")]
    bytes_value: Option<String>,
}

#[derive(Default, Deserialize)]
struct Values {
    #[serde(default, deserialize_with = "nullable")]
    values: Vec<AnyValue>,
}

#[derive(Default, Deserialize)]
struct KeyValues {
    #[serde(default, deserialize_with = "nullable")]
    values: Vec<KeyValue>,
}

impl AnyValue {
    fn into_json(self) -> Value {
        if let Some(s) = self.string_value {
            Value::String(s)
        } else if let Some(b) = self.bool_value {
            Value::Bool(b)
        } else if let Some(i) = self.int_value {
            Value::from(i)
        } else if let Some(d) = self.double_value {
            d
        } else if let Some(a) = self.array_value {
            Value::Array(a.values.into_iter().map(AnyValue::into_json).collect())
        } else if let Some(kv) = self.kvlist_value {
            Value::Object(attributes(kv.values))
        } else if let Some(b) = self.bytes_value {
            Value::String(b)
        } else {
            Value::Null
        }
    }
}

fn attributes(list: Vec<KeyValue>) -> Map<String, Value> {
    list.into_iter()
        .map(|kv| (kv.key, kv.value.into_json()))
        .collect()
}

/// A field whose `null` means its default.
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A trace or span id: hex, any case, kept lowercase.
fn hex_id<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let id: String = nullable(d)?;
    if !id.len().is_multiple_of(2) || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        let shown: String = id.chars().take(40).collect();
        return Err(D::Error::custom(format!(
            "trace and span ids are hex in OTLP/JSON, not {shown:?}"
        )));
    }
    Ok(id.to_ascii_lowercase())
}

/// A 64-bit integer as protobuf's JSON mapping allows it: a number, or a
/// string holding one.
#[derive(Deserialize)]
#[serde(untagged)]
enum Int<T> {
    Number(T),
    Text(String),
}

fn uint64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match Option::<Int<u64>>::deserialize(d) {
        Ok(None) => Ok(0),
        Ok(Some(Int::Number(n))) => Ok(n),
        Ok(Some(Int::Text(text))) => text
            .parse()
            .map_err(|_| D::Error::custom(format!("{text:?} is not an unsigned 64-bit integer"))),
        Err(_) => Err(D::Error::custom(
            "expected an unsigned 64-bit integer, as a number or a string",
        )),
    }
}

fn int64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    match Option::<Int<i64>>::deserialize(d) {
        Ok(None) => Ok(None),
        Ok(Some(Int::Number(n))) => Ok(Some(n)),
        Ok(Some(Int::Text(text))) => text
            .parse()
            .map(Some)
            .map_err(|_| D::Error::custom(format!("intValue {text:?} is not a 64-bit integer"))),
        Err(_) => Err(D::Error::custom(
            "intValue: expected a 64-bit integer, as a number or a string",
        )),
    }
}

/// A double: a number, or a string (`"NaN"`, `"Infinity"`, `"-Infinity"`
/// or a number written as text).
fn double<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    match Option::<Int<f64>>::deserialize(d) {
        Ok(None) => Ok(None),
        Ok(Some(Int::Number(n))) => Ok(Some(super::double(n))),
        Ok(Some(Int::Text(text))) => {
            let parsed = match text.as_str() {
                "NaN" => Some(f64::NAN),
                "Infinity" => Some(f64::INFINITY),
                "-Infinity" => Some(f64::NEG_INFINITY),
                other => other.parse().ok(),
            };
            parsed
                .map(|d| Some(super::double(d)))
                .ok_or_else(|| D::Error::custom(format!("doubleValue {text:?} is not a number")))
        }
        Err(_) => Err(D::Error::custom("doubleValue: expected a number")),
    }
}

/// `Status.code`: its number, or its name.
fn status_code<'de, D: Deserializer<'de>>(d: D) -> Result<StatusCode, D::Error> {
    match Option::<Int<i64>>::deserialize(d) {
        Ok(None) => Ok(StatusCode::Unset),
        Ok(Some(Int::Number(n))) => Ok(StatusCode::from_code(n)),
        Ok(Some(Int::Text(name))) => match name.as_str() {
            "STATUS_CODE_UNSET" => Ok(StatusCode::Unset),
            "STATUS_CODE_OK" => Ok(StatusCode::Ok),
            "STATUS_CODE_ERROR" => Ok(StatusCode::Error),
            other => Err(D::Error::custom(format!(
                "status code {other:?} is not STATUS_CODE_UNSET, STATUS_CODE_OK or STATUS_CODE_ERROR"
            ))),
        },
        Err(_) => Err(D::Error::custom("status code: expected a number or a name")),
    }
}
