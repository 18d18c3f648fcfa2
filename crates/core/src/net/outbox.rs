//! What a connection sends: frames written straight to a plain socket, or queued for the socket task
//! (TLS, pings, closes); bounded by the bytes not yet taken by the socket.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::futures::Notified;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::{Bytes, Utf8Bytes};

use super::cork;
use super::frame::{self, BINARY, TEXT};
use super::wire::{Sent, Wire};
use crate::stats::Stats;
use crate::sync::Locked;

/// A text frame to send, as its sender has it. The application's answers come borrowed from the text of
/// its flush: a plain socket takes them as they stand, and they are copied into shared bytes only where a
/// frame is kept (a TLS connection's queue, a session's replay buffer).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Text<'a> {
    /// Text the sender keeps.
    Borrowed(&'a str),
    /// A frame that may be kept as it is: one broadcast frame serves every recipient.
    Shared(&'a Utf8Bytes),
}

impl Text<'_> {
    fn as_bytes(&self) -> &[u8] {
        match self {
            Text::Borrowed(text) => text.as_bytes(),
            Text::Shared(frame) => frame.as_bytes(),
        }
    }

    /// The frame as bytes to keep: a copy of borrowed text, another count of a shared frame.
    pub(crate) fn to_shared(self) -> Utf8Bytes {
        match self {
            Text::Borrowed(text) => Utf8Bytes::from(text.to_owned()),
            Text::Shared(frame) => frame.clone(),
        }
    }
}

impl<'a> From<&'a Utf8Bytes> for Text<'a> {
    fn from(frame: &'a Utf8Bytes) -> Self {
        Text::Shared(frame)
    }
}

/// What the socket task writes next.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// A text frame; clones share the bytes, so one broadcast frame serves every recipient.
    Frame(Utf8Bytes),
    /// A binary frame (echo mode only: protocol messages are text).
    Binary(Bytes),
    /// A ping the application asked for, with its id.
    Ping(u64),
    /// A close frame, after which the connection only waits for the client's close.
    Close { code: u16, reason: String },
}

/// What a connection sends, shared by everything that writes to it.
///
/// Over plain TCP, frames are written to the socket by the sender itself (see [`Wire`]); over TLS, whose
/// session has a single owner, they wait in a queue the socket task drains, and a cork holds them there as
/// it holds a plain wire's bytes. Application pings and close requests always go through the queue, since
/// the socket task writes those.
///
/// The queue is a plain queue under a lock, not a channel: it holds no memory while empty (idle
/// connections are the common case), and the socket task takes everything queued in one lock.
#[derive(Debug)]
pub(crate) struct Outbox {
    /// Plain TCP: the socket frames are written to.
    wire: Option<Arc<Wire>>,
    stats: Arc<Stats>,
    /// A close was asked for: later frames are refused.
    closing: AtomicBool,
    queue: Mutex<Queue>,
    /// Wakes the socket task: the queue turned non-empty, the limit was passed, the server is stopping, or
    /// bytes were left in the wire's backlog for the task to write. One signal rather than one each: every
    /// wait the task keeps armed is in every connection's task.
    ready: Notify,
    queued: AtomicUsize,
    /// 32 bits: with the flags beside it, the outbox stays in the allocator's 128-byte class.
    limit: u32,
    overflowed: AtomicBool,
    stopping: AtomicBool,
}

#[derive(Debug, Default)]
struct Queue {
    items: VecDeque<Outbound>,
    /// The socket task has ended: nothing more is taken.
    shut: bool,
    /// Frames are held by a cork (see [`super::cork`]): the socket task is woken at its release, so that
    /// a turn's frames leave together, in one TLS record rather than one each.
    held: bool,
}

/// Most bytes a TLS connection's queue holds for a cork. A turn's replies share records well below it;
/// past it the socket task is woken to write as frames come, as the plain wire offers held bytes to its
/// socket before they count against the limit.
const HOLD_AT_MOST: usize = 64 * 1024;

impl Outbox {
    /// An outbox holding at most `limit` bytes of frames not yet taken by the socket; frames go straight
    /// to `wire` when there is one.
    pub(crate) fn new(limit: usize, wire: Option<Arc<Wire>>, stats: Arc<Stats>) -> Self {
        Outbox {
            wire,
            stats,
            closing: AtomicBool::new(false),
            queue: Mutex::default(),
            ready: Notify::new(),
            queued: AtomicUsize::new(0),
            // Beyond 4 GiB unsent per connection there is no practical difference.
            limit: u32::try_from(limit).unwrap_or(u32::MAX),
            overflowed: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
        }
    }

    fn limit(&self) -> usize {
        self.limit as usize
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        // Every update of the queue is a single push or take: a poisoned lock still holds a valid queue.
        self.queue.locked()
    }

    /// Queues `item`; false once the socket task has ended.
    fn send(&self, item: Outbound) -> bool {
        self.enqueue(item, false).is_some()
    }

    /// Queues `item`, waking the socket task unless `hold`: `None` once the task has ended, otherwise
    /// whether this began a hold, which the caller must hand to the cork.
    fn enqueue(&self, item: Outbound, hold: bool) -> Option<bool> {
        let mut queue = self.queue();
        if queue.shut {
            return None;
        }
        // A non-empty queue has had its wake-up already, unless it is held.
        let wake = queue.items.is_empty() || queue.held;
        queue.items.push_back(item);
        if hold {
            return Some(!std::mem::replace(&mut queue.held, true));
        }
        queue.held = false;
        drop(queue);
        if wake {
            self.ready.notify_one();
        }
        Some(false)
    }

    /// Queues a data frame of `len` bytes for the socket task (TLS), held while a cork is on.
    fn queue_data(self: &Arc<Self>, item: Outbound, len: usize, volatile: bool) -> bool {
        if !self.admit(len, volatile) {
            return false;
        }
        let hold = cork::active() && self.queued.load(Ordering::Acquire) <= HOLD_AT_MOST;
        match self.enqueue(item, hold) {
            None => false,
            Some(first) => {
                if first {
                    cork::held(self.clone());
                }
                true
            }
        }
    }

    /// Resolves once something may have been queued since the last [`Outbox::take`], the limit passed
    /// ([`Outbox::overflowed`]), the server started stopping ([`Outbox::stopping`]) or bytes were left in
    /// the wire's backlog ([`Wire::stranded`]); the socket task keeps one armed at all times, so a push
    /// wakes it directly.
    pub(crate) fn ready(&self) -> Notified<'_> {
        self.ready.notified()
    }

    /// Wakes the socket task again, for a wake-up a wait of its own took (see [`Outbox::ready`]).
    pub(crate) fn wake(&self) {
        self.ready.notify_one();
    }

    /// Takes up to `max` queued items, oldest first; what remains wakes the task again.
    pub(crate) fn take(&self, max: usize) -> VecDeque<Outbound> {
        let mut queue = self.queue();
        if queue.items.len() <= max {
            return std::mem::take(&mut queue.items);
        }
        let batch = queue.items.drain(..max).collect();
        drop(queue);
        self.ready.notify_one();
        batch
    }

    /// The socket task has ended: later frames are refused and what is queued is dropped.
    pub(crate) fn shut(&self) {
        self.closing.store(true, Ordering::Release);
        let mut queue = self.queue();
        queue.shut = true;
        queue.items = VecDeque::new();
    }

    /// Queues a frame. Returns false when the connection is gone or has passed the byte limit. A frame
    /// that finds the queue empty is always taken, so one large message never trips the limit alone.
    /// A `volatile` frame over the limit is only dropped: the connection stays, for messages that are
    /// worthless late (positions, typing indicators).
    pub(crate) fn push<'a>(self: &Arc<Self>, frame: impl Into<Text<'a>>, volatile: bool) -> bool {
        let frame = frame.into();
        let payload = frame.as_bytes();
        match &self.wire {
            Some(wire) => self.write(wire, TEXT, payload, volatile),
            None => self.queue_data(Outbound::Frame(frame.to_shared()), payload.len(), volatile),
        }
    }

    /// Queues a binary frame, under the same limit.
    pub(crate) fn push_binary(self: &Arc<Self>, frame: Bytes) -> bool {
        match &self.wire {
            Some(wire) => self.write(wire, BINARY, &frame, false),
            None => {
                let len = frame.len();
                self.queue_data(Outbound::Binary(frame), len, false)
            }
        }
    }

    /// Writes a data frame to the socket now, under the same limit as the queue: the bytes the socket
    /// has not taken yet.
    fn write(self: &Arc<Self>, wire: &Wire, opcode: u8, payload: &[u8], volatile: bool) -> bool {
        if self.overflowed() || self.closing.load(Ordering::Acquire) {
            return false;
        }
        let (header, header_len) = frame::header(opcode, payload.len());
        let sent = match wire.write(&header[..header_len], payload, cork::active(), self.limit()) {
            Ok(Sent::Over(waiting)) => {
                if !volatile {
                    self.overflow(waiting);
                }
                return false;
            }
            Ok(sent) => sent,
            Err(_) => return false,
        };
        match sent {
            Sent::Held { first: true } => cork::held(self.clone()),
            Sent::Stranded => self.ready.notify_one(),
            _ => {}
        }
        self.stats.sent(payload.len());
        true
    }

    /// Writes what a cork held in the wire, and what the socket does not take now is the socket task's; or
    /// wakes the socket task for the frames a cork held in the queue.
    pub(crate) fn release(&self) {
        let wake = match &self.wire {
            Some(wire) => wire.release() == Sent::Stranded,
            None => {
                let mut queue = self.queue();
                std::mem::take(&mut queue.held) && !queue.items.is_empty()
            }
        };
        if wake {
            self.ready.notify_one();
        }
    }

    fn overflow(&self, queued: usize) {
        if !self.overflowed.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                queued,
                limit = self.limit,
                "outbound limit passed, dropping the connection"
            );
            self.ready.notify_one();
        }
    }

    /// Counts `len` more queued bytes, unless that passes the limit.
    fn admit(&self, len: usize, volatile: bool) -> bool {
        if self.overflowed() {
            return false;
        }
        let before = self.queued.fetch_add(len, Ordering::AcqRel);
        if before > 0 && before + len > self.limit() {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            if !volatile {
                self.overflow(before);
            }
            return false;
        }
        true
    }

    /// Whether the byte limit has been passed; the socket task then drops the connection, since a client
    /// that does not read would not read a close frame either.
    pub(crate) fn overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Acquire)
    }

    /// Tells the socket task that the server is stopping: it sends what is queued, then closes.
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        self.ready.notify_one();
    }

    /// Whether the server is stopping (see [`Outbox::stop`]).
    pub(crate) fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Records that a frame of `len` bytes has left the queue.
    pub(crate) fn written(&self, len: usize) {
        self.queued.fetch_sub(len, Ordering::AcqRel);
    }

    /// Bytes waiting to be written.
    #[cfg(test)]
    pub(crate) fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// Asks the socket task to ping the client.
    pub(crate) fn ping(&self, id: u64) {
        self.send(Outbound::Ping(id));
    }

    /// Asks the socket task to close the connection; frames sent after this are refused.
    pub(crate) fn close(&self, code: u16, reason: &str) {
        self.closing.store(true, Ordering::Release);
        self.send(Outbound::Close {
            code,
            reason: reason.to_owned(),
        });
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn an_outbox_stays_within_its_size_class() {
        // Every connection has one, behind an `Arc` (two counts of 8 bytes).
        let size = std::mem::size_of::<Outbox>() + 16;
        assert!(
            size <= 128,
            "an outbox is {size} bytes, over the allocator's 128-byte class"
        );
    }

    /// Whether the socket task's wait ([`Outbox::ready`]) resolves, within a generous time.
    fn woken(outbox: &Outbox) -> bool {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime")
            .block_on(async { tokio::time::timeout(Duration::from_secs(5), outbox.ready()).await })
            .is_ok()
    }

    /// A frame the socket does not take whole waits in the wire's backlog for the socket task, which the
    /// outbox's signal wakes; frames sent meanwhile queue behind it, and the task's drain writes them all,
    /// whole and in order.
    #[tokio::test]
    async fn bytes_the_socket_does_not_take_wake_the_task_and_leave_in_order() {
        const SIZE: usize = 60_000;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let mut client = tokio::net::TcpStream::connect(listener.local_addr().expect("address"))
            .await
            .expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        let wire = Arc::new(Wire::new(server));
        let outbox = Arc::new(Outbox::new(usize::MAX, Some(wire.clone()), Arc::default()));
        let frame =
            |n: usize| Utf8Bytes::from(char::from(b'a' + (n % 26) as u8).to_string().repeat(SIZE));
        let mut sent = 0;
        while !wire.stranded() {
            assert!(outbox.push(&frame(sent), false));
            sent += 1;
            assert!(sent < 10_000, "the socket's buffers never filled");
        }
        tokio::time::timeout(Duration::from_secs(5), outbox.ready())
            .await
            .expect("the socket task is woken");
        for _ in 0..3 {
            assert!(outbox.push(&frame(sent), false));
            sent += 1;
        }
        let reader = tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let mut received = vec![0u8; sent * (4 + SIZE)];
            client.read_exact(&mut received).await.expect("read");
            received
        });
        std::future::poll_fn(|cx| wire.poll_drain(cx))
            .await
            .expect("drain");
        assert!(!wire.stranded());
        let received = reader.await.expect("reader");
        for (n, record) in received.chunks(4 + SIZE).enumerate() {
            assert_eq!(record[..2], [0x81, 126], "frame {n} starts with its header");
            let fill = b'a' + (n % 26) as u8;
            assert!(
                record[4..].iter().all(|byte| *byte == fill),
                "frame {n} is whole and in its place"
            );
        }
    }

    #[test]
    fn passing_the_limit_refuses_every_later_frame_and_wakes_the_task() {
        let outbox = Arc::new(Outbox::new(10, None, Arc::default()));
        assert!(outbox.push(&Utf8Bytes::from("123456"), false));
        assert!(woken(&outbox), "the first frame wakes the task");
        assert!(!outbox.overflowed());
        assert!(!outbox.push(&Utf8Bytes::from("123456"), false));
        assert!(woken(&outbox), "passing the limit wakes the task");
        assert!(outbox.overflowed());
        assert_eq!(outbox.queued(), 6);
        let batch = outbox.take(10);
        assert_eq!(batch.len(), 1);
        assert!(matches!(batch[0], Outbound::Frame(_)));
        outbox.written(6);
        assert!(
            !outbox.push(&Utf8Bytes::from("1"), false),
            "an overflowed connection takes nothing more"
        );
    }

    #[test]
    fn stopping_wakes_the_task() {
        let outbox = Arc::new(Outbox::new(10, None, Arc::default()));
        assert!(!outbox.stopping());
        outbox.stop();
        assert!(outbox.stopping());
        assert!(woken(&outbox));
    }

    #[test]
    fn a_volatile_frame_over_the_limit_is_dropped_and_the_connection_kept() {
        let outbox = Arc::new(Outbox::new(10, None, Arc::default()));
        assert!(outbox.push(&Utf8Bytes::from("123456"), false));
        assert!(!outbox.push(&Utf8Bytes::from("123456"), true));
        let batch = outbox.take(10);
        assert_eq!(batch.len(), 1, "no close, no second frame");
        assert!(matches!(batch[0], Outbound::Frame(_)));
        assert!(outbox.push(&Utf8Bytes::from("1234"), false), "still open");
    }

    #[test]
    fn a_large_frame_on_an_empty_queue_is_taken() {
        let outbox = Arc::new(Outbox::new(10, None, Arc::default()));
        assert!(outbox.push(&Utf8Bytes::from("x".repeat(100)), false));
    }

    #[test]
    fn takes_in_order_up_to_max_and_refuses_once_shut() {
        let outbox = Arc::new(Outbox::new(1000, None, Arc::default()));
        for n in 0..5 {
            assert!(outbox.push(&Utf8Bytes::from(n.to_string()), false));
        }
        let texts = |batch: VecDeque<Outbound>| -> Vec<String> {
            batch
                .into_iter()
                .map(|item| match item {
                    Outbound::Frame(frame) => frame.to_string(),
                    other => panic!("unexpected {other:?}"),
                })
                .collect()
        };
        assert_eq!(texts(outbox.take(3)), ["0", "1", "2"]);
        assert_eq!(texts(outbox.take(3)), ["3", "4"]);
        assert!(outbox.take(3).is_empty());
        outbox.shut();
        assert!(!outbox.push(&Utf8Bytes::from("late"), false));
        assert!(outbox.take(3).is_empty());
    }

    #[test]
    fn a_push_wakes_a_waiting_task_and_a_partial_take_wakes_it_again() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let outbox = Arc::new(Outbox::new(1000, None, Arc::default()));
        outbox.push(&Utf8Bytes::from("a"), false);
        outbox.push(&Utf8Bytes::from("b"), false);
        runtime.block_on(outbox.ready());
        assert_eq!(outbox.take(1).len(), 1);
        runtime.block_on(outbox.ready());
        assert_eq!(outbox.take(1).len(), 1);
    }

    /// Whether the socket task's wait would end now (taking the wake-up).
    fn woken_now(outbox: &Outbox) -> bool {
        let mut ready = std::pin::pin!(outbox.ready());
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        std::future::Future::poll(ready.as_mut(), &mut cx).is_ready()
    }

    #[test]
    fn a_cork_holds_queued_frames_until_its_release_wakes_the_task() {
        let outbox = Arc::new(Outbox::new(1 << 20, None, Arc::default()));
        let mut handed = Vec::new();
        cork::holding(
            || {
                for n in 0..3 {
                    assert!(outbox.push(&Utf8Bytes::from(n.to_string()), false));
                }
            },
            |held| handed = held,
        );
        assert_eq!(handed.len(), 1, "handed to the cork once");
        assert!(!woken_now(&outbox), "held: the task sleeps");
        cork::write_now(handed);
        assert!(woken_now(&outbox), "the release wakes it");
        assert_eq!(outbox.take(10).len(), 3);

        // Past `HOLD_AT_MOST` the task is woken at once, so a large turn is written as it comes.
        cork::holding(
            || assert!(outbox.push(&Utf8Bytes::from("x".repeat(HOLD_AT_MOST + 1)), false)),
            |_| {},
        );
        assert!(woken_now(&outbox));
    }
}
