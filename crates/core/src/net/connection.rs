//! The shared handle of one live connection: what the application and the server use to reach it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::value::RawValue;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio_tungstenite::tungstenite::{Bytes, Utf8Bytes};

use super::cork;
use super::introduction::Introduction;
use super::keys::Keyed;
use super::outbox::{Outbox, Text};
use crate::app::call;
use crate::protocol;
use crate::session::Replay;
use crate::stats::Stats;
use crate::sync::Locked;

/// Close code of a socket whose session was resumed on another socket.
const TAKEN_OVER: u16 = 4009;

/// A connection, registered under its numeric key while it lives: while its socket is open, and with
/// session recovery also while its session waits for the client to come back.
#[derive(Debug)]
pub(crate) struct Connection {
    /// The numeric key calls and ops use.
    pub(crate) key: u64,
    /// The public id (a UUID), stable for the connection's life; also its session id.
    pub(crate) id: Box<str>,
    /// Carries calls to the application; held here so work started for this connection can report back.
    pub(crate) calls: mpsc::Sender<String>,
    /// Whether the application has heard of the connection; see [`Connection::told`].
    pub(crate) introduction: Introduction,
    link: Mutex<Link>,
    pending: Mutex<Waiting>,
    stats: Arc<Stats>,
}

/// What became of a server request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pending {
    /// Waiting for the client's answer.
    Added,
    /// The connection has as many requests waiting as it may.
    Full,
    /// The connection has ended, or the id is taken.
    Refused,
}

/// Server requests waiting for the client's answer, each with its timeout task. The ids are the server's
/// own, so the map needs no random keys (see [`Keyed`]), and its hasher takes no room in every connection.
#[derive(Debug, Default)]
struct Waiting {
    closed: bool,
    timers: HashMap<u64, AbortHandle, Keyed>,
}

/// Where frames go: the current socket's queue, and the session's replay buffer.
#[derive(Debug)]
struct Link {
    /// The socket's queue; `None` while a session waits for its client.
    outbox: Option<Arc<Outbox>>,
    /// Boxed: without session recovery (the default) it would be 104 unused bytes in every connection.
    session: Option<Box<SessionState>>,
}

/// The mutable part of a session.
#[derive(Debug)]
struct SessionState {
    replay: Replay,
    /// The generation the next resume or refresh token must carry.
    gen: u64,
    /// When the last token was issued, for the refresh rate limit.
    issued: Instant,
    /// Counts the times the session lost its socket, so a stale expiry timer does nothing.
    suspensions: u64,
    ended: bool,
    /// Ended by a hand-over to another node: its copy in Redis is the other node's to claim.
    handed_over: bool,
}

/// A session's resumable state, as [`Connection::session_view`] reads it.
#[derive(Debug)]
pub(crate) struct SessionView {
    pub(crate) first: u64,
    pub(crate) next: u64,
    pub(crate) gen: u64,
    /// Where the frames counted with no client begin (see [`Replay::unseen`]).
    pub(crate) unseen: Option<u64>,
    pub(crate) frames: Vec<Utf8Bytes>,
}

impl SessionState {
    /// The session as a copy needs it, having the frames up to `after` (see [`Connection::session_view`]).
    fn view(&self, after: u64) -> SessionView {
        let replay = &self.replay;
        SessionView {
            first: replay.first(),
            next: replay.next_seq(),
            gen: self.gen,
            unseen: replay.unseen(),
            frames: replay
                .since(after.max(replay.first().saturating_sub(1)))
                .frames,
        }
    }

    fn new(replay: Replay, gen: u64, suspensions: u64) -> Self {
        SessionState {
            replay,
            gen,
            issued: Instant::now(),
            suspensions,
            ended: false,
            handed_over: false,
        }
    }
}

/// What happened when a socket ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Detach {
    /// Another socket had taken the session over: nothing to report.
    Replaced,
    /// The session waits for its client; the number identifies this wait.
    Suspended(u64),
    /// The connection is over.
    Closed,
}

/// Why a resume was refused; the text is what the client is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    /// The session has ended.
    #[error("unknown session")]
    Unknown,
    /// The token's generation was used already.
    #[error("token already used")]
    Used,
    /// The token is past its expiry and the session still has a socket to take over.
    #[error("expired token")]
    Expired,
}

/// A successful resume.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Resumed {
    /// Frames sent again.
    pub(crate) replayed: usize,
    /// Some frames the client never processed are gone.
    pub(crate) gap: bool,
    /// The generation the next token must carry.
    pub(crate) gen: u64,
    /// The number of the last numbered frame, which the client's count should be after the replay.
    pub(crate) seq: u64,
}

impl Connection {
    /// A connection on `outbox`, which the application hears of with `origin` (see
    /// [`call::origin`]); with `replay`, a session whose first token carries generation 0.
    pub(crate) fn new(
        key: u64,
        id: String,
        origin: String,
        outbox: Arc<Outbox>,
        calls: mpsc::Sender<String>,
        stats: Arc<Stats>,
        replay: Option<Replay>,
    ) -> Self {
        let link = Link {
            outbox: Some(outbox),
            session: replay.map(|replay| Box::new(SessionState::new(replay, 0, 0))),
        };
        Connection::with_link(key, id, Introduction::due(origin), calls, stats, link)
    }

    /// A session brought over from another node, waiting for its client (suspension 1): `gen` is the
    /// generation the client's next token carries.
    pub(crate) fn restored(
        key: u64,
        id: String,
        calls: mpsc::Sender<String>,
        stats: Arc<Stats>,
        replay: Replay,
        gen: u64,
    ) -> Self {
        let link = Link {
            outbox: None,
            session: Some(Box::new(SessionState::new(replay, gen, 1))),
        };
        Connection::with_link(key, id, Introduction::heard(), calls, stats, link)
    }

    fn with_link(
        key: u64,
        id: String,
        introduction: Introduction,
        calls: mpsc::Sender<String>,
        stats: Arc<Stats>,
        link: Link,
    ) -> Self {
        Connection {
            key,
            id: id.into_boxed_str(),
            calls,
            introduction,
            link: Mutex::new(link),
            pending: Mutex::new(Waiting::default()),
            stats,
        }
    }

    /// What a copy of the session needs to catch up, having the frames up to `after`: the numbers of
    /// the first held and the next frame, the token generation, and the held frames after `after`.
    pub(crate) fn session_view(&self, after: u64) -> Option<SessionView> {
        let link = self.link();
        let session = link.session.as_ref().filter(|session| !session.ended)?;
        Some(session.view(after))
    }

    /// Stops the session for a hand-over to another node whose client has a token of generation `gen`,
    /// in one step so no frame slips between: from here on nothing is counted or kept for it, and a
    /// socket it has is closed with 4009. Returns its whole state (as [`Connection::session_view`] with
    /// nothing written) and whether it has no socket (the caller then ends it); [`Refusal::Unknown`] when
    /// it had ended, [`Refusal::Used`] when the token is older than the session's (it goes on here).
    pub(crate) fn hand_over(&self, gen: u64) -> Result<(SessionView, bool), Refusal> {
        let mut link = self.link();
        let Link { outbox, session } = &mut *link;
        let Some(session) = session.as_mut().filter(|session| !session.ended) else {
            return Err(Refusal::Unknown);
        };
        // A used token must not take the session from its client.
        if gen < session.gen {
            return Err(Refusal::Used);
        }
        session.ended = true;
        session.handed_over = true;
        let view = session.view(0);
        if let Some(outbox) = outbox {
            outbox.close(TAKEN_OVER, "Session taken over");
        }
        Ok((view, outbox.is_none()))
    }

    /// Whether the session ended by a hand-over to another node (see [`Connection::hand_over`]).
    pub(crate) fn handed_over(&self) -> bool {
        self.link()
            .session
            .as_ref()
            .is_some_and(|session| session.handed_over)
    }

    fn link(&self) -> std::sync::MutexGuard<'_, Link> {
        // Every update leaves the link consistent before anything can panic; keep serving.
        self.link.locked()
    }

    /// `call` as the application must get it: after the connection's open call (comma-joined, as the
    /// calls channel's items are) when this is the first call about a connection it has not heard of
    /// yet (see [`Introduction`]).
    pub(crate) fn told(&self, call: String) -> String {
        match self.introduce() {
            None => call,
            Some(open) => open + "," + &call,
        }
    }

    /// The open call, if the application has not heard of the connection yet; from now on it has.
    pub(crate) fn introduce(&self) -> Option<String> {
        let origin = self.introduction.take()?;
        Some(call::open(self.key, &self.id, &origin))
    }

    /// Sends `call` to the application, introduced as [`Connection::told`] says; waits while the calls
    /// channel is full, and does nothing once the application is gone.
    pub(crate) async fn tell(&self, call: String) {
        let _ = self.calls.send(self.told(call)).await;
    }

    /// Queues a text frame; false (and counted as dropped) when it could not be queued.
    pub(crate) fn send(&self, frame: impl Into<Utf8Bytes>) -> bool {
        self.queue(&frame.into(), false)
    }

    /// Queues a frame; a `volatile` one is dropped (and counted) rather than close a slow connection.
    /// In a session every frame that is not dropped is numbered and kept for replay, also while the
    /// session waits for its client; a dropped volatile frame takes no number, so both ends count alike.
    /// Borrowed (see [`Text`]): a broadcast's recipients share one frame, and an answer stays in the
    /// application's flush; either is copied to the socket, and counted once more or copied only where
    /// it is kept.
    pub(crate) fn queue<'a>(&self, frame: impl Into<Text<'a>>, volatile: bool) -> bool {
        let mut link = self.link();
        let Link { outbox, session } = &mut *link;
        let push = |frame: Text<'_>| {
            outbox
                .as_ref()
                .is_some_and(|outbox| outbox.push(frame, volatile))
        };
        let kept = match session {
            Some(session) if !session.ended => {
                // Kept for replay whatever the socket does: made shared once, for both.
                let frame = frame.into().to_shared();
                let kept = push(Text::Shared(&frame)) || !volatile;
                if kept {
                    session.replay.push(frame);
                }
                kept
            }
            _ => push(frame.into()),
        };
        if !kept {
            self.stats.dropped();
        }
        kept
    }

    /// Queues a binary frame (echo mode): not numbered, not kept.
    pub(crate) fn send_binary(&self, frame: Bytes) -> bool {
        let queued = self
            .link()
            .outbox
            .as_ref()
            .is_some_and(|outbox| outbox.push_binary(frame));
        if !queued {
            self.stats.dropped();
        }
        queued
    }

    /// Queues a session control frame: not numbered, not kept, only for the current socket.
    pub(crate) fn send_control(&self, frame: impl Into<Utf8Bytes>) {
        if let Some(outbox) = &self.link().outbox {
            outbox.push(&frame.into(), false);
        }
    }

    /// Tells the socket task, if there is one, that the server is stopping: it sends what is queued, then
    /// closes with 1001.
    pub(crate) fn stop(&self) {
        if let Some(outbox) = &self.link().outbox {
            outbox.stop();
        }
    }

    /// Asks for a ping to be sent now (for the application's `ping`).
    pub(crate) fn ping(&self, id: u64) {
        if let Some(outbox) = &self.link().outbox {
            outbox.ping(id);
        }
    }

    /// Asks for the connection to be closed. The server closing a connection (the application, or a
    /// policy such as the rate limit) ends its session too: only a lost socket is worth resuming.
    /// Returns true when there is no socket to close (a waiting session): the caller ends it now.
    pub(crate) fn close(&self, code: u16, reason: &str) -> bool {
        let mut link = self.link();
        let waiting = match &mut link.session {
            Some(session) if !session.ended => {
                session.ended = true;
                link.outbox.is_none()
            }
            _ => false,
        };
        if let Some(outbox) = &link.outbox {
            outbox.close(code, reason);
        }
        waiting
    }

    /// The client has processed the first `seq` numbered frames.
    pub(crate) fn ack(&self, seq: u64) {
        if let Some(session) = &mut self.link().session {
            session.replay.ack(seq);
        }
    }

    /// Called when the socket behind `outbox` ended.
    pub(crate) fn detach(&self, outbox: &Arc<Outbox>, keep_session: bool) -> Detach {
        let mut link = self.link();
        if !link
            .outbox
            .as_ref()
            .is_some_and(|current| Arc::ptr_eq(current, outbox))
        {
            return Detach::Replaced;
        }
        link.outbox = None;
        match &mut link.session {
            Some(session) if keep_session && !session.ended => {
                session.suspensions += 1;
                Detach::Suspended(session.suspensions)
            }
            Some(session) => {
                session.ended = true;
                Detach::Closed
            }
            None => Detach::Closed,
        }
    }

    /// Ends a session still waiting since suspension `suspension`; false when the client came back since
    /// (or the session already ended).
    pub(crate) fn expire(&self, suspension: u64) -> bool {
        let mut link = self.link();
        let waiting = link.outbox.is_none();
        match &mut link.session {
            Some(session) if waiting && !session.ended && session.suspensions == suspension => {
                session.ended = true;
                true
            }
            _ => false,
        }
    }

    /// Moves the session onto `outbox`: a socket it still has is closed with 4009, the frames after
    /// `last_seq` are sent again, then `recovered(resumed)` builds the control frame that follows them; all
    /// of them leave in one write.
    /// An `expired` token only resumes a session waiting for its client (see `Claims::expired`). A session
    /// taken over from another node's copy, not resumed since, also takes a token of a later generation
    /// than the copy's: copies are written behind, so the client may have used tokens the copy never saw.
    pub(crate) fn resume(
        &self,
        gen: u64,
        expired: bool,
        last_seq: u64,
        outbox: Arc<Outbox>,
        recovered: impl FnOnce(&Resumed) -> String,
    ) -> Result<Resumed, Refusal> {
        cork::in_one_write(|| self.move_to(outbox, gen, expired, last_seq, recovered))
    }

    /// [`Connection::resume`] without the hold: each frame is written as it is sent.
    fn move_to(
        &self,
        outbox: Arc<Outbox>,
        gen: u64,
        expired: bool,
        last_seq: u64,
        recovered: impl FnOnce(&Resumed) -> String,
    ) -> Result<Resumed, Refusal> {
        let mut link = self.link();
        let Link {
            outbox: current,
            session,
        } = &mut *link;
        let Some(session) = session.as_mut().filter(|session| !session.ended) else {
            return Err(Refusal::Unknown);
        };
        let copy_behind = gen > session.gen && session.replay.unseen().is_some();
        if session.gen != gen && !copy_behind {
            return Err(Refusal::Used);
        }
        if expired && current.is_some() {
            return Err(Refusal::Expired);
        }
        if let Some(previous) = current.take() {
            previous.close(TAKEN_OVER, "Session taken over");
        }
        session.replay.rejoin(last_seq);
        let since = session.replay.since(last_seq);
        for frame in &since.frames {
            outbox.push(frame, false);
        }
        session.gen = gen + 1;
        session.issued = Instant::now();
        let resumed = Resumed {
            replayed: since.frames.len(),
            gap: since.gap,
            gen: session.gen,
            seq: session.replay.next_seq() - 1,
        };
        outbox.push(&recovered(&resumed).into(), false);
        *current = Some(outbox);
        Ok(resumed)
    }

    /// Moves the session to its next token generation, unless the last token is younger than
    /// `min_age`; the error is how long to wait.
    pub(crate) fn refresh(&self, min_age: Duration) -> Option<Result<u64, Duration>> {
        let mut link = self.link();
        let session = link.session.as_mut()?;
        let age = session.issued.elapsed();
        if age < min_age {
            return Some(Err(min_age - age));
        }
        session.gen += 1;
        session.issued = Instant::now();
        Some(Ok(session.gen))
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Waiting> {
        // A poisoned lock only means another thread panicked mid-update of a plain map; keep serving.
        self.pending.locked()
    }

    /// Sends server request `id` to the client, unless the connection has ended, the id is taken, or `max`
    /// requests are waiting already. If no answer comes within `timeout`, `expired` runs on `runtime`. The
    /// timer starts under the lock, so even a zero timeout finds its entry.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn request(
        self: &Arc<Self>,
        runtime: &Handle,
        id: u64,
        method: &str,
        payload: &RawValue,
        timeout: Duration,
        max: usize,
        expired: impl Future<Output = ()> + Send + 'static,
    ) -> Pending {
        {
            let mut waiting = self.pending();
            if waiting.closed || waiting.timers.contains_key(&id) {
                return Pending::Refused;
            }
            if waiting.timers.len() >= max {
                return Pending::Full;
            }
            let conn = self.clone();
            let timer = runtime.spawn(async move {
                tokio::time::sleep(timeout).await;
                if conn.expire_pending(id) {
                    expired.await;
                }
            });
            waiting.timers.insert(id, timer.abort_handle());
        }
        self.send(protocol::request_frame(id, method, payload));
        Pending::Added
    }

    /// Takes a server request out of the pending set because it was answered; false when it was not
    /// pending (unknown, answered already, or timed out).
    pub(crate) fn answer_pending(&self, id: u64) -> bool {
        match self.pending().timers.remove(&id) {
            Some(timer) => {
                timer.abort();
                true
            }
            None => false,
        }
    }

    /// Takes a server request out of the pending set because it timed out.
    fn expire_pending(&self, id: u64) -> bool {
        self.pending().timers.remove(&id).is_some()
    }

    /// Whether the connection has ended for good ([`Connection::close_pending`] ran).
    pub(crate) fn ended(&self) -> bool {
        self.pending().closed
    }

    /// Drops every pending request at close; the application rejects them when it learns of the close.
    pub(crate) fn close_pending(&self) {
        let mut pending = self.pending();
        pending.closed = true;
        for (_, timer) in pending.timers.drain() {
            timer.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    /// The allocator's size class the record of every connection is kept in, with the two counts of its
    /// `Arc`.
    const RECORD_CLASS: usize = 160;

    #[test]
    fn a_connection_record_stays_within_its_size_class() {
        let size = std::mem::size_of::<super::Connection>() + 2 * std::mem::size_of::<usize>();
        assert!(
            size <= RECORD_CLASS,
            "a connection's record is {size} bytes, over {RECORD_CLASS}: every connection would take the \
             allocator's next size class"
        );
    }
}
