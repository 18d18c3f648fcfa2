//! One task per socket: the handshake, then reading frames, writing the outbound queue and closing,
//! all in one loop so a connection's state has a single owner.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use std::future::{poll_fn, Future};

use futures_util::future::{BoxFuture, OptionFuture};
use futures_util::FutureExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::futures::Notified;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, watch};
use tokio::time::{sleep_until, timeout, timeout_at, Duration, Instant};
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::Bytes;

use crate::app::call;
use crate::server::Shared;

use super::admission::{self, Admitted, Slot};
use super::attach::{self, Attached};
use super::frame::{self, Message, ReadError, Reader, BINARY, CLOSE, PING, PONG, TEXT};
use super::health::{self, Due, Health};
use super::inbound::{self, Effect};
use super::keys::Keyed;
use super::outbox::{Outbound, Outbox};
use super::rate::{Admit, Bucket};
use super::transport::Transport;
use super::wire::Wire;
use super::Connection;

/// Most queued frames written before one flush; bounds how long reading waits on a busy writer.
const MAX_FRAMES_PER_FLUSH: usize = 256;

/// Bytes of call text one burst gathers at most before it is handed over even though more messages wait.
const MAX_BURST: usize = 64 * 1024;

/// Code reported when the connection ended without a close frame.
const ABNORMAL: u16 = 1006;

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
    async fn send(&mut self, opcode: u8, payload: &[u8]) -> std::io::Result<()> {
        let limit = self.limit as usize;
        self.stranded |= self.transport.send(opcode, payload, limit).await?;
        Ok(())
    }

    /// Writes out what waits: the wire's backlog, or the TLS session's records.
    async fn flush(&mut self) -> std::io::Result<()> {
        self.transport.flush().await
    }

    /// Sends one frame and writes it out.
    async fn send_flushed(&mut self, opcode: u8, payload: &[u8]) -> std::io::Result<()> {
        self.send(opcode, payload).await?;
        self.flush().await
    }

    /// Sends a close frame and writes it out.
    async fn close(&mut self, code: u16, reason: &str) -> std::io::Result<()> {
        self.send_flushed(CLOSE, &frame::close_payload(code, reason))
            .await
    }

    /// Writes out what the TLS session holds. Over plain TCP there is nothing to wait for: what the socket
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
        self.send(opcode, payload).await?;
        timeout(within, self.flush_tls())
            .await
            .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
    }
}

/// Application pings waiting for their pong: id → when sent. The map is made on first use, behind a
/// pointer: most connections are never pinged by the application, and the loop's state is in every
/// connection's task. The ids are the server's own, so the map needs no random keys (see [`Keyed`]).
#[derive(Default)]
#[allow(
    clippy::box_collection,
    reason = "the box keeps the map's header out of every connection's task"
)]
struct Pings(Option<Box<HashMap<u64, Instant, Keyed>>>);

impl Pings {
    /// Ping `id` is being sent now.
    fn sent(&mut self, id: u64) {
        let pings = self.0.get_or_insert_with(Box::default);
        // Unanswered pings are forgotten after a while, so the map stays small.
        pings.retain(|_, sent| sent.elapsed() < FORGET_PINGS_AFTER);
        pings.insert(id, Instant::now());
    }

    /// When ping `id` was sent, if it waits for its pong.
    fn answered(&mut self, id: u64) -> Option<Instant> {
        self.0.as_mut()?.remove(&id)
    }
}

/// The close we started: when we stop waiting for the client's, and how the connection then ends. Boxed:
/// closes are rare, and the loop's state is in every connection's task.
type Closing = Option<Box<(Instant, Ending)>>;

/// How the connection ends once its socket is lost: with the close we had started, if any.
fn lost(closing: Closing) -> Ending {
    closing
        .map(|closing| closing.1)
        .unwrap_or_else(|| Ending::new(ABNORMAL, ""))
}

/// How long an application ping waits for its pong before it is forgotten.
const FORGET_PINGS_AFTER: Duration = Duration::from_secs(60);

/// Code reported when the connection was dropped for not reading what was sent to it.
const TRY_AGAIN_LATER: u16 = 1013;

/// How the connection ended, as the application hears it.
struct Ending {
    code: u16,
    reason: String,
}

impl Ending {
    fn new(code: u16, reason: impl Into<String>) -> Self {
        Ending {
            code,
            reason: reason.into(),
        }
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

/// TLS, admission, the handshake's answer and attaching the connection; `None` when any of them failed.
async fn open(
    shared: Arc<Shared>,
    calls: mpsc::Sender<String>,
    shutdown: watch::Receiver<bool>,
    stream: TcpStream,
    remote: SocketAddr,
    tls: Option<TlsAcceptor>,
) -> Option<Opened> {
    let _ = stream.set_nodelay(true);
    // One deadline for TLS, admission and handshake together: a client that trickles bytes gets no more.
    let deadline = Instant::now() + shared.config.handshake_timeout;
    let mut wire = None;
    let transport = match tls {
        None => {
            let plain = Arc::new(Wire::new(stream));
            wire = Some(plain.clone());
            Transport::Plain(plain)
        }
        Some(acceptor) => match timeout_at(deadline, acceptor.accept(stream)).await {
            Ok(Ok(stream)) => Transport::Tls(Box::new(stream)),
            Ok(Err(error)) => {
                tracing::debug!(%remote, %error, "TLS handshake failed");
                return None;
            }
            Err(_) => {
                tracing::debug!(%remote, "TLS handshake timed out");
                return None;
            }
        },
    };
    let admitted = match timeout_at(
        deadline,
        admission::admit(&shared, &calls, transport, remote),
    )
    .await
    {
        Ok(Some(admitted)) => admitted,
        Ok(None) => return None,
        Err(_) => {
            tracing::debug!(%remote, "admission timed out");
            return None;
        }
    };
    let Admitted {
        stream: mut transport,
        url,
        answer,
        early,
        data,
        slot,
    } = admitted;
    let answered = async {
        transport.write_all(answer.as_bytes()).await?;
        transport.flush().await
    };
    match timeout_at(deadline, answered).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            tracing::debug!(%remote, %error, "handshake failed");
            return None;
        }
        Err(_) => {
            tracing::debug!(%remote, "handshake timed out");
            return None;
        }
    }
    let socket = Socket {
        transport,
        reader: Reader::new(shared.config.max_message_size, &early),
        // Beyond 4 GiB unsent per connection there is no practical difference.
        limit: u32::try_from(shared.config.outbound_limit()).unwrap_or(u32::MAX),
        stranded: false,
    };
    let outbox = Arc::new(Outbox::new(
        shared.config.outbound_limit(),
        wire.clone(),
        shared.stats.clone(),
    ));
    let address = remote.to_string();
    let attached = attach::attach(
        &shared,
        &url,
        &address,
        data.as_deref(),
        outbox.clone(),
        &calls,
    );
    let (conn, told) = match attached.await {
        Attached::New(conn) => {
            // Told now, or else with the first call about the connection.
            let told = if shared.reports_opens() {
                conn.introduce()
            } else {
                None
            };
            (conn, told.unwrap_or_default())
        }
        Attached::Restored(conn, told) => (conn, told),
        Attached::Resumed(conn, resumed) => {
            let told = conn.told(call::recovered(conn.key, resumed.replayed, resumed.gap));
            (conn, told)
        }
    };
    Some(Opened {
        shared,
        calls,
        shutdown,
        conn,
        outbox,
        wire,
        socket,
        burst: Burst(told),
        _slot: slot,
    })
}

/// Calls from one burst of messages, sent to the application as one item once the socket has nothing
/// more to read: a single hand-off for the ten requests a client pipelines, instead of one each. Items are
/// joined into batches with commas, so an item may hold several calls.
#[derive(Default)]
struct Burst(String);

impl Burst {
    /// Adds a call about `conn`, after its open call if the application has not heard of it yet.
    fn push(&mut self, conn: &Connection, call: String) {
        let call = conn.told(call);
        if self.0.is_empty() {
            self.0 = call;
        } else {
            self.0.push(',');
            self.0.push_str(&call);
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    /// Hands the calls over. When the application is behind (the channel is full), the future returned
    /// hands them over once there is room; awaiting it is the backpressure: this socket stops being read.
    /// That wait is boxed, and only made then: it is rare, and held inline it would size every
    /// connection's task.
    fn send<'a>(&mut self, conn: &'a Connection) -> OptionFuture<BoxFuture<'a, ()>> {
        if self.0.is_empty() {
            return None.into();
        }
        match conn.calls.try_send(std::mem::take(&mut self.0)) {
            Err(TrySendError::Full(calls)) => Some(conn.calls.send(calls).map(drop).boxed()).into(),
            _ => None.into(),
        }
    }
}

/// The connection's loop; returns how it ended.
///
/// A socket task wakes for every frame it writes, so one turn of this loop must cost little: the timer and
/// the outbox's signal are armed once and kept across turns, not rebuilt each turn.
/// Written as a function returning an `async move` block rather than an `async fn`, which would hold
/// each argument twice in the task (see [`live`]).
#[allow(
    clippy::manual_async_fn,
    reason = "an `async fn` would hold each argument twice, see above"
)]
fn turns<'a>(
    shared: &'a Shared,
    conn: &'a Connection,
    outbox: &'a Outbox,
    wire: Option<&'a Wire>,
    ws: &'a mut Socket,
    shutdown: &'a watch::Receiver<bool>,
    burst: &'a mut Burst,
) -> impl Future<Output = Ending> + 'a {
    async move {
        // Set once we have sent a close frame: from then on we only wait for the client's.
        let mut closing: Closing = None;
        let mut health = shared
            .config
            .health_check
            .as_ref()
            .map(|config| Health::new(config, Instant::now()));
        let mut pings = Pings::default();
        let mut bucket = shared
            .config
            .rate_limit
            // Boxed: without a rate limit (the default) the loop's state holds a pointer, not a bucket.
            .map(|limit| Box::new(Bucket::new(limit, Instant::now())));
        let mut last_heard = Instant::now();
        // A stop from now on reaches the outbox (`Server::stop`); one that came before, this way.
        if *shutdown.borrow() {
            outbox.stop();
        }
        // One timer for the earliest deadline (close, health, idle). It is moved earlier when needed and
        // otherwise left alone: when it fires early (the client spoke since), the loop just re-arms it.
        // Boxed: tokio's timer is 112 bytes, and held inline it would take the task to the next size class.
        let mut timer = Box::pin(sleep_until(Instant::now()));
        let ready = outbox.ready();
        tokio::pin!(ready);
        // Whether the timer is set for a deadline that has not fired yet; the deadline itself is the
        // timer's, not a copy held across every wait.
        let mut armed = false;
        loop {
            // Whether the timer is set for a deadline; a flag rather than the deadline, which is not needed
            // past this point and would be held across every wait.
            let timed =
                match Deadlines::of(shared, &closing, health.as_ref(), last_heard).earliest() {
                    Some(due) => {
                        if !armed || due < timer.deadline() {
                            timer.as_mut().reset(due);
                            armed = true;
                        }
                        true
                    }
                    None => false,
                };
            // Biased: messages first, then the burst they made is handed over once there is none left to read;
            // every other branch runs with the burst sent, so the application hears of things in order.
            // The branches only work out the step and never wait: what woke the loop (a message) held across a
            // wait would size every connection's task.
            let step = tokio::select! {
                biased;
                incoming = ws.next_message() => match incoming {
                    Some(Ok(Message::Pong(bytes))) => {
                        pong(shared, conn, &bytes, health.as_mut(), &mut pings, burst);
                        continue;
                    }
                    Some(Ok(Message::Ping(bytes))) => Step::Pong(bytes),
                    Some(Ok(Message::Close(frame))) => Step::Closed(frame),
                    Some(Ok(message)) => Step::Received(receive(
                        shared,
                        conn,
                        message,
                        bucket.as_deref_mut(),
                        &mut last_heard,
                        burst,
                    )),
                    Some(Err(error)) => Step::Failed(error),
                    None => return lost(closing),
                },
                _ = std::future::ready(()), if !burst.is_empty() => Step::Burst,
                _ = &mut ready => Step::Outbox,
                _ = &mut timer, if timed => Step::Timer,
                _ = std::future::ready(()), if ws.stranded => Step::Backlog,
            };
            match step {
                Step::Pong(bytes) => {
                    if let Err(error) =
                        Box::pin(ws.send_soon(PONG, &bytes, shared.config.close_timeout)).await
                    {
                        tracing::debug!(conn = %conn.id, %error, "pong not sent");
                        return lost(closing);
                    }
                }
                Step::Closed(frame) => {
                    return Box::pin(close_received(ws, frame, closing, shared)).await
                }
                Step::Received(reply) => {
                    if let Some(reply) = reply {
                        // The application hears of the change before the client can act on the answer.
                        burst.send(conn).await;
                        conn.send(reply);
                    }
                    // A client that never pauses still meets the backpressure of the calls channel.
                    if burst.len() >= MAX_BURST {
                        burst.send(conn).await;
                    }
                }
                Step::Failed(error) => {
                    // Answers to the messages before the bad frame still go out, then the close.
                    if closing.is_none() {
                        Box::pin(flush_queue(ws, outbox, &mut closing, &mut pings, shared)).await;
                    }
                    return Box::pin(fail(ws, conn, error, closing)).await;
                }
                Step::Burst => {
                    burst.send(conn).await;
                }
                Step::Outbox => {
                    ready.set(outbox.ready());
                    // The signal also comes for bytes a sender left in the wire's backlog: drained next.
                    ws.stranded |= wire.is_some_and(Wire::stranded);
                    if closing.is_some() {
                        // Only the client's close is waited for now.
                        continue;
                    }
                    if outbox.overflowed() {
                        return Box::pin(GaveUp::Overflow.ending(conn, closing)).await;
                    }
                    if outbox.stopping() {
                        // What the application queued before the stop (the last replies) still goes out first.
                        Box::pin(flush_queue(ws, outbox, &mut closing, &mut pings, shared)).await;
                        Box::pin(close_for_stop(ws, &mut closing, shared)).await;
                        continue;
                    }
                    // The batch in a block of its own, so that it is not held beside the write that took it.
                    let written = {
                        let batch = outbox.take(MAX_FRAMES_PER_FLUSH);
                        if batch.is_empty() {
                            continue;
                        }
                        write(ws, outbox, batch, &mut closing, &mut pings, shared)
                    };
                    // Over TLS the loop writes the batch itself, and nothing else runs until it is taken.
                    let stall = if wire.is_none() {
                        stall_limit(shared)
                    } else {
                        None
                    };
                    if let Err(gave_up) =
                        Box::pin(unless_stuck(written, outbox, ready.as_mut(), stall, shared)).await
                    {
                        return Box::pin(gave_up.ending(conn, closing)).await;
                    }
                    if outbox.stopping() {
                        // The stop came while that write was in progress.
                        Box::pin(close_for_stop(ws, &mut closing, shared)).await;
                    }
                }
                Step::Timer => {
                    armed = false;
                    // Worked out in a block of its own: the time and the deadlines, held across the waits below,
                    // would size every connection's task.
                    let fired = {
                        let now = Instant::now();
                        let Deadlines {
                            close,
                            health: health_due,
                            idle,
                        } = Deadlines::of(shared, &closing, health.as_ref(), last_heard);
                        if close.is_some_and(|deadline| deadline <= now) {
                            Fired::CloseUnanswered
                        } else if idle.is_some_and(|deadline| deadline <= now) {
                            Fired::Idle
                        } else {
                            match health
                                .as_mut()
                                .filter(|_| health_due.is_some_and(|deadline| deadline <= now))
                            {
                                Some(health) => Fired::Health(health.due(now)),
                                // Early: the client spoke since the timer was set.
                                None => continue,
                            }
                        }
                    };
                    match fired {
                        Fired::CloseUnanswered => {
                            tracing::debug!(conn = %conn.id, "client did not answer the close frame");
                            return lost(closing);
                        }
                        Fired::Idle => {
                            tracing::debug!(conn = %conn.id, "idle, closing");
                            Box::pin(conn.tell(call::limit(conn.key, "idle-timeout"))).await;
                            conn.close(1001, "Idle timeout");
                        }
                        Fired::Health(Due::Ping(id)) => {
                            // A ping that cannot even be written in time simply goes unanswered.
                            let ping = health::payload(health::AUTO, id);
                            let _ =
                                Box::pin(ws.send_soon(PING, &ping, shared.config.close_timeout))
                                    .await;
                        }
                        Fired::Health(Due::Missed(count)) => {
                            Box::pin(conn.tell(call::health(
                                conn.key,
                                "missed",
                                Some(f64::from(count)),
                            )))
                            .await;
                        }
                        Fired::Health(Due::Dead) => {
                            tracing::info!(conn = %conn.id, "no pong in time, dropping the connection");
                            Box::pin(conn.tell(call::health(conn.key, "timeout", None))).await;
                            return Ending::new(ABNORMAL, "Ping timeout");
                        }
                    }
                }
                Step::Backlog => {
                    ws.stranded = false;
                    let Some(wire) = wire else { continue };
                    // Frames the socket did not take at once wait here. A deadline ends the wait, so a client
                    // that reads nothing is still health-checked (and dropped once its pongs stop coming): the
                    // timer's branch, before this one, runs next, then the wait resumes.
                    let drained = async {
                        tokio::select! {
                            drained = poll_fn(|cx| wire.poll_drain(cx)) => drained.map(|()| true),
                            _ = timer.as_mut(), if timed => Ok(false),
                        }
                    };
                    match Box::pin(unless_stuck(drained, outbox, ready.as_mut(), None, shared))
                        .await
                    {
                        Ok(true) => {}
                        Ok(false) => {
                            ws.stranded = true;
                            continue;
                        }
                        Err(gave_up) => return Box::pin(gave_up.ending(conn, closing)).await,
                    }
                    if outbox.stopping() {
                        Box::pin(close_for_stop(ws, &mut closing, shared)).await;
                    }
                }
            }
        }
    }
}

/// What the loop does about what woke it: a message, the burst to hand over, the outbox's signal, the
/// timer or the wire's backlog.
enum Step {
    /// Answer the client's ping.
    Pong(Bytes),
    /// The client sent its close frame.
    Closed(Option<(u16, String)>),
    /// A data message was taken in; with the frame to answer it with, if any.
    Received(Option<String>),
    /// The client's bytes broke the protocol, or the socket failed.
    Failed(ReadError),
    Burst,
    Outbox,
    Timer,
    Backlog,
}

/// Starts the close a server stop asks for, unless a close has started already.
async fn close_for_stop(ws: &mut Socket, closing: &mut Closing, shared: &Shared) {
    if closing.is_none() {
        start_close(ws, 1001, "Server stopping", closing, shared).await;
    }
}

/// Which of the loop's deadlines passed.
enum Fired {
    /// The client did not answer our close frame in time.
    CloseUnanswered,
    /// The client was silent for the idle timeout.
    Idle,
    /// The health check's next step.
    Health(Due),
}

/// When the connection's loop must next act on its own: the close it waits for, its health check, its
/// idle timeout.
struct Deadlines {
    close: Option<Instant>,
    health: Option<Instant>,
    idle: Option<Instant>,
}

impl Deadlines {
    /// Once a close has started, only its own deadline counts.
    fn of(
        shared: &Shared,
        closing: &Closing,
        health: Option<&Health>,
        last_heard: Instant,
    ) -> Self {
        let open = closing.is_none();
        Deadlines {
            close: closing.as_ref().map(|closing| closing.0),
            health: health.filter(|_| open).map(Health::deadline),
            idle: shared
                .config
                .idle_timeout
                .filter(|_| open)
                .map(|idle| last_heard + idle),
        }
    }

    fn earliest(&self) -> Option<Instant> {
        [self.close, self.health, self.idle]
            .into_iter()
            .flatten()
            .min()
    }
}

/// Why a write was given up.
enum GaveUp {
    /// The connection passed its outbound limit.
    Overflow,
    /// The server is stopping and the close timeout has passed.
    Stopped,
    /// The socket failed.
    Failed(std::io::Error),
    /// The client took nothing for as long as the health check allows a silent client.
    Stalled,
}

impl GaveUp {
    /// How the connection ends; `closing` is the close we had started, if any.
    async fn ending(self, conn: &Connection, closing: Closing) -> Ending {
        match self {
            GaveUp::Overflow => {
                conn.tell(call::limit(conn.key, "backpressure")).await;
                Ending::new(TRY_AGAIN_LATER, "Backpressure limit exceeded")
            }
            GaveUp::Stopped => Ending::new(1001, "Server stopping"),
            GaveUp::Stalled => {
                tracing::info!(conn = %conn.id, "the client reads nothing, dropping the connection");
                conn.tell(call::health(conn.key, "timeout", None)).await;
                Ending::new(ABNORMAL, "Ping timeout")
            }
            GaveUp::Failed(error) => {
                tracing::debug!(conn = %conn.id, %error, "write failed");
                lost(closing)
            }
        }
    }
}

/// Waits for a write: a client that stops reading blocks it, so the outbound limit ends the wait, and so
/// does a stop once the close timeout has passed (a write that is merely in progress finishes), and
/// `stall`, when given, after which the client counts as gone. Boxed by callers: held inline, this rarely
/// long wait would size every connection's task.
///
/// `ready` is the loop's own wait on the outbox's signal, continued here: a second wait would let the
/// signal go to the loop's, which nobody polls meanwhile. The signal also comes for frames queued during
/// the write; that wake-up is handed back after it, for the loop.
async fn unless_stuck<'a, T>(
    write: impl Future<Output = std::io::Result<T>>,
    outbox: &'a Outbox,
    mut ready: Pin<&mut Notified<'a>>,
    stall: Option<Duration>,
    shared: &Shared,
) -> Result<T, GaveUp> {
    let mut queued = false;
    let result = tokio::select! {
        written = write => written.map_err(GaveUp::Failed),
        gave_up = async {
            loop {
                ready.as_mut().await;
                ready.set(outbox.ready());
                if outbox.overflowed() {
                    return GaveUp::Overflow;
                }
                if outbox.stopping() {
                    tokio::time::sleep(shared.config.close_timeout).await;
                    return GaveUp::Stopped;
                }
                queued = true;
            }
        } => Err(gave_up),
        _ = async {
            match stall {
                Some(stall) => tokio::time::sleep(stall).await,
                None => std::future::pending().await,
            }
        } => Err(GaveUp::Stalled),
    };
    if queued {
        outbox.wake();
    }
    result
}

/// How long a write to a TLS client may wait before the client counts as gone: as long as the health
/// check gives a client that answers nothing (its unanswered pings, then a pong's timeout). A write to a
/// TLS session cannot be set aside half done, so the health check cannot run during it; over plain TCP
/// what the socket does not take waits in the wire's backlog and the health check runs meanwhile. A
/// batch is at most the outbound limit's worth of bytes (plus a frame), so a client reading at all takes
/// it well within this.
fn stall_limit(shared: &Shared) -> Option<Duration> {
    shared
        .config
        .health_check
        .map(|health| health.interval * health.max_missed.max(1) + health.timeout)
}

/// Acts on one data message; returns a frame to send back once the burst's calls are handed over.
fn receive(
    shared: &Shared,
    conn: &Connection,
    message: Message,
    bucket: Option<&mut Bucket>,
    last_heard: &mut Instant,
    burst: &mut Burst,
) -> Option<String> {
    match &message {
        Message::Text(text) => shared.stats.received(text.len()),
        Message::Binary(bytes) => shared.stats.received(bytes.len()),
        _ => return None,
    }
    // One clock read per burst: the messages of a burst were read together.
    if burst.is_empty() {
        *last_heard = Instant::now();
    }
    let admit = match (&message, bucket) {
        (Message::Text(_) | Message::Binary(_), Some(bucket)) => match bucket.take(*last_heard) {
            Admit::Allowed => None,
            Admit::Limited { first } => {
                if first {
                    burst.push(conn, call::limit(conn.key, "rate-limited"));
                }
                Some(bucket.retry_after_ms())
            }
            Admit::Exceeded => {
                tracing::info!(conn = %conn.id, "rate limit exceeded again and again, closing");
                conn.close(1008, "Rate limit exceeded");
                Some(bucket.retry_after_ms())
            }
        },
        _ => None,
    };
    let effect = match message {
        Message::Text(text) if shared.config.echo => {
            conn.send(text);
            Effect::Nothing
        }
        Message::Binary(bytes) if shared.config.echo => {
            conn.send_binary(bytes);
            Effect::Nothing
        }
        Message::Text(text) => match admit {
            Some(retry_after) => inbound::limited_text(shared, conn, text.as_str(), retry_after),
            None => inbound::text(shared, conn, text.as_str()),
        },
        Message::Binary(_) if admit.is_some() => Effect::Nothing,
        Message::Binary(bytes) => inbound::binary(shared, conn, &bytes),
        // Control frames are handled by the loop.
        Message::Ping(_) | Message::Pong(_) | Message::Close(_) => Effect::Nothing,
    };
    match effect {
        Effect::Reply(frame) => {
            conn.send(frame);
        }
        Effect::Call(call) => burst.push(conn, call),
        Effect::CallThenReply { call, reply } => {
            burst.push(conn, call);
            return Some(reply);
        }
        Effect::Nothing => {}
    }
    None
}

/// The client's close frame: answered with the same code unless we started the close, whose code then wins.
async fn close_received(
    ws: &mut Socket,
    frame: Option<(u16, String)>,
    closing: Closing,
    shared: &Shared,
) -> Ending {
    if let Some(closing) = closing {
        return closing.1;
    }
    let payload = match &frame {
        Some((code, _)) => code.to_be_bytes().to_vec(),
        None => Vec::new(),
    };
    let _ = timeout(
        shared.config.close_timeout,
        ws.send_flushed(CLOSE, &payload),
    )
    .await;
    match frame {
        Some((code, reason)) => Ending::new(code, reason),
        None => Ending::new(1005, ""),
    }
}

/// Handles a pong: the answer to a health ping or to an application ping.
fn pong(
    shared: &Shared,
    conn: &Connection,
    bytes: &[u8],
    health: Option<&mut Health>,
    pings: &mut Pings,
    burst: &mut Burst,
) {
    let now = Instant::now();
    let millis = |latency: Duration| latency.as_secs_f64() * 1000.0;
    let call = match health::parse(bytes) {
        Some((health::AUTO, id)) => match health.and_then(|health| health.pong(id, now)) {
            Some(latency) if shared.reports_pongs() => {
                call::health(conn.key, "pong", Some(millis(latency)))
            }
            _ => return,
        },
        Some((health::ON_DEMAND, id)) => match pings.answered(id) {
            Some(sent) => {
                call::ping_result(conn.key, id, millis(now.saturating_duration_since(sent)))
            }
            None => return,
        },
        // Unsolicited pongs are allowed (RFC 6455 §5.5.3) and mean nothing.
        _ => return,
    };
    burst.push(conn, call);
}

/// Writes what is queued now, within the close timeout: the last words before a close.
async fn flush_queue(
    ws: &mut Socket,
    outbox: &Outbox,
    closing: &mut Closing,
    pings: &mut Pings,
    shared: &Shared,
) {
    let flushed = async {
        while closing.is_none() {
            let batch = outbox.take(MAX_FRAMES_PER_FLUSH);
            if batch.is_empty() {
                break;
            }
            write(ws, outbox, batch, closing, pings, shared).await?;
        }
        Ok::<(), std::io::Error>(())
    };
    let _ = timeout(shared.config.close_timeout, flushed).await;
}

/// Writes a batch taken from the queue, then flushes a TLS session once.
async fn write(
    ws: &mut Socket,
    outbox: &Outbox,
    batch: VecDeque<Outbound>,
    closing: &mut Closing,
    pings: &mut Pings,
    shared: &Shared,
) -> std::io::Result<()> {
    for item in batch {
        match item {
            Outbound::Frame(frame) => {
                ws.send(TEXT, frame.as_bytes()).await?;
                outbox.written(frame.len());
                shared.stats.sent(frame.len());
            }
            Outbound::Binary(frame) => {
                ws.send(BINARY, &frame).await?;
                outbox.written(frame.len());
                shared.stats.sent(frame.len());
            }
            Outbound::Ping(id) => {
                pings.sent(id);
                ws.send(PING, &health::payload(health::ON_DEMAND, id))
                    .await?;
            }
            Outbound::Close { code, reason } => {
                Box::pin(start_close(ws, code, &reason, closing, shared)).await;
                return Ok(());
            }
        }
    }
    ws.flush_tls().await
}

/// Sends a close frame and starts waiting for the client's answer. The loop goes on, so a plain socket
/// that does not take the frame at once is drained by it, under the close deadline.
async fn start_close(
    ws: &mut Socket,
    code: u16,
    reason: &str,
    closing: &mut Closing,
    shared: &Shared,
) {
    let frame = frame::close_payload(code, reason);
    if let Err(error) = ws
        .send_soon(CLOSE, &frame, shared.config.close_timeout)
        .await
    {
        tracing::debug!(%error, "close frame not sent");
    }
    *closing = Some(Box::new((
        Instant::now() + shared.config.close_timeout,
        Ending::new(code, reason),
    )));
}

/// Ends the connection after a read error, telling the client why when the error is its fault.
async fn fail(ws: &mut Socket, conn: &Connection, error: ReadError, closing: Closing) -> Ending {
    let invalid = match error {
        ReadError::Invalid(invalid) => invalid,
        ReadError::Io(error) => {
            tracing::debug!(conn = %conn.id, %error, "connection lost");
            return lost(closing);
        }
    };
    let (code, reason) = (invalid.code(), invalid.reason());
    tracing::info!(conn = %conn.id, error = %invalid, code, "closing connection after bad input");
    if invalid == frame::Invalid::TooLarge {
        conn.tell(call::limit(conn.key, "message-too-large")).await;
    }
    // Best effort: the peer misbehaved, so do not wait long for it.
    let _ = timeout(Duration::from_secs(1), ws.close(code, reason)).await;
    Ending::new(code, reason)
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
