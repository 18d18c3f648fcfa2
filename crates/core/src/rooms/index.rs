//! Room membership: which connections are in each room, which rooms each connection is in, and a trie of
//! the rooms that have members so a pattern broadcast walks only the branches the pattern can match.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// The separator between topic segments.
const SEPARATOR: char = ':';

/// A room's topic with the keys of its members.
pub(crate) type Audience = (Arc<str>, Vec<u64>);

/// What a join did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Join {
    /// The connection entered the room.
    Joined,
    /// The connection was in the room already.
    Already,
    /// The connection has ended: nothing changed.
    Closed,
    /// The connection is in as many rooms as it may be.
    Full,
}

/// Members by room and rooms by member. Only a connection in some room has an entry here: most
/// connections are in none, and each entry is in every connection's cost.
#[derive(Debug, Default)]
pub(crate) struct Membership {
    members: HashMap<Arc<str>, HashSet<u64>>,
    subscriptions: HashMap<u64, HashSet<Arc<str>>>,
    trie: Node,
}

impl Membership {
    /// Removes a connection from every room at once; returns the rooms it was in.
    pub(crate) fn close(&mut self, conn: u64) -> Vec<Arc<str>> {
        let topics: Vec<Arc<str>> = self
            .subscriptions
            .remove(&conn)
            .unwrap_or_default()
            .into_iter()
            .collect();
        for topic in &topics {
            self.remove_member(topic, conn);
        }
        topics
    }

    /// Puts a connection in the room `topic`.
    pub(crate) fn join(&mut self, conn: u64, topic: &str, max_rooms: usize) -> Join {
        let topics = self.subscriptions.entry(conn).or_default();
        if topics.contains(topic) {
            return Join::Already;
        }
        if topics.len() >= max_rooms {
            return Join::Full;
        }
        let topic: Arc<str> = match self.members.get_key_value(topic) {
            Some((existing, _)) => existing.clone(),
            None => {
                let topic: Arc<str> = Arc::from(topic);
                self.trie.insert(&topic);
                topic
            }
        };
        topics.insert(topic.clone());
        self.members.entry(topic).or_default().insert(conn);
        Join::Joined
    }

    /// Takes a connection out of the room `topic`; false when it was not in it.
    pub(crate) fn leave(&mut self, conn: u64, topic: &str) -> bool {
        let Some(topics) = self.subscriptions.get_mut(&conn) else {
            return false;
        };
        let left = topics.remove(topic);
        if topics.is_empty() {
            self.subscriptions.remove(&conn);
        }
        if left {
            self.remove_member(topic, conn);
        }
        left
    }

    fn remove_member(&mut self, topic: &str, conn: u64) {
        let Some(members) = self.members.get_mut(topic) else {
            return;
        };
        members.remove(&conn);
        if members.is_empty() {
            self.members.remove(topic);
            let segments: Vec<&str> = topic.split(SEPARATOR).collect();
            self.trie.remove(&segments);
        }
    }

    /// The members of the room `topic`.
    pub(crate) fn members(&self, topic: &str) -> Vec<u64> {
        self.members
            .get(topic)
            .map(|members| members.iter().copied().collect())
            .unwrap_or_default()
    }

    /// The rooms `conn` is in.
    pub(crate) fn subscriptions(&self, conn: u64) -> Vec<Arc<str>> {
        self.subscriptions
            .get(&conn)
            .map(|topics| topics.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Every room with members whose topic matches `pattern`, a valid `:`-separated pattern, with its
    /// members.
    pub(crate) fn matching(&self, pattern: &str) -> Vec<Audience> {
        let segments: Vec<&str> = pattern.split(SEPARATOR).collect();
        let mut topics = Vec::new();
        self.trie.matching(&segments, &mut topics);
        topics
            .into_iter()
            .map(|topic| {
                let members = self.members(&topic);
                (topic, members)
            })
            .collect()
    }

    /// Rooms with at least one member.
    pub(crate) fn room_count(&self) -> usize {
        self.members.len()
    }
}

/// One segment of the topic trie; `topic` is set where a room with members ends.
#[derive(Debug, Default)]
struct Node {
    children: HashMap<Box<str>, Node>,
    topic: Option<Arc<str>>,
}

impl Node {
    fn insert(&mut self, topic: &Arc<str>) {
        let mut node = self;
        for segment in topic.split(SEPARATOR) {
            node = node.children.entry(segment.into()).or_default();
        }
        node.topic = Some(topic.clone());
    }

    /// Removes the topic at `segments`, pruning branches left empty; true when this node is now empty.
    fn remove(&mut self, segments: &[&str]) -> bool {
        match segments.split_first() {
            None => self.topic = None,
            Some((head, rest)) => {
                if self
                    .children
                    .get_mut(*head)
                    .is_some_and(|child| child.remove(rest))
                {
                    self.children.remove(*head);
                }
            }
        }
        self.topic.is_none() && self.children.is_empty()
    }

    /// Collects the topics below this node that match the pattern `segments` (literal, `*` or a last `**`).
    fn matching(&self, segments: &[&str], out: &mut Vec<Arc<str>>) {
        match segments.split_first() {
            None => out.extend(self.topic.iter().cloned()),
            Some((&"**", _)) => self.children.values().for_each(|child| child.all(out)),
            Some((&"*", rest)) => self
                .children
                .values()
                .for_each(|child| child.matching(rest, out)),
            Some((literal, rest)) => {
                if let Some(child) = self.children.get(*literal) {
                    child.matching(rest, out);
                }
            }
        }
    }

    fn all(&self, out: &mut Vec<Arc<str>>) {
        out.extend(self.topic.iter().cloned());
        self.children.values().for_each(|child| child.all(out));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics(membership: &Membership, pattern: &str) -> Vec<String> {
        let mut found: Vec<String> = membership
            .matching(pattern)
            .into_iter()
            .map(|(topic, _)| topic.to_string())
            .collect();
        found.sort();
        found
    }

    #[test]
    fn only_connections_in_rooms_have_an_entry() {
        let mut membership = Membership::default();
        assert_eq!(membership.join(1, "lobby", usize::MAX), Join::Joined);
        assert_eq!(membership.join(1, "lobby", usize::MAX), Join::Already);
        assert_eq!(membership.join(1, "hall", usize::MAX), Join::Joined);
        assert_eq!(membership.members("lobby"), vec![1]);
        assert!(membership.leave(1, "lobby"));
        assert!(membership.leave(1, "hall"));
        assert!(!membership.leave(1, "hall"));
        assert!(
            membership.subscriptions.is_empty(),
            "the last room left drops the entry"
        );
        assert_eq!(membership.join(2, "lobby", usize::MAX), Join::Joined);
        assert_eq!(membership.close(2).len(), 1);
        assert!(membership.subscriptions.is_empty());
        assert_eq!(membership.room_count(), 0);
    }

    #[test]
    fn leaving_and_closing_empty_every_index() {
        let mut membership = Membership::default();
        for conn in 1..=3 {
            membership.join(conn, "chat:a", usize::MAX);
            membership.join(conn, "chat:b:c", usize::MAX);
        }
        assert!(membership.leave(1, "chat:a"));
        assert!(!membership.leave(1, "chat:a"));
        assert_eq!(membership.subscriptions(1).len(), 1);
        for conn in 1..=3 {
            membership.close(conn);
        }
        assert_eq!(membership.room_count(), 0);
        assert!(membership.subscriptions.is_empty());
        assert!(membership.trie.children.is_empty(), "the trie is pruned");
    }

    #[test]
    fn patterns_walk_only_matching_branches() {
        let mut membership = Membership::default();
        for topic in ["chat:a", "chat:b", "chat:a:x", "chat", "news:a", "a"] {
            membership.join(1, topic, usize::MAX);
        }
        assert_eq!(topics(&membership, "chat:*"), ["chat:a", "chat:b"]);
        assert_eq!(
            topics(&membership, "chat:**"),
            ["chat:a", "chat:a:x", "chat:b"]
        );
        assert_eq!(topics(&membership, "*:a"), ["chat:a", "news:a"]);
        assert_eq!(topics(&membership, "chat:a"), ["chat:a"]);
        assert_eq!(topics(&membership, "**").len(), 6);
        assert!(topics(&membership, "nothing:*").is_empty());
    }

    #[test]
    fn a_pruned_branch_keeps_its_neighbours() {
        let mut membership = Membership::default();
        membership.join(1, "chat:a", usize::MAX);
        membership.join(1, "chat:a:x", usize::MAX);
        membership.leave(1, "chat:a");
        assert_eq!(topics(&membership, "chat:**"), ["chat:a:x"]);
        membership.leave(1, "chat:a:x");
        assert!(membership.trie.children.is_empty());
    }
}
