//! Sessions brought over from another node through the cluster: resumed here by a client whose node
//! died (or whose load balancer sent it elsewhere), or adopted, still waiting for their clients, from a
//! node found dead, so that what is sent to them meanwhile is kept for their return. A resume of a
//! session whose owner is alive first has the owner hand it over (see `cluster::handoff`), so the copy
//! it reads has every message the owner counted.

use std::sync::Arc;

use serde_json::value::RawValue;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::app::call::{self, Restored};
use crate::cluster::{Cluster, HandOff, StoredSession};
use crate::protocol::{session_frame, SessionEvent};
use crate::server::Shared;
use crate::session::Replay;

use super::outbox::Outbox;
use super::Connection;

/// How a stored session comes to this node.
#[derive(Debug, Clone, Copy)]
enum Arrival {
    /// Its client resumes it here, having processed this many frames.
    Resumed(u64),
    /// It is taken over from a node taken for dead, with no client.
    Adopted,
}

/// The replay buffer of a stored session arriving as `arrival` says.
fn replay_of(shared: &Shared, stored: &mut StoredSession, arrival: Arrival) -> Option<Replay> {
    let sessions = shared.config.sessions.as_ref()?;
    let frames = std::mem::take(&mut stored.frames)
        .into_iter()
        .map(Utf8Bytes::from)
        .collect();
    let copy = Replay::copied(
        sessions.buffer_messages,
        sessions.buffer_bytes,
        stored.first,
        frames,
        stored.unseen,
    );
    Some(match arrival {
        Arrival::Resumed(processed) => copy.resumed_at(processed),
        Arrival::Adopted => copy.adopted(),
    })
}

/// Registers a connection for the stored session `id`, in its rooms; the caller then claims it, and
/// makes it reachable by id once it owns it.
/// `arrival` says whether its client is here; `gen` is the token generation the session is at. Returns
/// the connection and the calls that tell the application about it (it opened, with its data, and
/// joined its rooms), `state` saying how it opened; `None` when this node holds the session already
/// (another resume with the same token, racing this one, was first).
fn install(
    shared: &Arc<Shared>,
    id: &str,
    mut stored: StoredSession,
    gen: u64,
    arrival: Arrival,
    calls: &mpsc::Sender<String>,
    opened: impl FnOnce(u64, Option<&RawValue>) -> String,
) -> Option<(Arc<Connection>, String)> {
    let replay = replay_of(shared, &mut stored, arrival)?;
    let key = shared.next_key();
    // Taken first, atomically: of two resumes racing with one token, the second finds it taken.
    match shared.sessions.entry(id.to_owned()) {
        dashmap::mapref::entry::Entry::Occupied(_) => return None,
        dashmap::mapref::entry::Entry::Vacant(entry) => {
            entry.insert(key);
        }
    }
    let conn = Arc::new(Connection::restored(
        key,
        id.to_owned(),
        calls.clone(),
        shared.stats.clone(),
        replay,
        gen,
    ));
    shared.connections.insert(key, conn.clone());
    let data = stored
        .data
        .as_deref()
        .and_then(|data| serde_json::from_str::<&RawValue>(data).ok());
    let mut told = opened(key, data);
    for topic in &stored.rooms {
        // Just made: it has not ended.
        shared.rooms.join(key, topic, || false);
        told.push(',');
        told.push_str(&call::room(key, topic, true));
    }
    Some((conn, told))
}

/// Takes back what [`install`] registered, for a session another node claimed first; the application
/// never heard of it.
fn uninstall(shared: &Shared, conn: &Connection) {
    shared.connections.remove(&conn.key);
    shared
        .sessions
        .remove_if(&*conn.id, |_, key| *key == conn.key);
    shared.rooms.close(conn.key);
}

/// A client coming back with a token for a session this node does not hold.
pub(crate) struct Returning<'a> {
    /// The session id the token names.
    pub(crate) sid: &'a str,
    /// The token's generation.
    pub(crate) gen: u64,
    /// How many frames the client has processed.
    pub(crate) last_seq: u64,
    /// The URL and address of the new socket.
    pub(crate) url: &'a str,
    pub(crate) remote: &'a str,
}

/// Why a session was not restored from the cluster.
pub(crate) enum Unrestored {
    /// Refused, for the reason the client is told.
    Refused(String),
    /// This node holds the session now (it took it over from its dead owner while the resume waited
    /// for a hand-over): the client resumes it as a session of this node.
    HeldHere,
}

impl From<String> for Unrestored {
    fn from(reason: String) -> Self {
        Unrestored::Refused(reason)
    }
}

/// Resumes, on this node, a session this node does not hold: read from Redis, checked against the
/// token's generation, its frames after the client's count replayed. Returns the connection and the
/// calls that tell the application (opened, rooms, recovered); the error says what the client is told.
pub(crate) async fn resume(
    shared: &Arc<Shared>,
    client: Returning<'_>,
    outbox: Arc<Outbox>,
    calls: &mpsc::Sender<String>,
) -> Result<(Arc<Connection>, String), Unrestored> {
    let Returning {
        sid,
        gen: token_gen,
        last_seq,
        url,
        remote,
    } = client;
    let (Some(cluster), Some(tokens), Some(sessions)) =
        (&shared.cluster, &shared.tokens, &shared.config.sessions)
    else {
        return Err("unknown session".to_owned().into());
    };
    let (stored, handed_over) = load_handed_over(cluster, sid, token_gen).await?;
    let opened = |key: u64, data: Option<&RawValue>| {
        call::restored(key, sid, url, remote, data, Restored::Resumed)
    };
    let owner = stored.node.clone();
    // Installed meanwhile by another resume with this token, which used it.
    let arrival = Arrival::Resumed(last_seq);
    let Some((conn, mut told)) = install(shared, sid, stored, token_gen, arrival, calls, opened)
    else {
        // Reachable by id only once claimed: a session taken over here, or resumed here and so with a
        // used token, which the resume of a session of this node refuses.
        if shared.ids.contains_key(sid) {
            return Err(Unrestored::HeldHere);
        }
        return Err("token already used".to_owned().into());
    };
    // Recorded with the generation after this resume, so the token just used is refused everywhere; the
    // client is here, so this node wins over a takeover in progress elsewhere. Claimed before the
    // replay: when Redis cannot record it (it refuses writes), the owner's writes were likely refused
    // too, so the copy may miss messages, and the resume says so (`gap`), as when a live owner did not
    // hand the session over. The owner is then told to drop its copy all the same, so the session does
    // not live on two nodes.
    let lagging = !cluster.claim_session(None, sid, token_gen + 1).await || !handed_over;
    if lagging && owner != cluster.node_id {
        cluster.drop_session_on(&owner, sid);
    }
    let ttl_ms = u64::try_from(sessions.ttl.as_millis()).unwrap_or(u64::MAX);
    let resumed = conn
        // The token was found unexpired before the session was looked for here.
        .resume(token_gen, false, last_seq, outbox, |resumed| {
            let token = tokens.issue(sid, resumed.gen, sessions.ttl);
            session_frame(SessionEvent::Recovered {
                session_id: sid,
                token: &token,
                ttl_ms,
                replayed: resumed.replayed,
                gap: resumed.gap || lagging,
                seq: resumed.seq,
            })
        })
        .map_err(|refusal| Unrestored::Refused(refusal.to_string()))?;
    shared.hold(&conn);
    let gap = resumed.gap || lagging;
    tracing::debug!(conn = %sid, replayed = resumed.replayed, gap, "session restored from the cluster");
    told.push(',');
    told.push_str(&call::recovered(conn.key, resumed.replayed, gap));
    Ok((conn, told))
}

/// Reads session `sid` from Redis for a resume here with a token of generation `token_gen`. When another
/// node owns it and is alive, that node is first asked to hand it over (stop serving it and write its
/// latest state), and the copy is read once it answered: the copy then has every frame the owner
/// counted. Also returns whether the copy is known to be complete: false when a live owner did not
/// answer in time or could not write. A used token is refused before and after.
async fn load_handed_over(
    cluster: &Cluster,
    sid: &str,
    token_gen: u64,
) -> Result<(StoredSession, bool), String> {
    let stored = load(cluster, sid, token_gen).await?;
    if stored.node == cluster.node_id || !cluster.is_live(&stored.node) {
        // A dead owner's copy is all there is: what it had not written is the documented loss.
        return Ok((stored, true));
    }
    let owner = stored.node;
    let outcome = cluster.hand_over(&owner, sid, token_gen).await;
    if outcome == HandOff::TokenUsed {
        return Err("token already used".to_owned());
    }
    if !outcome.complete() {
        tracing::warn!(session = %sid, %owner, outcome = outcome.as_str(), "cluster: the session's owner did not hand it over; resuming from the copy");
    }
    // Read again: with the final write (or whatever part of it Redis stored), or as another resume left it.
    let stored = load(cluster, sid, token_gen).await?;
    Ok((stored, outcome.complete()))
}

/// Reads session `sid` from Redis for a client with a token of generation `token_gen`; the error is what
/// the client is told.
async fn load(cluster: &Cluster, sid: &str, token_gen: u64) -> Result<StoredSession, String> {
    let stored = cluster
        .load_session(sid)
        .await
        .map_err(|error| {
            tracing::warn!(%error, "cluster: cannot read a session from Redis");
            "unknown session".to_owned()
        })?
        .ok_or_else(|| "unknown session".to_owned())?;
    // Generations are written behind: the token may be ahead of the copy, never behind it.
    if token_gen < stored.gen {
        return Err("token already used".to_owned());
    }
    Ok(stored)
}

/// Takes over the sessions of the dead node `node`: each waits here, suspended, for its client until the
/// session ttl passes (or the server stops), keeping what is sent to it.
pub(crate) async fn adopt(
    shared: Arc<Shared>,
    node: String,
    calls: mpsc::Sender<String>,
    shutdown: watch::Receiver<bool>,
) {
    let (Some(cluster), Some(sessions)) = (&shared.cluster, &shared.config.sessions) else {
        return;
    };
    let ids = cluster.sessions_of(&node).await;
    let mut adopted = 0;
    for id in ids {
        if shared.sessions.contains_key(&id) {
            continue;
        }
        let stored = match cluster.load_session(&id).await {
            Ok(Some(stored)) if stored.node == node => stored,
            _ => continue,
        };
        let gen = stored.gen;
        let opened = |key: u64, data: Option<&RawValue>| {
            call::restored(key, &id, "", "", data, Restored::Suspended)
        };
        let Some((conn, told)) =
            install(&shared, &id, stored, gen, Arrival::Adopted, &calls, opened)
        else {
            continue;
        };
        // Its client may have resumed on another node meanwhile: that node keeps it.
        if !cluster.claim_session(Some(&node), &id, gen).await {
            uninstall(&shared, &conn);
            continue;
        }
        shared.hold(&conn);
        adopted += 1;
        let _ = calls.send(told).await;
        let (shared, ttl, mut shutdown) = (shared.clone(), sessions.ttl, shutdown.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(ttl) => {}
                _ = super::stopped(&mut shutdown) => {}
            }
            if conn.expire(1) {
                super::end(&shared, &conn, 1001, "Session expired").await;
            }
        });
    }
    if adopted > 0 {
        tracing::warn!(%node, adopted, "cluster: took over the sessions of a dead node");
    }
}
