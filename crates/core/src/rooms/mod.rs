//! Rooms: declared topics clients may subscribe to, who is in each room, and who a broadcast reaches.
//!
//! Declarations and membership sit behind their own locks, held only for a lookup or an update: callers
//! copy recipients out and send afterwards, never while holding a lock.

mod declarations;
mod index;
pub(crate) mod request;

use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

pub use declarations::{Decision, RoomError};
pub(crate) use index::{Audience, Join};
pub use request::Denial;

use crate::pattern::{Pattern, PatternError, Separator};
use crate::router::HandlerId;
use crate::sync::{Locked, ReadWrite};
use declarations::Declarations;
use index::Membership;

/// What a broadcast did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Broadcast {
    /// Deliveries selected: one per recipient and room (a connection in two matching rooms counts twice).
    pub targets: usize,
    /// Frames queued; fewer than `targets` when a recipient closed or passed its outbound limit.
    pub sent: usize,
}

/// The rooms of one server.
#[derive(Debug)]
pub struct Rooms {
    declarations: RwLock<Declarations>,
    membership: Mutex<Membership>,
    /// Most rooms one connection may be in.
    max_per_connection: usize,
}

impl Default for Rooms {
    fn default() -> Self {
        Rooms::new(usize::MAX)
    }
}

impl Rooms {
    fn declarations(&self) -> RwLockReadGuard<'_, Declarations> {
        // Declarations are replaced whole, never left half-written: a poisoned lock is still valid.
        self.declarations.reading()
    }

    fn declarations_mut(&self) -> RwLockWriteGuard<'_, Declarations> {
        self.declarations.writing()
    }

    fn membership(&self) -> MutexGuard<'_, Membership> {
        // Each update keeps the indexes consistent before it can panic, so keep serving.
        self.membership.locked()
    }

    /// Declares a public room: an exact name anyone may join.
    pub fn declare_public(&self, name: &str) -> Result<(), RoomError> {
        self.declarations_mut().declare_public(name)
    }

    /// Declares a protected room: topics matching `pattern` are joined when `validator` allows it.
    pub fn declare_protected(&self, pattern: &str, validator: HandlerId) -> Result<(), RoomError> {
        self.declarations_mut()
            .declare_protected(pattern, validator)
    }

    /// Who decides a subscription to `topic`.
    pub fn decide(&self, topic: &str) -> Decision {
        self.declarations().decide(topic)
    }

    /// The connections in the room `topic`, by key.
    pub fn members(&self, topic: &str) -> Vec<u64> {
        self.membership().members(topic)
    }

    /// The rooms the connection `conn` is in.
    pub fn subscriptions(&self, conn: u64) -> Vec<String> {
        self.membership()
            .subscriptions(conn)
            .iter()
            .map(|topic| topic.to_string())
            .collect()
    }

    /// Rooms with at least one member.
    pub fn room_count(&self) -> usize {
        self.membership().room_count()
    }

    /// Takes a closing connection out of every room; returns the rooms it was in.
    pub(crate) fn close(&self, conn: u64) -> Vec<Arc<str>> {
        self.membership().close(conn)
    }

    /// Rooms whose connections may each be in at most `max_per_connection` rooms.
    pub fn new(max_per_connection: usize) -> Self {
        Rooms {
            declarations: RwLock::default(),
            membership: Mutex::default(),
            max_per_connection,
        }
    }

    /// Puts a connection in the room `topic`, unless `ended` says it has ended. `ended` is asked under
    /// the membership lock, and a connection is marked ended before [`Rooms::close`] takes that lock, so
    /// a join that races a close never leaves a member behind.
    pub(crate) fn join(&self, conn: u64, topic: &str, ended: impl FnOnce() -> bool) -> Join {
        let mut membership = self.membership();
        if ended() {
            return Join::Closed;
        }
        membership.join(conn, topic, self.max_per_connection)
    }

    /// Takes a connection out of the room `topic`; false when it was not in it.
    pub(crate) fn leave(&self, conn: u64, topic: &str) -> bool {
        self.membership().leave(conn, topic)
    }

    /// The rooms a broadcast to `target` reaches, with their members.
    #[cfg(test)]
    fn recipients(&self, target: &str) -> Result<Vec<Audience>, PatternError> {
        self.sending_to(target, |audience| audience)
    }

    /// Hands the rooms a broadcast to `target` reaches, with their members (the room itself for an exact
    /// topic, every room with members matching a pattern) to `send`, which runs before any join or leave
    /// can happen: a
    /// connection told it has left a room (the answer is sent after the leave) gets no frame of that room
    /// afterwards, because a broadcast that counted it had queued its frame before the leave.
    pub(crate) fn sending_to<T>(
        &self,
        target: &str,
        send: impl FnOnce(Vec<Audience>) -> T,
    ) -> Result<T, PatternError> {
        let pattern = Pattern::parse(target, Separator::Colon)?;
        let membership = self.membership();
        let audience = if !pattern.is_exact() {
            membership.matching(target)
        } else {
            let members = membership.members(target);
            if members.is_empty() {
                Vec::new()
            } else {
                vec![(Arc::from(target), members)]
            }
        };
        Ok(send(audience))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_group_members_by_room() {
        let rooms = Rooms::default();
        rooms.join(1, "chat:a", || false);
        rooms.join(2, "chat:a", || false);
        rooms.join(3, "chat:b", || false);
        let mut exact = rooms.recipients("chat:a").expect("valid");
        exact[0].1.sort_unstable();
        assert_eq!(exact, vec![(Arc::from("chat:a"), vec![1, 2])]);
        let mut by_pattern: Vec<(String, usize)> = rooms
            .recipients("chat:*")
            .expect("valid")
            .into_iter()
            .map(|(topic, members)| (topic.to_string(), members.len()))
            .collect();
        by_pattern.sort();
        assert_eq!(
            by_pattern,
            [("chat:a".to_owned(), 2), ("chat:b".to_owned(), 1)]
        );
        assert!(rooms.recipients("nobody").expect("valid").is_empty());
        assert!(rooms.recipients("chat::x").is_err());
    }

    #[test]
    fn closing_leaves_every_room() {
        let rooms = Rooms::default();
        assert_eq!(rooms.join(7, "a", || false), Join::Joined);
        assert_eq!(rooms.join(7, "b", || false), Join::Joined);
        assert_eq!(rooms.close(7).len(), 2);
        assert_eq!(rooms.room_count(), 0);
        assert!(rooms.subscriptions(7).is_empty());
    }

    #[test]
    fn an_ended_connection_joins_nothing() {
        let rooms = Rooms::default();
        assert_eq!(rooms.join(7, "a", || true), Join::Closed);
        assert_eq!(rooms.room_count(), 0);
        assert!(rooms.subscriptions(7).is_empty());
    }
}
