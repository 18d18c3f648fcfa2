//! Hand-overs of a session from its live owner to the node its client resumes on: the resuming node asks
//! the owner (envelope kind 8) and waits for its answer (kind 9) while the owner is alive, at most a node
//! ttl and a heartbeat (the longest a silent owner stays among the live nodes); the owner stops
//! serving the session, writes its latest state whole and answers once Redis stored it. Without the
//! final write, what the owner received after its last write behind the traffic would be lost.

use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use tokio::sync::oneshot;

/// What became of a hand-over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HandOff {
    /// The owner stopped serving the session and Redis holds its final write: the copy is complete.
    Stored,
    /// The owner does not hold the session (any more): it has nothing newer than the copy.
    NotHeld,
    /// Redis names another node the session's owner: the asked node wrote nothing.
    NotOwned,
    /// The client's token was used already: the owner goes on serving the session.
    TokenUsed,
    /// The owner stopped serving the session but Redis did not store its final write.
    Failed,
    /// No answer in time, the owner still among the live nodes (cut off, or Redis is slow).
    TimedOut,
    /// No answer, and the owner left the live nodes meanwhile: it died, and its copy is all there is.
    Gone,
}

impl HandOff {
    /// The outcome as it travels in an answer.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            HandOff::Stored => "stored",
            HandOff::NotHeld => "not-held",
            HandOff::NotOwned => "not-owned",
            HandOff::TokenUsed => "token-used",
            HandOff::Failed => "failed",
            HandOff::TimedOut => "timeout",
            HandOff::Gone => "gone",
        }
    }

    /// Reads an answer's outcome; an unknown word (a newer node) counts as a failure.
    pub(crate) fn parse(text: &str) -> Self {
        match text {
            "stored" => HandOff::Stored,
            "not-held" => HandOff::NotHeld,
            "not-owned" => HandOff::NotOwned,
            "token-used" => HandOff::TokenUsed,
            "timeout" => HandOff::TimedOut,
            "gone" => HandOff::Gone,
            _ => HandOff::Failed,
        }
    }

    /// Whether the copy in Redis is all the resume can have: the owner stored its final write, held
    /// nothing newer, or died (what it had not written is then the documented loss of a node's death).
    pub(crate) fn complete(self) -> bool {
        matches!(self, HandOff::Stored | HandOff::NotHeld | HandOff::Gone)
    }
}

/// The hand-overs this node asked for and waits on, by ticket.
#[derive(Debug, Default)]
pub(super) struct HandOffs {
    waiting: DashMap<u64, oneshot::Sender<HandOff>>,
    next: AtomicU64,
}

impl HandOffs {
    /// A new ticket and the receiver its answer arrives on.
    pub(super) fn open(&self) -> (u64, oneshot::Receiver<HandOff>) {
        let ticket = self.next.fetch_add(1, Ordering::Relaxed);
        let (sender, receiver) = oneshot::channel();
        self.waiting.insert(ticket, sender);
        (ticket, receiver)
    }

    /// Hands the answer to the waiting resume; an answer for a ticket no longer waited on is dropped.
    pub(super) fn answer(&self, ticket: u64, outcome: HandOff) {
        if let Some((_, sender)) = self.waiting.remove(&ticket) {
            let _ = sender.send(outcome);
        }
    }

    /// Stops waiting on `ticket` (it timed out).
    pub(super) fn close(&self, ticket: u64) {
        self.waiting.remove(&ticket);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_travel_as_words_and_answer_once() {
        for outcome in [
            HandOff::Stored,
            HandOff::NotHeld,
            HandOff::NotOwned,
            HandOff::TokenUsed,
            HandOff::Failed,
            HandOff::TimedOut,
            HandOff::Gone,
        ] {
            assert_eq!(HandOff::parse(outcome.as_str()), outcome);
        }
        assert_eq!(HandOff::parse("what"), HandOff::Failed);
        let handoffs = HandOffs::default();
        let (ticket, mut receiver) = handoffs.open();
        handoffs.answer(ticket, HandOff::Stored);
        handoffs.answer(ticket, HandOff::Failed);
        assert_eq!(receiver.try_recv().ok(), Some(HandOff::Stored));
    }
}
