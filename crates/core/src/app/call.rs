//! Calls from the core to the application, each a JSON array whose first element is its kind, delivered in
//! batches: a JSON array of calls. The two commonest, a request and an event with one handler, come bare: their
//! kind and four values in the batch itself, without an array of their own that the application would parse
//! and drop at once.
//!
//! | kind | array                                                  | meaning                                  |
//! |------|--------------------------------------------------------|------------------------------------------|
//! | 0    | `[0, conn, id, url, remoteAddress, data]`              | a connection opened; `data` is the object the upgrade hook gave, or null |
//! | 0    | `[0, conn, id, url, remoteAddress, data, restored]`    | cluster: a session brought over from another node, `data` its stored data; `restored` is `resumed` (its client resumed it here: call 13 follows) or `suspended` (taken over from a dead node, waiting for its client; url and address empty) |
//! | 1    | `[1, conn, code, reason, ended]`                       | a connection's socket closed; `ended` is false when its session waits for the client to come back |
//! | 2    | `2, conn, requestId, handler, payload` (bare)          | run a method registered under its own name, with no middleware |
//! | 2    | `[2, conn, requestId, handler, payload, method, [middleware]?]` | run a method through a pattern (`method` is the name the client called), or through middleware (`method` is null when the handler is registered under the name itself) |
//! | 3    | `3, conn, topic, handler, data` (bare)                 | a client event for one handler           |
//! | 3    | `[3, conn, topic, [handlers], data]`                   | a client event for several handlers      |
//! | 4    | `[4, conn, requestId, status, data, error]`            | a client answered a server request       |
//! | 5    | `[5, conn, requestId, reason]`                         | a server request failed: `timeout`, or `too-many-pending` (the connection's limit) |
//! | 6    | `[6, conn, format, content]`                           | a frame that is not a protocol message (permissive mode); format is `json` (content raw), `text` or `binary` (base64) |
//! | 7    | `[7, conn, topic, joined]`                             | the connection joined a room through `helios.subscribe` (`true`: at once for a public room, once op 5 allowed it for a protected one) or left a room through `helios.unsubscribe` (`false`); a close leaves every room without this call |
//! | 8    | `[8, conn, requestId, topic, validator, [captures], data]` | run a protected room's validator; answered with op 5 |
//! | 9    | `[9, conn, "pong", latencyMs]`, `[9, conn, "missed", count]`, `[9, conn, "timeout", null]` | health checks: a pong came back (only when asked for), a ping went unanswered, the connection is given up on |
//! | 10   | `[10, conn, pingId, latencyMs]`                         | the answer to an application ping (op 6) |
//! | 11   | `[11, upgradeId, url, {headers}, remoteAddress]`        | run the upgrade hook (no connection yet); answered with op 7 |
//! | 13   | `[13, conn, "recovered", replayed, gap]`, `[13, conn, "refreshed", token]` | the session was resumed on a new socket, or got a new token |
//! | 12   | `[12, conn, limit]`                                     | the connection hit a limit: `rate-limited` (first refusal of a run), `message-too-large`, `backpressure` (closed with 1009 / 1013), `idle-timeout` (closed for silence) |
//! | 14   | `[14, ticket, status, data, error]`                     | cluster: a request routed to another node (op 9) was answered; a routed emit (op 8) is answered `200, true` once the node holding the connection queued it |
//! | 15   | `[15, ticket, reason]`                                  | cluster: a routed emit or request failed: `unknown-connection`, `timeout`, `connection-closed`, `too-many-pending`, `cluster-unavailable` |
//! | 16   | `[16, ticket, node, [connectionIds]]`                   | cluster: one node's answer to a room query (op 10) |
//!
//! `conn` is the connection's numeric key, the one ops address.
//!
//! The open call (0) comes when the connection opens, or, when the application asked to hear of
//! connections only as they do something ([`crate::Server::report_opens`]), just before the first call
//! about it; a connection the application never heard of ends without a close call (1).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::value::RawValue;

use crate::protocol::Json;
use crate::router::{HandlerId, Route};

fn to_text(value: &impl Serialize) -> String {
    // Tuples of strings, numbers and raw JSON always serialize.
    serde_json::to_string(value).unwrap_or_default()
}

/// A connection opened; `origin` is what [`origin`] made of its url, address and data.
pub(crate) fn open(conn: u64, id: &str, origin: &str) -> String {
    format!("[0,{conn},{},{origin}]", to_text(&id))
}

/// The elements of a connection's open call after its key and id: its url, its address and the upgrade
/// hook's data, as JSON text without the array's brackets. Kept by a connection the application has not
/// heard of yet, which holds its key and id anyway.
pub(crate) fn origin(url: &str, remote: &str, data: Option<&RawValue>) -> String {
    elements(&(url, remote, data))
}

/// The JSON text of a tuple's elements, without the array's brackets around them.
fn elements(tuple: &impl Serialize) -> String {
    let mut text = to_text(tuple);
    // Trimmed in place: every one-handler event call is made here; a copy would be a second allocation each.
    if text.starts_with('[') && text.ends_with(']') {
        text.pop();
        text.remove(0);
    }
    text
}

/// How a session brought over from another node opened here.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Restored {
    /// Its client resumed it on this node.
    Resumed,
    /// Taken over from a dead node; it waits for its client.
    Suspended,
}

/// A session was brought over from another node.
pub(crate) fn restored(
    conn: u64,
    id: &str,
    url: &str,
    remote: &str,
    data: Option<&RawValue>,
    how: Restored,
) -> String {
    let how = match how {
        Restored::Resumed => "resumed",
        Restored::Suspended => "suspended",
    };
    to_text(&(0, conn, id, url, remote, data, how))
}

/// Ask the upgrade hook about a request.
pub(crate) fn upgrade(
    id: u64,
    url: &str,
    headers: &BTreeMap<String, String>,
    remote: &str,
) -> String {
    to_text(&(11, id, url, headers, remote))
}

/// A connection closed.
pub(crate) fn close(conn: u64, code: u16, reason: &str, ended: bool) -> String {
    to_text(&(1, conn, code, reason, ended))
}

/// The session was resumed.
pub(crate) fn recovered(conn: u64, replayed: usize, gap: bool) -> String {
    to_text(&(13, conn, "recovered", replayed, gap))
}

/// The session got a new token.
pub(crate) fn refreshed(conn: u64, token: &str) -> String {
    to_text(&(13, conn, "refreshed", token))
}

/// Run the method `route` leads to. Written by hand rather than through serde: the id and payload are
/// embedded as they stand, and this is the call of every request.
pub(crate) fn request(
    conn: u64,
    id: Json<'_>,
    method: &str,
    route: &Route,
    payload: Json<'_>,
) -> String {
    let (id, payload) = (id.get(), payload.get());
    let bare = route.exact && route.middleware.is_empty();
    let mut call = String::with_capacity(40 + id.len() + payload.len());
    if !bare {
        call.push('[');
    }
    call.push_str("2,");
    call.push_str(itoa::Buffer::new().format(conn));
    call.push(',');
    call.push_str(id);
    call.push(',');
    call.push_str(itoa::Buffer::new().format(route.handler));
    call.push(',');
    call.push_str(payload);
    if !bare {
        call.push(',');
        call.push_str(&to_text(&(!route.exact).then_some(method)));
        if !route.middleware.is_empty() {
            call.push(',');
            call.push_str(&to_text(&route.middleware));
        }
        call.push(']');
    }
    call
}

/// A client event for `handlers`: bare for one.
pub(crate) fn event(conn: u64, topic: &str, handlers: &[HandlerId], data: &RawValue) -> String {
    match handlers {
        [handler] => elements(&(3, conn, topic, handler, data)),
        _ => to_text(&(3, conn, topic, handlers, data)),
    }
}

/// A client's answer to the server request `id`.
pub(crate) fn response(
    conn: u64,
    id: u64,
    status: u16,
    data: &RawValue,
    error: Option<&RawValue>,
) -> String {
    to_text(&(4, conn, id, status, data, error))
}

/// The server request `id` failed without an answer.
pub(crate) fn request_failed(conn: u64, id: u64, reason: &str) -> String {
    to_text(&(5, conn, id, reason))
}

/// The connection joined or left the room `topic`.
pub(crate) fn room(conn: u64, topic: &str, joined: bool) -> String {
    to_text(&(7, conn, topic, joined))
}

/// Run `validator` to decide whether the connection may join `topic`.
pub(crate) fn validate(
    conn: u64,
    id: Json<'_>,
    topic: &str,
    validator: HandlerId,
    captures: &[String],
    data: &RawValue,
) -> String {
    to_text(&(8, conn, id, topic, validator, captures, data))
}

/// A health check outcome (see the table).
pub(crate) fn health(conn: u64, what: &str, value: Option<f64>) -> String {
    to_text(&(9, conn, what, value))
}

/// The pong to an application ping.
pub(crate) fn ping_result(conn: u64, id: u64, latency_ms: f64) -> String {
    to_text(&(10, conn, id, latency_ms))
}

/// A limit the connection hit (see the table).
pub(crate) fn limit(conn: u64, which: &str) -> String {
    to_text(&(12, conn, which))
}

/// A request or emit routed to another node was answered.
pub(crate) fn routed_answer(
    ticket: u64,
    status: u16,
    data: &RawValue,
    error: Option<&RawValue>,
) -> String {
    to_text(&(14, ticket, status, data, error))
}

/// A request or emit routed to another node failed.
pub(crate) fn routed_failed(ticket: u64, reason: &str) -> String {
    to_text(&(15, ticket, reason))
}

/// Node `node` says which of its connections are in the room asked about.
pub(crate) fn room_answer(ticket: u64, node: &str, ids: &[std::borrow::Cow<'_, str>]) -> String {
    to_text(&(16, ticket, node, ids))
}

/// What a permissive server hands over for a frame that is not a protocol message.
pub(crate) enum Unparsed<'a> {
    /// Valid JSON that is not a message.
    Json(&'a str),
    /// Text that is not JSON.
    Text(&'a str),
    /// A binary frame.
    Binary(&'a [u8]),
}

/// A frame that is not a protocol message.
pub(crate) fn unparsed(conn: u64, frame: Unparsed<'_>) -> String {
    match frame {
        Unparsed::Json(json) => {
            let content = serde_json::from_str::<&RawValue>(json).unwrap_or(RawValue::NULL);
            to_text(&(6, conn, "json", content))
        }
        Unparsed::Text(text) => to_text(&(6, conn, "text", text)),
        Unparsed::Binary(bytes) => {
            to_text(&(6, conn, "binary", data_encoding::BASE64.encode(bytes)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_open_call_made_from_its_origin_is_the_whole_array() {
        let data = serde_json::from_str::<&RawValue>(r#"{"user":"ann \"a\""}"#).expect("json");
        let made = open(
            7,
            "c0ffee",
            &origin("/chat?x=1", "127.0.0.1:4000", Some(data)),
        );
        assert_eq!(
            made,
            r#"[0,7,"c0ffee","/chat?x=1","127.0.0.1:4000",{"user":"ann \"a\""}]"#
        );
        assert_eq!(
            open(8, "id", &origin("/", "[::1]:9", None)),
            r#"[0,8,"id","/","[::1]:9",null]"#
        );
    }

    #[test]
    fn an_event_call_is_bare_for_one_handler() {
        let data = RawValue::from_string(r#"{"text":"hi"}"#.to_owned()).expect("json");
        assert_eq!(
            event(3, "chat:1", &[7], &data),
            r#"3,3,"chat:1",7,{"text":"hi"}"#
        );
        assert_eq!(
            event(3, "chat:1", &[7, 8], &data),
            r#"[3,3,"chat:1",[7,8],{"text":"hi"}]"#
        );
    }

    #[test]
    fn a_request_call_is_bare_unless_it_carries_the_method_or_middleware() {
        let json = |text| Json::check(text).expect("json");
        let route = |exact, middleware: &[HandlerId]| Route {
            handler: 4,
            middleware: middleware.to_vec(),
            exact,
        };
        let call = |route: &Route| request(3, json("9"), "user.get", route, json(r#"{"a":1}"#));
        assert_eq!(call(&route(true, &[])), r#"2,3,9,4,{"a":1}"#);
        assert_eq!(call(&route(false, &[])), r#"[2,3,9,4,{"a":1},"user.get"]"#);
        assert_eq!(
            call(&route(true, &[1, 2])),
            r#"[2,3,9,4,{"a":1},null,[1,2]]"#
        );
        assert_eq!(
            call(&route(false, &[1])),
            r#"[2,3,9,4,{"a":1},"user.get",[1]]"#
        );
    }
}
