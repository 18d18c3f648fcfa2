//! This server as one node of a cluster: what messages from other nodes do to its connections and rooms.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::value::RawValue;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::app::call;
use crate::cluster::Local;
use crate::cluster::{SessionWrite, MAX_FRAMES_PER_WRITE};
use crate::net::{self, Connection, Pending};
use crate::protocol;
use crate::server::{Exclude, Shared};

/// The server's side of the cluster.
pub(crate) struct Node {
    pub(crate) shared: Arc<Shared>,
    /// Weak, so the application's dispatcher still ends once every connection is gone.
    pub(crate) calls: mpsc::WeakSender<String>,
    pub(crate) runtime: tokio::runtime::Handle,
    /// Turns true when the server stops: sessions taken over end then.
    pub(crate) shutdown: watch::Receiver<bool>,
}

impl Node {
    fn connection(&self, id: &str) -> Option<Arc<Connection>> {
        let key = *self.shared.ids.get(id)?;
        self.shared
            .connections
            .get(&key)
            .map(|conn| conn.value().clone())
    }

    /// Hands a call to the application, in order when the queue has room.
    fn call(&self, call: String) {
        let Some(calls) = self.calls.upgrade() else {
            return;
        };
        if let Err(mpsc::error::TrySendError::Full(call)) = calls.try_send(call) {
            self.runtime.spawn(async move {
                let _ = calls.send(call).await;
            });
        }
    }
}

impl Local for Node {
    fn broadcast(&self, target: &str, exclude: Option<&str>, volatile: bool, data: &RawValue) {
        let exclude = exclude.map_or(Exclude::Nobody, Exclude::Id);
        if let Err(error) = self.shared.deliver(target, data, exclude, volatile) {
            tracing::warn!(%error, "cluster: a broadcast from another node has an invalid target");
        }
    }

    fn emit(&self, conn: &str, topic: &str, volatile: bool, data: &RawValue) -> bool {
        let Some(conn) = self.connection(conn) else {
            return false;
        };
        // A dropped volatile event is counted where it is dropped; the connection was here all the same.
        conn.queue(
            &Utf8Bytes::from(protocol::event_frame(topic, data)),
            volatile,
        );
        true
    }

    fn request(
        &self,
        conn: &str,
        id: u64,
        method: &str,
        timeout: Duration,
        payload: &RawValue,
    ) -> Result<(), &'static str> {
        let conn = self.connection(conn).ok_or("unknown-connection")?;
        let shared = self.shared.clone();
        let max = self.shared.config.max_pending_requests;
        let expired = async move {
            if let Some(cluster) = &shared.cluster {
                cluster.request_failed(id, "timeout");
            }
        };
        match conn.request(&self.runtime, id, method, payload, timeout, max, expired) {
            Pending::Added => Ok(()),
            Pending::Full => Err("too-many-pending"),
            Pending::Refused => Err("connection-closed"),
        }
    }

    fn held(&self) -> Vec<String> {
        self.shared
            .ids
            .iter()
            .map(|entry| entry.key().clone())
            .collect()
    }

    fn holds(&self, conn: &str) -> bool {
        self.shared.ids.contains_key(conn)
    }

    fn members(&self, topic: &str) -> Vec<String> {
        self.shared
            .rooms
            .members(topic)
            .into_iter()
            .filter_map(|key| {
                self.shared
                    .connections
                    .get(&key)
                    .map(|conn| conn.id.to_string())
            })
            .collect()
    }

    fn drop_session(&self, session: &str) {
        let Some(conn) = self.shared.sessions.get(session).and_then(|key| {
            self.shared
                .connections
                .get(key.value())
                .map(|conn| conn.value().clone())
        }) else {
            return;
        };
        tracing::debug!(%session, "cluster: the session resumed on another node; dropping it here");
        // A socket it still has closes (4009) and ends it; a waiting session ends now.
        if conn.close(4009, "Session taken over") {
            let shared = self.shared.clone();
            self.runtime.spawn(async move {
                net::end(&shared, &conn, 4009, "Session taken over").await;
            });
        }
    }

    fn adopt(&self, node: &str) {
        if self.shared.config.sessions.is_none() {
            return;
        }
        if let Some(calls) = self.calls.upgrade() {
            let (shared, node) = (self.shared.clone(), node.to_owned());
            let shutdown = self.shutdown.clone();
            self.runtime
                .spawn(net::adopt(shared, node, calls, shutdown));
        }
    }

    fn answered(&self, ticket: u64, status: u16, data: &RawValue, error: Option<&RawValue>) {
        self.call(call::routed_answer(ticket, status, data, error));
    }

    fn failed(&self, ticket: u64, reason: &str) {
        self.call(call::routed_failed(ticket, reason));
    }

    fn room_answer(&self, ticket: u64, node: &str, ids: &[Cow<'_, str>]) {
        self.call(call::room_answer(ticket, node, ids));
    }
}

/// What was last written of one session.
struct Written {
    next: u64,
    first: u64,
    gen: u64,
    rooms: Vec<String>,
    at: Instant,
}

/// Writes what changed in each session of this node to Redis every `session_flush`, in the ordered
/// queue (pipelined with everything else); an unchanged session is written again every third of its ttl
/// so its copy does not expire under it. Ends at `shutdown`.
pub(crate) async fn mirror_sessions(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let (Some(cluster), Some(sessions)) = (shared.cluster.clone(), shared.config.sessions.clone())
    else {
        return;
    };
    let mut written: HashMap<String, Written> = HashMap::new();
    let mut reconnects = cluster.reconnects();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(cluster.session_flush()) => {}
            _ = cluster.sessions_changed() => {}
            _ = net::stopped(&mut shutdown) => return,
        }
        // While Redis is away, writes would only fill the queue; once it is back (it may have lost every
        // copy), they are written whole again.
        if !cluster.connected() {
            continue;
        }
        if cluster.reconnects() != reconnects {
            reconnects = cluster.reconnects();
            written.clear();
        }
        let live: Vec<(String, u64)> = shared
            .sessions
            .iter()
            .map(|entry| (entry.key().clone(), *entry.value()))
            .collect();
        let mut seen = HashSet::with_capacity(live.len());
        for (id, key) in live {
            let Some(conn) = shared
                .connections
                .get(&key)
                .map(|conn| conn.value().clone())
            else {
                continue;
            };
            let before = written.get(&id);
            let after = before.map_or(0, |written| written.next.saturating_sub(1));
            let Some(view) = conn.session_view(after) else {
                continue;
            };
            seen.insert(id.clone());
            // Rooms change only through a subscribe or unsubscribe, whose answer is a counted frame: an
            // unchanged view means unchanged rooms, and the rooms' lock is left alone.
            let unchanged = before.is_some_and(|written| {
                written.next == view.next
                    && written.first == view.first
                    && written.gen == view.gen
                    && written.at.elapsed() < sessions.ttl / 3
            });
            if unchanged {
                continue;
            }
            let mut rooms = shared.rooms.subscriptions(key);
            rooms.sort_unstable();
            let rooms_changed = before.is_none_or(|written| written.rooms != rooms);
            let take = view.frames.len().min(MAX_FRAMES_PER_WRITE);
            let next = view.next - (view.frames.len() - take) as u64;
            let write = SessionWrite {
                id: &id,
                gen: view.gen,
                first: view.first.min(next),
                next,
                rooms: rooms_changed.then_some(rooms.as_slice()),
                frames: &view.frames[..take],
            };
            if cluster.write_session(sessions.ttl, &write) {
                let first = write.first;
                written.insert(
                    id,
                    Written {
                        next,
                        first,
                        gen: view.gen,
                        rooms,
                        at: Instant::now(),
                    },
                );
            }
        }
        written.retain(|id, _| seen.contains(id));
    }
}
