//! Requests other nodes send through this one to its connections: the id each goes out under, and who
//! to answer when the client answers, the request times out, or the connection closes.

use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;

/// Ids of requests from other nodes start here, far above the application's own ids, so both can wait on
/// the same connection without meeting.
const FIRST_ID: u64 = 1 << 52;

/// Who to answer.
#[derive(Debug)]
struct Remote {
    origin: String,
    ticket: u64,
    /// The connection it was sent to.
    conn: String,
}

/// The requests from other nodes waiting for this node's clients.
#[derive(Debug)]
pub(super) struct RemoteRequests {
    waiting: DashMap<u64, Remote>,
    next: AtomicU64,
}

impl Default for RemoteRequests {
    fn default() -> Self {
        RemoteRequests {
            waiting: DashMap::new(),
            next: AtomicU64::new(FIRST_ID),
        }
    }
}

impl RemoteRequests {
    /// Whether `id` is the id of a request from another node.
    pub(super) fn is_remote(id: u64) -> bool {
        id >= FIRST_ID
    }

    /// Records request `ticket` of node `origin` for connection `conn`; returns the id to send it under.
    pub(super) fn add(&self, origin: &str, ticket: u64, conn: &str) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let remote = Remote {
            origin: origin.to_owned(),
            ticket,
            conn: conn.to_owned(),
        };
        self.waiting.insert(id, remote);
        id
    }

    /// Takes request `id` out: the node to answer and its ticket, unless it was answered already.
    pub(super) fn take(&self, id: u64) -> Option<(String, u64)> {
        self.waiting
            .remove(&id)
            .map(|(_, remote)| (remote.origin, remote.ticket))
    }

    /// The requests waiting for connection `conn`.
    pub(super) fn sent_to(&self, conn: &str) -> Vec<u64> {
        if self.waiting.is_empty() {
            return Vec::new();
        }
        self.waiting
            .iter()
            .filter(|entry| entry.conn == conn)
            .map(|entry| *entry.key())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_stay_clear_of_the_applications_and_answer_once() {
        let requests = RemoteRequests::default();
        let id = requests.add("node-a", 7, "conn-1");
        assert!(RemoteRequests::is_remote(id));
        assert!(!RemoteRequests::is_remote(1));
        assert_eq!(requests.sent_to("conn-1"), vec![id]);
        assert!(requests.sent_to("conn-2").is_empty());
        assert_eq!(requests.take(id), Some(("node-a".to_owned(), 7)));
        assert_eq!(requests.take(id), None);
    }
}
