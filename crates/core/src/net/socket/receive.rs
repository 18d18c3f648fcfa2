//! What a client's data messages and pongs become: replies, and calls for the application.

use tokio::time::{Duration, Instant};

use crate::app::call;
use crate::net::frame::Message;
use crate::net::health::{self, Health};
use crate::net::inbound::{self, Effect};
use crate::net::rate::{Admit, Bucket};
use crate::net::Connection;
use crate::server::Shared;

use super::burst::Burst;
use super::pings::Pings;

/// Acts on one data message; returns a frame to send back once the burst's calls are handed over.
pub(super) fn receive(
    shared: &Shared,
    conn: &Connection,
    message: Message,
    bucket: Option<&mut Bucket>,
    last_heard: &mut Instant,
    burst: &mut Burst,
) -> Option<String> {
    match &message {
        Message::Text(text) => shared.stats.received(text.len()),
        Message::Binary(bytes) => shared.stats.received(bytes.len()),
        _ => return None,
    }
    // One clock read per burst: the messages of a burst were read together.
    if burst.is_empty() {
        *last_heard = Instant::now();
    }
    let admit = match (&message, bucket) {
        (Message::Text(_) | Message::Binary(_), Some(bucket)) => match bucket.take(*last_heard) {
            Admit::Allowed => None,
            Admit::Limited { first } => {
                if first {
                    burst.push(conn, call::limit(conn.key, "rate-limited"));
                }
                Some(bucket.retry_after_ms())
            }
            Admit::Exceeded => {
                tracing::info!(conn = %conn.id, "rate limit exceeded again and again, closing");
                conn.close(1008, "Rate limit exceeded");
                Some(bucket.retry_after_ms())
            }
        },
        _ => None,
    };
    let effect = match message {
        Message::Text(text) if shared.config.echo => {
            conn.send(text);
            Effect::Nothing
        }
        Message::Binary(bytes) if shared.config.echo => {
            conn.send_binary(bytes);
            Effect::Nothing
        }
        Message::Text(text) => match admit {
            Some(retry_after) => inbound::limited_text(shared, conn, text.as_str(), retry_after),
            None => inbound::text(shared, conn, text.as_str()),
        },
        Message::Binary(_) if admit.is_some() => Effect::Nothing,
        Message::Binary(bytes) => inbound::binary(shared, conn, &bytes),
        // Control frames are handled by the loop.
        Message::Ping(_) | Message::Pong(_) | Message::Close(_) => Effect::Nothing,
    };
    match effect {
        Effect::Reply(frame) => {
            conn.send(frame);
        }
        Effect::Call(call) => burst.push(conn, call),
        Effect::CallThenReply { call, reply } => {
            burst.push(conn, call);
            return Some(reply);
        }
        Effect::Nothing => {}
    }
    None
}

/// Handles a pong: the answer to a health ping or to an application ping.
pub(super) fn pong(
    shared: &Shared,
    conn: &Connection,
    bytes: &[u8],
    health: Option<&mut Health>,
    pings: &mut Pings,
    burst: &mut Burst,
) {
    let now = Instant::now();
    let millis = |latency: Duration| latency.as_secs_f64() * 1000.0;
    let call = match health::parse(bytes) {
        Some((health::AUTO, id)) => match health.and_then(|health| health.pong(id, now)) {
            Some(latency) if shared.reports_pongs() => {
                call::health(conn.key, "pong", Some(millis(latency)))
            }
            _ => return,
        },
        Some((health::ON_DEMAND, id)) => match pings.answered(id) {
            Some(sent) => {
                call::ping_result(conn.key, id, millis(now.saturating_duration_since(sent)))
            }
            None => return,
        },
        // Unsolicited pongs are allowed (RFC 6455 §5.5.3) and mean nothing.
        _ => return,
    };
    burst.push(conn, call);
}
