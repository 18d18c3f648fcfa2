//! Counters of what a server has done, for `stats()` and the health endpoint.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::Serialize;

use crate::cluster::ClusterSnapshot;
use crate::sync::Locked;

/// Running totals, updated lock-free on the hot paths.
#[derive(Debug, Default)]
pub struct Stats {
    messages_in: AtomicU64,
    messages_out: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    dropped: AtomicU64,
    /// Closed connections by close code; touched once per connection.
    closed: Mutex<BTreeMap<u16, u64>>,
}

/// A snapshot, as `stats()` returns it.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// Open connections.
    pub connections: usize,
    /// Rooms with at least one member.
    pub rooms: usize,
    /// Messages received from clients.
    pub messages_in: u64,
    /// Messages written to clients.
    pub messages_out: u64,
    /// Payload bytes received.
    pub bytes_in: u64,
    /// Payload bytes written.
    pub bytes_out: u64,
    /// Messages not sent because their connection was gone or past its outbound limit.
    pub dropped: u64,
    /// Closed connections by close code.
    pub closed: BTreeMap<u16, u64>,
    /// The cluster link, when the server is a node of a cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterSnapshot>,
}

impl Stats {
    pub(crate) fn received(&self, bytes: usize) {
        self.messages_in.fetch_add(1, Ordering::Relaxed);
        self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn sent(&self, bytes: usize) {
        self.messages_out.fetch_add(1, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn closed(&self, code: u16) {
        let mut closed = self.closed.locked();
        *closed.entry(code).or_default() += 1;
    }

    pub(crate) fn snapshot(&self, connections: usize, rooms: usize) -> Snapshot {
        Snapshot {
            connections,
            rooms,
            messages_in: self.messages_in.load(Ordering::Relaxed),
            messages_out: self.messages_out.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            closed: self.closed.locked().clone(),
            cluster: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_snapshots() {
        let stats = Stats::default();
        stats.received(10);
        stats.sent(4);
        stats.sent(6);
        stats.dropped();
        stats.closed(1000);
        stats.closed(1000);
        stats.closed(1006);
        let snapshot = stats.snapshot(3, 1);
        assert_eq!((snapshot.messages_in, snapshot.bytes_in), (1, 10));
        assert_eq!(
            (snapshot.messages_out, snapshot.bytes_out, snapshot.dropped),
            (2, 10, 1)
        );
        assert_eq!(snapshot.closed, BTreeMap::from([(1000, 2), (1006, 1)]));
        let json = serde_json::to_string(&snapshot).expect("serializes");
        assert!(
            json.contains(r#""messagesIn":1"#) && json.contains(r#""closed":{"1000":2,"1006":1}"#)
        );
    }
}
