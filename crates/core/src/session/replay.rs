//! The replay buffer of a session: every counted message, numbered from 1, kept until the client
//! acknowledges it or the bounds push it out.

use std::collections::VecDeque;

use tokio_tungstenite::tungstenite::Utf8Bytes;

/// Messages a session may still have to send again.
#[derive(Debug)]
pub(crate) struct Replay {
    frames: VecDeque<Utf8Bytes>,
    /// The number of the first frame held.
    first: u64,
    bytes: usize,
    max_messages: usize,
    max_bytes: usize,
    /// The number from which frames were counted with no client counting along: the session was taken
    /// over from another node's copy, and no client has resumed it since. A client whose count reaches
    /// this number counted other frames (the old node's) under the same numbers.
    unseen: Option<u64>,
}

/// What a resume gets back.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Since {
    /// The frames after the client's count, in order.
    pub(crate) frames: Vec<Utf8Bytes>,
    /// Some frames the client never processed are gone.
    pub(crate) gap: bool,
}

impl Replay {
    pub(crate) fn new(max_messages: usize, max_bytes: usize) -> Self {
        Replay {
            frames: VecDeque::new(),
            first: 1,
            bytes: 0,
            max_messages: max_messages.max(1),
            max_bytes,
            unseen: None,
        }
    }

    /// A buffer holding a copy kept elsewhere (another node's): `frames` are numbered from `first`, and
    /// those from `unseen` on were counted with no client (see [`Replay::unseen`]). It goes on as
    /// [`Replay::resumed_at`] or [`Replay::adopted`] says.
    pub(crate) fn copied(
        max_messages: usize,
        max_bytes: usize,
        first: u64,
        frames: Vec<Utf8Bytes>,
        unseen: Option<u64>,
    ) -> Self {
        let mut replay = Replay::new(max_messages, max_bytes);
        replay.first = first.max(1);
        for frame in frames {
            replay.push(frame);
        }
        replay.unseen = unseen;
        replay
    }

    /// The copy goes on for a client that has processed `processed` frames. A client that has processed
    /// more than the copy holds is believed: numbering goes on after its count, so both ends keep
    /// counting alike (see also [`Replay::rejoin`]).
    pub(crate) fn resumed_at(mut self, processed: u64) -> Self {
        if !self.rejoin(processed) && processed >= self.next_seq() {
            self.frames.clear();
            self.bytes = 0;
            self.first = processed + 1;
        }
        self
    }

    /// The copy goes on with no client: a session taken over from a node taken for dead. What it counts
    /// from now on, until a client resumes it, no client has seen under these numbers; a copy that was
    /// taken over before without a client since keeps its earlier mark.
    pub(crate) fn adopted(mut self) -> Self {
        self.unseen = Some(self.unseen.unwrap_or_else(|| self.next_seq()));
        self
    }

    /// The number from which frames were counted with no client (taken over, not resumed since).
    pub(crate) fn unseen(&self) -> Option<u64> {
        self.unseen
    }

    /// A client that has processed `count` frames takes the session back; from now on it counts along.
    /// When its count reaches the frames counted with no client ([`Replay::unseen`]), it counted other
    /// frames under those numbers (the node it was on went on without the copy): these frames then
    /// follow its count, renumbered, and the older ones, which it has processed, go. Frames of that run
    /// the bounds pushed out keep their numbers' places, so [`Replay::since`] reports them as a gap.
    /// True when the frames were renumbered.
    pub(crate) fn rejoin(&mut self, count: u64) -> bool {
        let Some(mark) = self.unseen.take() else {
            return false;
        };
        if count < mark {
            return false;
        }
        while self.first < mark && !self.frames.is_empty() {
            self.drop_oldest();
        }
        let gone = self.first.saturating_sub(mark);
        self.first = count + 1 + gone;
        true
    }

    /// The number of the oldest frame held (the next number when none is).
    pub(crate) fn first(&self) -> u64 {
        self.first
    }

    /// The number the next frame gets.
    pub(crate) fn next_seq(&self) -> u64 {
        self.first + self.frames.len() as u64
    }

    /// Keeps a frame; the oldest ones go when a bound is passed.
    pub(crate) fn push(&mut self, frame: Utf8Bytes) {
        self.bytes += frame.len();
        self.frames.push_back(frame);
        while self.frames.len() > self.max_messages
            || (self.bytes > self.max_bytes && self.frames.len() > 1)
        {
            self.drop_oldest();
        }
    }

    /// Forgets every frame numbered `seq` or lower: the client has processed them.
    pub(crate) fn ack(&mut self, seq: u64) {
        while self.first <= seq && !self.frames.is_empty() {
            self.drop_oldest();
        }
    }

    fn drop_oldest(&mut self) {
        if let Some(frame) = self.frames.pop_front() {
            self.bytes -= frame.len();
            self.first += 1;
        }
    }

    /// The frames after `last_seq`. A `last_seq` beyond what was sent is treated as "everything".
    pub(crate) fn since(&self, last_seq: u64) -> Since {
        let last_seq = last_seq.min(self.next_seq() - 1);
        let gap = last_seq + 1 < self.first;
        let skip = (last_seq + 1).saturating_sub(self.first) as usize;
        Since {
            frames: self.frames.iter().skip(skip).cloned().collect(),
            gap,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replay_of(count: u64, max: usize) -> Replay {
        let mut replay = Replay::new(max, usize::MAX);
        for n in 1..=count {
            replay.push(Utf8Bytes::from(n.to_string()));
        }
        replay
    }

    fn texts(since: &Since) -> Vec<&str> {
        since.frames.iter().map(|frame| frame.as_str()).collect()
    }

    #[test]
    fn replays_what_follows_the_client_count() {
        let replay = replay_of(5, 100);
        let since = replay.since(2);
        assert_eq!(texts(&since), ["3", "4", "5"]);
        assert!(!since.gap);
        assert!(replay.since(5).frames.is_empty());
        assert!(replay.since(99).frames.is_empty());
    }

    #[test]
    fn acks_trim_and_numbers_go_on() {
        let mut replay = replay_of(5, 100);
        replay.ack(3);
        assert_eq!(texts(&replay.since(3)), ["4", "5"]);
        assert_eq!(replay.next_seq(), 6);
        assert!(replay.since(1).gap, "frames 2 and 3 are gone");
    }

    #[test]
    fn overflow_is_reported_as_a_gap() {
        let replay = replay_of(10, 4);
        let since = replay.since(3);
        assert!(since.gap);
        assert_eq!(texts(&since), ["7", "8", "9", "10"]);
        assert!(!replay.since(6).gap);
    }

    #[test]
    fn a_restored_buffer_numbers_on_from_the_copy_or_the_client() {
        let frames = vec![Utf8Bytes::from("5"), Utf8Bytes::from("6")];
        let replay = Replay::copied(100, usize::MAX, 5, frames.clone(), None).resumed_at(4);
        assert_eq!(texts(&replay.since(4)), ["5", "6"]);
        assert_eq!(replay.next_seq(), 7);
        assert!(replay.since(2).gap);
        // The client saw frames the copy never got: numbering goes on after its count.
        let ahead = Replay::copied(100, usize::MAX, 5, frames, None).resumed_at(9);
        assert_eq!(ahead.next_seq(), 10);
        assert!(ahead.since(9).frames.is_empty());
        assert!(!ahead.since(9).gap);
    }

    /// A copy of frames 1..=3 taken over with no client, which then counts `later` more.
    fn adopted_with(later: &[&str], max: usize) -> Replay {
        let frames = ["1", "2", "3"].map(Utf8Bytes::from).to_vec();
        let mut replay = Replay::copied(max, usize::MAX, 1, frames, None).adopted();
        for frame in later {
            replay.push(Utf8Bytes::from(*frame));
        }
        replay
    }

    #[test]
    fn a_taken_over_buffer_replays_what_it_counted_alone_after_a_count_past_the_copy() {
        let mut replay = adopted_with(&["a", "b"], 100);
        assert_eq!(replay.unseen(), Some(4));
        // The client went on with its old node up to 6: "a" and "b" (4 and 5 here) follow its count.
        assert!(replay.rejoin(6));
        let since = replay.since(6);
        assert_eq!(texts(&since), ["a", "b"]);
        assert!(!since.gap);
        assert_eq!(replay.next_seq(), 9);
        assert_eq!(replay.unseen(), None);
        assert!(!replay.rejoin(6), "once only");
    }

    #[test]
    fn a_taken_over_buffer_resumed_within_the_copy_keeps_its_numbers() {
        let mut replay = adopted_with(&["a"], 100);
        assert!(!replay.rejoin(2));
        assert_eq!(texts(&replay.since(2)), ["3", "a"]);
        assert_eq!(replay.next_seq(), 5);
        assert_eq!(replay.unseen(), None);
    }

    #[test]
    fn frames_counted_alone_and_pushed_out_are_a_gap_after_the_renumbering() {
        // Bound of 2: of "a", "b", "c" (4, 5, 6) only "b" and "c" are left.
        let mut replay = adopted_with(&["a", "b", "c"], 2);
        assert!(replay.rejoin(10));
        let since = replay.since(10);
        assert_eq!(texts(&since), ["b", "c"]);
        assert!(since.gap);
        assert_eq!(replay.next_seq(), 14);
    }

    #[test]
    fn a_copy_taken_over_twice_keeps_the_first_mark_and_a_restore_honours_it() {
        let frames = ["1", "2", "3", "a"].map(Utf8Bytes::from).to_vec();
        let again = Replay::copied(100, usize::MAX, 1, frames.clone(), Some(4)).adopted();
        assert_eq!(again.unseen(), Some(4));
        let resumed = Replay::copied(100, usize::MAX, 1, frames, Some(4)).resumed_at(7);
        assert_eq!(texts(&resumed.since(7)), ["a"]);
        assert_eq!(resumed.next_seq(), 9);
    }

    #[test]
    fn the_byte_bound_keeps_at_least_the_newest_frame() {
        let mut replay = Replay::new(100, 3);
        replay.push(Utf8Bytes::from("aa"));
        replay.push(Utf8Bytes::from("bb"));
        assert_eq!(texts(&replay.since(0)), ["bb"]);
        replay.push(Utf8Bytes::from("a much longer frame"));
        assert_eq!(texts(&replay.since(0)), ["a much longer frame"]);
    }
}
