//! What nodes say to each other over Redis pub/sub: one JSON array per message, `[origin, kind, ...]`.
//! Payloads travel as the raw JSON text the application gave, embedded once and never re-encoded.
//!
//! | kind | array                                                   | channel | meaning                          |
//! |------|---------------------------------------------------------|---------|----------------------------------|
//! | 0    | `[origin, 0, target, exclude, volatile, data]`          | all     | a broadcast to a room or pattern; `exclude` is a connection id or null |
//! | 1    | `[origin, 1, ticket, connection, topic, volatile, data]` | node   | an event for one connection      |
//! | 2    | `[origin, 2, ticket, connection, method, timeoutMs, payload]` | node | a server request to one connection |
//! | 3    | `[origin, 3, ticket, status, data, error]`              | node    | the client's answer to kind 2; to kind 1: `200, true`, the event was queued for the connection |
//! | 4    | `[origin, 4, ticket, reason]`                           | node    | kind 1 or 2 failed (`timeout`, `unknown-connection`, ...) |
//! | 5    | `[origin, 5, ticket, topic]`                            | all     | who is in the room `topic`?      |
//! | 6    | `[origin, 6, ticket, [connection ids]]`                 | node    | the answer to kind 5             |
//! | 7    | `[origin, 7, sessionId]`                                | node    | the session resumed elsewhere: drop your copy |
//! | 8    | `[origin, 8, ticket, sessionId, gen]`                   | node    | the session's client resumes on the origin with a token of generation `gen`: stop serving it, write its latest state, answer |
//! | 9    | `[origin, 9, ticket, outcome]`                          | node    | the answer to kind 8: `stored` (Redis holds the final write), `not-held`, `not-owned`, `token-used` (the session goes on) or `failed` |

use std::borrow::Cow;

use serde::Serialize;
use serde_json::value::RawValue;

use crate::protocol::array::{field, raw};

/// One message between nodes, borrowed from the text it was read from.
#[derive(Debug)]
pub(crate) enum Envelope<'a> {
    /// A broadcast to deliver to local members.
    Broadcast {
        target: Cow<'a, str>,
        exclude: Option<Cow<'a, str>>,
        volatile: bool,
        data: &'a RawValue,
    },
    /// An event for one connection of the receiving node, which answers `ticket` either way.
    Emit {
        ticket: u64,
        conn: Cow<'a, str>,
        topic: Cow<'a, str>,
        volatile: bool,
        data: &'a RawValue,
    },
    /// A server request for one connection of the receiving node.
    Request {
        ticket: u64,
        conn: Cow<'a, str>,
        method: Cow<'a, str>,
        timeout_ms: u64,
        payload: &'a RawValue,
    },
    /// The answer to a request the receiving node sent.
    Answer {
        ticket: u64,
        status: u16,
        data: &'a RawValue,
        error: Option<&'a RawValue>,
    },
    /// A request the receiving node sent failed.
    Failed { ticket: u64, reason: Cow<'a, str> },
    /// Asks every node who is in a room.
    RoomQuery { ticket: u64, topic: Cow<'a, str> },
    /// One node's answer to a room query.
    Members { ticket: u64, ids: Vec<Cow<'a, str>> },
    /// A session resumed on the origin node: the receiving node drops its copy.
    DropSession { session: Cow<'a, str> },
    /// The session's client resumes on the origin node with a token of generation `gen`: the receiving
    /// node, its owner, stops serving it, writes its latest state to Redis and answers `ticket`.
    HandOver {
        ticket: u64,
        session: Cow<'a, str>,
        gen: u64,
    },
    /// The answer to a hand-over the receiving node asked for (see [`super::HandOff`]).
    HandedOver { ticket: u64, outcome: Cow<'a, str> },
}

fn to_text(value: &impl Serialize) -> String {
    // Tuples of strings, numbers and raw JSON always serialize.
    serde_json::to_string(value).unwrap_or_default()
}

impl Envelope<'_> {
    /// The envelope as sent by `origin`.
    pub(crate) fn encode(&self, origin: &str) -> String {
        match self {
            Envelope::Broadcast {
                target,
                exclude,
                volatile,
                data,
            } => to_text(&(origin, 0, target, exclude, volatile, data)),
            Envelope::Emit {
                ticket,
                conn,
                topic,
                volatile,
                data,
            } => to_text(&(origin, 1, ticket, conn, topic, volatile, data)),
            Envelope::Request {
                ticket,
                conn,
                method,
                timeout_ms,
                payload,
            } => to_text(&(origin, 2, ticket, conn, method, timeout_ms, payload)),
            Envelope::Answer {
                ticket,
                status,
                data,
                error,
            } => to_text(&(origin, 3, ticket, status, data, error)),
            Envelope::Failed { ticket, reason } => to_text(&(origin, 4, ticket, reason)),
            Envelope::RoomQuery { ticket, topic } => to_text(&(origin, 5, ticket, topic)),
            Envelope::Members { ticket, ids } => to_text(&(origin, 6, ticket, ids)),
            Envelope::DropSession { session } => to_text(&(origin, 7, session)),
            Envelope::HandOver {
                ticket,
                session,
                gen,
            } => to_text(&(origin, 8, ticket, session, gen)),
            Envelope::HandedOver { ticket, outcome } => to_text(&(origin, 9, ticket, outcome)),
        }
    }
}

/// Reads an envelope: its origin node and what it says. Another node's bug (or a foreign publisher on
/// the channel) gives an error, never a panic.
pub(crate) fn decode(text: &str) -> Result<(Cow<'_, str>, Envelope<'_>), String> {
    let item: Vec<&RawValue> = serde_json::from_str(text).map_err(|error| error.to_string())?;
    let origin: Cow<'_, str> = field(&item, 0)?;
    let envelope = match field::<u8>(&item, 1)? {
        0 => Envelope::Broadcast {
            target: field(&item, 2)?,
            exclude: field(&item, 3)?,
            volatile: field(&item, 4)?,
            data: raw(&item, 5)?,
        },
        1 => Envelope::Emit {
            ticket: field(&item, 2)?,
            conn: field(&item, 3)?,
            topic: field(&item, 4)?,
            volatile: field(&item, 5)?,
            data: raw(&item, 6)?,
        },
        2 => Envelope::Request {
            ticket: field(&item, 2)?,
            conn: field(&item, 3)?,
            method: field(&item, 4)?,
            timeout_ms: field(&item, 5)?,
            payload: raw(&item, 6)?,
        },
        3 => Envelope::Answer {
            ticket: field(&item, 2)?,
            status: field(&item, 3)?,
            data: raw(&item, 4)?,
            error: field::<Option<&RawValue>>(&item, 5)?,
        },
        4 => Envelope::Failed {
            ticket: field(&item, 2)?,
            reason: field(&item, 3)?,
        },
        5 => Envelope::RoomQuery {
            ticket: field(&item, 2)?,
            topic: field(&item, 3)?,
        },
        6 => Envelope::Members {
            ticket: field(&item, 2)?,
            ids: field(&item, 3)?,
        },
        7 => Envelope::DropSession {
            session: field(&item, 2)?,
        },
        8 => Envelope::HandOver {
            ticket: field(&item, 2)?,
            session: field(&item, 3)?,
            gen: field(&item, 4)?,
        },
        9 => Envelope::HandedOver {
            ticket: field(&item, 2)?,
            outcome: field(&item, 3)?,
        },
        kind => return Err(format!("unknown kind {kind}")),
    };
    Ok((origin, envelope))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> &RawValue {
        serde_json::from_str(text).expect("valid JSON")
    }

    fn round_trip(envelope: Envelope<'_>) {
        let text = envelope.encode("node-a");
        let (origin, decoded) = decode(&text).expect("decodes");
        assert_eq!(origin, "node-a");
        assert_eq!(decoded.encode("node-a"), text);
        assert_eq!(
            std::mem::discriminant(&decoded),
            std::mem::discriminant(&envelope)
        );
    }

    #[test]
    fn every_kind_round_trips() {
        round_trip(Envelope::Broadcast {
            target: "chat:*".into(),
            exclude: Some("c1".into()),
            volatile: true,
            data: raw(r#"{"text":"hi \"there\""}"#),
        });
        round_trip(Envelope::Broadcast {
            target: "lobby".into(),
            exclude: None,
            volatile: false,
            data: raw("[1,2]"),
        });
        round_trip(Envelope::Emit {
            ticket: 8,
            conn: "c2".into(),
            topic: "t".into(),
            volatile: false,
            data: raw("null"),
        });
        round_trip(Envelope::Request {
            ticket: 9,
            conn: "c3".into(),
            method: "client.ping".into(),
            timeout_ms: 500,
            payload: raw(r#"{"a":1}"#),
        });
        round_trip(Envelope::Answer {
            ticket: 9,
            status: 200,
            data: raw("42"),
            error: None,
        });
        round_trip(Envelope::Answer {
            ticket: 9,
            status: 500,
            data: raw("null"),
            error: Some(raw(r#"{"code":"X"}"#)),
        });
        round_trip(Envelope::Failed {
            ticket: 1,
            reason: "timeout".into(),
        });
        round_trip(Envelope::RoomQuery {
            ticket: 2,
            topic: "lobby".into(),
        });
        round_trip(Envelope::Members {
            ticket: 2,
            ids: vec!["a".into(), "b".into()],
        });
        round_trip(Envelope::DropSession {
            session: "s".into(),
        });
        round_trip(Envelope::HandOver {
            ticket: 3,
            session: "s".into(),
            gen: 4,
        });
        round_trip(Envelope::HandedOver {
            ticket: 3,
            outcome: "stored".into(),
        });
    }

    #[test]
    fn the_payload_is_embedded_as_given() {
        let text = Envelope::Broadcast {
            target: "lobby".into(),
            exclude: None,
            volatile: false,
            data: raw(r#"{"b": 1,  "a":2}"#),
        }
        .encode("n");
        assert_eq!(text, r#"["n",0,"lobby",null,false,{"b": 1,  "a":2}]"#);
    }

    #[test]
    fn foreign_messages_are_errors() {
        assert!(decode("hello").is_err());
        assert!(decode(r#"["n",42]"#).is_err());
        assert!(decode(r#"["n",0,"lobby"]"#).is_err());
        assert!(decode(r#"[1,0,"lobby",null,false,1]"#).is_err());
    }
}
