//! Operations from the application, sent as lines of text per flush, one operation per line. A line is
//! either a ready frame for one connection, `<conn> <frame>`, or a JSON array:
//!
//! | kind | line                                            | meaning                                        |
//! |------|-------------------------------------------------|------------------------------------------------|
//! | —    | `<conn> {"type":"response",...}`                | send a frame the application wrote (its answers to client requests): the hot path, copied as is, never parsed |
//! | 1    | `[1, conn, topic, data, volatile?]`             | send an event; a volatile one is dropped rather than close a slow connection |
//! | 2    | `[2, conn, requestId, method, payload, timeoutMs]` | send a server request; ids are integers chosen by the application |
//! | 3    | `[3, conn, code, reason]`                       | close the connection                           |
//! | 4    | `[4, conn, topic, message]`                     | tell the client its event's handler failed     |
//! | 5    | `[5, conn, requestId, topic, allowed, error]`   | a room validator's verdict (call 8): join when `allowed`, and answer the client's `helios.subscribe`; `error` is the validator's failure message or null |
//! | 6    | `[6, conn, pingId]`                             | send a ping now; its pong is reported by call 10 |
//! | 7    | `[7, upgradeId, accepted, status, reason, data]` | the upgrade hook's verdict (call 11); `data` (object or null) becomes the connection's initial data |
//! | 8    | `[8, ticket, connectionId, topic, data, volatile]` | cluster: send an event to a connection of another node; answered by call 14 or 15 |
//! | 9    | `[9, ticket, connectionId, method, payload, timeoutMs]` | cluster: send a request to a connection of another node; answered by call 14 or 15 |
//! | 10   | `[10, ticket, topic]`                            | cluster: ask every other node who is in the room; each answers with call 16 |
//! | 11   | `[11, conn, data]`                               | cluster: the JSON-serializable entries of a session's data, as an object, for its copy in Redis |
//!
//! JSON text never holds a raw line break (`JSON.stringify` escapes them), so lines split the flush
//! without parsing it.

use std::borrow::Cow;

use serde_json::value::RawValue;

use crate::protocol::array::{field, raw};

/// One operation on a connection.
#[derive(Debug)]
pub enum Op<'a> {
    /// Send a frame the application wrote.
    Frame {
        /// The connection.
        conn: u64,
        /// The frame's text, sent as is.
        frame: &'a str,
    },
    /// Send an event.
    Emit {
        /// The connection.
        conn: u64,
        /// The topic.
        topic: Cow<'a, str>,
        /// The data, raw.
        data: &'a RawValue,
        /// Drop it, rather than close the connection, when the outbound queue is full.
        volatile: bool,
    },
    /// Send a request and wait for the client's answer.
    Request {
        /// The connection.
        conn: u64,
        /// The request id, unique among this server's pending requests.
        id: u64,
        /// The client method.
        method: Cow<'a, str>,
        /// The payload, raw.
        payload: &'a RawValue,
        /// How long to wait for the answer.
        timeout_ms: u64,
    },
    /// Report that a handler of the client's event failed.
    EventError {
        /// The connection.
        conn: u64,
        /// The event's topic.
        topic: Cow<'a, str>,
        /// What went wrong.
        message: Cow<'a, str>,
    },
    /// A room validator's verdict on a `helios.subscribe` request.
    RoomVerdict {
        /// The connection.
        conn: u64,
        /// The client's request id, raw.
        id: &'a RawValue,
        /// The room.
        topic: Cow<'a, str>,
        /// True when the validator allowed the subscription.
        allowed: bool,
        /// Why the validator failed (threw, rejected, timed out), when it did.
        error: Option<Cow<'a, str>>,
    },
    /// Ping the client now, for the application.
    Ping {
        /// The connection.
        conn: u64,
        /// The application's id for this ping.
        id: u64,
    },
    /// The upgrade hook's verdict on a request (not yet a connection).
    Upgrade {
        /// The upgrade's id, from call 11.
        id: u64,
        /// Whether the request is accepted.
        accepted: bool,
        /// The HTTP status of a refusal.
        status: u16,
        /// The reason of a refusal.
        reason: Cow<'a, str>,
        /// The connection's initial data, raw.
        data: &'a RawValue,
    },
    /// Send an event to a connection of another node.
    RouteEmit {
        /// The application's ticket for the outcome.
        ticket: u64,
        /// The connection's id.
        id: Cow<'a, str>,
        /// The topic.
        topic: Cow<'a, str>,
        /// The data, raw.
        data: &'a RawValue,
        /// Drop it rather than close a slow connection.
        volatile: bool,
    },
    /// Send a request to a connection of another node.
    RouteRequest {
        /// The application's ticket for the answer.
        ticket: u64,
        /// The connection's id.
        id: Cow<'a, str>,
        /// The client method.
        method: Cow<'a, str>,
        /// The payload, raw.
        payload: &'a RawValue,
        /// How long the client has to answer.
        timeout_ms: u64,
    },
    /// Ask every other node who is in a room.
    RoomQuery {
        /// The application's ticket for the answers.
        ticket: u64,
        /// The room.
        topic: Cow<'a, str>,
    },
    /// The data entries of a session, for its copy in Redis.
    SessionData {
        /// The connection.
        conn: u64,
        /// The entries, as a JSON object.
        data: &'a RawValue,
    },
    /// Close the connection.
    Close {
        /// The connection.
        conn: u64,
        /// The close code.
        code: u16,
        /// The close reason.
        reason: Cow<'a, str>,
    },
}

/// A malformed flush: a bug in the application side, never client input.
#[derive(Debug, thiserror::Error)]
#[error("malformed operation #{index}: {reason}")]
pub struct OpError {
    index: usize,
    reason: String,
}

fn op<'a>(item: &[&'a RawValue]) -> Result<Op<'a>, String> {
    let conn = field(item, 1)?;
    match field::<u8>(item, 0)? {
        7 => Ok(Op::Upgrade {
            id: conn,
            accepted: field(item, 2)?,
            status: field(item, 3)?,
            reason: field(item, 4)?,
            data: raw(item, 5)?,
        }),
        1 => Ok(Op::Emit {
            conn,
            topic: field(item, 2)?,
            data: raw(item, 3)?,
            volatile: item.len() > 4 && field(item, 4)?,
        }),
        2 => Ok(Op::Request {
            conn,
            id: field(item, 2)?,
            method: field(item, 3)?,
            payload: raw(item, 4)?,
            timeout_ms: field(item, 5)?,
        }),
        3 => Ok(Op::Close {
            conn,
            code: field(item, 2)?,
            reason: field(item, 3)?,
        }),
        4 => Ok(Op::EventError {
            conn,
            topic: field(item, 2)?,
            message: field(item, 3)?,
        }),
        5 => Ok(Op::RoomVerdict {
            conn,
            id: raw(item, 2)?,
            topic: field(item, 3)?,
            allowed: field(item, 4)?,
            error: field(item, 5)?,
        }),
        6 => Ok(Op::Ping {
            conn,
            id: field(item, 2)?,
        }),
        8 => Ok(Op::RouteEmit {
            ticket: conn,
            id: field(item, 2)?,
            topic: field(item, 3)?,
            data: raw(item, 4)?,
            volatile: field(item, 5)?,
        }),
        9 => Ok(Op::RouteRequest {
            ticket: conn,
            id: field(item, 2)?,
            method: field(item, 3)?,
            payload: raw(item, 4)?,
            timeout_ms: field(item, 5)?,
        }),
        11 => Ok(Op::SessionData {
            conn,
            data: raw(item, 2)?,
        }),
        10 => Ok(Op::RoomQuery {
            ticket: conn,
            topic: field(item, 2)?,
        }),
        kind => Err(format!("unknown kind {kind}")),
    }
}

/// Decodes one line of a flush.
fn line(line: &str) -> Result<Op<'_>, String> {
    if line.starts_with('[') {
        let item: Vec<&RawValue> = serde_json::from_str(line).map_err(|error| error.to_string())?;
        return op(&item);
    }
    // The key is a few digits: a byte loop finds the space sooner than a string search sets itself up.
    let space = line
        .bytes()
        .position(|byte| byte == b' ')
        .ok_or("neither a JSON array nor `<conn> <frame>`")?;
    let (conn, frame) = (&line[..space], &line[space + 1..]);
    let conn = conn
        .parse()
        .map_err(|_| format!("bad connection key {conn:?}"))?;
    Ok(Op::Frame { conn, frame })
}

/// Decodes a flush line by line, as it is applied; an empty flush holds no operation. A malformed line is
/// an error in its place, and the lines after it still decode: one bug costs one operation, not the
/// replies of a whole batch.
pub fn decode(text: &str) -> impl Iterator<Item = Result<Op<'_>, OpError>> {
    // Line breaks are found with SIMD rather than a character search, and, being ASCII, fall between
    // characters.
    let ends =
        memchr::memchr_iter(b'\n', text.as_bytes()).chain((!text.is_empty()).then_some(text.len()));
    let mut start = 0;
    ends.enumerate().map(move |(index, end)| {
        let op = line(&text[start..end]).map_err(|reason| OpError { index, reason });
        start = end + 1;
        op
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(text: &str) -> Result<Vec<Op<'_>>, OpError> {
        super::decode(text).collect()
    }

    #[test]
    fn decodes_every_kind() {
        let ops = decode(concat!(
            r#"1 {"type":"response","id":"r","status":200,"data":{"a":1}}"#,
            "\n",
            r#"[1,2,"chat:x",null]"#,
            "\n",
            r#"[2,3,7,"client.ping",[1],5000]"#,
            "\n",
            r#"[3,4,4001,"Auth timeout"]"#,
            "\n",
            r#"[4,5,"chat:x","boom"]"#,
            "\n",
            r#"[5,6,"r2","user:42",false,"boom"]"#,
        ))
        .expect("valid ops");
        assert!(
            matches!(&ops[0], Op::Frame { conn: 1, frame } if *frame == r#"{"type":"response","id":"r","status":200,"data":{"a":1}}"#)
        );
        assert!(matches!(&ops[1], Op::Emit { conn: 2, topic, .. } if topic == "chat:x"));
        assert!(
            matches!(&ops[2], Op::Request { conn: 3, id: 7, timeout_ms: 5000, method, .. } if method == "client.ping")
        );
        assert!(
            matches!(&ops[3], Op::Close { conn: 4, code: 4001, reason } if reason == "Auth timeout")
        );
        assert!(
            matches!(&ops[4], Op::EventError { conn: 5, topic, message } if topic == "chat:x" && message == "boom")
        );
        assert!(
            matches!(&ops[5], Op::RoomVerdict { conn: 6, allowed: false, topic, error: Some(error), .. } if topic == "user:42" && error == "boom")
        );
    }

    #[test]
    fn decodes_the_cluster_kinds() {
        let ops = decode(concat!(
            r#"[8,1,"c1","t",{"x":1},true]"#,
            "\n",
            r#"[9,2,"c2","m",null,500]"#,
            "\n",
            r#"[10,3,"lobby"]"#,
        ))
        .expect("valid ops");
        assert!(
            matches!(&ops[0], Op::RouteEmit { ticket: 1, id, topic, volatile: true, .. } if id == "c1" && topic == "t")
        );
        assert!(
            matches!(&ops[1], Op::RouteRequest { ticket: 2, id, timeout_ms: 500, .. } if id == "c2")
        );
        assert!(matches!(&ops[2], Op::RoomQuery { ticket: 3, topic } if topic == "lobby"));
    }

    #[test]
    fn reports_the_malformed_operation() {
        let error = decode("[1,2,\"t\",null]\n[99,1]").expect_err("kind 99 is unknown");
        assert!(error.to_string().contains("#1"));
        assert!(decode("[0,1]").is_err());
        assert!(decode("nope").is_err());
        assert!(decode("x1 {}").is_err());
        assert!(decode("[1,2").is_err());
    }

    #[test]
    fn a_malformed_line_costs_only_itself() {
        let ops: Vec<_> = super::decode("1 {}\n[99,1]\n\n2 {}").collect();
        assert_eq!(ops.len(), 4);
        assert!(matches!(&ops[0], Ok(Op::Frame { conn: 1, .. })));
        assert!(matches!(&ops[1], Err(error) if error.to_string().contains("#1")));
        assert!(matches!(&ops[2], Err(error) if error.to_string().contains("#2")));
        assert!(matches!(&ops[3], Ok(Op::Frame { conn: 2, .. })));
        assert_eq!(super::decode("").count(), 0, "an empty flush holds nothing");
    }
}
