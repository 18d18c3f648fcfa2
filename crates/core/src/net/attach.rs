//! Puts a new socket on a connection — a new one, or a session the client resumes — and takes it off
//! again when the socket ends: the session then waits for its client, or the connection ends for good.

use std::sync::Arc;

use serde_json::value::RawValue;
use tokio::sync::watch;

use crate::app::call;
use crate::protocol::{session_frame, SessionEvent};
use crate::server::Shared;
use crate::session::{Claims, Replay};

use super::connection::{Detach, Refusal, Resumed};
use super::outbox::Outbox;
use super::restore::Unrestored;
use super::Connection;

/// A client that closes normally is done with its session.
const NORMAL_CLOSE: u16 = 1000;

/// The connection a socket serves.
pub(crate) enum Attached {
    /// A new connection (with a new session when sessions are on).
    New(Arc<Connection>),
    /// A session resumed: the replayed frames and the `recovered` message are queued already.
    Resumed(Arc<Connection>, Resumed),
    /// A session of another node resumed here (cluster), with the calls that tell the application.
    Restored(Arc<Connection>, String),
}

/// What the resume query parameters say.
struct ResumeQuery<'a> {
    token: &'a str,
    last_seq: u64,
}

fn resume_query(url: &str) -> Option<ResumeQuery<'_>> {
    let query = url.split_once('?')?.1;
    let mut token = None;
    let mut last_seq = 0;
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("session_token", value)) if !value.is_empty() => token = Some(value),
            Some(("last_seq", value)) => last_seq = value.parse().unwrap_or(0),
            _ => {}
        }
    }
    Some(ResumeQuery {
        token: token?,
        last_seq,
    })
}

/// Attaches a socket from `remote` that connected with `url` and writes to `outbox`; `data` is what the
/// upgrade hook gave a new connection.
pub(crate) async fn attach(
    shared: &Arc<Shared>,
    url: &str,
    remote: &str,
    data: Option<&RawValue>,
    outbox: Arc<Outbox>,
    calls: &tokio::sync::mpsc::Sender<String>,
) -> Attached {
    if let (Some(sessions), Some(query)) = (&shared.config.sessions, resume_query(url)) {
        let ttl_ms = sessions.ttl.as_millis() as u64;
        let mut attempt = resume(shared, &query, outbox.clone(), ttl_ms);
        if let (Err(Missing::Here(claims)), Some(_)) = (&attempt, &shared.cluster) {
            // In a cluster, a session this node does not hold may be in Redis.
            let client = super::restore::Returning {
                sid: &claims.sid,
                gen: claims.gen,
                last_seq: query.last_seq,
                url,
                remote,
            };
            let restored = super::restore::resume(shared, client, outbox.clone(), calls).await;
            match restored {
                Ok((conn, told)) => return Attached::Restored(conn, told),
                Err(Unrestored::Refused(reason)) => attempt = Err(Missing::Refused(reason)),
                Err(Unrestored::HeldHere) => {
                    attempt = resume(shared, &query, outbox.clone(), ttl_ms);
                }
            }
        }
        match attempt {
            Ok((conn, resumed)) => return Attached::Resumed(conn, resumed),
            Err(missing) => {
                let reason = missing.reason();
                tracing::debug!(%reason, "resume refused");
                outbox.push(
                    &session_frame(SessionEvent::RecoveryFailed { reason: &reason }).into(),
                    false,
                );
            }
        }
    }
    let key = shared.next_key();
    let replay = shared
        .config
        .sessions
        .as_ref()
        .map(|sessions| Replay::new(sessions.buffer_messages, sessions.buffer_bytes));
    let id = uuid::Uuid::new_v4().to_string();
    let conn = Arc::new(Connection::new(
        key,
        id.clone(),
        call::origin(url, remote, data),
        outbox,
        calls.clone(),
        shared.stats.clone(),
        replay,
    ));
    if let (Some(sessions), Some(tokens)) = (&shared.config.sessions, &shared.tokens) {
        let token = tokens.issue(&id, 0, sessions.ttl);
        conn.send_control(session_frame(SessionEvent::Created {
            session_id: &id,
            token: &token,
            ttl_ms: sessions.ttl.as_millis() as u64,
        }));
        shared.sessions.insert(id, key);
    }
    shared.connections.insert(key, conn.clone());
    shared.hold(&conn);
    Attached::New(conn)
}

/// Why a resume did not happen here.
enum Missing {
    /// The token is good but this node does not hold its session.
    Here(Claims),
    /// Refused, for the reason the client is told.
    Refused(String),
}

impl Missing {
    fn reason(self) -> String {
        match self {
            Missing::Here(_) => "unknown session".to_owned(),
            Missing::Refused(reason) => reason,
        }
    }
}

fn resume(
    shared: &Shared,
    query: &ResumeQuery<'_>,
    outbox: Arc<Outbox>,
    ttl_ms: u64,
) -> Result<(Arc<Connection>, Resumed), Missing> {
    let (Some(tokens), Some(sessions)) = (&shared.tokens, &shared.config.sessions) else {
        return Err(Missing::Refused("sessions are off".to_owned()));
    };
    let claims = tokens
        .verify(query.token)
        .map_err(|error| Missing::Refused(error.to_string()))?;
    let found = shared.sessions.get(&claims.sid).and_then(|key| {
        shared
            .connections
            .get(key.value())
            .map(|conn| conn.value().clone())
    });
    let expired = claims.expired();
    let Some(conn) = found else {
        // Another node may hold it, with a socket: a takeover, for which an expired token is not good.
        if expired {
            return Err(Missing::Refused(Refusal::Expired.to_string()));
        }
        return Err(Missing::Here(claims));
    };
    let resumed = conn
        .resume(claims.gen, expired, query.last_seq, outbox, |resumed| {
            let token = tokens.issue(&conn.id, resumed.gen, sessions.ttl);
            session_frame(SessionEvent::Recovered {
                session_id: &conn.id,
                token: &token,
                ttl_ms,
                replayed: resumed.replayed,
                gap: resumed.gap,
                seq: resumed.seq,
            })
        })
        .map_err(|refusal| Missing::Refused(refusal.to_string()))?;
    if let Some(cluster) = &shared.cluster {
        cluster.write_sessions_now();
    }
    tracing::debug!(conn = %conn.id, replayed = resumed.replayed, gap = resumed.gap, "session resumed");
    Ok((conn, resumed))
}

/// Takes the ended socket behind `outbox` off `conn`. A session then waits up to its ttl for the client,
/// unless the server is stopping or the client said goodbye (a normal close, 1000); otherwise the
/// connection ends for good.
pub(crate) async fn detach(
    shared: &Arc<Shared>,
    conn: &Arc<Connection>,
    outbox: &Arc<Outbox>,
    code: u16,
    reason: &str,
    shutdown: &watch::Receiver<bool>,
) {
    shared.stats.closed(code);
    let keep_session = !*shutdown.borrow() && code != NORMAL_CLOSE;
    match conn.detach(outbox, keep_session) {
        Detach::Replaced => {}
        Detach::Suspended(suspension) => {
            conn.tell(call::close(conn.key, code, reason, false)).await;
            let ttl = shared
                .config
                .sessions
                .as_ref()
                .map(|sessions| sessions.ttl)
                .unwrap_or_default();
            let (shared, conn, mut shutdown) = (shared.clone(), conn.clone(), shutdown.clone());
            tokio::spawn(async move {
                tokio::select! {
                    _ = tokio::time::sleep(ttl) => {}
                    _ = super::stopped(&mut shutdown) => {}
                }
                if conn.expire(suspension) {
                    tracing::debug!(conn = %conn.id, "session expired");
                    end(&shared, &conn, 1001, "Session expired").await;
                }
            });
        }
        Detach::Closed => end(shared, conn, code, reason).await,
    }
}

/// Ends a connection for good: out of the registry and every room, its pending requests dropped. The
/// application hears of the close if it heard of the connection.
pub(crate) async fn end(shared: &Shared, conn: &Connection, code: u16, reason: &str) {
    conn.close_pending();
    shared.connections.remove(&conn.key);
    let had_session = shared.sessions.remove(&*conn.id).is_some();
    shared.release(conn, had_session, code);
    // Every room at once; the application clears its view of them when it hears of the close.
    shared.rooms.close(conn.key);
    tracing::debug!(conn = %conn.id, code, "connection closed");
    if conn.introduction.end() {
        conn.tell(call::close(conn.key, code, reason, true)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_resume_query() {
        let query = resume_query("/?a=1&session_token=x.y.z&last_seq=42").expect("a token");
        assert_eq!((query.token, query.last_seq), ("x.y.z", 42));
        let query = resume_query("/?session_token=t&last_seq=oops").expect("a token");
        assert_eq!(query.last_seq, 0);
        assert!(resume_query("/?last_seq=3").is_none());
        assert!(resume_query("/").is_none());
    }
}
