//! Writing the outbox's frames to the socket, and giving up on a client that does not take them.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;

use tokio::sync::futures::Notified;
use tokio::time::{timeout, Duration};

use crate::app::call;
use crate::net::frame::{BINARY, PING, TEXT};
use crate::net::health;
use crate::net::outbox::{Outbound, Outbox};
use crate::net::Connection;
use crate::server::Shared;

use super::closing::{lost, start_close, Closing, Ending, ABNORMAL};
use super::pings::Pings;
use super::Socket;

/// Code reported when the connection was dropped for not reading what was sent to it.
const TRY_AGAIN_LATER: u16 = 1013;

/// Most queued frames written before one flush; bounds how long reading waits on a busy writer.
pub(super) const MAX_FRAMES_PER_FLUSH: usize = 256;

/// Why a write was given up.
pub(super) enum GaveUp {
    /// The connection passed its outbound limit.
    Overflow,
    /// The server is stopping and the close timeout has passed.
    Stopped,
    /// The socket failed.
    Failed(std::io::Error),
    /// The client took nothing for as long as the health check allows a silent client.
    Stalled,
}

impl GaveUp {
    /// How the connection ends; `closing` is the close we had started, if any.
    pub(super) async fn ending(self, conn: &Connection, closing: Closing) -> Ending {
        match self {
            GaveUp::Overflow => {
                conn.tell(call::limit(conn.key, "backpressure")).await;
                Ending::new(TRY_AGAIN_LATER, "Backpressure limit exceeded")
            }
            GaveUp::Stopped => Ending::new(1001, "Server stopping"),
            GaveUp::Stalled => {
                tracing::info!(conn = %conn.id, "the client reads nothing, dropping the connection");
                conn.tell(call::health(conn.key, "timeout", None)).await;
                Ending::new(ABNORMAL, "Ping timeout")
            }
            GaveUp::Failed(error) => {
                tracing::debug!(conn = %conn.id, %error, "write failed");
                lost(closing)
            }
        }
    }
}

/// Waits for a write: a client that stops reading blocks it, so the outbound limit ends the wait, and so
/// does a stop once the close timeout has passed (a write that is merely in progress finishes), and
/// `stall`, when given, after which the client counts as gone. Boxed by callers: held inline, this rarely
/// long wait would size every connection's task.
///
/// `ready` is the loop's own wait on the outbox's signal, continued here: a second wait would let the
/// signal go to the loop's, which nobody polls meanwhile. The signal also comes for frames queued during
/// the write; that wake-up is handed back after it, for the loop.
pub(super) async fn unless_stuck<'a, T>(
    write: impl Future<Output = std::io::Result<T>>,
    outbox: &'a Outbox,
    mut ready: Pin<&mut Notified<'a>>,
    stall: Option<Duration>,
    shared: &Shared,
) -> Result<T, GaveUp> {
    let mut queued = false;
    let result = tokio::select! {
        written = write => written.map_err(GaveUp::Failed),
        gave_up = async {
            loop {
                ready.as_mut().await;
                ready.set(outbox.ready());
                if outbox.overflowed() {
                    return GaveUp::Overflow;
                }
                if outbox.stopping() {
                    tokio::time::sleep(shared.config.close_timeout).await;
                    return GaveUp::Stopped;
                }
                queued = true;
            }
        } => Err(gave_up),
        _ = async {
            match stall {
                Some(stall) => tokio::time::sleep(stall).await,
                None => std::future::pending().await,
            }
        } => Err(GaveUp::Stalled),
    };
    if queued {
        outbox.wake();
    }
    result
}

/// How long a write to a TLS client may wait before the client counts as gone: as long as the health
/// check gives a client that answers nothing (its unanswered pings, then a pong's timeout). A write to a
/// TLS session cannot be set aside half done, so the health check cannot run during it; over plain TCP
/// what the socket does not take waits in the wire's backlog and the health check runs meanwhile. A
/// batch is at most the outbound limit's worth of bytes (plus a frame), so a client reading at all takes
/// it well within this.
pub(super) fn stall_limit(shared: &Shared) -> Option<Duration> {
    shared
        .config
        .health_check
        .map(|health| health.interval * health.max_missed.max(1) + health.timeout)
}

/// Writes what is queued now, within the close timeout: the last words before a close.
pub(super) async fn flush_queue(
    ws: &mut Socket,
    outbox: &Outbox,
    closing: &mut Closing,
    pings: &mut Pings,
    shared: &Shared,
) {
    let flushed = async {
        while closing.is_none() {
            let batch = outbox.take(MAX_FRAMES_PER_FLUSH);
            if batch.is_empty() {
                break;
            }
            write(ws, outbox, batch, closing, pings, shared).await?;
        }
        Ok::<(), std::io::Error>(())
    };
    let _ = timeout(shared.config.close_timeout, flushed).await;
}

/// Sends a batch taken from the queue; over TLS its frames then leave together, in one flush.
pub(super) async fn write(
    ws: &mut Socket,
    outbox: &Outbox,
    batch: VecDeque<Outbound>,
    closing: &mut Closing,
    pings: &mut Pings,
    shared: &Shared,
) -> std::io::Result<()> {
    for item in batch {
        match item {
            Outbound::Frame(frame) => {
                ws.send(TEXT, frame.as_bytes())?;
                outbox.written(frame.len());
                shared.stats.sent(frame.len());
            }
            Outbound::Binary(frame) => {
                ws.send(BINARY, &frame)?;
                outbox.written(frame.len());
                shared.stats.sent(frame.len());
            }
            Outbound::Ping(id) => {
                pings.sent(id);
                ws.send(PING, &health::payload(health::ON_DEMAND, id))?;
            }
            Outbound::Close { code, reason } => {
                Box::pin(start_close(ws, code, &reason, closing, shared)).await;
                return Ok(());
            }
        }
    }
    ws.flush_tls().await
}
