//! One task per socket: the handshake, then reading frames, writing the outbound queue and closing,
//! all in one loop so a connection's state has a single owner.
//!
//! The way in is `open`; the loop is `turns`, which takes messages in (`receive`), hands their calls
//! over (`burst`), writes what the application queued (`writing`) and ends the connection (`closing`).

mod burst;
mod closing;
mod open;
mod pings;
mod receive;
mod turns;
mod writing;

use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::future::OptionFuture;
use futures_util::FutureExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::{timeout, Duration};
use tokio_rustls::TlsAcceptor;

use crate::server::Shared;

use super::admission::Slot;
use super::attach;
use super::frame::{self, Message, ReadError, Reader, CLOSE};
use super::outbox::Outbox;
use super::transport::Transport;
use super::wire::Wire;
use super::Connection;

use burst::Burst;
use closing::Ending;
use open::open;
use turns::turns;

/// A client's WebSocket after the handshake: its stream, over TCP or TLS, and what has been read of it.
struct Socket {
    transport: Transport,
    reader: Reader,
    /// Bytes of the socket task's own frames (pongs, pings, closes) that may wait unwritten; 32 bits, so
    /// that the flag beside it takes no room of its own.
    limit: u32,
    /// One of those frames was left in the wire's backlog, for the loop to drain.
    stranded: bool,
}

impl Socket {
    /// The next message from the client; `None` once it closed the stream.
    fn next_message(&mut self) -> impl Future<Output = Option<Result<Message, ReadError>>> + '_ {
        poll_fn(move |cx| {
            let Socket {
                transport, reader, ..
            } = self;
            reader.poll_next(cx, |cx, buf| transport.poll_read_into(cx, buf))
        })
    }

    /// Sends one frame; see [`Socket::flush`].
    fn send(&mut self, opcode: u8, payload: &[u8]) -> std::io::Result<()> {
        let limit = self.limit as usize;
        self.stranded |= self.transport.send(opcode, payload, limit)?;
        Ok(())
    }

    /// Writes out what waits: the wire's backlog, or the frames queued for TLS.
    async fn flush(&mut self) -> std::io::Result<()> {
        self.transport.flush().await
    }

    /// Sends one frame and writes it out.
    async fn send_flushed(&mut self, opcode: u8, payload: &[u8]) -> std::io::Result<()> {
        self.send(opcode, payload)?;
        self.flush().await
    }

    /// Sends a close frame and writes it out.
    async fn close(&mut self, code: u16, reason: &str) -> std::io::Result<()> {
        self.send_flushed(CLOSE, &frame::close_payload(code, reason))
            .await
    }

    /// Writes out the frames queued for TLS. Over plain TCP there is nothing to wait for: what the socket
    /// did not take waits in the wire's backlog, which the loop drains under its deadlines and the
    /// outbound limit.
    async fn flush_tls(&mut self) -> std::io::Result<()> {
        match self.transport {
            Transport::Plain(_) => Ok(()),
            Transport::Tls(_) => self.flush().await,
        }
    }

    /// Sends a frame without waiting on a client that does not read: see [`Socket::flush_tls`]; over TLS
    /// the flush waits `within` at most.
    async fn send_soon(
        &mut self,
        opcode: u8,
        payload: &[u8],
        within: Duration,
    ) -> std::io::Result<()> {
        self.send(opcode, payload)?;
        timeout(within, self.flush_tls())
            .await
            .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
    }
}

/// A connection through its handshake and attached: what its loop needs.
struct Opened {
    shared: Arc<Shared>,
    calls: mpsc::Sender<String>,
    shutdown: watch::Receiver<bool>,
    conn: Arc<Connection>,
    outbox: Arc<Outbox>,
    /// The plain socket the outbox writes to; `None` over TLS.
    wire: Option<Arc<Wire>>,
    socket: Socket,
    /// Calls waiting to be handed over; at first, the first call the application hears about the
    /// connection, or nothing when it hears of a new connection only with its first call (see
    /// `Introduction`). Kept here for the loop's use, rather than a second buffer beside an emptied one.
    burst: Burst,
    /// The connection's place under the connection limit, held for its life.
    _slot: Slot,
}

/// Serves one accepted TCP stream until it closes.
///
/// The handshake runs in a future of its own, boxed, and the task holds only what the open connection
/// needs: the handshake's state would otherwise size every connection's task for its whole life, and an
/// idle connection should cost little.
pub(crate) fn serve(
    shared: Arc<Shared>,
    calls: mpsc::Sender<String>,
    shutdown: watch::Receiver<bool>,
    stream: TcpStream,
    remote: SocketAddr,
    tls: Option<TlsAcceptor>,
) -> impl Future<Output = ()> {
    Box::pin(open(shared, calls, shutdown, stream, remote, tls))
        .then(|opened| OptionFuture::from(opened.map(live)))
        .map(drop)
}

/// Runs an open connection, then detaches it.
///
/// `opened` is used in place, by an `async move` block: taken apart, or rebound as `mut` in an `async fn`,
/// its fields would be held twice in the task, in the argument's slot and in the locals'. Every byte of
/// this future is in every connection's task, for the connection's life: the test below keeps the task
/// in its allocator size class.
#[allow(
    clippy::manual_async_fn,
    reason = "an `async fn` would hold `opened` twice, see above"
)]
fn live(mut opened: Opened) -> impl Future<Output = ()> {
    async move {
        // The whole of `opened` is captured, not only the fields used below: the connection keeps its slot
        // under the connection limit until this block ends.
        let opened = &mut opened;
        // In a block of its own: `told`, not moved when empty, would otherwise be held across the loop.
        let serving = {
            let told = std::mem::take(&mut opened.burst.0);
            told.is_empty() || opened.calls.send(told).await.is_ok()
        };
        let ending = if serving {
            let ending = turns(
                &opened.shared,
                &opened.conn,
                &opened.outbox,
                opened.wire.as_deref(),
                &mut opened.socket,
                &opened.shutdown,
                &mut opened.burst,
            )
            .await;
            // The calls of the last messages reach the application before it hears of the close.
            opened.burst.send(&opened.conn).await;
            ending
        } else {
            Ending::new(1001, "Server stopping")
        };
        opened.outbox.shut();
        attach::detach(
            &opened.shared,
            &opened.conn,
            &opened.outbox,
            ending.code,
            &ending.reason,
            &opened.shutdown,
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// tokio puts a task's future in a cell with 104 bytes of its own, rounded up to 128-byte steps; a
    /// future of at most this size keeps every connection's task in the allocator's 768-byte class.
    const TASK_BUDGET: usize = 768 - 104;

    #[tokio::test]
    async fn a_connection_task_stays_within_its_size_class() {
        let server = crate::Server::new(crate::Config::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("address"))
            .await
            .expect("connect");
        let (stream, remote) = listener.accept().await.expect("accept");
        let (calls, _calls) = mpsc::channel(1);
        let (_stop, shutdown) = watch::channel(false);
        let task = serve(
            server.shared().clone(),
            calls,
            shutdown,
            stream,
            remote,
            None,
        );
        let size = std::mem::size_of_val(&task);
        assert!(
            size <= TASK_BUDGET,
            "a connection's task future is {size} bytes, over {TASK_BUDGET}: every idle connection \
             would take the allocator's next size class"
        );
        drop((task, client));
    }
}
