//! Several Helios nodes as one system, through Redis: broadcasts published once and fanned out by every
//! node, events and requests routed to the node that holds a connection, room queries answered by every
//! live node, sessions kept in Redis for other nodes to resume. No network code of the server is in here: what a message does on this node goes through
//! [`Local`], which the composition root implements.

mod config;
mod directory;
mod envelope;
mod handoff;
mod link;
mod nodes;
mod relay;
mod remote;
mod sessions;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::Serialize;
use serde_json::value::RawValue;
use tokio::sync::{mpsc, watch, Mutex as AsyncMutex, Notify};
use tokio_tungstenite::tungstenite::Utf8Bytes;

pub use config::ClusterConfig;
pub use link::LinkState;
use sessions::Claimed;
pub use sessions::StoredSession;
pub(crate) use sessions::{
    FinalState, PendingWrite, SessionWrite, WriteOutcome, MAX_FRAMES_PER_WRITE,
};

use directory::Routed;
pub(crate) use envelope::Envelope;
pub(crate) use handoff::HandOff;
use handoff::HandOffs;
use link::{Job, Link};
use remote::RemoteRequests;

use crate::sync::{Locked, ReadWrite};

/// Why the cluster could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("invalid cluster Redis URL: {0}")]
pub struct ClusterError(#[from] redis::RedisError);

/// What a message from another node does on this node.
pub(crate) trait Local: Send + Sync + 'static {
    /// Delivers a broadcast to this node's members of `target`, except connection `exclude`.
    fn broadcast(&self, target: &str, exclude: Option<&str>, volatile: bool, data: &RawValue);
    /// Sends an event to connection `conn` of this node; false when it is not here (true even when a
    /// volatile event was dropped on the way, as for an emit on this node).
    fn emit(&self, conn: &str, topic: &str, volatile: bool, data: &RawValue) -> bool;
    /// Sends request `id` to connection `conn` of this node; the error is why it could not.
    fn request(
        &self,
        conn: &str,
        id: u64,
        method: &str,
        timeout: Duration,
        payload: &RawValue,
    ) -> Result<(), &'static str>;
    /// The ids of this node's connections that have no session. A session's connection is registered
    /// by the session's writes, which find out whether another node took the session over meanwhile.
    fn held(&self) -> Vec<String>;
    /// Whether connection `conn` is on this node.
    fn holds(&self, conn: &str) -> bool;
    /// Whether connection `conn` is on this node and has no session (see [`Local::held`]).
    fn holds_without_session(&self, conn: &str) -> bool;
    /// The ids of this node's connections in the room `topic`.
    fn members(&self, topic: &str) -> Vec<String>;
    /// The session `session` resumed on another node: forget it here without telling anyone.
    fn drop_session(&self, session: &str);
    /// The client of session `session` resumes on node `origin` with a token of generation `gen`: unless
    /// that token was used already, stop serving the session, write its latest state and answer
    /// `ticket` (see [`Cluster::answer_hand_over`]).
    fn hand_over(&self, origin: &str, ticket: u64, session: &str, gen: u64);
    /// Node `node` is dead and this node won its sessions: take them over, suspended, until their
    /// clients resume (here, or on another node that then takes them from here).
    fn adopt(&self, node: &str);
    /// A request this node routed (`ticket`) was answered; an emit's ticket is answered `200, true`.
    fn answered(&self, ticket: u64, status: u16, data: &RawValue, error: Option<&RawValue>);
    /// A request or emit this node routed failed.
    fn failed(&self, ticket: u64, reason: &str);
    /// Node `node` says who of its connections is in the room asked about with `ticket`.
    fn room_answer(&self, ticket: u64, node: &str, ids: &[std::borrow::Cow<'_, str>]);
}

/// The cluster state of one server.
pub(crate) struct Cluster {
    /// This node's id, random per server.
    pub(crate) node_id: String,
    config: ClusterConfig,
    /// The channel every node listens to, named once.
    all_channel: String,
    link: Arc<Link>,
    jobs: Arc<AsyncMutex<mpsc::Receiver<Job>>>,
    /// Live nodes (this one included once it has beaten), sorted.
    nodes: RwLock<Vec<String>>,
    remote: RemoteRequests,
    /// Hand-overs of sessions this node asked their owners for.
    handoffs: HandOffs,
    /// While serving: what messages act on, and the runtime that carries out routed work.
    local: RwLock<Option<(Arc<dyn Local>, tokio::runtime::Handle)>>,
    /// Turns true when the server has stopped: the sending loop flushes and ends.
    stop: watch::Sender<bool>,
    /// Wakes the writer of sessions before its next round (see [`Cluster::write_sessions_now`]).
    sessions_changed: Notify,
    /// Session data entries (JSON objects) set since the writer of sessions last took them, by session.
    session_data: Mutex<HashMap<String, String>>,
    /// Set when the full queue refused a connection's release (or a cleanup failed): the next heartbeat
    /// cleans the directory.
    release_refused: AtomicBool,
    /// Connections whose registration the full queue refused: registered again after the next beat.
    refused_holds: Mutex<HashSet<String>>,
    /// Held while a session's state is read and its write queued (see [`Cluster::session_writes`]).
    session_writes: Mutex<()>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node_id", &self.node_id)
            .field("state", &self.link.state())
            .finish_non_exhaustive()
    }
}

/// The cluster part of `stats()`.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSnapshot {
    /// `connecting`, `connected` or `disconnected`.
    pub state: &'static str,
    /// This node's id.
    pub node_id: String,
    /// Live nodes, this one included.
    pub nodes: usize,
    /// Commands waiting for Redis.
    pub queued: usize,
    /// Commands Redis carried out (publishes, directory updates, ...).
    pub sent: u64,
    /// Messages received on this node's channels (its own broadcasts, which it skips, included).
    pub received: u64,
    /// Commands refused because the queue was full, or lost with a failed connection.
    pub dropped: u64,
    /// Times the link came back after a loss.
    pub reconnects: u64,
}

impl Cluster {
    /// A node of the cluster `config` names, not connected yet.
    pub(crate) fn new(config: ClusterConfig) -> Result<Self, ClusterError> {
        let (link, jobs) = Link::new(&config.url, config.queue_limit)?;
        let node_id = uuid::Uuid::new_v4().simple().to_string();
        Ok(Cluster {
            node_id,
            all_channel: config.all_channel(),
            config,
            link,
            jobs: Arc::new(AsyncMutex::new(jobs)),
            nodes: RwLock::default(),
            remote: RemoteRequests::default(),
            handoffs: HandOffs::default(),
            local: RwLock::default(),
            stop: watch::channel(false).0,
            sessions_changed: Notify::new(),
            session_data: Mutex::default(),
            release_refused: AtomicBool::new(false),
            refused_holds: Mutex::default(),
            session_writes: Mutex::default(),
        })
    }

    /// Connects and starts listening; messages from other nodes act through `local` until `shutdown`
    /// turns true. Must run inside a tokio runtime.
    pub(crate) fn start(self: &Arc<Self>, local: Arc<dyn Local>, shutdown: watch::Receiver<bool>) {
        *self.local.writing() = Some((local.clone(), tokio::runtime::Handle::current()));
        self.stop.send_replace(false);
        let (link, jobs, stop) = (self.link.clone(), self.jobs.clone(), self.stop.subscribe());
        let idle_ping = nodes::interval(&self.config);
        let quiet = nodes::quiet_limit(&self.config);
        tokio::spawn(async move {
            let mut jobs = jobs.lock_owned().await;
            link::send_loop(link, &mut jobs, idle_ping, quiet, stop).await;
        });
        let channels = vec![
            self.all_channel.clone(),
            self.config.node_channel(&self.node_id),
        ];
        let cluster = self.clone();
        // Frames the messages of one batch send to one connection (broadcasts from other nodes) leave in one
        // write.
        let on_messages = move |texts: &[&str]| {
            crate::net::cork::in_one_write(|| {
                for text in texts {
                    relay::relay(&cluster, local.as_ref(), text);
                }
            });
        };
        tokio::spawn(link::listen_loop(
            self.link.clone(),
            channels,
            on_messages,
            quiet,
            shutdown.clone(),
        ));
        tokio::spawn(nodes::heartbeat(self.clone(), shutdown));
    }

    /// Says goodbye to the other nodes, sends what is still queued (briefly) and stops the link. Called
    /// once every connection of the server has closed.
    pub(crate) fn stop(&self) {
        for cmd in nodes::leave(&self.config, &self.node_id) {
            self.link.send(cmd);
        }
        // Every connection's release is queued ahead: what is left names this node only if a release was
        // lost while Redis was away. One batch, as the flush at stop is brief.
        self.link.send(directory::reap_batch(
            &self.config,
            &self.node_id,
            directory::BATCH,
        ));
        self.stop.send_replace(true);
        *self.local.writing() = None;
    }

    fn local(&self) -> Option<(Arc<dyn Local>, tokio::runtime::Handle)> {
        self.local.reading().clone()
    }

    /// Sends `envelope` to every other node.
    pub(crate) fn publish(&self, envelope: &Envelope<'_>) {
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(&self.all_channel)
            .arg(envelope.encode(&self.node_id));
        self.link.send(cmd);
    }

    /// Sends `envelope` to node `node`.
    fn tell(&self, node: &str, envelope: &Envelope<'_>) {
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(self.config.node_channel(node))
            .arg(envelope.encode(&self.node_id));
        self.link.send(cmd);
    }

    /// Records that this node holds connection `conn`.
    pub(crate) fn hold(&self, conn: &str) {
        if !self
            .link
            .send(directory::hold(&self.config, conn, &self.node_id))
        {
            self.lock_refused_holds().insert(conn.to_owned());
        }
    }

    fn lock_refused_holds(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        // A plain set, consistent between calls: a panic elsewhere leaves it usable.
        self.refused_holds.locked()
    }

    /// Records that connection `conn` has ended here; requests other nodes sent it fail at once.
    pub(crate) fn release(&self, conn: &str) {
        let release = directory::release(&self.config, &self.node_id, [conn]);
        if !self.link.send(release) {
            self.release_refused.store(true, Ordering::Relaxed);
        }
        for id in self.remote.sent_to(conn) {
            self.request_failed(id, "connection-closed");
        }
    }

    /// Sends `envelope` (an emit or a request, `ticket`) to the node holding connection `conn`; the
    /// application hears through [`Local`] at once if no live node holds it, otherwise when that node
    /// answers (an emit: whether the connection was there).
    pub(crate) fn route(&self, ticket: u64, conn: &str, envelope: &Envelope<'_>) {
        let Some((local, runtime)) = self.local() else {
            return;
        };
        let cmd = directory::route(&self.config, conn, &envelope.encode(&self.node_id));
        let Some(reply) = self.link.ask(cmd) else {
            local.failed(ticket, "cluster-unavailable");
            return;
        };
        runtime.spawn(async move {
            let routed = match reply.await {
                Ok(Ok(value)) => redis::from_redis_value::<i64>(value)
                    .map(Routed::from_reply)
                    .unwrap_or(Routed::Unknown),
                // The command failed, or was lost with the connection.
                _ => {
                    local.failed(ticket, "cluster-unavailable");
                    return;
                }
            };
            if routed == Routed::Unknown {
                local.failed(ticket, "unknown-connection");
            }
        });
    }

    /// Tells node `origin` what became of its routed emit `ticket`: queued for the connection (`200,
    /// true`), or failed because this node does not hold the connection (any more).
    fn answer_emit(&self, origin: &str, ticket: u64, held: bool) {
        if held {
            let answer = Envelope::Answer {
                ticket,
                status: 200,
                data: delivered(),
                error: None,
            };
            self.tell(origin, &answer);
        } else {
            let failed = Envelope::Failed {
                ticket,
                reason: "unknown-connection".into(),
            };
            self.tell(origin, &failed);
        }
    }

    /// After the link came back: registers this node's connections again (a restarted Redis may have
    /// lost them, or a node that took this one for dead removed them), then removes the entries of those
    /// that closed while their release could not reach Redis.
    fn register_again(self: &Arc<Self>) {
        // Every connection without a session is registered again here; those with one, by their writes.
        self.lock_refused_holds().clear();
        if let Some((local, _)) = self.local() {
            for id in local.held() {
                self.hold(&id);
            }
        }
        self.prune();
    }

    /// Removes the entries of this node's connections that closed while their release could not reach
    /// Redis (lost with a failed connection, or refused by a full queue), in its own task.
    fn prune(self: &Arc<Self>) {
        let Some((local, runtime)) = self.local() else {
            return;
        };
        let Some(mut conn) = self.link.commands() else {
            // Not connected: the link coming back runs it.
            return;
        };
        self.release_refused.store(false, Ordering::Relaxed);
        let cluster = self.clone();
        runtime.spawn(async move {
            let still_here = |id: &str| local.holds(id);
            let rehold = |ids: &[String]| {
                for id in ids.iter().filter(|id| local.holds(id)) {
                    cluster.hold(id);
                }
            };
            let pruned = directory::prune(
                &mut conn,
                &cluster.config,
                &cluster.node_id,
                still_here,
                rehold,
            )
            .await;
            match pruned {
                Ok(0) => {}
                Ok(removed) => {
                    tracing::info!(
                        removed,
                        "cluster: forgot connections that closed while Redis was away"
                    );
                }
                Err(error) => {
                    tracing::debug!(%error, "cluster: cannot clean the directory yet");
                    // Tried again after the next beat.
                    cluster.release_refused.store(true, Ordering::Relaxed);
                }
            }
        });
    }

    /// After a beat: registers again the connections whose registration the full queue refused (those
    /// still here without a session: a session's connection is registered by its next write), and cleans
    /// the directory if a release was refused.
    pub(crate) fn catch_up_directory(self: &Arc<Self>) {
        let refused = std::mem::take(&mut *self.lock_refused_holds());
        if !refused.is_empty() {
            if let Some((local, _)) = self.local() {
                for id in refused.iter().filter(|id| local.holds_without_session(id)) {
                    self.hold(id);
                }
            }
        }
        if self.release_refused.load(Ordering::Relaxed) {
            self.prune();
        }
    }

    /// Removes the directory entries of dead node `node`, in batches, in their own task; tries again
    /// every heartbeat while Redis fails it, until done or the server stops.
    fn reap(self: &Arc<Self>, node: String) {
        let Some((_, runtime)) = self.local() else {
            return;
        };
        let (cluster, mut stop) = (self.clone(), self.stop.subscribe());
        runtime.spawn(async move {
            loop {
                if let Some(mut conn) = cluster.link.commands() {
                    match directory::reap(&mut conn, &cluster.config, &node).await {
                        Ok(removed) => {
                            tracing::debug!(%node, removed, "cluster: forgot a dead node's connections");
                            return;
                        }
                        Err(error) => tracing::debug!(%error, %node, "cluster: cannot forget a dead node's connections yet"),
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(nodes::interval(&cluster.config)) => {}
                    _ = link::stopped(&mut stop) => return,
                }
            }
        });
    }

    /// A client answered request `id`; true when it came from another node (the answer is sent back
    /// there), false when it is the application's own.
    pub(crate) fn answered(
        &self,
        id: u64,
        status: u16,
        data: &RawValue,
        error: Option<&RawValue>,
    ) -> bool {
        if !RemoteRequests::is_remote(id) {
            return false;
        }
        if let Some((origin, ticket)) = self.remote.take(id) {
            let answer = Envelope::Answer {
                ticket,
                status,
                data,
                error,
            };
            self.tell(&origin, &answer);
        }
        true
    }

    /// Request `id` failed (timed out, the connection closed); true when it came from another node.
    pub(crate) fn request_failed(&self, id: u64, reason: &str) -> bool {
        if !RemoteRequests::is_remote(id) {
            return false;
        }
        if let Some((origin, ticket)) = self.remote.take(id) {
            let failed = Envelope::Failed {
                ticket,
                reason: reason.into(),
            };
            self.tell(&origin, &failed);
        }
        true
    }

    /// Writes part of a session's state; what became of it can be read from the answer, `None` when the
    /// queue refused it.
    pub(crate) fn write_session(
        &self,
        ttl: Duration,
        write: &SessionWrite<'_>,
    ) -> Option<PendingWrite> {
        self.link
            .ask(sessions::write(&self.config, &self.node_id, ttl, write))
            .map(PendingWrite)
    }

    /// Serializes reading a session's state with queueing its write, for the writer of sessions and a
    /// hand-over alike: the commands queue in the order they were read, so the writer cannot queue a
    /// state it read before a hand-over stopped the session behind that hand-over's final write, which
    /// would then be replaced by an older copy.
    pub(crate) fn session_writes(&self) -> std::sync::MutexGuard<'_, ()> {
        // Guards nothing but the order: a panic elsewhere leaves it usable.
        self.session_writes.locked()
    }

    fn lock_session_data(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        // A plain map, consistent between calls: a panic elsewhere leaves it usable.
        self.session_data.locked()
    }

    /// Has a session's data entries (a JSON object) written with the session's next write.
    pub(crate) fn set_session_data(&self, id: &str, data: &str) {
        self.lock_session_data()
            .insert(id.to_owned(), data.to_owned());
    }

    /// The data entries of session `id` set since they were last taken.
    pub(crate) fn take_session_data_of(&self, id: &str) -> Option<String> {
        self.lock_session_data().remove(id)
    }

    /// Drops the waiting data entries of the sessions `live` says ended.
    pub(crate) fn keep_session_data(&self, live: impl Fn(&str) -> bool) {
        self.lock_session_data().retain(|id, _| live(id));
    }

    /// Puts back data entries that could not be written, unless newer ones were set meanwhile.
    pub(crate) fn return_session_data(&self, id: String, data: String) {
        self.lock_session_data().entry(id).or_insert(data);
    }

    /// Forgets a session that ended here (unless another node owns it by now). When it ended for good
    /// (`ended`: its ttl), no node that held it before writes it back for that long.
    pub(crate) fn forget_session(&self, id: &str, ended: Option<Duration>) {
        self.link
            .send(sessions::forget(&self.config, &self.node_id, id, ended));
    }

    /// Reads a session from Redis; the error says why it could not be read.
    pub(crate) async fn load_session(&self, id: &str) -> Result<Option<StoredSession>, String> {
        let mut conn = self
            .link
            .commands()
            .ok_or_else(|| "cluster unavailable".to_owned())?;
        sessions::load(&mut conn, &self.config, id)
            .await
            .map_err(|error| error.to_string())
    }

    /// Makes this node the owner of session `id`, whose token generation is now `gen`, and tells the
    /// owner it had, if alive, to drop its copy. A client resuming here always wins (`only_from: None`);
    /// a takeover (`only_from: Some(dead node)`) only while the dead node still owns the session. True
    /// when Redis recorded it; false when another node owns it, or Redis could not record it (refused
    /// the write, or is away): the copy the claim is for may then lag its session.
    pub(crate) async fn claim_session(&self, only_from: Option<&str>, id: &str, gen: u64) -> bool {
        let Some(mut conn) = self.link.commands() else {
            return false;
        };
        for _ in 0..3 {
            let claimed =
                sessions::claim(&mut conn, &self.config, &self.node_id, only_from, id, gen).await;
            match claimed {
                Ok(Claimed::From(previous)) => {
                    if !previous.is_empty() && previous != self.node_id {
                        self.drop_session_on(&previous, id);
                    }
                    return true;
                }
                // The owner changed between reading and claiming: a resume reads it again.
                Ok(Claimed::Lost) if only_from.is_none() => continue,
                Ok(Claimed::Lost) => return false,
                Err(error) => {
                    tracing::warn!(%error, "cluster: cannot record the session's new node");
                    return false;
                }
            }
        }
        false
    }

    /// Tells node `node` that session `id` lives here now: it drops its copy.
    pub(crate) fn drop_session_on(&self, node: &str, id: &str) {
        self.tell(node, &Envelope::DropSession { session: id.into() });
    }

    /// Asks node `owner`, alive and holding session `id`, to hand it over to a client with a token of
    /// generation `gen` (see the `handoff` module), and waits for its answer while the owner is among
    /// the live nodes, at most a node ttl and a heartbeat: an owner silent for that long is dead or cut
    /// off.
    pub(crate) async fn hand_over(&self, owner: &str, id: &str, gen: u64) -> HandOff {
        let (ticket, mut answer) = self.handoffs.open();
        self.tell(
            owner,
            &Envelope::HandOver {
                ticket,
                session: id.into(),
                gen,
            },
        );
        let beat = nodes::interval(&self.config);
        let deadline = tokio::time::Instant::now() + self.config.node_ttl() + beat;
        let outcome = loop {
            let wake = deadline.min(tokio::time::Instant::now() + beat);
            match tokio::time::timeout_at(wake, &mut answer).await {
                Ok(Ok(outcome)) => break outcome,
                // Dropped unanswered: cannot happen while this waits, counts as no answer.
                Ok(Err(_)) => break HandOff::TimedOut,
                Err(_) if !self.is_live(owner) => break HandOff::Gone,
                Err(_) if tokio::time::Instant::now() >= deadline => break HandOff::TimedOut,
                Err(_) => {}
            }
        };
        self.handoffs.close(ticket);
        outcome
    }

    /// Node `origin` asked for a hand-over (`ticket`): tells it what became of it.
    pub(crate) fn answer_hand_over(&self, origin: &str, ticket: u64, outcome: HandOff) {
        let outcome = outcome.as_str().into();
        self.tell(origin, &Envelope::HandedOver { ticket, outcome });
    }

    /// The answer to hand-over `ticket` arrived.
    fn handed_over(&self, ticket: u64, outcome: &str) {
        self.handoffs.answer(ticket, HandOff::parse(outcome));
    }

    /// Queues the final state of a session this node hands over, whole (in batches of at most
    /// [`MAX_FRAMES_PER_WRITE`] frames, in order), with the data entries still waiting for the writer of
    /// sessions. Called under [`Cluster::session_writes`], with the session stopped under the same hold.
    pub(crate) fn queue_final(
        &self,
        ttl: Duration,
        state: &FinalState<'_>,
    ) -> Result<Vec<PendingWrite>, HandOff> {
        let data = self.take_session_data_of(state.id);
        // A session with no frame held is still written once, for its rooms, data and generation.
        let batches: Vec<&[Utf8Bytes]> = if state.frames.is_empty() {
            vec![&[]]
        } else {
            state.frames.chunks(MAX_FRAMES_PER_WRITE).collect()
        };
        let mut pending = Vec::with_capacity(batches.len());
        let mut next = state.first;
        for (index, frames) in batches.into_iter().enumerate() {
            next += frames.len() as u64;
            let write = SessionWrite {
                id: state.id,
                gen: state.gen,
                first: state.first,
                next,
                // The first batch replaces the copy whole; the others go on from it.
                rooms: (index == 0).then_some(state.rooms),
                data: data.as_deref().filter(|_| index == 0),
                unseen: state.unseen,
                frames,
            };
            pending.push(self.write_session(ttl, &write).ok_or(HandOff::Failed)?);
        }
        Ok(pending)
    }

    /// What became of a final write queued by [`Cluster::queue_final`], once Redis answered every batch.
    pub(crate) async fn final_stored(pending: Vec<PendingWrite>) -> HandOff {
        for reply in pending {
            match reply.0.await.map(WriteOutcome::from_reply) {
                Ok(WriteOutcome::Stored) => {}
                Ok(WriteOutcome::OwnedElsewhere) => return HandOff::NotOwned,
                _ => return HandOff::Failed,
            }
        }
        HandOff::Stored
    }

    /// The sessions node `node` owned.
    pub(crate) async fn sessions_of(&self, node: &str) -> Vec<String> {
        let Some(mut conn) = self.link.commands() else {
            return Vec::new();
        };
        sessions::owned_by(&mut conn, &self.config, node)
            .await
            .unwrap_or_default()
    }

    /// Whether both connections to Redis are up.
    pub(crate) fn connected(&self) -> bool {
        self.link.state() == LinkState::Connected
    }

    /// Times the link came back after a loss (a restarted Redis may have lost everything written).
    pub(crate) fn reconnects(&self) -> u64 {
        self.link.counters.reconnects.load(Ordering::Relaxed)
    }

    /// How often changed sessions are written to Redis.
    pub(crate) fn session_flush(&self) -> Duration {
        self.config.session_flush.max(Duration::from_millis(1))
    }

    /// Has the changed sessions written now rather than at the next round: a resume or refresh moved a
    /// session to its next token generation, and until Redis knows, another node would take the used token.
    pub(crate) fn write_sessions_now(&self) {
        self.sessions_changed.notify_one();
    }

    /// Resolves when [`Cluster::write_sessions_now`] was called (since the last time it resolved).
    pub(crate) async fn sessions_changed(&self) {
        self.sessions_changed.notified().await;
    }

    /// Whether node `node` is in the list of live nodes.
    pub(crate) fn is_live(&self, node: &str) -> bool {
        self.nodes.reading().iter().any(|live| live == node)
    }

    /// Live nodes, this one included once it has beaten.
    pub(crate) fn nodes(&self) -> Vec<String> {
        self.nodes.reading().clone()
    }

    /// The cluster part of `stats()`.
    pub(crate) fn snapshot(&self) -> ClusterSnapshot {
        let counters = &self.link.counters;
        ClusterSnapshot {
            state: self.link.state().as_str(),
            node_id: self.node_id.clone(),
            nodes: self.nodes().len(),
            queued: self.link.queued(),
            sent: counters.sent.load(Ordering::Relaxed),
            received: counters.received.load(Ordering::Relaxed),
            dropped: counters.dropped.load(Ordering::Relaxed),
            reconnects: counters.reconnects.load(Ordering::Relaxed),
        }
    }
}

/// The data of a delivered emit's answer.
fn delivered() -> &'static RawValue {
    // Parsing a literal `true` cannot fail; `null` keeps the type should it ever.
    serde_json::from_str("true").unwrap_or(RawValue::NULL)
}
