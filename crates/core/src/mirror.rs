//! This node's sessions mirrored to Redis: what changed in each session is written every `sessionFlush`,
//! in the ordered queue (pipelined with everything else), and each write's answer is read at a later
//! round. A session whose write was not stored (refused, lost with the connection, or out of step with
//! the copy because an earlier one was not) is written whole again. After Redis refused a write (out of
//! memory, read-only), writes wait a backoff, then one session is written alone until Redis stores one.
//! A write that finds the session owned by another node (taken over while this node was cut off from
//! Redis) ends the session here, and its client is told to resume: Redis names where a session lives.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::runtime::Handle;
use tokio::sync::watch;

use crate::cluster::{Cluster, PendingWrite, SessionWrite, WriteOutcome, MAX_FRAMES_PER_WRITE};
use crate::net::{self, Connection, SessionView};
use crate::node::{end_here, session_connection, Moved};
use crate::server::Shared;

/// The longest wait between two attempts while Redis refuses session writes (unless `sessionFlush` is
/// longer).
const MAX_RETRY_WAIT: Duration = Duration::from_secs(2);

/// What was last sent of one session, and not known to have failed.
struct Written {
    next: u64,
    first: u64,
    gen: u64,
    unseen: Option<u64>,
    rooms: Vec<String>,
    at: Instant,
    /// The serial of the last write that replaced the copy whole: a failed write sent before it no
    /// longer matters.
    whole: u64,
}

/// A write whose answer has not been read yet.
struct InFlight {
    id: String,
    key: u64,
    serial: u64,
    /// The data entries it carried, set again if it was not stored.
    data: Option<String>,
    reply: PendingWrite,
}

/// How fast sessions are written: every round, or, after Redis refused a write, one session at a time
/// after a wait that doubles (from `sessionFlush`) until Redis stores one.
#[derive(Default)]
struct Pace {
    refused: Option<Refused>,
}

struct Refused {
    wait: Duration,
    retry_at: Instant,
}

impl Pace {
    /// How many sessions this round may write.
    fn budget(&mut self, now: Instant) -> usize {
        match &mut self.refused {
            None => usize::MAX,
            Some(refused) if now < refused.retry_at => 0,
            Some(refused) => {
                refused.retry_at = now + refused.wait;
                1
            }
        }
    }

    /// Redis refused a write.
    fn refused(&mut self, flush: Duration, now: Instant) {
        let wait = match &self.refused {
            None => {
                tracing::warn!("cluster: Redis refuses session writes; retrying with backoff");
                flush
            }
            Some(refused) => (refused.wait * 2).min(MAX_RETRY_WAIT.max(flush)),
        };
        self.refused = Some(Refused {
            wait,
            retry_at: now + wait,
        });
    }

    /// Redis stored a write.
    fn stored(&mut self) {
        if self.refused.take().is_some() {
            tracing::warn!("cluster: Redis stores session writes again");
        }
    }
}

/// The writer's state.
#[derive(Default)]
struct Mirror {
    written: HashMap<String, Written>,
    in_flight: Vec<InFlight>,
    /// Session → the serial of the last write that carried its data entries.
    data_sent: HashMap<String, u64>,
    serial: u64,
    pace: Pace,
}

/// Writes this node's sessions to Redis until `shutdown` (see the module's documentation); an unchanged
/// session is written again every third of its ttl so its copy does not expire under it.
pub(crate) async fn mirror_sessions(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let (Some(cluster), Some(sessions)) = (shared.cluster.clone(), shared.config.sessions.clone())
    else {
        return;
    };
    let runtime = Handle::current();
    let mut mirror = Mirror::default();
    let mut reconnects = cluster.reconnects();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(cluster.session_flush()) => {}
            _ = cluster.sessions_changed() => {}
            _ = net::stopped(&mut shutdown) => return,
        }
        // While Redis is away, writes would only fill the queue; once it is back (it may have lost every
        // copy, or another node may have taken sessions over), they are written whole again.
        if !cluster.connected() {
            continue;
        }
        if cluster.reconnects() != reconnects {
            reconnects = cluster.reconnects();
            mirror.written.clear();
        }
        mirror.read_answers(&shared, &cluster, &runtime);
        let budget = mirror.pace.budget(Instant::now());
        if budget > 0 {
            mirror.write_changed(&shared, &cluster, sessions.ttl, budget);
        }
    }
}

/// The connection of session `id` (key `key`) once this node owns it: a session brought over from
/// another node is written only once Redis names this node its owner.
fn owned_connection(shared: &Shared, id: &str, key: u64) -> Option<Arc<Connection>> {
    if shared.ids.get(id).is_none_or(|held| *held != key) {
        return None;
    }
    shared
        .connections
        .get(&key)
        .map(|conn| conn.value().clone())
}

impl Mirror {
    /// Acts on the answers that have arrived.
    fn read_answers(&mut self, shared: &Arc<Shared>, cluster: &Cluster, runtime: &Handle) {
        let (mut stored, mut refused, mut ended) = (false, false, 0);
        for mut flight in std::mem::take(&mut self.in_flight) {
            let Some(outcome) = flight.reply.outcome() else {
                self.in_flight.push(flight);
                continue;
            };
            match outcome {
                WriteOutcome::Stored => stored = true,
                WriteOutcome::OwnedElsewhere => {
                    if self.give_up(shared, runtime, &flight) {
                        ended += 1;
                    }
                }
                WriteOutcome::Refused => {
                    refused = true;
                    self.retry(cluster, flight);
                }
                WriteOutcome::OutOfStep | WriteOutcome::Lost => self.retry(cluster, flight),
            }
        }
        if ended > 0 {
            tracing::warn!(
                ended,
                "cluster: sessions another node took over while this one was cut off from Redis end here"
            );
        }
        if refused {
            self.pace.refused(cluster.session_flush(), Instant::now());
        } else if stored {
            self.pace.stored();
        }
    }

    /// A write was not stored: its session is written whole at the next attempt (unless a whole write
    /// went out after it), and its data entries are set again (unless newer ones went out or wait).
    fn retry(&mut self, cluster: &Cluster, flight: InFlight) {
        if self
            .written
            .get(&flight.id)
            .is_some_and(|written| flight.serial >= written.whole)
        {
            self.written.remove(&flight.id);
        }
        if let Some(data) = flight.data {
            if self.data_sent.get(&flight.id) == Some(&flight.serial) {
                cluster.return_session_data(flight.id, data);
            }
        }
    }

    /// Another node owns the session a write was for: it ends here, if it is still the one the write
    /// was for (not a later resume of it). True when it ended.
    fn give_up(&mut self, shared: &Arc<Shared>, runtime: &Handle, flight: &InFlight) -> bool {
        self.written.remove(&flight.id);
        let Some(conn) =
            session_connection(shared, &flight.id).filter(|conn| conn.key == flight.key)
        else {
            return false;
        };
        tracing::debug!(session = %flight.id, "cluster: another node took the session over; ending it here");
        end_here(shared, conn, runtime, Moved::TakenOver);
        true
    }

    /// Writes what changed in up to `budget` sessions; once every session had its turn, forgets what
    /// it kept of sessions that ended.
    fn write_changed(&mut self, shared: &Shared, cluster: &Cluster, ttl: Duration, budget: usize) {
        let live: Vec<(String, u64)> = shared
            .sessions
            .iter()
            .map(|entry| (entry.key().clone(), *entry.value()))
            .collect();
        let mut seen = HashSet::with_capacity(live.len());
        let mut budget = budget;
        for (id, key) in live {
            if budget == 0 {
                // A probe went out: the others wait for its answer, and nothing is forgotten.
                break;
            }
            let Some(conn) = owned_connection(shared, &id, key) else {
                continue;
            };
            // Read and queued under one hold: a hand-over's final write cannot come between the two.
            let _order = cluster.session_writes();
            let Some((view, whole)) = self.view(&id, &conn) else {
                continue;
            };
            seen.insert(id.clone());
            // Taken under the hold too: a hand-over's final write carries what was set until then.
            let entries = cluster.take_session_data_of(&id);
            if entries.is_none() && !whole && self.unchanged(&id, &view, ttl) {
                continue;
            }
            if self.write(shared, cluster, ttl, (id, key), view, whole, entries) {
                budget = budget.saturating_sub(1);
            }
        }
        // Entries of sessions not written this round (not owned here yet, or after a probe) wait; those of
        // sessions that ended go.
        cluster.keep_session_data(|id| shared.sessions.contains_key(id));
        if budget > 0 {
            self.written.retain(|id, _| seen.contains(id));
            self.data_sent.retain(|id, _| seen.contains(id));
        }
    }

    /// What a write of session `id` carries, and whether it replaces the copy whole: it does when
    /// nothing of it is known to be written, or when its frames were renumbered (a client took back a
    /// session taken over, see `Replay::rejoin`). `None` when the session has ended.
    fn view(&self, id: &str, conn: &Connection) -> Option<(SessionView, bool)> {
        let Some(before) = self.written.get(id) else {
            return Some((conn.session_view(0)?, true));
        };
        let view = conn.session_view(before.next.saturating_sub(1))?;
        if view.unseen == before.unseen {
            return Some((view, false));
        }
        Some((conn.session_view(0)?, true))
    }

    /// Whether the copy of session `id` already has `view`, and is younger than a third of the ttl.
    /// Rooms change only through a subscribe or unsubscribe, whose answer is a counted frame: an
    /// unchanged view means unchanged rooms, and the rooms' lock is left alone.
    fn unchanged(&self, id: &str, view: &SessionView, ttl: Duration) -> bool {
        self.written.get(id).is_some_and(|written| {
            written.next == view.next
                && written.first == view.first
                && written.gen == view.gen
                && written.at.elapsed() < ttl / 3
        })
    }

    /// Sends one write of session `id` (connection `key`); false when the queue refused it (the session
    /// is written at a later round, its data entries with it).
    #[allow(clippy::too_many_arguments)]
    fn write(
        &mut self,
        shared: &Shared,
        cluster: &Cluster,
        ttl: Duration,
        (id, key): (String, u64),
        view: SessionView,
        whole: bool,
        data: Option<String>,
    ) -> bool {
        let before = self.written.get(&id).filter(|_| !whole);
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
            data: data.as_deref(),
            unseen: view.unseen,
            frames: &view.frames[..take],
        };
        let Some(reply) = cluster.write_session(ttl, &write) else {
            if let Some(data) = data {
                cluster.return_session_data(id, data);
            }
            return false;
        };
        let first = write.first;
        self.serial += 1;
        let serial = self.serial;
        let whole_serial = before.map_or(serial, |written| written.whole);
        if data.is_some() {
            self.data_sent.insert(id.clone(), serial);
        }
        self.written.insert(
            id.clone(),
            Written {
                next,
                first,
                gen: view.gen,
                unseen: view.unseen,
                rooms,
                at: Instant::now(),
                whole: whole_serial,
            },
        );
        self.in_flight.push(InFlight {
            id,
            key,
            serial,
            data,
            reply,
        });
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_a_refusal_one_write_goes_out_per_wait_and_the_wait_doubles_up_to_the_cap() {
        let flush = Duration::from_millis(50);
        let start = Instant::now();
        let mut pace = Pace::default();
        assert_eq!(pace.budget(start), usize::MAX);
        pace.refused(flush, start);
        assert_eq!(pace.budget(start), 0);
        assert_eq!(pace.budget(start + flush), 1);
        assert_eq!(pace.budget(start + flush), 0, "one probe per wait");
        let mut waits = Vec::new();
        for _ in 0..8 {
            pace.refused(flush, start);
            waits.push(pace.refused.as_ref().map(|refused| refused.wait));
        }
        assert_eq!(waits[0], Some(flush * 2));
        assert_eq!(waits.last(), Some(&Some(MAX_RETRY_WAIT)));
        pace.stored();
        assert_eq!(pace.budget(start), usize::MAX);
    }

    #[test]
    fn a_flush_longer_than_the_cap_is_the_wait() {
        let flush = Duration::from_secs(60);
        let start = Instant::now();
        let mut pace = Pace::default();
        pace.refused(flush, start);
        pace.refused(flush, start);
        assert_eq!(
            pace.refused.as_ref().map(|refused| refused.wait),
            Some(flush)
        );
    }
}
