//! Decoding of client text frames into borrowed messages. Payloads stay raw JSON text so they cross to
//! JavaScript without being rebuilt.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{Json, MAX_ID_LEN, MAX_NAME_LEN};

/// A request id exactly as the client wrote it: a JSON string or a non-negative integer.
#[derive(Debug, Clone, Copy)]
pub struct RequestId<'a>(Json<'a>);

impl<'a> RequestId<'a> {
    fn parse(json: impl Into<Json<'a>>) -> Option<Self> {
        let json = json.into();
        let text = json.get();
        let valid = if text.starts_with('"') {
            json_string(text).is_some_and(|id| id.len() <= MAX_ID_LEN)
        } else {
            text.parse::<u64>().is_ok_and(|n| n < (1 << 53))
        };
        valid.then_some(RequestId(json))
    }

    /// The id's JSON text, ready to be echoed.
    pub fn as_json(&self) -> &'a str {
        self.0.get()
    }

    /// The id as JSON, to embed in a frame or call.
    pub fn json(&self) -> Json<'a> {
        self.0
    }

    /// The id as an integer, when it is one (server-to-client requests use integers).
    pub fn as_u64(&self) -> Option<u64> {
        self.0.get().parse().ok()
    }
}

/// A message from a client.
#[derive(Debug)]
pub enum Inbound<'a> {
    /// Asks the server to run `method`.
    Request {
        /// Echoed in the response.
        id: RequestId<'a>,
        /// The method name, or the reason it is unusable (the request still gets a 400 response).
        method: Result<Cow<'a, str>, &'static str>,
        /// Raw JSON; `null` when absent.
        payload: Json<'a>,
    },
    /// Answers a request the server sent.
    Response {
        /// The server's request id.
        id: RequestId<'a>,
        /// HTTP-like status.
        status: u16,
        /// Raw JSON result (`null` when absent).
        data: &'a RawValue,
        /// Raw JSON error object, when the status is an error.
        error: Option<&'a RawValue>,
    },
    /// The client has processed the first `seq` counted messages of its session.
    Ack {
        /// The count.
        seq: u64,
    },
    /// A one-way message under a topic.
    Event {
        /// The topic.
        topic: Cow<'a, str>,
        /// Raw JSON; `null` when absent.
        data: &'a RawValue,
    },
}

/// Why a frame is not a usable message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The text is not JSON.
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    /// The JSON is not a protocol message.
    #[error("{0}")]
    InvalidMessage(Cow<'static, str>),
}

/// Every field is taken raw first, so that a wrongly typed field is reported precisely instead of failing
/// the whole frame.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<&'a RawValue>,
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    method: Option<&'a RawValue>,
    #[serde(borrow)]
    topic: Option<&'a RawValue>,
    #[serde(borrow)]
    payload: Option<&'a RawValue>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    #[serde(borrow)]
    error: Option<&'a RawValue>,
    #[serde(borrow)]
    status: Option<&'a RawValue>,
    #[serde(borrow)]
    seq: Option<&'a RawValue>,
}

/// The string a JSON value holds, or `None` when it is not a string. Most strings have no escape: they
/// are borrowed as they stand, without running the parser a second time.
fn json_string(text: &str) -> Option<Cow<'_, str>> {
    match text
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
    {
        // Valid JSON already (parsed by the envelope or checked), so with no backslash the inside is the string.
        Some(inside) if !inside.contains('\\') => Some(Cow::Borrowed(inside)),
        _ => serde_json::from_str::<Cow<'_, str>>(text).ok(),
    }
}

fn string<'a>(raw: Option<&'a RawValue>) -> Option<Cow<'a, str>> {
    raw.and_then(|raw| json_string(raw.get()))
}

fn name<'a>(raw: Option<&'a RawValue>, what: &'static str) -> Result<Cow<'a, str>, &'static str> {
    let Some(raw) = raw else {
        return Err(what);
    };
    match json_string(raw.get()) {
        Some(text) if !text.is_empty() && text.len() <= MAX_NAME_LEN => Ok(text),
        _ => Err(what),
    }
}

/// Decodes one text frame.
pub fn decode(text: &str) -> Result<Inbound<'_>, DecodeError> {
    match request_as_clients_write_it(text) {
        Some(request) => Ok(request),
        None => decode_envelope(text),
    }
}

/// A request in the exact shape the clients write (`JSON.stringify({ type, id, method, payload })`):
/// `{"type":"request","id":<id>,"method":"<name>","payload":<JSON>}`, read without the envelope's map
/// parsing; the id and payload are only checked to be JSON values ([`Json::check`]). Any other text, or
/// anything doubtful in this one (an escape in the id or method, a control character, another key), is
/// left to [`decode_envelope`], which gives the same result for what this accepts.
fn request_as_clients_write_it(text: &str) -> Option<Inbound<'_>> {
    // The strings searched are a few bytes long: a plain loop, not `str::find`'s general search.
    let quote = |text: &str| text.bytes().position(|byte| byte == b'"');
    let rest = text.strip_prefix(r#"{"type":"request","id":"#)?;
    let id_len = match rest.strip_prefix('"') {
        Some(inside) => quote(inside)? + 2,
        None => rest.find(|c: char| !c.is_ascii_digit())?,
    };
    let (id, rest) = rest.split_at(id_len);
    let rest = rest.strip_prefix(r#","method":""#)?;
    let (method, rest) = rest.split_at(quote(rest)?);
    let plain = |text: &str| !text.bytes().any(|byte| byte == b'\\' || byte < 0x20);
    if !plain(id) || !plain(method) || method.is_empty() || method.len() > MAX_NAME_LEN {
        return None;
    }
    let payload = rest.strip_prefix(r#"","payload":"#)?.strip_suffix('}')?;
    let json_space = |c| matches!(c, ' ' | '\t' | '\n' | '\r');
    Some(Inbound::Request {
        id: RequestId::parse(Json::check(id)?)?,
        method: Ok(Cow::Borrowed(method)),
        payload: Json::check(payload.trim_matches(json_space))?,
    })
}

/// Decodes one text frame through the envelope: every shape, every error.
fn decode_envelope(text: &str) -> Result<Inbound<'_>, DecodeError> {
    // Only an object is a message: serde would also fill the envelope from an array, by position.
    if !text.trim_start().starts_with('{') {
        return Err(match serde_json::from_str::<serde::de::IgnoredAny>(text) {
            Ok(_) => DecodeError::InvalidMessage(Cow::Borrowed(
                "not a protocol message: expected a JSON object",
            )),
            Err(error) => DecodeError::InvalidJson(error.to_string()),
        });
    }
    let envelope: Envelope<'_> = serde_json::from_str(text).map_err(|error| {
        if error.is_data() {
            DecodeError::InvalidMessage(format!("not a protocol message: {error}").into())
        } else {
            DecodeError::InvalidJson(error.to_string())
        }
    })?;
    let invalid = |why: &'static str| DecodeError::InvalidMessage(Cow::Borrowed(why));
    let kind = string(envelope.kind).ok_or_else(|| invalid("missing or invalid 'type'"))?;
    match kind.as_ref() {
        "request" => {
            let id = envelope.id.and_then(RequestId::parse).ok_or_else(|| {
                invalid(
                    "request without a valid 'id' (a string of at most 128 bytes or an integer)",
                )
            })?;
            Ok(Inbound::Request {
                id,
                method: name(
                    envelope.method,
                    "'method' must be a non-empty string of at most 256 bytes",
                ),
                payload: envelope.payload.map_or(Json::NULL, Json::from),
            })
        }
        "response" => {
            let id = envelope
                .id
                .and_then(RequestId::parse)
                .ok_or_else(|| invalid("response without a valid 'id'"))?;
            let status = envelope
                .status
                .and_then(|raw| raw.get().parse::<u16>().ok())
                .filter(|status| (100..1000).contains(status))
                .ok_or_else(|| {
                    invalid("response without a valid 'status' (an integer from 100 to 999)")
                })?;
            Ok(Inbound::Response {
                id,
                status,
                data: envelope.data.unwrap_or(RawValue::NULL),
                error: envelope.error,
            })
        }
        "event" => Ok(Inbound::Event {
            topic: name(
                envelope.topic,
                "event without a valid 'topic' (a non-empty string of at most 256 bytes)",
            )
            .map_err(invalid)?,
            data: envelope.data.unwrap_or(RawValue::NULL),
        }),
        "ack" => Ok(Inbound::Ack {
            seq: envelope
                .seq
                .and_then(|raw| raw.get().parse::<u64>().ok())
                .ok_or_else(|| invalid("ack without a valid 'seq' (a non-negative integer)"))?,
        }),
        _ => Err(invalid(
            "unknown 'type': expected request, response, event or ack",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clients_shape_decodes_as_the_envelope_does() {
        let accepted = [
            r#"{"type":"request","id":1,"method":"echo","payload":{"a":[1,"x"]}}"#,
            r#"{"type":"request","id":"r-1","method":"user.get","payload":null}"#,
            r#"{"type":"request","id":"","method":"é","payload": 5 }"#,
        ];
        for text in accepted {
            let fast = request_as_clients_write_it(text).expect(text);
            let slow = decode_envelope(text).expect(text);
            assert_eq!(format!("{fast:?}"), format!("{slow:?}"), "{text}");
        }
        let left_to_the_envelope = [
            r#"{"type":"request","id":"a\"b","method":"m","payload":1}"#,
            r#"{"type":"request","id":1,"method":"a\u0062","payload":1}"#,
            r#"{"type":"request","id":1,"method":"","payload":1}"#,
            r#"{"type":"request","id":007,"method":"m","payload":1}"#,
            r#"{"type":"request","id":-1,"method":"m","payload":1}"#,
            r#"{"type":"request","id":1.5,"method":"m","payload":1}"#,
            r#"{"type":"request","id":1,"method":"m","payload":1,"x":2}"#,
            r#"{"type":"request","id":1,"method":"m","payload":{"a":1}"#,
            r#"{"type":"request","id":1,"method":"m","payload":}"#,
            r#"{"type":"request","id":1,"method":"m","payload":1} "#,
            "{\"type\":\"request\",\"id\":1,\"method\":\"a\tb\",\"payload\":1}",
        ];
        for text in left_to_the_envelope {
            assert!(request_as_clients_write_it(text).is_none(), "{text}");
        }
        let long = format!(
            r#"{{"type":"request","id":1,"method":"{}","payload":1}}"#,
            "m".repeat(MAX_NAME_LEN + 1)
        );
        assert!(request_as_clients_write_it(&long).is_none());
    }

    #[test]
    fn decodes_a_request_with_raw_payload() {
        let frame = r#"{"type":"request","id":7,"method":"user.get","payload":{"userId": 42}}"#;
        let Ok(Inbound::Request {
            id,
            method,
            payload,
        }) = decode(frame)
        else {
            panic!("expected a request");
        };
        assert_eq!(id.as_json(), "7");
        assert_eq!(method.as_deref(), Ok("user.get"));
        assert_eq!(payload.get(), r#"{"userId": 42}"#);
    }

    #[test]
    fn missing_payload_is_null_and_string_ids_are_kept_verbatim() {
        let Ok(Inbound::Request { id, payload, .. }) =
            decode(r#"{"type":"request","id":"a\"b","method":"m"}"#)
        else {
            panic!("expected a request");
        };
        assert_eq!(id.as_json(), r#""a\"b""#);
        assert_eq!(payload.get(), "null");
    }

    #[test]
    fn a_bad_method_keeps_the_id_for_a_400() {
        let Ok(Inbound::Request { method, .. }) =
            decode(r#"{"type":"request","id":1,"method":""}"#)
        else {
            panic!("expected a request");
        };
        assert!(method.is_err());
    }

    #[test]
    fn rejects_bad_ids() {
        for frame in &[
            r#"{"type":"request","method":"m"}"#,
            r#"{"type":"request","id":1.5,"method":"m"}"#,
            r#"{"type":"request","id":-1,"method":"m"}"#,
            r#"{"type":"request","id":{},"method":"m"}"#,
            r#"{"type":"request","id":9007199254740992,"method":"m"}"#,
            &format!(
                r#"{{"type":"request","id":"{}","method":"m"}}"#,
                "x".repeat(129)
            ),
        ] {
            assert!(
                matches!(decode(frame), Err(DecodeError::InvalidMessage(_))),
                "{frame}"
            );
        }
        // The limit is on the decoded id: escapes do not count twice.
        let escaped = format!(
            r#"{{"type":"request","id":"{}","method":"m"}}"#,
            "\\\"".repeat(128)
        );
        assert!(matches!(decode(&escaped), Ok(Inbound::Request { .. })));
    }

    #[test]
    fn classifies_json_and_message_errors() {
        assert!(matches!(decode("{oops"), Err(DecodeError::InvalidJson(_))));
        assert!(matches!(
            decode("[1,2]"),
            Err(DecodeError::InvalidMessage(_))
        ));
        assert!(matches!(
            decode(r#"{"type":"nope"}"#),
            Err(DecodeError::InvalidMessage(_))
        ));
        assert!(matches!(
            decode(r#"{"type":"event"}"#),
            Err(DecodeError::InvalidMessage(_))
        ));
        assert!(matches!(
            decode(r#"{"type":"event","topic":"a","topic":"b"}"#),
            Err(DecodeError::InvalidMessage(_))
        ));
    }

    #[test]
    fn decodes_responses_and_events() {
        let Ok(Inbound::Response {
            id, status, error, ..
        }) = decode(r#"{"type":"response","id":3,"status":404,"error":{"message":"x"}}"#)
        else {
            panic!("expected a response");
        };
        assert_eq!((id.as_u64(), status), (Some(3), 404));
        assert!(error.is_some());
        let Ok(Inbound::Event { topic, data }) =
            decode(r#"{"type":"event","topic":"chat:message"}"#)
        else {
            panic!("expected an event");
        };
        assert_eq!((topic.as_ref(), data.get()), ("chat:message", "null"));
    }
}
