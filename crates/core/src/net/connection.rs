//! The shared handle of one live connection: what the application and the server use to reach it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::outbox::Outbox;
use crate::stats::Stats;

/// A live connection, registered under its numeric key while its socket task runs.
#[derive(Debug)]
pub(crate) struct Connection {
    /// The numeric key calls and ops use.
    pub(crate) key: u64,
    /// The public id (a UUID), stable for the connection's life.
    pub(crate) id: String,
    outbox: Outbox,
    /// Carries calls to the application; held here so work started for this connection can report back.
    pub(crate) calls: mpsc::Sender<String>,
    pending: Mutex<Pending>,
    stats: Arc<Stats>,
}

/// Server requests waiting for the client's answer, each with its timeout task.
#[derive(Debug, Default)]
struct Pending {
    closed: bool,
    timers: HashMap<u64, AbortHandle>,
}

impl Connection {
    pub(crate) fn new(
        key: u64,
        id: String,
        outbox: Outbox,
        calls: mpsc::Sender<String>,
        stats: Arc<Stats>,
    ) -> Self {
        Connection {
            key,
            id,
            outbox,
            calls,
            pending: Mutex::new(Pending::default()),
            stats,
        }
    }

    /// Queues a text frame; false (and counted as dropped) when it could not be queued.
    pub(crate) fn send(&self, frame: impl Into<Utf8Bytes>) -> bool {
        self.queue(frame.into(), false)
    }

    /// Queues a frame; a `volatile` one is dropped (and counted) rather than close a slow connection.
    pub(crate) fn queue(&self, frame: Utf8Bytes, volatile: bool) -> bool {
        let queued = self.outbox.push(frame, volatile);
        if !queued {
            self.stats.dropped();
        }
        queued
    }

    /// Records a frame of `len` bytes written to the socket: out of the queue, into the stats.
    pub(crate) fn written(&self, len: usize) {
        self.outbox.written(len);
        self.stats.sent(len);
    }

    /// Resolves once the outbound byte limit has been passed.
    pub(crate) async fn overflowed(&self) {
        self.outbox.overflowed().await;
    }

    /// Asks for a ping to be sent now (for the application's `ping`).
    pub(crate) fn ping(&self, id: u64) {
        self.outbox.ping(id);
    }

    /// Asks for the connection to be closed.
    pub(crate) fn close(&self, code: u16, reason: &str) {
        self.outbox.close(code, reason);
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        // A poisoned lock only means another thread panicked mid-update of a plain map; keep serving.
        self.pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records a server request and starts its timeout task with `start_timer`; false once the
    /// connection has closed or when the id is already pending. The timer starts under the lock, so even
    /// a zero timeout finds its entry.
    pub(crate) fn add_pending(&self, id: u64, start_timer: impl FnOnce() -> AbortHandle) -> bool {
        let mut pending = self.pending();
        if pending.closed || pending.timers.contains_key(&id) {
            return false;
        }
        pending.timers.insert(id, start_timer());
        true
    }

    /// Takes a server request out of the pending set because it was answered; false when it was not
    /// pending (unknown, answered already, or timed out).
    pub(crate) fn answer_pending(&self, id: u64) -> bool {
        match self.pending().timers.remove(&id) {
            Some(timer) => {
                timer.abort();
                true
            }
            None => false,
        }
    }

    /// Takes a server request out of the pending set because it timed out.
    pub(crate) fn expire_pending(&self, id: u64) -> bool {
        self.pending().timers.remove(&id).is_some()
    }

    /// Drops every pending request at close; the application rejects them when it learns of the close.
    pub(crate) fn close_pending(&self) {
        let mut pending = self.pending();
        pending.closed = true;
        for (_, timer) in pending.timers.drain() {
            timer.abort();
        }
    }
}
