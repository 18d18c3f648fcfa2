//! This server as one node of a cluster: what messages from other nodes do to its connections and rooms.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use serde_json::value::RawValue;
use tokio::sync::mpsc;

use crate::app::call;
use crate::cluster::Local;
use crate::net::{Connection, Pending};
use crate::protocol;
use crate::server::{Exclude, Shared};

/// The server's side of the cluster.
pub(crate) struct Node {
    pub(crate) shared: Arc<Shared>,
    /// Weak, so the application's dispatcher still ends once every connection is gone.
    pub(crate) calls: mpsc::WeakSender<String>,
    pub(crate) runtime: tokio::runtime::Handle,
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
        match self.connection(conn) {
            Some(conn) => conn.queue(protocol::event_frame(topic, data).into(), volatile),
            None => false,
        }
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
        let (timer_conn, shared) = (conn.clone(), self.shared.clone());
        let max = self.shared.config.max_pending_requests;
        let added = conn.add_pending(id, max, || {
            self.runtime
                .spawn(async move {
                    tokio::time::sleep(timeout).await;
                    if timer_conn.expire_pending(id) {
                        if let Some(cluster) = &shared.cluster {
                            cluster.request_failed(id, "timeout");
                        }
                    }
                })
                .abort_handle()
        });
        match added {
            Pending::Added => {
                conn.send(protocol::request_frame(id, method, payload));
                Ok(())
            }
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

    fn members(&self, topic: &str) -> Vec<String> {
        self.shared
            .rooms
            .members(topic)
            .into_iter()
            .filter_map(|key| {
                self.shared
                    .connections
                    .get(&key)
                    .map(|conn| conn.id.clone())
            })
            .collect()
    }

    fn drop_session(&self, _session: &str) {}

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
