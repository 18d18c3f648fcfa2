//! Application pings waiting for their pong.

use std::collections::HashMap;

use tokio::time::{Duration, Instant};

use crate::net::keys::Keyed;

/// How long an application ping waits for its pong before it is forgotten.
const FORGET_PINGS_AFTER: Duration = Duration::from_secs(60);

/// Application pings waiting for their pong: id → when sent. The map is made on first use, behind a
/// pointer: most connections are never pinged by the application, and the loop's state is in every
/// connection's task. The ids are the server's own, so the map needs no random keys (see [`Keyed`]).
#[derive(Default)]
#[allow(
    clippy::box_collection,
    reason = "the box keeps the map's header out of every connection's task"
)]
pub(super) struct Pings(Option<Box<HashMap<u64, Instant, Keyed>>>);

impl Pings {
    /// Ping `id` is being sent now.
    pub(super) fn sent(&mut self, id: u64) {
        let pings = self.0.get_or_insert_with(Box::default);
        // Unanswered pings are forgotten after a while, so the map stays small.
        pings.retain(|_, sent| sent.elapsed() < FORGET_PINGS_AFTER);
        pings.insert(id, Instant::now());
    }

    /// When ping `id` was sent, if it waits for its pong.
    pub(super) fn answered(&mut self, id: u64) -> Option<Instant> {
        self.0.as_mut()?.remove(&id)
    }
}
