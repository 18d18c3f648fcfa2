//! The composition root: wires configuration, routing, the network and the application together.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use dashmap::DashMap;
use serde_json::value::RawValue;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::app::op::{self, Op, OpError};
use crate::app::{call, dispatch, App, Inbox};
use crate::cluster::{Cluster, Envelope};
use crate::config::Config;
use crate::net::keys::Keyed;
use crate::net::Verdict;
use crate::net::{self, Connection, Pending, Text, TlsError, TlsIdentity};
use crate::node::{Moved, Node};
use crate::pattern::PatternError;
use crate::protocol::{self, ErrorCode};
use crate::rooms::{request, Broadcast, Denial, Join, Rooms};
use crate::router::Router;
use crate::session::Tokens;
use crate::stats::{Snapshot, Stats};
use crate::sync::{Locked, ReadWrite};

/// The event every connection receives when the server starts a graceful stop.
const SHUTDOWN_TOPIC: &str = "server:shutdown";

/// Calls waiting for the application before readers pause; bounds memory when handlers fall behind.
const CALL_QUEUE: usize = 8192;

/// State every task of a server shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: Config,
    router: RwLock<Router>,
    pub(crate) connections: DashMap<u64, Arc<Connection>, Keyed>,
    pub(crate) rooms: Rooms,
    next_key: AtomicU64,
    /// Whether the application wants every pong reported (it listens to `pong-received`).
    report_pongs: AtomicBool,
    /// Whether the application hears of every connection when it opens, rather than with its first call.
    report_opens: AtomicBool,
    /// Connections admitted and not yet closed, handshakes included (for `max_connections`).
    pub(crate) admitted: AtomicUsize,
    /// Upgrades waiting for the application's verdict.
    pub(crate) upgrades: DashMap<u64, oneshot::Sender<Verdict>>,
    pub(crate) stats: Arc<Stats>,
    /// Set by [`Server::drain`]: new requests are refused.
    pub(crate) draining: AtomicBool,
    /// Signs and checks resume tokens, when sessions are on.
    pub(crate) tokens: Option<Tokens>,
    /// Live sessions: session id → connection key.
    pub(crate) sessions: DashMap<String, u64>,
    /// The cluster this server is a node of, if any.
    pub(crate) cluster: Option<Arc<Cluster>>,
    /// Connection id → key, kept only in a cluster (other nodes address connections by id).
    pub(crate) ids: DashMap<String, u64>,
}

/// Who a broadcast skips.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Exclude<'a> {
    Nobody,
    /// A connection of this node, by key.
    Key(u64),
    /// A connection by id (the sender of a broadcast that came from another node).
    Id(&'a str),
}

impl Shared {
    pub(crate) fn router(&self) -> RwLockReadGuard<'_, Router> {
        // Registration cannot leave the table half-written, so a poisoned lock is still a valid table.
        self.router.reading()
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        let mut snapshot = self
            .stats
            .snapshot(self.connections.len(), self.rooms.room_count());
        snapshot.cluster = self.cluster.as_ref().map(|cluster| cluster.snapshot());
        snapshot
    }

    /// A connection was registered: in a cluster, other nodes can now reach it by id.
    pub(crate) fn hold(&self, conn: &Connection) {
        if let Some(cluster) = &self.cluster {
            self.ids.insert(conn.id.to_string(), conn.key);
            cluster.hold(&conn.id);
        }
    }

    /// A connection ended for good (with its session, when it had one), closed with `code`.
    pub(crate) fn release(&self, conn: &Connection, session: bool, code: u16) {
        if let Some(cluster) = &self.cluster {
            self.ids.remove_if(&*conn.id, |_, key| *key == conn.key);
            cluster.release(&conn.id);
            // A session handed over is forgotten only once its new node claimed it (`DropSession`): its
            // copy is what that node reads.
            let kept = session && !conn.handed_over();
            if let Some(sessions) = self.config.sessions.as_ref().filter(|_| kept) {
                // A session that moved to another node lives on: no end mark for it.
                let ended = (!Moved::closed_with(code)).then_some(sessions.ttl);
                cluster.forget_session(&conn.id, ended);
            }
        }
    }

    /// Sends the event `data` to this node's members of the room `target` (or of every room matching the
    /// pattern `target`), each room's frame encoded once and its bytes shared by its recipients.
    pub(crate) fn deliver(
        &self,
        target: &str,
        data: &RawValue,
        exclude: Exclude<'_>,
        volatile: bool,
    ) -> Result<Broadcast, PatternError> {
        // Every frame is queued before any join or leave: a client told it has left gets nothing more.
        self.rooms.sending_to(target, |rooms| {
            let mut result = Broadcast::default();
            for (topic, members) in rooms {
                let frame = Utf8Bytes::from(protocol::event_frame(&topic, data));
                for key in members {
                    if matches!(exclude, Exclude::Key(excluded) if excluded == key) {
                        continue;
                    }
                    let Some(conn) = self.connections.get(&key) else {
                        result.targets += 1;
                        continue;
                    };
                    if matches!(exclude, Exclude::Id(excluded) if excluded == &*conn.id) {
                        continue;
                    }
                    result.targets += 1;
                    if conn.queue(&frame, volatile) {
                        result.sent += 1;
                    }
                }
            }
            result
        })
    }

    pub(crate) fn reports_pongs(&self) -> bool {
        self.report_pongs.load(Ordering::Relaxed)
    }

    pub(crate) fn reports_opens(&self) -> bool {
        self.report_opens.load(Ordering::Acquire)
    }

    pub(crate) fn next_key(&self) -> u64 {
        self.next_key.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// A serving server's handles.
struct Running {
    /// Turns true to stop accepting (drain or stop).
    closed: watch::Sender<bool>,
    /// Turns true to close every connection (stop).
    shutdown: watch::Sender<bool>,
    dispatcher: JoinHandle<()>,
    /// The calls waiting for the application.
    inbox: Arc<Inbox>,
    runtime: tokio::runtime::Handle,
    local_addr: SocketAddr,
}

/// Why `start` failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// `start` was called on a server that is serving.
    #[error("the server is already serving on {0}")]
    AlreadyServing(SocketAddr),
    /// The listener could not be used.
    #[error("cannot listen: {0}")]
    Listen(#[from] std::io::Error),
    /// The TLS certificate or key cannot be used.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// Why a broadcast was refused: a bug in the application side, never client input.
#[derive(Debug, thiserror::Error)]
pub enum BroadcastError {
    /// The topic or pattern does not parse.
    #[error("invalid broadcast topic: {0}")]
    Target(#[from] PatternError),
    /// The data is not JSON text.
    #[error("broadcast data is not JSON: {0}")]
    Data(#[from] serde_json::Error),
}

/// A Helios server: a routing table, the live connections, and (while serving) its tasks.
pub struct Server {
    shared: Arc<Shared>,
    running: Mutex<Option<Running>>,
}

impl Server {
    /// A server that is not serving yet.
    pub fn new(config: Config) -> Self {
        let tokens = config
            .sessions
            .as_ref()
            .map(|sessions| Tokens::new(&sessions.secret));
        let rooms = Rooms::new(config.max_subscriptions);
        let cluster = config.cluster.clone().and_then(|cluster| {
            Cluster::new(cluster)
                .map(Arc::new)
                .map_err(|error| tracing::error!(%error, "cluster: not joining"))
                .ok()
        });
        Server {
            shared: Arc::new(Shared {
                config,
                router: RwLock::new(Router::new()),
                connections: DashMap::default(),
                rooms,
                next_key: AtomicU64::new(0),
                report_pongs: AtomicBool::new(false),
                report_opens: AtomicBool::new(true),
                admitted: AtomicUsize::new(0),
                upgrades: DashMap::new(),
                stats: Arc::default(),
                draining: AtomicBool::new(false),
                tokens,
                sessions: DashMap::new(),
                cluster,
                ids: DashMap::new(),
            }),
            running: Mutex::new(None),
        }
    }

    #[cfg(test)]
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The routing table, for registering methods, middleware and event handlers at any time.
    pub fn router_mut(&self) -> RwLockWriteGuard<'_, Router> {
        self.shared.router.writing()
    }

    /// Whether every health-check pong is reported to the application; off by default so idle
    /// connections cost no crossing.
    pub fn report_pongs(&self, report: bool) {
        self.shared.report_pongs.store(report, Ordering::Relaxed);
    }

    /// Whether the application hears of every connection as it opens (the default), or only of those that
    /// do something, with the first call about each: a connection that stays silent then costs the
    /// application nothing. Turning it on does not report connections opened before: see
    /// [`Server::introduce_all`].
    pub fn report_opens(&self, report: bool) {
        self.shared.report_opens.store(report, Ordering::Release);
    }

    /// The open calls (as one batch, a JSON array) of every live connection the application has not heard
    /// of yet; from now on it has, and hears of their closes.
    pub fn introduce_all(&self) -> String {
        let mut batch = String::from("[");
        for conn in self.shared.connections.iter() {
            if let Some(open) = conn.introduce() {
                if batch.len() > 1 {
                    batch.push(',');
                }
                batch.push_str(&open);
            }
        }
        batch.push(']');
        batch
    }

    /// The rooms: declarations, and queries of membership.
    pub fn rooms(&self) -> &Rooms {
        &self.shared.rooms
    }

    /// Sends the event `data` (JSON text) to every member of the room `target`, or, when `target` is a
    /// pattern (`chat:*`), of every room matching it, each under its own room's topic. Each room's frame
    /// is encoded once and its bytes shared by all its recipients. `exclude` (a connection key) gets nothing.
    /// In a cluster the broadcast is also published once for the other nodes; the result counts this
    /// node's deliveries.
    pub fn broadcast(
        &self,
        target: &str,
        data: &str,
        exclude: Option<u64>,
        volatile: bool,
    ) -> Result<Broadcast, BroadcastError> {
        let data: &RawValue = serde_json::from_str(data)?;
        let excluded = exclude.map_or(Exclude::Nobody, Exclude::Key);
        let mut delivered = Ok(Broadcast::default());
        self.in_turn(|| delivered = self.shared.deliver(target, data, excluded, volatile));
        let result = delivered?;
        if let Some(cluster) = &self.shared.cluster {
            let exclude = exclude.and_then(|key| {
                self.shared
                    .connections
                    .get(&key)
                    .map(|conn| conn.id.to_string())
            });
            cluster.publish(&Envelope::Broadcast {
                target: target.into(),
                exclude: exclude.map(Into::into),
                volatile,
                data,
            });
        }
        Ok(result)
    }

    /// This node's id in its cluster, if it is in one.
    pub fn node_id(&self) -> Option<&str> {
        self.shared
            .cluster
            .as_ref()
            .map(|cluster| cluster.node_id.as_str())
    }

    /// The live nodes of the cluster, this one included once it has joined.
    pub fn cluster_nodes(&self) -> Vec<String> {
        self.shared
            .cluster
            .as_ref()
            .map(|cluster| cluster.nodes())
            .unwrap_or_default()
    }

    fn running(&self) -> std::sync::MutexGuard<'_, Option<Running>> {
        self.running.locked()
    }

    /// Starts serving on a bound listener, over TLS when `tls` is given, delivering calls to `app`. Must run
    /// inside a tokio runtime.
    pub fn start<A: App>(
        &self,
        listener: std::net::TcpListener,
        tls: Option<&TlsIdentity>,
        app: A,
    ) -> Result<SocketAddr, StartError> {
        let mut running = self.running();
        if let Some(running) = running.as_ref() {
            return Err(StartError::AlreadyServing(running.local_addr));
        }
        let tls = tls.map(TlsIdentity::acceptor).transpose()?;
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let local_addr = listener.local_addr()?;
        let (calls, calls_rx) = mpsc::channel(CALL_QUEUE);
        let inbox = Arc::new(Inbox::new(calls_rx));
        let (closed, closed_rx) = watch::channel(false);
        let (shutdown, shutdown_rx) = watch::channel(false);
        self.shared.draining.store(false, Ordering::Release);
        if let Some(cluster) = &self.shared.cluster {
            let node = Node {
                shared: self.shared.clone(),
                calls: calls.downgrade(),
                runtime: tokio::runtime::Handle::current(),
                shutdown: shutdown_rx.clone(),
            };
            cluster.start(Arc::new(node), shutdown_rx.clone());
            if self.shared.config.sessions.is_some() {
                tokio::spawn(crate::mirror::mirror_sessions(
                    self.shared.clone(),
                    shutdown_rx.clone(),
                ));
            }
        }
        tokio::spawn(net::accept(
            self.shared.clone(),
            listener,
            calls,
            closed_rx,
            shutdown_rx,
            tls,
        ));
        *running = Some(Running {
            closed,
            shutdown,
            dispatcher: tokio::spawn(dispatch(app, inbox.clone())),
            inbox,
            runtime: tokio::runtime::Handle::current(),
            local_addr,
        });
        tracing::info!(%local_addr, "serving");
        Ok(local_addr)
    }

    /// The address the server listens on, while serving.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.running().as_ref().map(|running| running.local_addr)
    }

    /// What the server has done so far.
    pub fn stats(&self) -> Snapshot {
        self.shared.snapshot()
    }

    /// Live connections.
    pub fn connection_count(&self) -> usize {
        self.shared.connections.len()
    }

    /// Starts a graceful stop: frees the port, sends every connection the event `server:shutdown` with
    /// `notice` (raw JSON) so clients can go elsewhere, and answers new requests 503 `SHUTTING_DOWN`.
    /// Connections stay open until [`Server::stop`].
    pub fn drain(&self, notice: &str) -> Result<(), serde_json::Error> {
        let notice: &RawValue = serde_json::from_str(notice)?;
        if let Some(running) = self.running().as_ref() {
            let _ = running.closed.send(true);
        }
        self.shared.draining.store(true, Ordering::Release);
        let frame = Utf8Bytes::from(protocol::event_frame(SHUTDOWN_TOPIC, notice));
        self.in_turn(|| {
            for connection in self.shared.connections.iter() {
                connection.send(frame.clone());
            }
        });
        Ok(())
    }

    /// Stops accepting, closes every connection with 1001, and resolves once the application has heard
    /// of every close and the port is free. Does nothing when not serving.
    pub async fn stop(&self) {
        let Some(running) = self.running().take() else {
            return;
        };
        let _ = running.closed.send(true);
        // The flag first: a connection attached after the loop below has passed finds it set when its
        // socket task starts.
        let _ = running.shutdown.send(true);
        for conn in self.shared.connections.iter() {
            conn.stop();
        }
        // The dispatcher ends when the accept loop and every connection have dropped their senders.
        let _ = running.dispatcher.await;
        if let Some(cluster) = &self.shared.cluster {
            cluster.stop();
        }
        tracing::info!(local_addr = %running.local_addr, "stopped");
    }

    /// Carries out a flush of operations from the application. Operations on connections that are gone
    /// are skipped: the application learns of the close through its own call. A malformed operation is
    /// skipped too, and the first one is reported once the others are carried out.
    pub fn apply(&self, ops: &str) -> Result<(), OpError> {
        let mut malformed = None;
        self.in_turn(|| {
            for op in op::decode(ops) {
                match op {
                    Ok(op) => self.apply_one(op),
                    Err(error) => {
                        malformed.get_or_insert(error);
                    }
                }
            }
        });
        malformed.map_or(Ok(()), Err)
    }

    /// The calls that queued while the application ran a batch, as one more batch (a JSON array of
    /// [`call`]s); `None` when none wait. Taken by the application before it returns from a batch, they
    /// skip the round trip through the dispatcher. Calls are delivered once, whichever way they go.
    pub fn take_calls(&self) -> Option<String> {
        let inbox = self.running().as_ref()?.inbox.clone();
        inbox.take()
    }

    /// Starts a turn of the application on this thread: the frames it sends are held until
    /// [`Server::end_turn`], which has them written, one write per connection however many frames a
    /// connection got (a batch's replies and broadcasts). See `net::cork`.
    pub fn begin_turn(&self) {
        net::cork::hold();
    }

    /// Ends the turn [`Server::begin_turn`] started: one task on an I/O thread writes what it held, so the
    /// application's thread makes no system call and wakes no connection's task.
    pub fn end_turn(&self) {
        net::cork::release(|held| self.write_held(held));
    }

    /// Runs `send` within a turn: the one already begun on this thread, or its own.
    fn in_turn(&self, send: impl FnOnce()) {
        net::cork::holding(send, |held| self.write_held(held));
    }

    /// Has what a turn held written by a task on an I/O thread (here, when not serving).
    fn write_held(&self, held: Vec<Arc<net::Outbox>>) {
        match self.runtime() {
            Some(runtime) => {
                runtime.spawn(net::cork::write(held));
            }
            None => net::cork::write_now(held),
        }
    }

    /// The runtime the server runs on, while serving.
    fn runtime(&self) -> Option<tokio::runtime::Handle> {
        self.running()
            .as_ref()
            .map(|running| running.runtime.clone())
    }

    /// Queues `call` for the application from its own thread: at once when the queue has room, so that it
    /// comes before anything the client sends after the answer it is about to get; otherwise from a task.
    fn tell_at_once(&self, conn: &Connection, call: String) {
        if let Err(mpsc::error::TrySendError::Full(call)) = conn.calls.try_send(call) {
            if let Some(runtime) = self.runtime() {
                let calls = conn.calls.clone();
                runtime.spawn(async move {
                    let _ = calls.send(call).await;
                });
            }
        }
    }

    fn apply_one(&self, op: Op<'_>) {
        if let Op::Upgrade {
            id,
            accepted,
            status,
            reason,
            data,
        } = op
        {
            let verdict = if accepted {
                Verdict::Accept((data.get() != "null").then(|| data.to_owned()))
            } else {
                Verdict::Reject {
                    status,
                    reason: reason.into_owned(),
                }
            };
            if let Some((_, answer)) = self.shared.upgrades.remove(&id) {
                let _ = answer.send(verdict);
            }
            return;
        }
        let conn_key = match &op {
            Op::Frame { conn, .. }
            | Op::Emit { conn, .. }
            | Op::Request { conn, .. }
            | Op::EventError { conn, .. }
            | Op::RoomVerdict { conn, .. }
            | Op::Ping { conn, .. }
            | Op::SessionData { conn, .. }
            | Op::Close { conn, .. } => *conn,
            Op::Upgrade { .. } => return,
            Op::RouteEmit { .. } | Op::RouteRequest { .. } | Op::RoomQuery { .. } => {
                self.apply_cluster(op);
                return;
            }
        };
        let Some(conn) = self
            .shared
            .connections
            .get(&conn_key)
            .map(|entry| entry.value().clone())
        else {
            return;
        };
        match op {
            Op::Frame { frame, .. } => {
                conn.queue(Text::Borrowed(frame), false);
            }
            Op::Emit {
                topic,
                data,
                volatile,
                ..
            } => {
                conn.queue(
                    &Utf8Bytes::from(protocol::event_frame(&topic, data)),
                    volatile,
                );
            }
            Op::Request {
                id,
                method,
                payload,
                timeout_ms,
                ..
            } => {
                let Some(runtime) = self.runtime() else {
                    return;
                };
                let max = self.shared.config.max_pending_requests;
                let timeout = Duration::from_millis(timeout_ms);
                let (calls, key) = (conn.calls.clone(), conn.key);
                let expired = async move {
                    let _ = calls.send(call::request_failed(key, id, "timeout")).await;
                };
                if conn.request(&runtime, id, &method, payload, timeout, max, expired)
                    == Pending::Full
                {
                    // The application's promise fails at once instead of waiting for a timeout.
                    let failed = call::request_failed(conn.key, id, "too-many-pending");
                    runtime.spawn(async move {
                        let _ = conn.calls.send(failed).await;
                    });
                }
            }
            Op::EventError { topic, message, .. } => {
                conn.send(protocol::error_frame(
                    ErrorCode::EventHandlerError,
                    &message,
                    Some(&topic),
                ));
            }
            Op::RoomVerdict {
                id,
                topic,
                allowed,
                error,
                ..
            } => {
                let outcome = match (allowed, error) {
                    (_, Some(message)) => Err(Denial::ValidatorFailed(message.into_owned())),
                    (false, None) => Err(Denial::PermissionDenied),
                    (true, None) => match self.shared.rooms.join(conn_key, &topic, || conn.ended())
                    {
                        // Closed meanwhile: nobody is left to answer.
                        Join::Closed => return,
                        Join::Joined => {
                            // As for a public room, the application learns of the join from the core,
                            // which alone knows whether it happened.
                            self.tell_at_once(&conn, call::room(conn_key, &topic, true));
                            Ok(())
                        }
                        Join::Already => Ok(()),
                        Join::Full => Err(Denial::TooManyRooms),
                    },
                };
                conn.send(protocol::response_frame(
                    id.into(),
                    200,
                    &request::answer(&topic, outcome),
                ));
            }
            Op::Ping { id, .. } => conn.ping(id),
            Op::SessionData { data, .. } => {
                // Kept in Redis for a session only, with the session's next write.
                if let Some(cluster) = &self.shared.cluster {
                    if self.shared.sessions.contains_key(&*conn.id) {
                        cluster.set_session_data(&conn.id, data.get());
                    }
                }
            }
            Op::Close { code, reason, .. } => {
                // A waiting session has no socket to close: it ends now.
                if let (true, Some(runtime)) = (conn.close(code, &reason), self.runtime()) {
                    let shared = self.shared.clone();
                    let reason = reason.into_owned();
                    runtime.spawn(async move { net::end(&shared, &conn, code, &reason).await });
                }
            }
            // Answered above: an upgrade has no connection yet, the cluster's ops address other nodes.
            Op::Upgrade { .. }
            | Op::RouteEmit { .. }
            | Op::RouteRequest { .. }
            | Op::RoomQuery { .. } => {}
        }
    }
}

impl Server {
    /// Carries out an op that addresses other nodes (the application sends them only in a cluster).
    fn apply_cluster(&self, op: Op<'_>) {
        let Some(cluster) = &self.shared.cluster else {
            return;
        };
        match op {
            Op::RouteEmit {
                ticket,
                id,
                topic,
                data,
                volatile,
            } => {
                let envelope = Envelope::Emit {
                    ticket,
                    conn: id.clone(),
                    topic,
                    volatile,
                    data,
                };
                cluster.route(ticket, &id, &envelope);
            }
            Op::RouteRequest {
                ticket,
                id,
                method,
                payload,
                timeout_ms,
            } => {
                let envelope = Envelope::Request {
                    ticket,
                    conn: id.clone(),
                    method,
                    timeout_ms,
                    payload,
                };
                cluster.route(ticket, &id, &envelope);
            }
            Op::RoomQuery { ticket, topic } => {
                cluster.publish(&Envelope::RoomQuery { ticket, topic });
            }
            _ => {}
        }
    }
}
