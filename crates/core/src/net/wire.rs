//! A plain TCP socket shared by every thread that sends to it.
//!
//! Whoever sends a frame (the JavaScript thread answering a batch or broadcasting, an I/O thread answering
//! a frame) writes it to the socket at once, without waking the connection's task. Only what the socket
//! cannot take right away waits in the backlog, in order, for the task to write when the socket drains;
//! while anything waits, later frames join the backlog behind it, so frames never interleave. The wire
//! has no signal of its own: a sender that leaves bytes for the task is told so ([`Sent::Stranded`]) and
//! wakes it through the connection's outbox, whose signal the task waits on anyway.
//!
//! The lock is never held across a system call: one sender at a time is the wire's writer, and writes
//! with the lock released; frames sent meanwhile join the backlog, and the writer takes them too before
//! it stops. A broadcast walking a thousand connections thus never waits for a write in progress on one.

use std::io::{self, IoSlice};
use std::sync::{Mutex, MutexGuard};
use std::task::{ready, Context, Poll};

use socket2::SockRef;
use tokio::io::Interest;
use tokio::net::TcpStream;

use crate::sync::Locked;

/// The socket and what waits to be written to it.
#[derive(Debug)]
pub(crate) struct Wire {
    tcp: TcpStream,
    backlog: Mutex<Backlog>,
}

/// Bytes the socket has not taken yet.
#[derive(Debug, Default)]
struct Backlog {
    bytes: Vec<u8>,
    /// While no one writes, how much of `bytes` has been written. While a writer is at work (`writing`),
    /// how many bytes it took out to write: they go before `bytes`, none of which is written then. One
    /// field for both keeps the wire in its allocator class.
    mark: usize,
    /// A writer is at work without the lock (see [`Wire::flush`]); others only append.
    writing: bool,
    /// A write failed: the connection is lost and nothing more is written.
    broken: bool,
    /// The bytes are held by a cork (see [`super::cork`]), whose release writes them.
    held: bool,
}

impl Backlog {
    fn len(&self) -> usize {
        if self.writing {
            self.mark + self.bytes.len()
        } else {
            self.bytes.len() - self.mark
        }
    }

    fn clear(&mut self) {
        self.mark = 0;
        self.bytes.clear();
        kept(&mut self.bytes);
    }

    /// Puts what was left of a frame written directly (`parts` past their first `skip` bytes) back in
    /// front of the bytes appended while it was written.
    fn put_back(&mut self, parts: [&[u8]; 2], mut skip: usize) {
        let behind = self.bytes.split_off(self.mark);
        self.bytes.clear();
        self.mark = 0;
        for part in parts {
            let taken = skip.min(part.len());
            skip -= taken;
            self.bytes.extend_from_slice(&part[taken..]);
        }
        self.bytes.extend_from_slice(&behind);
    }
}

/// The most buffer an emptied backlog keeps for the next frames: idle connections should cost little.
const KEPT: usize = 1024;

/// Makes an emptied buffer one to keep: one grown past [`KEPT`] by a burst is swapped for one of that
/// size, not for none, so that a connection sent that much turn after turn (replies to ten requests
/// in flight pass 1 KiB) grows it once per turn rather than from nothing, eight reallocations.
pub(super) fn kept(bytes: &mut Vec<u8>) {
    if bytes.capacity() > KEPT {
        *bytes = Vec::with_capacity(KEPT);
    }
}

/// One non-blocking send of `parts` to `tcp`: `send` for one, `sendmsg` for more. Not `write`/`writev`,
/// which reach the socket through the file layer and its checks: a broadcast to 1,000 connections, one at
/// a time, cost the I/O thread 7% less per delivery.
pub(super) fn try_send(tcp: &TcpStream, parts: &[IoSlice<'_>]) -> io::Result<usize> {
    tcp.try_io(Interest::WRITABLE, || {
        let socket = SockRef::from(tcp);
        match parts {
            [one] => socket.send(one),
            _ => socket.send_vectored(parts),
        }
    })
}

/// What became of the bytes given to [`Wire::write`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Sent {
    /// Written, or queued behind bytes that have their writer already.
    Out,
    /// Left in the backlog for the socket task, which the caller must wake: the socket took only part,
    /// or a write failed.
    Stranded,
    /// Held for a cork; `first` when no bytes were held since the last release: the caller must then
    /// arrange that release.
    Held { first: bool },
    /// Not taken: this many bytes wait already and the frame would pass the limit.
    Over(usize),
}

/// Where a [`Wire::flush`] left the backlog.
#[derive(Debug)]
enum Flushed {
    /// Everything is written.
    Empty,
    /// Another sender is writing; it takes what waits before it stops.
    Busy,
    /// What waits is held by a cork, whose release writes it.
    Held,
    /// The socket takes no more now: bytes wait for it to drain.
    Full,
    /// A write failed.
    Failed(io::Error),
}

impl Wire {
    pub(crate) fn new(tcp: TcpStream) -> Self {
        Wire {
            tcp,
            backlog: Mutex::default(),
        }
    }

    fn backlog(&self) -> MutexGuard<'_, Backlog> {
        // Every update leaves the backlog consistent; a poisoned lock still holds valid bytes.
        self.backlog.locked()
    }

    /// Bytes waiting to be written.
    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.backlog().len()
    }

    /// Writes `head` then `body` (a frame's header and payload, or raw bytes and nothing) after whatever
    /// waits, without blocking: what the socket does not take now joins the backlog. With `hold`, nothing
    /// is written yet: the bytes wait for [`Wire::release`]. Refused (`Sent::Over`) when bytes wait and
    /// `body` would take them past `limit`; fails once a write has failed.
    pub(crate) fn write(
        &self,
        head: &[u8],
        body: &[u8],
        hold: bool,
        limit: usize,
    ) -> io::Result<Sent> {
        let mut backlog = self.backlog();
        if backlog.held && !backlog.writing && backlog.len() + body.len() > limit {
            // Held bytes were never offered to the socket: they say nothing of a client that does not read.
            // They are offered now, and only what the socket does not take counts against the limit.
            if let Flushed::Failed(error) = self.flush(backlog, false) {
                return Err(error);
            }
            backlog = self.backlog();
        }
        if backlog.broken {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let was_empty = backlog.len() == 0;
        if !was_empty && backlog.len() + body.len() > limit {
            return Ok(Sent::Over(backlog.len()));
        }
        if hold || !was_empty {
            // Held for a cork's release; or behind bytes that have their writer already (the socket task,
            // the cork that holds them, or the sender writing now, which takes these too).
            backlog.bytes.extend_from_slice(head);
            backlog.bytes.extend_from_slice(body);
            if !hold {
                return Ok(Sent::Out);
            }
            let first = !std::mem::replace(&mut backlog.held, true);
            return Ok(Sent::Held { first });
        }
        backlog.clear();
        let (mut backlog, sent) = self.send([head, body], backlog);
        let written = match sent {
            Ok(written) => written,
            Err(error) => {
                backlog.broken = true;
                return Err(error);
            }
        };
        let total = head.len() + body.len();
        if written < total {
            backlog.put_back([head, body], written);
            return Ok(Sent::Stranded);
        }
        // Frames appended while this one was written are this sender's to write.
        Ok(self.write_waiting(backlog))
    }

    /// Writes what a cork held, as far as the socket takes it now; the rest waits for the socket task,
    /// which the caller must wake when told `Sent::Stranded`.
    pub(crate) fn release(&self) -> Sent {
        let mut backlog = self.backlog();
        backlog.held = false;
        self.write_waiting(backlog)
    }

    /// Writes what waits, held bytes left to their release; bytes the socket does not take now, or a failed
    /// write, are the socket task's to deal with (on failure, it ends).
    fn write_waiting(&self, backlog: MutexGuard<'_, Backlog>) -> Sent {
        match self.flush(backlog, true) {
            Flushed::Full | Flushed::Failed(_) => Sent::Stranded,
            Flushed::Empty | Flushed::Busy | Flushed::Held => Sent::Out,
        }
    }

    /// Frees the backlog's buffer if nothing waits in it. For after the handshake: the buffer that held its
    /// answer would otherwise stay with a connection that may send nothing for hours.
    pub(crate) fn trim(&self) {
        let mut backlog = self.backlog();
        if !backlog.writing && backlog.len() == 0 {
            backlog.mark = 0;
            backlog.bytes = Vec::new();
        }
    }

    /// Whether bytes wait that only the socket task will write: no other sender is writing them and no
    /// cork holds them; or a write failed, which the task must learn.
    pub(crate) fn stranded(&self) -> bool {
        let backlog = self.backlog();
        backlog.broken || (!backlog.writing && !backlog.held && backlog.len() > 0)
    }

    /// Writes `parts` as the wire's writer, with the lock released meanwhile: as much as the socket takes
    /// now. Returns the lock again, and how many bytes went.
    fn send<'a>(
        &'a self,
        parts: [&[u8]; 2],
        mut backlog: MutexGuard<'a, Backlog>,
    ) -> (MutexGuard<'a, Backlog>, io::Result<usize>) {
        let total = parts[0].len() + parts[1].len();
        backlog.writing = true;
        backlog.mark = total;
        drop(backlog);
        let mut written = 0;
        let mut result = Ok(());
        while written < total {
            let first = written.min(parts[0].len());
            match self.try_send(&parts[0][first..], &parts[1][written - first..]) {
                Ok(0) => break,
                Ok(sent) => written += sent,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) => {
                    result = Err(error);
                    break;
                }
            }
        }
        let mut backlog = self.backlog();
        backlog.writing = false;
        backlog.mark = 0;
        (backlog, result.map(|()| written))
    }

    /// One non-blocking send of `head` then `body`.
    fn try_send(&self, head: &[u8], body: &[u8]) -> io::Result<usize> {
        let parts = [IoSlice::new(head), IoSlice::new(body)];
        let parts = match (head.is_empty(), body.is_empty()) {
            (true, _) => &parts[1..],
            (false, true) => &parts[..1],
            (false, false) => &parts[..],
        };
        try_send(&self.tcp, parts)
    }

    /// Writes the backlog as far as the socket takes it now, taking in turn what is appended meanwhile;
    /// with `respect_hold`, held bytes are left to their release.
    fn flush<'a>(&'a self, mut backlog: MutexGuard<'a, Backlog>, respect_hold: bool) -> Flushed {
        loop {
            if backlog.broken {
                return Flushed::Failed(io::ErrorKind::BrokenPipe.into());
            }
            if backlog.writing {
                return Flushed::Busy;
            }
            if backlog.len() == 0 {
                backlog.clear();
                return Flushed::Empty;
            }
            if respect_hold && backlog.held {
                return Flushed::Held;
            }
            let start = std::mem::take(&mut backlog.mark);
            let mut chunk = std::mem::take(&mut backlog.bytes);
            let (guard, sent) = self.send([&chunk[start..], &[]], backlog);
            backlog = guard;
            match sent {
                Ok(written) if start + written == chunk.len() => {
                    // Nothing appended meanwhile: the buffer is kept for the next frames.
                    if backlog.bytes.is_empty() {
                        chunk.clear();
                        kept(&mut chunk);
                        backlog.bytes = chunk;
                    }
                }
                Ok(written) => {
                    // The rest stays where it is, in front of what was appended meanwhile (a short copy):
                    // a long backlog is never moved.
                    chunk.extend_from_slice(&backlog.bytes);
                    backlog.bytes = chunk;
                    backlog.mark = start + written;
                    return Flushed::Full;
                }
                Err(error) => {
                    backlog.broken = true;
                    return Flushed::Failed(error);
                }
            }
        }
    }

    /// Writes the backlog out, held bytes included; ready once it is empty.
    pub(crate) fn poll_drain(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            match self.flush(self.backlog(), false) {
                Flushed::Empty => return Poll::Ready(Ok(())),
                Flushed::Failed(error) => return Poll::Ready(Err(error)),
                // Another thread is in the middle of a write: look again in a moment. (Held bytes are
                // written here, so `Held` does not come back.)
                Flushed::Busy | Flushed::Held => {
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Flushed::Full => ready!(self.tcp.poll_write_ready(cx))?,
            }
        }
    }

    /// Reads what the socket has, waiting for it to be readable.
    pub(crate) fn poll_read(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.tcp.poll_read_ready(cx))?;
            let mut drained = None;
            let result = self.tcp.try_io(Interest::READABLE, || {
                let read = self.tcp.try_read(buf)?;
                // A read that does not fill the buffer emptied the socket (epoll is edge-triggered): the
                // readiness is cleared now, as tokio's own TcpStream does, so the next read waits for new
                // bytes instead of making a system call that finds none. Bytes that arrived meanwhile
                // moved the readiness on, and clearing leaves it set.
                if cfg!(any(target_os = "linux", target_os = "android"))
                    && read > 0
                    && read < buf.len()
                {
                    drained = Some(read);
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                Ok(read)
            });
            match (result, drained) {
                (_, Some(read)) => return Poll::Ready(Ok(read)),
                (Err(error), None) if error.kind() == io::ErrorKind::WouldBlock => continue,
                (result, None) => return Poll::Ready(result),
            }
        }
    }

    /// Ends the sending direction once the backlog is written.
    pub(crate) fn poll_shutdown(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Poll::Ready(SockRef::from(&self.tcp).shutdown(std::net::Shutdown::Write))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[test]
    fn the_backlog_keeps_the_wire_within_its_size_class() {
        // Every plain connection has a wire, behind an `Arc`: 80 bytes in a release build, 96 with the
        // Arc's counts, an allocator class (tokio's socket takes a little more in a debug build). Of it,
        // the backlog is what this module decides.
        let size = std::mem::size_of::<Backlog>();
        assert!(
            size <= 40,
            "a backlog is {size} bytes, over 40: the wire would take the allocator's next size class"
        );
    }

    async fn pair() -> (Wire, TcpStream) {
        let (server, client) = streams().await;
        (Wire::new(server), client)
    }

    async fn streams() -> (TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let client = TcpStream::connect(address).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        (server, client)
    }

    #[tokio::test]
    async fn writes_in_order_through_the_backlog_when_the_peer_is_slow() {
        let (wire, mut client) = pair().await;
        // Far more than the socket buffers hold, so the backlog is used.
        let chunk = vec![7u8; 64 * 1024];
        let mut total = 0;
        for index in 0..64u8 {
            wire.write(&[index], &chunk, false, usize::MAX)
                .expect("write");
            total += 1 + chunk.len();
        }
        assert!(wire.waiting() > 0, "the peer has read nothing yet");
        let reader = tokio::spawn(async move {
            let mut received = vec![0u8; total];
            client.read_exact(&mut received).await.expect("read");
            received
        });
        std::future::poll_fn(|cx| wire.poll_drain(cx))
            .await
            .expect("drain");
        assert_eq!(wire.waiting(), 0);
        let received = reader.await.expect("reader");
        for (index, record) in received.chunks(1 + chunk.len()).enumerate() {
            assert_eq!(
                usize::from(record[0]),
                index,
                "records arrive whole and in order"
            );
            assert!(record[1..].iter().all(|byte| *byte == 7));
        }
    }

    /// Senders on several threads (as the JavaScript thread and I/O threads are), some holding frames and
    /// releasing them: every frame arrives whole, and each sender's in its order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn frames_from_many_threads_arrive_whole_and_in_order() {
        const SENDERS: u8 = 4;
        const FRAMES: u32 = 2_000;
        const RECORD: usize = 1_000;
        let (server, mut client) = streams().await;
        // Small socket buffers: writes are often cut short while others append.
        socket2::SockRef::from(&server)
            .set_send_buffer_size(32 * 1024)
            .expect("send buffer");
        socket2::SockRef::from(&client)
            .set_recv_buffer_size(32 * 1024)
            .expect("receive buffer");
        server.set_nodelay(true).expect("no delay");
        let wire = std::sync::Arc::new(Wire::new(server));
        let total = usize::from(SENDERS) * FRAMES as usize * RECORD;
        let reader = tokio::spawn(async move {
            let mut received = vec![0u8; total];
            for piece in received.chunks_mut(8 * 1024) {
                client.read_exact(piece).await.expect("read");
            }
            received
        });
        let senders: Vec<_> = (0..SENDERS)
            .map(|sender| {
                let wire = wire.clone();
                std::thread::spawn(move || {
                    for seq in 0..FRAMES {
                        let mut head = [sender; 5];
                        head[1..].copy_from_slice(&seq.to_le_bytes());
                        let hold = seq % 3 == 0;
                        wire.write(&head, &[sender; RECORD - 5], hold, usize::MAX)
                            .expect("write");
                        if hold {
                            wire.release();
                        }
                    }
                })
            })
            .collect();
        for sender in senders {
            sender.join().expect("sender");
        }
        // What the socket did not take waits, as for the socket task.
        std::future::poll_fn(|cx| wire.poll_drain(cx))
            .await
            .expect("drain");
        let received = reader.await.expect("reader");
        let mut next = [0u32; SENDERS as usize];
        for record in received.chunks(RECORD) {
            let sender = record[0];
            assert!(record[5..].iter().all(|byte| *byte == sender), "whole");
            let seq = u32::from_le_bytes(record[1..5].try_into().expect("4 bytes"));
            assert_eq!(seq, next[usize::from(sender)], "in order");
            next[usize::from(sender)] += 1;
        }
        assert_eq!(next, [FRAMES; SENDERS as usize]);
    }

    #[tokio::test]
    async fn a_failed_write_refuses_every_later_one() {
        let (wire, client) = pair().await;
        drop(client);
        let mut failed = false;
        for _ in 0..1000 {
            if wire.write(&[0u8; 1024], &[], false, usize::MAX).is_err() {
                failed = true;
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(failed, "writing to a closed peer fails");
        assert!(wire.write(b"x", &[], false, usize::MAX).is_err());
    }

    #[tokio::test]
    async fn held_bytes_leave_in_one_piece_on_release() {
        let (wire, mut client) = pair().await;
        assert_eq!(
            wire.write(b"a", b"b", true, usize::MAX).expect("hold"),
            Sent::Held { first: true }
        );
        assert_eq!(
            wire.write(b"cd", &[], true, usize::MAX).expect("hold"),
            Sent::Held { first: false }
        );
        assert_eq!(wire.waiting(), 4, "nothing is written while held");
        // A sender that does not hold (another thread) queues behind the held bytes.
        assert_eq!(
            wire.write(b"e", b"f", false, usize::MAX).expect("write"),
            Sent::Out
        );
        assert_eq!(wire.release(), Sent::Out, "the socket took it all");
        let mut received = [0u8; 6];
        client.read_exact(&mut received).await.expect("read");
        assert_eq!(&received, b"abcdef");
    }

    #[tokio::test]
    async fn an_emptied_backlog_keeps_a_bounded_buffer() {
        let (wire, mut client) = pair().await;
        // One turn of `frames` frames of 100 bytes, held, then released: the socket takes them all.
        let mut turn = async |frames: usize| {
            for _ in 0..frames {
                wire.write(&[1], &[7; 99], true, usize::MAX).expect("hold");
            }
            assert_eq!(wire.release(), Sent::Out);
            let mut received = vec![0u8; frames * 100];
            client.read_exact(&mut received).await.expect("read");
            wire.backlog().bytes.capacity()
        };
        let small = turn(1).await;
        assert!((100..=KEPT).contains(&small), "kept as grown: {small}");
        assert_eq!(
            turn(30).await,
            KEPT,
            "a buffer grown past the bound is swapped for one of its size, not for none"
        );
        assert_eq!(turn(1).await, KEPT);
    }

    #[tokio::test]
    async fn a_trim_frees_an_emptied_buffer_and_keeps_what_waits() {
        let (wire, mut client) = pair().await;
        wire.write(b"answer", &[], true, usize::MAX).expect("hold");
        assert_eq!(wire.release(), Sent::Out);
        let mut received = [0u8; 6];
        client.read_exact(&mut received).await.expect("read");
        assert!(
            wire.backlog().bytes.capacity() > 0,
            "kept for the next frames"
        );
        wire.trim();
        assert_eq!(wire.backlog().bytes.capacity(), 0);
        wire.write(b"held", &[], true, usize::MAX).expect("hold");
        wire.trim();
        assert_eq!(wire.waiting(), 4, "held bytes stay");
    }

    #[tokio::test]
    async fn a_frame_past_the_limit_behind_bytes_the_socket_did_not_take_is_refused() {
        let (wire, _client) = pair().await;
        // The peer reads nothing: far more than the socket buffers hold waits in the backlog.
        let chunk = vec![7u8; 64 * 1024];
        while wire.waiting() == 0 {
            wire.write(&[], &chunk, false, usize::MAX).expect("write");
        }
        let waiting = wire.waiting();
        assert_eq!(
            wire.write(&[], b"xyz", true, waiting + 2).expect("refused"),
            Sent::Over(waiting)
        );
        assert_eq!(
            wire.waiting(),
            waiting,
            "a refused frame leaves nothing behind"
        );
        assert_eq!(
            wire.write(&[], b"xy", true, waiting + 2).expect("hold"),
            Sent::Held { first: true }
        );
    }

    #[tokio::test]
    async fn held_bytes_are_offered_to_the_socket_before_they_count_against_the_limit() {
        let (wire, mut client) = pair().await;
        assert_eq!(
            wire.write(b"ab", &[], true, 4).expect("hold"),
            Sent::Held { first: true }
        );
        // One turn sending more than the limit to a client that reads: not a client left behind.
        assert_eq!(
            wire.write(&[], b"xyz", true, 4).expect("hold"),
            Sent::Held { first: false }
        );
        assert_eq!(
            wire.waiting(),
            3,
            "the held bytes went out, the new ones are held"
        );
        let mut received = [0u8; 2];
        client.read_exact(&mut received).await.expect("read");
        assert_eq!(&received, b"ab");
        assert_eq!(wire.release(), Sent::Out);
        let mut received = [0u8; 3];
        client.read_exact(&mut received).await.expect("read");
        assert_eq!(&received, b"xyz");
    }

    #[tokio::test]
    async fn a_release_ends_the_hold() {
        let (wire, mut client) = pair().await;
        assert_eq!(
            wire.write(b"a", b"b", true, usize::MAX).expect("hold"),
            Sent::Held { first: true }
        );
        wire.release();
        assert_eq!(wire.waiting(), 0);
        let mut received = [0u8; 2];
        client.read_exact(&mut received).await.expect("read");
        assert_eq!(&received, b"ab");
        assert_eq!(
            wire.write(b"g", &[], true, usize::MAX).expect("hold"),
            Sent::Held { first: true },
            "a release ends the hold"
        );
    }
}
