//! This server as one node of a cluster: what messages from other nodes do to its connections and rooms.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use serde_json::value::RawValue;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::app::call;
use crate::cluster::{Cluster, FinalState, HandOff, Local};
use crate::net::{self, Connection, Pending, Refusal};
use crate::protocol;
use crate::server::{Exclude, Shared};

/// The server's side of the cluster.
pub(crate) struct Node {
    pub(crate) shared: Arc<Shared>,
    /// Weak, so the application's dispatcher still ends once every connection is gone.
    pub(crate) calls: mpsc::WeakSender<String>,
    pub(crate) runtime: Handle,
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

    /// Stops serving session `session` for a hand-over to a client with a token of generation `gen`: its
    /// final state and rooms; the error is the answer when it does not (not held here, or a used token).
    /// A session waiting for its client ends now; one with a socket ends when the socket, closed with
    /// 4009, does.
    fn stop_serving(
        &self,
        session: &str,
        gen: u64,
    ) -> Result<(net::SessionView, Vec<String>), HandOff> {
        let conn = session_connection(&self.shared, session).ok_or(HandOff::NotHeld)?;
        let (state, waiting) = conn.hand_over(gen).map_err(|refusal| match refusal {
            Refusal::Used => HandOff::TokenUsed,
            Refusal::Unknown | Refusal::Expired => HandOff::NotHeld,
        })?;
        // Read before the connection ends and leaves its rooms.
        let mut rooms = self.shared.rooms.subscriptions(conn.key);
        rooms.sort_unstable();
        if waiting {
            let (shared, conn) = (self.shared.clone(), conn.clone());
            let (code, reason) = Moved::ResumedElsewhere.close();
            self.runtime.spawn(async move {
                net::end(&shared, &conn, code, reason).await;
            });
        }
        Ok((state, rooms))
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
            .filter(|entry| !self.shared.sessions.contains_key(entry.key()))
            .map(|entry| entry.key().clone())
            .collect()
    }

    fn holds(&self, conn: &str) -> bool {
        self.shared.ids.contains_key(conn)
    }

    fn holds_without_session(&self, conn: &str) -> bool {
        self.holds(conn) && !self.shared.sessions.contains_key(conn)
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
        let conn = session_connection(&self.shared, session).filter(|conn| !conn.handed_over());
        let Some(conn) = conn else {
            // Handed over (or gone): the new node has claimed it, so the copy goes only if Redis still
            // names this node (the claim was refused, and the new node's writes must find no owner).
            if let Some(cluster) = &self.shared.cluster {
                cluster.forget_session(session, None);
            }
            return;
        };
        tracing::debug!(%session, "cluster: the session resumed on another node; dropping it here");
        end_here(&self.shared, conn, &self.runtime, Moved::ResumedElsewhere);
    }

    fn hand_over(&self, origin: &str, ticket: u64, session: &str, gen: u64) {
        let Some(cluster) = self.shared.cluster.clone() else {
            return;
        };
        let ttl = self
            .shared
            .config
            .sessions
            .as_ref()
            .map(|sessions| sessions.ttl)
            .unwrap_or_default();
        // Stopped and queued under one hold, so the writer of sessions queues nothing older behind it.
        let queued = {
            let _order = cluster.session_writes();
            self.stop_serving(session, gen).and_then(|(state, rooms)| {
                tracing::debug!(%session, %origin, "cluster: handing the session over to the node its client resumes on");
                cluster.queue_final(
                    ttl,
                    &FinalState {
                        id: session,
                        gen: state.gen,
                        first: state.first,
                        rooms: &rooms,
                        unseen: state.unseen,
                        frames: &state.frames,
                    },
                )
            })
        };
        match queued {
            Ok(pending) => {
                let origin = origin.to_owned();
                self.runtime.spawn(async move {
                    let outcome = Cluster::final_stored(pending).await;
                    cluster.answer_hand_over(&origin, ticket, outcome);
                });
            }
            Err(refused) => cluster.answer_hand_over(origin, ticket, refused),
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

/// Why a session ends on this node because it lives on another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Moved {
    /// Its client resumed it on another node: a socket it still has here is an old one (4009, which
    /// tells the client not to fight for the session).
    ResumedElsewhere,
    /// Another node took it over while this one was cut off from Redis: the client is told to resume
    /// (1012, like a server restart), and finds the session where it lives now.
    TakenOver,
}

impl Moved {
    /// Whether a connection closed with `code` ended here because its session lives on another node.
    pub(crate) fn closed_with(code: u16) -> bool {
        [Moved::ResumedElsewhere, Moved::TakenOver]
            .into_iter()
            .any(|why| why.close().0 == code)
    }

    fn close(self) -> (u16, &'static str) {
        match self {
            Moved::ResumedElsewhere => (4009, "Session taken over"),
            Moved::TakenOver => (1012, "Session moved"),
        }
    }
}

/// The connection of session `session` on this node, if it holds it.
pub(crate) fn session_connection(shared: &Shared, session: &str) -> Option<Arc<Connection>> {
    let key = *shared.sessions.get(session)?;
    shared
        .connections
        .get(&key)
        .map(|conn| conn.value().clone())
}

/// Ends session `conn` on this node without telling other nodes or Redis, which know where it lives:
/// a socket it still has is closed (and that ends it), a waiting session ends now.
pub(crate) fn end_here(shared: &Arc<Shared>, conn: Arc<Connection>, runtime: &Handle, why: Moved) {
    let (code, reason) = why.close();
    if conn.close(code, reason) {
        let shared = shared.clone();
        runtime.spawn(async move {
            net::end(&shared, &conn, code, reason).await;
        });
    }
}
