//! A connection's outbound queue, bounded by the bytes it holds.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// Close code sent when a client reads too slowly for what is sent to it.
const TRY_AGAIN_LATER: u16 = 1013;

/// What the socket task writes next.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// A text frame; clones share the bytes, so one broadcast frame serves every recipient.
    Frame(Utf8Bytes),
    /// A close frame, after which the connection only waits for the client's close.
    Close { code: u16, reason: String },
}

/// The sending half, shared by everything that writes to the connection.
#[derive(Debug)]
pub(crate) struct Outbox {
    tx: mpsc::UnboundedSender<Outbound>,
    queued: AtomicUsize,
    limit: usize,
}

impl Outbox {
    /// A queue holding at most `limit` bytes of frames.
    pub(crate) fn new(limit: usize) -> (Self, mpsc::UnboundedReceiver<Outbound>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let outbox = Outbox {
            tx,
            queued: AtomicUsize::new(0),
            limit,
        };
        (outbox, rx)
    }

    /// Queues a frame. Returns false when the connection is gone, or when the frame would pass the byte
    /// limit, in which case the connection is closed with 1013.
    pub(crate) fn push(&self, frame: Utf8Bytes) -> bool {
        let len = frame.len();
        if self.queued.fetch_add(len, Ordering::AcqRel) + len > self.limit {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            tracing::warn!(queued = self.queued(), limit = self.limit, "outbound limit passed, closing");
            self.close(TRY_AGAIN_LATER, "Backpressure limit exceeded");
            return false;
        }
        self.tx.send(Outbound::Frame(frame)).is_ok()
    }

    /// Records that a frame of `len` bytes has left the queue.
    pub(crate) fn written(&self, len: usize) {
        self.queued.fetch_sub(len, Ordering::AcqRel);
    }

    /// Bytes waiting to be written.
    pub(crate) fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// Asks the socket task to close the connection.
    pub(crate) fn close(&self, code: u16, reason: &str) {
        let _ = self.tx.send(Outbound::Close {
            code,
            reason: reason.to_owned(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passing_the_limit_closes_with_1013() {
        let (outbox, mut rx) = Outbox::new(10);
        assert!(outbox.push(Utf8Bytes::from("123456")));
        assert!(!outbox.push(Utf8Bytes::from("123456")));
        assert_eq!(outbox.queued(), 6);
        assert!(matches!(rx.try_recv(), Ok(Outbound::Frame(_))));
        assert!(matches!(rx.try_recv(), Ok(Outbound::Close { code: 1013, .. })));
        outbox.written(6);
        assert!(outbox.push(Utf8Bytes::from("123456")));
    }
}
