//! A connection's outbound queue, bounded by the bytes it holds.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::{mpsc, Notify};
use tokio_tungstenite::tungstenite::{Bytes, Utf8Bytes};

/// What the socket task writes next.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// A text frame; clones share the bytes, so one broadcast frame serves every recipient.
    Frame(Utf8Bytes),
    /// A binary frame (echo mode only: protocol messages are text).
    Binary(Bytes),
    /// A ping the application asked for, with its id.
    Ping(u64),
    /// A close frame, after which the connection only waits for the client's close.
    Close { code: u16, reason: String },
}

/// The sending half, shared by everything that writes to the connection.
#[derive(Debug)]
pub(crate) struct Outbox {
    tx: mpsc::UnboundedSender<Outbound>,
    queued: AtomicUsize,
    limit: usize,
    overflowed: AtomicBool,
    overflow: Notify,
}

impl Outbox {
    /// A queue holding at most `limit` bytes of frames.
    pub(crate) fn new(limit: usize) -> (Self, mpsc::UnboundedReceiver<Outbound>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let outbox = Outbox {
            tx,
            queued: AtomicUsize::new(0),
            limit,
            overflowed: AtomicBool::new(false),
            overflow: Notify::new(),
        };
        (outbox, rx)
    }

    /// Queues a frame. Returns false when the connection is gone or has passed the byte limit. A frame
    /// that finds the queue empty is always taken, so one large message never trips the limit alone.
    /// A `volatile` frame over the limit is only dropped: the connection stays, for messages that are
    /// worthless late (positions, typing indicators).
    pub(crate) fn push(&self, frame: Utf8Bytes, volatile: bool) -> bool {
        self.admit(frame.len(), volatile) && self.tx.send(Outbound::Frame(frame)).is_ok()
    }

    /// Queues a binary frame, under the same limit.
    pub(crate) fn push_binary(&self, frame: Bytes) -> bool {
        self.admit(frame.len(), false) && self.tx.send(Outbound::Binary(frame)).is_ok()
    }

    /// Counts `len` more queued bytes, unless that passes the limit.
    fn admit(&self, len: usize, volatile: bool) -> bool {
        if self.overflowed.load(Ordering::Acquire) {
            return false;
        }
        let before = self.queued.fetch_add(len, Ordering::AcqRel);
        if before > 0 && before + len > self.limit {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            if volatile {
                return false;
            }
            if !self.overflowed.swap(true, Ordering::AcqRel) {
                tracing::warn!(
                    queued = before,
                    limit = self.limit,
                    "outbound limit passed, dropping the connection"
                );
                self.overflow.notify_one();
            }
            return false;
        }
        true
    }

    /// Resolves once the byte limit has been passed; the socket task then drops the connection, since a
    /// client that does not read would not read a close frame either.
    pub(crate) async fn overflowed(&self) {
        self.overflow.notified().await;
    }

    /// Records that a frame of `len` bytes has left the queue.
    pub(crate) fn written(&self, len: usize) {
        self.queued.fetch_sub(len, Ordering::AcqRel);
    }

    /// Bytes waiting to be written.
    #[cfg(test)]
    pub(crate) fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// Asks the socket task to ping the client.
    pub(crate) fn ping(&self, id: u64) {
        let _ = self.tx.send(Outbound::Ping(id));
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
    fn passing_the_limit_refuses_every_later_frame_and_signals_once() {
        let (outbox, mut rx) = Outbox::new(10);
        assert!(outbox.push(Utf8Bytes::from("123456"), false));
        assert!(!outbox.push(Utf8Bytes::from("123456"), false));
        assert_eq!(outbox.queued(), 6);
        assert!(matches!(rx.try_recv(), Ok(Outbound::Frame(_))));
        assert!(rx.try_recv().is_err());
        outbox.written(6);
        assert!(
            !outbox.push(Utf8Bytes::from("1"), false),
            "an overflowed connection takes nothing more"
        );
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(outbox.overflowed());
    }

    #[test]
    fn a_volatile_frame_over_the_limit_is_dropped_and_the_connection_kept() {
        let (outbox, mut rx) = Outbox::new(10);
        assert!(outbox.push(Utf8Bytes::from("123456"), false));
        assert!(!outbox.push(Utf8Bytes::from("123456"), true));
        assert!(matches!(rx.try_recv(), Ok(Outbound::Frame(_))));
        assert!(rx.try_recv().is_err(), "no close, no frame");
        assert!(outbox.push(Utf8Bytes::from("1234"), false), "still open");
    }

    #[test]
    fn a_large_frame_on_an_empty_queue_is_taken() {
        let (outbox, _rx) = Outbox::new(10);
        assert!(outbox.push(Utf8Bytes::from("x".repeat(100)), false));
    }
}
