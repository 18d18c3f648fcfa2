//! Encoding of server frames. Payloads arrive as raw JSON text and are embedded as they are.

use serde::Serialize;
use serde_json::value::RawValue;

use super::{ErrorCode, Json};

#[derive(Serialize)]
struct Response<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: Json<'a>,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a RawValue>,
}

#[derive(Serialize)]
struct Event<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    topic: &'a str,
    data: &'a RawValue,
}

#[derive(Serialize)]
struct Request<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: u64,
    method: &'a str,
    payload: &'a RawValue,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'static str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    topic: Option<&'a str>,
}

#[derive(Serialize)]
struct ErrorMessage<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: ErrorBody<'a>,
}

fn to_text(value: &impl Serialize) -> String {
    // Serializing these plain structs into a String cannot fail: every field is a string, a number or
    // already-valid JSON.
    serde_json::to_string(value).unwrap_or_default()
}

/// A `response` frame. `body` is the result when `status` < 400 and the error object otherwise.
pub fn response_frame(id: Json<'_>, status: u16, body: &RawValue) -> String {
    let (data, error) = if status < 400 {
        (Some(body), None)
    } else {
        (None, Some(body))
    };
    to_text(&Response {
        kind: "response",
        id,
        status,
        data,
        error,
    })
}

/// The JSON error object `{code, message}` for a server-produced error.
pub fn error_body(code: ErrorCode, message: &str) -> Box<RawValue> {
    let body = ErrorBody {
        code: code.as_str(),
        message,
        topic: None,
    };
    serde_json::value::to_raw_value(&body).unwrap_or_else(|_| RawValue::NULL.to_owned())
}

/// An `error` frame, for input that cannot be answered with a response.
pub fn error_frame(code: ErrorCode, message: &str, topic: Option<&str>) -> String {
    to_text(&ErrorMessage {
        kind: "error",
        error: ErrorBody {
            code: code.as_str(),
            message,
            topic,
        },
    })
}

/// An `event` frame.
pub fn event_frame(topic: &str, data: &RawValue) -> String {
    to_text(&Event {
        kind: "event",
        topic,
        data,
    })
}

#[derive(Serialize)]
struct SessionMessage<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    event: &'static str,
    #[serde(rename = "sessionId", skip_serializing_if = "Option::is_none")]
    session_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ttl: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    replayed: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gap: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
}

/// A session control frame (`type: "session"`), which clients do not count.
pub enum SessionEvent<'a> {
    /// A new session and its first token.
    Created {
        /// The session id.
        session_id: &'a str,
        /// The resume token.
        token: &'a str,
        /// Milliseconds the session waits for its client.
        ttl_ms: u64,
    },
    /// A resume succeeded; the replayed frames precede this one.
    Recovered {
        /// The session id.
        session_id: &'a str,
        /// The next resume token.
        token: &'a str,
        /// Milliseconds the session waits for its client.
        ttl_ms: u64,
        /// Frames sent again.
        replayed: usize,
        /// Some frames the client never processed are gone.
        gap: bool,
        /// The number of the last counted message so far: the client's count after the replay.
        seq: u64,
    },
    /// A resume was refused; a `Created` follows.
    RecoveryFailed {
        /// Why.
        reason: &'a str,
    },
}

/// Encodes a session control frame.
pub fn session_frame(event: SessionEvent<'_>) -> String {
    let empty = SessionMessage {
        kind: "session",
        event: "",
        session_id: None,
        token: None,
        ttl: None,
        replayed: None,
        gap: None,
        seq: None,
        reason: None,
    };
    to_text(&match event {
        SessionEvent::Created {
            session_id,
            token,
            ttl_ms,
        } => SessionMessage {
            event: "created",
            session_id: Some(session_id),
            token: Some(token),
            ttl: Some(ttl_ms),
            ..empty
        },
        SessionEvent::Recovered {
            session_id,
            token,
            ttl_ms,
            replayed,
            gap,
            seq,
        } => SessionMessage {
            event: "recovered",
            session_id: Some(session_id),
            token: Some(token),
            ttl: Some(ttl_ms),
            replayed: Some(replayed),
            gap: Some(gap),
            seq: Some(seq),
            ..empty
        },
        SessionEvent::RecoveryFailed { reason } => SessionMessage {
            event: "recovery-failed",
            reason: Some(reason),
            ..empty
        },
    })
}

/// A server-to-client `request` frame.
pub fn request_frame(id: u64, method: &str, payload: &RawValue) -> String {
    to_text(&Request {
        kind: "request",
        id,
        method,
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{decode, Inbound};

    fn raw(text: &str) -> &RawValue {
        serde_json::from_str(text).expect("valid JSON")
    }

    #[test]
    fn responses_carry_data_or_error() {
        assert_eq!(
            response_frame(raw("1").into(), 200, raw(r#"{"a":1}"#)),
            r#"{"type":"response","id":1,"status":200,"data":{"a":1}}"#
        );
        let body = error_body(ErrorCode::MethodNotFound, "Method 'x' not found");
        assert_eq!(
            response_frame(raw(r#""r1""#).into(), 404, &body),
            r#"{"type":"response","id":"r1","status":404,"error":{"code":"METHOD_NOT_FOUND","message":"Method 'x' not found"}}"#
        );
    }

    #[test]
    fn topics_and_messages_are_escaped() {
        let frame = event_frame("a\"b", raw("null"));
        assert_eq!(frame, r#"{"type":"event","topic":"a\"b","data":null}"#);
        let frame = error_frame(ErrorCode::InvalidJson, "line\n1", None);
        assert!(frame.contains(r#""message":"line\n1""#));
    }

    #[test]
    fn decode_reads_back_what_encode_wrote() {
        let frame = request_frame(9, "client.ping", raw(r#"[1,"x"]"#));
        // A server request has the shape of a client request, so the decoder reads it back.
        let Ok(Inbound::Request {
            id,
            method,
            payload,
        }) = decode(&frame)
        else {
            panic!("expected a request");
        };
        assert_eq!(
            (id.as_u64(), method.as_deref(), payload.get()),
            (Some(9), Ok("client.ping"), r#"[1,"x"]"#)
        );
    }
}
