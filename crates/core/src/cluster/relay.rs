//! What this node does with each message another node published.

use std::time::Duration;

use super::envelope::{self, Envelope};
use super::{Cluster, Local};

/// Acts on one message from the node channels; this node's own broadcasts come back and are skipped.
pub(super) fn relay(cluster: &Cluster, local: &dyn Local, text: &str) {
    let (origin, envelope) = match envelope::decode(text) {
        Ok(decoded) => decoded,
        Err(error) => {
            tracing::warn!(%error, "cluster: unreadable message from another node, ignored");
            return;
        }
    };
    if origin == cluster.node_id {
        return;
    }
    match envelope {
        Envelope::Broadcast {
            target,
            exclude,
            volatile,
            data,
        } => local.broadcast(&target, exclude.as_deref(), volatile, data),
        Envelope::Emit {
            conn,
            topic,
            volatile,
            data,
        } => {
            if !local.emit(&conn, &topic, volatile, data) {
                tracing::debug!(%conn, "cluster: event for a connection that is no longer here");
            }
        }
        Envelope::Request {
            ticket,
            conn,
            method,
            timeout_ms,
            payload,
        } => {
            let id = cluster.remote.add(&origin, ticket, &conn);
            let timeout = Duration::from_millis(timeout_ms);
            if let Err(reason) = local.request(&conn, id, &method, timeout, payload) {
                cluster.request_failed(id, reason);
            }
        }
        Envelope::Answer {
            ticket,
            status,
            data,
            error,
        } => local.answered(ticket, status, data, error),
        Envelope::Failed { ticket, reason } => local.failed(ticket, &reason),
        Envelope::RoomQuery { ticket, topic } => {
            let ids = local.members(&topic);
            let ids = ids.iter().map(|id| id.as_str().into()).collect();
            cluster.tell(&origin, &Envelope::Members { ticket, ids });
        }
        Envelope::Members { ticket, ids } => local.room_answer(ticket, &origin, &ids),
        Envelope::DropSession { session } => local.drop_session(&session),
    }
}
