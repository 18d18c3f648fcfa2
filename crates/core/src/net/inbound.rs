//! What the server does with each frame a client sends: answer it at once, hand it to the application,
//! or drop it. Synchronous, so every rule is testable without a socket.

use serde_json::value::RawValue;

use crate::app::call::{self, Unparsed};
use crate::config::ParseMode;
use crate::protocol::{self, DecodeError, ErrorCode, Inbound, Json};
use crate::rooms::{request, Decision, Denial, Join};
use crate::server::Shared;

use super::Connection;

/// The result of one frame.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Send this frame back to the client.
    Reply(String),
    /// Hand this call to the application.
    Call(String),
    /// Hand this call to the application, then send this frame back: the application hears of a change
    /// before the client can act on its answer.
    CallThenReply {
        /// The call.
        call: String,
        /// The frame.
        reply: String,
    },
    /// Nothing to do.
    Nothing,
}

/// Handles a text frame that arrived over the connection's rate limit: requests are answered 429 and
/// events with a `system:rate-limited` event, without reaching the application; answers to server requests
/// still count, so the server's own requests complete.
pub(crate) fn limited_text(
    shared: &Shared,
    conn: &Connection,
    text: &str,
    retry_after_ms: u64,
) -> Effect {
    match protocol::decode(text) {
        Ok(Inbound::Request { id, .. }) => error_response(
            id.json(),
            ErrorCode::RateLimited,
            &format!("Rate limit exceeded; retry in {retry_after_ms} ms"),
        ),
        Ok(Inbound::Response { .. } | Inbound::Ack { .. }) => self::text(shared, conn, text),
        Ok(Inbound::Event { .. }) => {
            let data = format!(r#"{{"retryAfter":{retry_after_ms}}}"#);
            let data = serde_json::from_str::<&RawValue>(&data).unwrap_or(RawValue::NULL);
            Effect::Reply(protocol::event_frame(RATE_LIMITED_TOPIC, data))
        }
        Err(_) => Effect::Nothing,
    }
}

/// The topic of the event that tells a client its events are being refused.
const RATE_LIMITED_TOPIC: &str = "system:rate-limited";

/// Handles a text frame.
pub(crate) fn text(shared: &Shared, conn: &Connection, text: &str) -> Effect {
    match protocol::decode(text) {
        Ok(Inbound::Request {
            id,
            method,
            payload,
        }) => {
            let method = match method {
                Ok(method) => method,
                Err(why) => return error_response(id.json(), ErrorCode::InvalidRequest, why),
            };
            if method == PING {
                return Effect::Reply(protocol::response_frame(id.json(), 200, RawValue::NULL));
            }
            if shared.draining.load(std::sync::atomic::Ordering::Acquire) {
                return error_response(
                    id.json(),
                    ErrorCode::ShuttingDown,
                    "The server is shutting down",
                );
            }
            if let Some(effect) = room_method(shared, conn, id.json(), &method, payload) {
                return effect;
            }
            if method == REFRESH {
                return refresh(shared, conn, id.json());
            }
            match shared.router().route(&method) {
                Some(route) => {
                    Effect::Call(call::request(conn.key, id.json(), &method, &route, payload))
                }
                None => error_response(
                    id.json(),
                    ErrorCode::MethodNotFound,
                    &format!("Method '{method}' not found"),
                ),
            }
        }
        Ok(Inbound::Response {
            id,
            status,
            data,
            error,
        }) => match id.as_u64() {
            Some(number) if conn.answer_pending(number) => {
                // A request another node sent through this one is answered there.
                if let Some(cluster) = &shared.cluster {
                    if cluster.answered(number, status, data, error) {
                        return Effect::Nothing;
                    }
                }
                Effect::Call(call::response(conn.key, number, status, data, error))
            }
            _ => {
                tracing::debug!(conn = %conn.id, id = id.as_json(), "response to no pending request, ignored");
                Effect::Nothing
            }
        },
        Ok(Inbound::Ack { seq }) => {
            conn.ack(seq);
            Effect::Nothing
        }
        Ok(Inbound::Event { topic, data }) => {
            let handlers = shared.router().event_handlers(&topic);
            if handlers.is_empty() {
                tracing::debug!(conn = %conn.id, %topic, "event without handler, dropped");
                return Effect::Nothing;
            }
            Effect::Call(call::event(conn.key, &topic, &handlers, data))
        }
        Err(error) => unparsed(shared, conn, text, error),
    }
}

/// Answers the built-in methods `helios.subscribe` and `helios.unsubscribe`, ahead of the router so no
/// application method shadows them; `None` for any other method. Refusals are 200 answers with
/// `success: false`; only a malformed payload is a 400.
fn room_method(
    shared: &Shared,
    conn: &Connection,
    id: Json<'_>,
    method: &str,
    payload: Json<'_>,
) -> Option<Effect> {
    let subscribe = match method {
        request::SUBSCRIBE => true,
        request::UNSUBSCRIBE => false,
        _ => return None,
    };
    let args = match request::args(method, payload) {
        Ok(args) => args,
        Err(why) => return Some(error_response(id, ErrorCode::InvalidRequest, &why)),
    };
    let topic = args.topic.as_ref();
    let answer = |outcome| protocol::response_frame(id, 200, &request::answer(topic, outcome));
    if let Err(denial) = request::check_topic(topic) {
        return Some(Effect::Reply(answer(Err(denial))));
    }
    if !subscribe {
        return Some(if shared.rooms.leave(conn.key, topic) {
            Effect::CallThenReply {
                call: call::room(conn.key, topic, false),
                reply: answer(Ok(())),
            }
        } else {
            Effect::Reply(answer(Err(Denial::NotSubscribed)))
        });
    }
    let effect = match shared.rooms.decide(topic) {
        Decision::Undeclared => {
            tracing::debug!(conn = %conn.id, %topic, "subscription to an undeclared topic refused");
            Effect::Reply(answer(Err(Denial::Undeclared)))
        }
        Decision::Public => match shared.rooms.join(conn.key, topic, || conn.ended()) {
            Join::Joined => Effect::CallThenReply {
                call: call::room(conn.key, topic, true),
                reply: answer(Ok(())),
            },
            Join::Already => Effect::Reply(answer(Ok(()))),
            Join::Full => Effect::Reply(answer(Err(Denial::TooManyRooms))),
            // Only a closed connection is refused, and a closed one sends nothing more.
            Join::Closed => Effect::Nothing,
        },
        Decision::Protected {
            validator,
            captures,
        } => {
            let data = args.data.unwrap_or(RawValue::NULL);
            Effect::Call(call::validate(
                conn.key, id, topic, validator, &captures, data,
            ))
        }
    };
    Some(effect)
}

/// The built-in method a client probes the link with, answered here so that a busy or absent application
/// cannot make a live link look dead; browsers cannot send WebSocket pings.
const PING: &str = "helios.ping";

/// The built-in method that gives a session a new token.
const REFRESH: &str = "session.refresh";

/// Answers `session.refresh`: a new token for the same session, at most once per ttl / 2.
fn refresh(shared: &Shared, conn: &Connection, id: Json<'_>) -> Effect {
    let (Some(sessions), Some(tokens)) = (&shared.config.sessions, &shared.tokens) else {
        return error_response(
            id,
            ErrorCode::MethodNotFound,
            "Method 'session.refresh' not found: sessions are off",
        );
    };
    match conn.refresh(sessions.ttl / 2) {
        Some(Ok(gen)) => {
            if let Some(cluster) = &shared.cluster {
                cluster.write_sessions_now();
            }
            let token = tokens.issue(&conn.id, gen, sessions.ttl);
            let data =
                serde_json::json!({ "token": token, "ttl": sessions.ttl.as_millis() as u64 });
            let data = serde_json::value::to_raw_value(&data)
                .unwrap_or_else(|_| RawValue::NULL.to_owned());
            Effect::CallThenReply {
                call: call::refreshed(conn.key, &token),
                reply: protocol::response_frame(id, 200, &data),
            }
        }
        Some(Err(wait)) => error_response(
            id,
            ErrorCode::RateLimited,
            &format!(
                "Session refreshed too recently; retry in {} ms",
                wait.as_millis()
            ),
        ),
        None => error_response(
            id,
            ErrorCode::MethodNotFound,
            "Method 'session.refresh' not found: no session",
        ),
    }
}

/// Handles a binary frame: never a protocol message.
pub(crate) fn binary(shared: &Shared, conn: &Connection, bytes: &[u8]) -> Effect {
    match shared.config.parse_mode {
        ParseMode::Permissive => Effect::Call(call::unparsed(conn.key, Unparsed::Binary(bytes))),
        ParseMode::Strict => {
            tracing::debug!(conn = %conn.id, len = bytes.len(), "binary frame refused");
            error_frame(
                ErrorCode::UnsupportedFrame,
                "binary frames are not protocol messages",
            )
        }
    }
}

fn unparsed(shared: &Shared, conn: &Connection, text: &str, error: DecodeError) -> Effect {
    match (shared.config.parse_mode, &error) {
        (ParseMode::Permissive, DecodeError::InvalidJson(_)) => {
            Effect::Call(call::unparsed(conn.key, Unparsed::Text(text)))
        }
        (ParseMode::Permissive, DecodeError::InvalidMessage(_)) => {
            Effect::Call(call::unparsed(conn.key, Unparsed::Json(text)))
        }
        (ParseMode::Strict, DecodeError::InvalidJson(_)) => {
            tracing::debug!(conn = %conn.id, %error, "invalid frame");
            error_frame(ErrorCode::InvalidJson, &error.to_string())
        }
        (ParseMode::Strict, DecodeError::InvalidMessage(_)) => {
            tracing::debug!(conn = %conn.id, %error, "invalid frame");
            error_frame(ErrorCode::InvalidMessage, &error.to_string())
        }
    }
}

fn error_response(id: Json<'_>, code: ErrorCode, message: &str) -> Effect {
    let body = protocol::error_body(code, message);
    Effect::Reply(protocol::response_frame(id, code.status(), &body))
}

fn error_frame(code: ErrorCode, message: &str) -> Effect {
    Effect::Reply(protocol::error_frame(code, message, None))
}
