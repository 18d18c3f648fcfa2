//! The calls one burst of messages makes, handed to the application together.

use futures_util::future::{BoxFuture, OptionFuture};
use futures_util::FutureExt;
use tokio::sync::mpsc::error::TrySendError;

use crate::net::Connection;

/// Bytes of call text one burst gathers at most before it is handed over even though more messages wait.
pub(super) const MAX_BURST: usize = 64 * 1024;

/// Calls from one burst of messages, sent to the application as one item once the socket has nothing
/// more to read: a single hand-off for the ten requests a client pipelines, instead of one each. Items are
/// joined into batches with commas, so an item may hold several calls.
#[derive(Default)]
pub(super) struct Burst(pub(super) String);

impl Burst {
    /// Adds a call about `conn`, after its open call if the application has not heard of it yet.
    pub(super) fn push(&mut self, conn: &Connection, call: String) {
        let call = conn.told(call);
        if self.0.is_empty() {
            self.0 = call;
        } else {
            self.0.push(',');
            self.0.push_str(&call);
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    /// Hands the calls over. When the application is behind (the channel is full), the future returned
    /// hands them over once there is room; awaiting it is the backpressure: this socket stops being read.
    /// That wait is boxed, and only made then: it is rare, and held inline it would size every
    /// connection's task.
    pub(super) fn send<'a>(&mut self, conn: &'a Connection) -> OptionFuture<BoxFuture<'a, ()>> {
        if self.0.is_empty() {
            return None.into();
        }
        match conn.calls.try_send(std::mem::take(&mut self.0)) {
            Err(TrySendError::Full(calls)) => Some(conn.calls.send(calls).map(drop).boxed()).into(),
            _ => None.into(),
        }
    }
}
