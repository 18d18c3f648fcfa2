//! A plain TCP socket shared by every thread that sends to it.
//!
//! Whoever sends a frame (the JavaScript thread answering a batch or broadcasting, an I/O thread answering
//! a frame) writes it to the socket at once, without waking the connection's task. Only what the socket
//! cannot take right away waits in the backlog, in order, for the task to write when the socket drains;
//! while anything waits, later frames join the backlog behind it, so frames never interleave.

use std::io::{self, IoSlice};
use std::sync::{Mutex, MutexGuard};
use std::task::{ready, Context, Poll};

use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// The socket and what waits to be written to it.
#[derive(Debug)]
pub(crate) struct Wire {
    tcp: TcpStream,
    backlog: Mutex<Backlog>,
    /// Woken when bytes start waiting.
    waiting: Notify,
}

/// Bytes the socket has not taken yet.
#[derive(Debug, Default)]
struct Backlog {
    bytes: Vec<u8>,
    /// How much of `bytes` has been written.
    written: usize,
    /// A write failed: the connection is lost and nothing more is written.
    broken: bool,
    /// The bytes are held by a cork (see [`super::cork`]), whose release writes them.
    held: bool,
}

impl Backlog {
    fn len(&self) -> usize {
        self.bytes.len() - self.written
    }

    fn clear(&mut self) {
        self.written = 0;
        // A buffer grown by a burst is given back: idle connections should cost little.
        if self.bytes.capacity() > 1024 {
            self.bytes = Vec::new();
        } else {
            self.bytes.clear();
        }
    }
}

/// Whether [`Wire::write`] held the bytes for a cork.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Held {
    /// Written, or waiting for the socket task.
    No,
    /// Held, and the first bytes held since the last release: the caller must release the wire.
    First,
    /// Held behind bytes held already.
    Again,
    /// Not taken: this many bytes wait already and the frame would pass the limit.
    Over(usize),
}

impl Wire {
    pub(crate) fn new(tcp: TcpStream) -> Self {
        Wire {
            tcp,
            backlog: Mutex::default(),
            waiting: Notify::new(),
        }
    }

    fn backlog(&self) -> MutexGuard<'_, Backlog> {
        // Every update leaves the backlog consistent; a poisoned lock still holds valid bytes.
        self.backlog
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Bytes waiting to be written.
    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.backlog().len()
    }

    /// Writes `head` then `body` (a frame's header and payload, or raw bytes and nothing) after whatever
    /// waits, without blocking: what the socket does not take now joins the backlog. With `hold`, nothing
    /// is written yet: the bytes wait for [`Wire::release`], and `Held::First` tells the caller to arrange
    /// it. Refused (`Held::Over`) when bytes wait and `body` would take them past `limit`; fails once a
    /// write has failed.
    pub(crate) fn write(
        &self,
        head: &[u8],
        body: &[u8],
        hold: bool,
        limit: usize,
    ) -> io::Result<Held> {
        let parts = [head, body];
        let mut backlog = self.backlog();
        if backlog.broken {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let was_empty = backlog.len() == 0;
        if !was_empty && backlog.len() + body.len() > limit {
            return Ok(Held::Over(backlog.len()));
        }
        let mut skip = 0;
        if was_empty && !hold {
            skip = match self
                .tcp
                .try_write_vectored(&[IoSlice::new(head), IoSlice::new(body)])
            {
                Ok(written) => written,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => 0,
                Err(error) => {
                    backlog.broken = true;
                    return Err(error);
                }
            };
        }
        for part in parts {
            let taken = skip.min(part.len());
            skip -= taken;
            backlog.bytes.extend_from_slice(&part[taken..]);
        }
        if hold {
            let first = !backlog.held;
            backlog.held = true;
            return Ok(if first { Held::First } else { Held::Again });
        }
        let waiting = backlog.len() > 0;
        let held = backlog.held;
        drop(backlog);
        // Bytes already waiting have their writer: the socket task, or the cork that holds them.
        if was_empty && waiting && !held {
            self.waiting.notify_one();
        }
        Ok(Held::No)
    }

    /// Writes what a cork held, as far as the socket takes it now; the rest waits for the socket task.
    pub(crate) fn release(&self) {
        let mut backlog = self.backlog();
        backlog.held = false;
        if let Ok(true) = self.write_backlog(&mut backlog) {
            return;
        }
        drop(backlog);
        // Bytes left, or a failed write: the socket task takes over (and, on failure, ends).
        self.waiting.notify_one();
    }

    /// Writes the backlog as far as the socket takes it now; true once it is empty.
    fn write_backlog(&self, backlog: &mut Backlog) -> io::Result<bool> {
        while backlog.len() > 0 {
            match self.tcp.try_write(&backlog.bytes[backlog.written..]) {
                Ok(written) => backlog.written += written,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(error) => {
                    backlog.broken = true;
                    return Err(error);
                }
            }
        }
        backlog.clear();
        Ok(true)
    }

    /// Resolves once bytes may be waiting; the connection's task keeps one armed and then calls
    /// [`Wire::poll_drain`].
    pub(crate) fn backlogged(&self) -> tokio::sync::futures::Notified<'_> {
        self.waiting.notified()
    }

    /// Wakes the backlog's writer again, for a drain it left unfinished.
    pub(crate) fn resume_drain(&self) {
        self.waiting.notify_one();
    }

    /// Writes the backlog out; ready once it is empty.
    pub(crate) fn poll_drain(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            {
                let mut backlog = self.backlog();
                if backlog.broken {
                    return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
                }
                if self.write_backlog(&mut backlog)? {
                    return Poll::Ready(Ok(()));
                }
            }
            ready!(self.tcp.poll_write_ready(cx))?;
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
        Poll::Ready(socket2::SockRef::from(&self.tcp).shutdown(std::net::Shutdown::Write))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    async fn pair() -> (Wire, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let client = TcpStream::connect(address).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        (Wire::new(server), client)
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
            Held::First
        );
        assert_eq!(
            wire.write(b"cd", &[], true, usize::MAX).expect("hold"),
            Held::Again
        );
        assert_eq!(wire.waiting(), 4, "nothing is written while held");
        // A sender that does not hold (another thread) queues behind the held bytes.
        assert_eq!(
            wire.write(b"e", b"f", false, usize::MAX).expect("write"),
            Held::No
        );
        super::super::cork::write_now(vec![std::sync::Arc::new(wire)]);
        let mut received = [0u8; 6];
        client.read_exact(&mut received).await.expect("read");
        assert_eq!(&received, b"abcdef");
    }

    #[tokio::test]
    async fn a_frame_past_the_limit_behind_waiting_bytes_is_refused() {
        let (wire, _client) = pair().await;
        assert_eq!(wire.write(b"ab", &[], true, 4).expect("hold"), Held::First);
        assert_eq!(
            wire.write(&[], b"xyz", true, 4).expect("refused"),
            Held::Over(2)
        );
        assert_eq!(wire.waiting(), 2, "a refused frame leaves nothing behind");
        assert_eq!(wire.write(&[], b"xy", true, 4).expect("hold"), Held::Again);
    }

    #[tokio::test]
    async fn a_release_ends_the_hold() {
        let (wire, mut client) = pair().await;
        assert_eq!(
            wire.write(b"a", b"b", true, usize::MAX).expect("hold"),
            Held::First
        );
        wire.release();
        assert_eq!(wire.waiting(), 0);
        let mut received = [0u8; 2];
        client.read_exact(&mut received).await.expect("read");
        assert_eq!(&received, b"ab");
        assert_eq!(
            wire.write(b"g", &[], true, usize::MAX).expect("hold"),
            Held::First,
            "a release ends the hold"
        );
    }
}
