//! How a connection ends: the close handshake either way, a failed read, and the code the application
//! hears.

use tokio::time::{timeout, Duration, Instant};

use crate::app::call;
use crate::net::frame::{self, ReadError, CLOSE};
use crate::net::Connection;
use crate::server::Shared;

use super::Socket;

/// Code reported when the connection ended without a close frame.
pub(super) const ABNORMAL: u16 = 1006;

/// The close we started: when we stop waiting for the client's, and how the connection then ends. Boxed:
/// closes are rare, and the loop's state is in every connection's task.
pub(super) type Closing = Option<Box<(Instant, Ending)>>;

/// How the connection ends once its socket is lost: with the close we had started, if any.
pub(super) fn lost(closing: Closing) -> Ending {
    closing
        .map(|closing| closing.1)
        .unwrap_or_else(|| Ending::new(ABNORMAL, ""))
}

/// How the connection ended, as the application hears it.
pub(super) struct Ending {
    pub(super) code: u16,
    pub(super) reason: String,
}

impl Ending {
    pub(super) fn new(code: u16, reason: impl Into<String>) -> Self {
        Ending {
            code,
            reason: reason.into(),
        }
    }
}

/// Starts the close a server stop asks for, unless a close has started already.
pub(super) async fn close_for_stop(ws: &mut Socket, closing: &mut Closing, shared: &Shared) {
    if closing.is_none() {
        start_close(ws, 1001, "Server stopping", closing, shared).await;
    }
}

/// The client's close frame: answered with the same code unless we started the close, whose code then wins.
pub(super) async fn close_received(
    ws: &mut Socket,
    frame: Option<(u16, String)>,
    closing: Closing,
    shared: &Shared,
) -> Ending {
    if let Some(closing) = closing {
        return closing.1;
    }
    let payload = match &frame {
        Some((code, _)) => code.to_be_bytes().to_vec(),
        None => Vec::new(),
    };
    let _ = timeout(
        shared.config.close_timeout,
        ws.send_flushed(CLOSE, &payload),
    )
    .await;
    match frame {
        Some((code, reason)) => Ending::new(code, reason),
        None => Ending::new(1005, ""),
    }
}

/// Sends a close frame and starts waiting for the client's answer. The loop goes on, so a plain socket
/// that does not take the frame at once is drained by it, under the close deadline.
pub(super) async fn start_close(
    ws: &mut Socket,
    code: u16,
    reason: &str,
    closing: &mut Closing,
    shared: &Shared,
) {
    let frame = frame::close_payload(code, reason);
    if let Err(error) = ws
        .send_soon(CLOSE, &frame, shared.config.close_timeout)
        .await
    {
        tracing::debug!(%error, "close frame not sent");
    }
    *closing = Some(Box::new((
        Instant::now() + shared.config.close_timeout,
        Ending::new(code, reason),
    )));
}

/// Ends the connection after a read error, telling the client why when the error is its fault.
pub(super) async fn fail(
    ws: &mut Socket,
    conn: &Connection,
    error: ReadError,
    closing: Closing,
) -> Ending {
    let invalid = match error {
        ReadError::Invalid(invalid) => invalid,
        ReadError::Io(error) => {
            tracing::debug!(conn = %conn.id, %error, "connection lost");
            return lost(closing);
        }
    };
    let (code, reason) = (invalid.code(), invalid.reason());
    tracing::info!(conn = %conn.id, error = %invalid, code, "closing connection after bad input");
    if invalid == frame::Invalid::TooLarge {
        conn.tell(call::limit(conn.key, "message-too-large")).await;
    }
    // Best effort: the peer misbehaved, so do not wait long for it.
    let _ = timeout(Duration::from_secs(1), ws.close(code, reason)).await;
    Ending::new(code, reason)
}
