//! What this node does with each message another node published.

use std::time::Duration;

use super::envelope::{self, Envelope};
use super::{Cluster, Local};

/// Acts on one message from the node channels; this node's own broadcasts and room queries come back on
/// the channel every node listens to and are skipped.
pub(super) fn relay(cluster: &Cluster, local: &dyn Local, text: &str) {
    let (origin, envelope) = match envelope::decode(text) {
        Ok(decoded) => decoded,
        Err(error) => {
            tracing::warn!(%error, "cluster: unreadable message from another node, ignored");
            return;
        }
    };
    // A message on this node's own channel from itself is acted on: the directory named this node for a
    // connection the application did not find here, and the sender waits for the answer.
    let echo = matches!(
        envelope,
        Envelope::Broadcast { .. } | Envelope::RoomQuery { .. }
    );
    if echo && origin == cluster.node_id {
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
            ticket,
            conn,
            topic,
            volatile,
            data,
        } => {
            let held = local.emit(&conn, &topic, volatile, data);
            if !held {
                tracing::debug!(%conn, "cluster: event for a connection that is no longer here");
            }
            cluster.answer_emit(&origin, ticket, held);
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
        Envelope::HandOver {
            ticket,
            session,
            gen,
        } => local.hand_over(&origin, ticket, &session, gen),
        Envelope::HandedOver { ticket, outcome } => cluster.handed_over(ticket, &outcome),
    }
}
