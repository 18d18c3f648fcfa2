//! The built-in methods clients join and leave rooms with, `helios.subscribe` and `helios.unsubscribe`:
//! their arguments and their answers. Pure functions over JSON text.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::pattern::{Pattern, Separator};
use crate::protocol::{Json, MAX_NAME_LEN};

/// The method that joins a room.
pub(crate) const SUBSCRIBE: &str = "helios.subscribe";
/// The method that leaves a room.
pub(crate) const UNSUBSCRIBE: &str = "helios.unsubscribe";

/// The payload of both methods: `{ topic, data? }`.
#[derive(Debug, Deserialize)]
pub(crate) struct Args<'a> {
    /// The room.
    #[serde(borrow)]
    pub(crate) topic: Cow<'a, str>,
    /// What the client hands to the room's validator; `null` when absent.
    #[serde(borrow, default)]
    pub(crate) data: Option<&'a RawValue>,
}

/// Reads the payload; the error is the message of a 400 answer.
pub(crate) fn args<'a>(method: &str, payload: Json<'a>) -> Result<Args<'a>, String> {
    serde_json::from_str(payload.get())
        .map_err(|_| format!("{method} takes {{ \"topic\": string, \"data\"?: any }}"))
}

/// Why a subscription was refused (or an unsubscription had nothing to do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// The topic is not a room name: empty, too long, an empty segment or a wildcard.
    InvalidTopic(String),
    /// No room is declared for the topic.
    Undeclared,
    /// The validator returned something other than true.
    PermissionDenied,
    /// The validator threw, rejected or timed out.
    ValidatorFailed(String),
    /// An unsubscribe from a room the connection is not in.
    NotSubscribed,
    /// The connection is in as many rooms as it may be.
    TooManyRooms,
}

impl std::fmt::Display for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Denial::InvalidTopic(why) => write!(f, "invalid topic: {why}"),
            Denial::Undeclared => f.write_str("undeclared topic"),
            Denial::PermissionDenied => f.write_str("permission denied"),
            Denial::ValidatorFailed(message) => write!(f, "validator failed: {message}"),
            Denial::NotSubscribed => f.write_str("not subscribed"),
            Denial::TooManyRooms => f.write_str("too many subscriptions"),
        }
    }
}

/// Checks that a client's topic names one room: what a room declaration or a broadcast could reach.
pub(crate) fn check_topic(topic: &str) -> Result<(), Denial> {
    if topic.len() > MAX_NAME_LEN {
        return Err(Denial::InvalidTopic(format!(
            "longer than {MAX_NAME_LEN} bytes"
        )));
    }
    match Pattern::parse(topic, Separator::Colon) {
        Ok(pattern) if pattern.is_exact() => Ok(()),
        Ok(_) => Err(Denial::InvalidTopic(
            "'*' and '**' are not allowed in a topic".to_owned(),
        )),
        Err(error) => Err(Denial::InvalidTopic(error.to_string())),
    }
}

#[derive(Serialize)]
struct Answer<'a> {
    success: bool,
    topic: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// The data of the 200 answer: `{ success: true, topic }` or `{ success: false, topic, error }`.
pub(crate) fn answer(topic: &str, outcome: Result<(), Denial>) -> Box<RawValue> {
    let answer = Answer {
        success: outcome.is_ok(),
        topic,
        error: outcome.err().map(|denial| denial.to_string()),
    };
    serde_json::value::to_raw_value(&answer).unwrap_or_else(|_| RawValue::NULL.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> &RawValue {
        serde_json::from_str(text).expect("valid JSON")
    }

    #[test]
    fn reads_topic_and_optional_data() {
        let parsed = args(
            SUBSCRIBE,
            raw(r#"{"topic":"user:42","data":{"k":1}}"#).into(),
        )
        .expect("valid");
        assert_eq!(parsed.topic, "user:42");
        assert_eq!(parsed.data.map(RawValue::get), Some(r#"{"k":1}"#));
        assert!(args(SUBSCRIBE, raw(r#"{"topic":"lobby"}"#).into())
            .expect("valid")
            .data
            .is_none());
        assert!(args(SUBSCRIBE, raw(r#"{"topic":1}"#).into()).is_err());
        assert!(args(SUBSCRIBE, raw("null").into()).is_err());
    }

    #[test]
    fn topics_are_exact_room_names() {
        assert_eq!(check_topic("chat:general"), Ok(()));
        assert!(check_topic("").is_err());
        assert!(check_topic("chat::x").is_err());
        assert!(check_topic("chat:*").is_err());
        assert!(check_topic(&"x".repeat(MAX_NAME_LEN + 1)).is_err());
    }

    #[test]
    fn answers_say_success_or_why_not() {
        assert_eq!(
            answer("lobby", Ok(())).get(),
            r#"{"success":true,"topic":"lobby"}"#
        );
        assert_eq!(
            answer("x", Err(Denial::ValidatorFailed("boom".to_owned()))).get(),
            r#"{"success":false,"topic":"x","error":"validator failed: boom"}"#
        );
    }
}
