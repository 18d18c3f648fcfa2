//! Sessions kept in Redis, so a client whose node died can resume on another: per session a hash (owner
//! node, token generation, numbers of the first held and the next frame, where the frames counted with no
//! client begin, rooms, data) and a list of the frames held for replay, both expiring with the session
//! ttl, and per node the set of its sessions; a session its owner ended leaves an end mark for a ttl.
//! Writes are made behind the traffic, in batches, and only by the node that owns the session: a node
//! that finds another owner (it was cut off from Redis while a survivor took the session over, or the
//! client resumed elsewhere) writes nothing and gives the session up. A write goes on from the copy as
//! Redis holds it or replaces it whole: one that would leave a hole (an earlier write was refused or
//! lost) is refused, and the node writes the session whole again. A write of a session that Redis does
//! not hold but marks as ended is refused as well: the writer held it before and was cut off while its
//! client resumed elsewhere and ended it there; without the mark it would bring the session back, and
//! with it a token already used.

use std::collections::HashMap;

use redis::aio::MultiplexedConnection;
use redis::{Cmd, RedisResult, Value};
use tokio::sync::oneshot;

use super::config::ClusterConfig;
use super::directory::{conns_key, index_key};

/// Most frames one write carries; the rest follow in the next batch.
pub(crate) const MAX_FRAMES_PER_WRITE: usize = 1000;

/// KEYS: session hash, replay list, the writer's set, the connection directory, the writer's index of its
/// directory entries, the session's end mark. ARGV: node, ttl ms, gen,
/// first, next, rooms JSON ('' when unchanged), session id, data JSON ('' when unchanged), where the
/// frames counted with no client begin ('' when none), then the frames numbered up to `next - 1`.
/// Returns 1 when written; 0 when another node owns the session (nothing written; the directory entry
/// goes back to the owner if it named the writer) or its owner ended it (the writer's entry goes); 2 when the frames do not start at `first` and the
/// copy does not end where they start (nothing written).
const WRITE: &str = r"local held = redis.call('HMGET', KEYS[1], 'node', 'first', 'next')
local owner = held[1]
if not owner and redis.call('EXISTS', KEYS[6]) == 1 then
  if redis.call('HGET', KEYS[4], ARGV[7]) == ARGV[1] then redis.call('HDEL', KEYS[4], ARGV[7]) end
  redis.call('SREM', KEYS[5], ARGV[7])
  return 0
end
if owner and owner ~= ARGV[1] then
  if redis.call('HGET', KEYS[4], ARGV[7]) == ARGV[1] then redis.call('HSET', KEYS[4], ARGV[7], owner) end
  return 0
end
local first, next = tonumber(ARGV[4]), tonumber(ARGV[5])
local start = next - (#ARGV - 9)
if start > first then
  local held_first, held_next = tonumber(held[2]), tonumber(held[3])
  if not held_first or held_next ~= start
    or redis.call('LLEN', KEYS[2]) ~= held_next - held_first then return 2 end
end
redis.call('HSET', KEYS[1], 'node', ARGV[1], 'gen', ARGV[3], 'first', ARGV[4], 'next', ARGV[5])
if ARGV[6] ~= '' then redis.call('HSET', KEYS[1], 'rooms', ARGV[6]) end
if ARGV[8] ~= '' then redis.call('HSET', KEYS[1], 'data', ARGV[8]) end
if ARGV[9] ~= '' then redis.call('HSET', KEYS[1], 'unseen', ARGV[9]) else redis.call('HDEL', KEYS[1], 'unseen') end
if #ARGV > 9 then redis.call('RPUSH', KEYS[2], unpack(ARGV, 10)) end
local keep = next - first
if keep <= 0 then redis.call('DEL', KEYS[2]) else redis.call('LTRIM', KEYS[2], -keep, -1) end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[7])
redis.call('HSET', KEYS[4], ARGV[7], ARGV[1])
redis.call('SADD', KEYS[5], ARGV[7])
return 1";

/// KEYS: session hash, replay list, owner's set, the session's end mark. ARGV: node, session id, ttl ms
/// ('' when the session moved to another node rather than ended). Only the owner forgets. The end mark,
/// kept for a session ttl, stops a node that held the session before (cut off from Redis meanwhile) from
/// writing it back.
const FORGET: &str = r"local owner = redis.call('HGET', KEYS[1], 'node')
if owner and owner ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('SREM', KEYS[3], ARGV[2])
if ARGV[3] ~= '' then redis.call('SET', KEYS[4], '1', 'PX', ARGV[3]) end
return 1";

/// KEYS: session hash, the previous owner's set, the new owner's set. ARGV: node, required owner ('' for
/// any), session id, gen, the owner read just before (the claim fails if it changed since).
const CLAIM: &str = r"local owner = redis.call('HGET', KEYS[1], 'node') or ''
if owner ~= ARGV[5] or (ARGV[2] ~= '' and owner ~= ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'node', ARGV[1], 'gen', ARGV[4])
redis.call('SREM', KEYS[2], ARGV[3])
redis.call('SADD', KEYS[3], ARGV[3])
return 1";

/// A session as Redis holds it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct StoredSession {
    /// The node that owns it.
    pub node: String,
    /// The generation the client's token must carry (at least).
    pub gen: u64,
    /// The number of the first frame in `frames`.
    pub first: u64,
    /// Where the frames counted with no client begin: the session was taken over and no client has
    /// resumed it since.
    pub unseen: Option<u64>,
    /// The rooms it is in.
    pub rooms: Vec<String>,
    /// The JSON-serializable entries of its data, as a JSON object, if any were written.
    pub data: Option<String>,
    /// The frames held for replay, in order.
    pub frames: Vec<String>,
}

/// One write of a session's state.
#[derive(Debug)]
pub(crate) struct SessionWrite<'a> {
    pub(crate) id: &'a str,
    pub(crate) gen: u64,
    pub(crate) first: u64,
    /// The number after the last frame written (this one and earlier writes).
    pub(crate) next: u64,
    /// The rooms, when they changed.
    pub(crate) rooms: Option<&'a [String]>,
    /// The data entries (a JSON object), when they changed.
    pub(crate) data: Option<&'a str>,
    /// Where the frames counted with no client begin, if they do.
    pub(crate) unseen: Option<u64>,
    /// Frames not written yet, numbered up to `next - 1`.
    pub(crate) frames: &'a [tokio_tungstenite::tungstenite::Utf8Bytes],
}

/// The whole state of a session its owner hands over to another node, as its final write carries it.
#[derive(Debug)]
pub(crate) struct FinalState<'a> {
    pub(crate) id: &'a str,
    pub(crate) gen: u64,
    /// The number of the first frame in `frames`.
    pub(crate) first: u64,
    pub(crate) rooms: &'a [String],
    /// Where the frames counted with no client begin, if they do.
    pub(crate) unseen: Option<u64>,
    /// Every frame held for replay.
    pub(crate) frames: &'a [tokio_tungstenite::tungstenite::Utf8Bytes],
}

/// What became of a session write.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum WriteOutcome {
    /// Redis holds it.
    Stored,
    /// Another node owns the session: nothing was written.
    OwnedElsewhere,
    /// The frames did not go on from the copy Redis holds: nothing was written.
    OutOfStep,
    /// Redis refused it (out of memory, read-only, ...).
    Refused,
    /// The connection failed under it: it may or may not have been carried out.
    Lost,
}

impl WriteOutcome {
    pub(super) fn from_reply(reply: RedisResult<Value>) -> Self {
        match reply {
            Ok(Value::Int(1)) => WriteOutcome::Stored,
            Ok(Value::Int(0)) => WriteOutcome::OwnedElsewhere,
            Ok(Value::Int(2)) => WriteOutcome::OutOfStep,
            Ok(Value::ServerError(_)) | Err(_) => WriteOutcome::Refused,
            Ok(_) => WriteOutcome::Lost,
        }
    }
}

/// A session write on its way to Redis.
#[derive(Debug)]
pub(crate) struct PendingWrite(pub(crate) oneshot::Receiver<RedisResult<Value>>);

impl PendingWrite {
    /// What became of the write; `None` while Redis has not answered yet.
    pub(crate) fn outcome(&mut self) -> Option<WriteOutcome> {
        match self.0.try_recv() {
            Ok(reply) => Some(WriteOutcome::from_reply(reply)),
            Err(oneshot::error::TryRecvError::Empty) => None,
            Err(oneshot::error::TryRecvError::Closed) => Some(WriteOutcome::Lost),
        }
    }
}

fn session_key(config: &ClusterConfig, id: &str) -> String {
    config.key(&format!("session:{id}"))
}

fn replay_key(config: &ClusterConfig, id: &str) -> String {
    config.key(&format!("replay:{id}"))
}

fn ended_key(config: &ClusterConfig, id: &str) -> String {
    config.key(&format!("ended:{id}"))
}

fn node_sessions_key(config: &ClusterConfig, node: &str) -> String {
    config.key(&format!("sessions:{node}"))
}

fn ttl_ms(ttl: std::time::Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// The command writing `write` for `node`.
pub(crate) fn write(
    config: &ClusterConfig,
    node: &str,
    ttl: std::time::Duration,
    write: &SessionWrite<'_>,
) -> Cmd {
    let rooms = write
        .rooms
        .map(|rooms| serde_json::to_string(rooms).unwrap_or_default())
        .unwrap_or_default();
    let unseen = write
        .unseen
        .map(|unseen| unseen.to_string())
        .unwrap_or_default();
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(WRITE)
        .arg(6)
        .arg(session_key(config, write.id))
        .arg(replay_key(config, write.id))
        .arg(node_sessions_key(config, node))
        .arg(conns_key(config))
        .arg(index_key(config, node))
        .arg(ended_key(config, write.id))
        .arg(node)
        .arg(ttl_ms(ttl))
        .arg(write.gen)
        .arg(write.first)
        .arg(write.next)
        .arg(rooms)
        .arg(write.id)
        .arg(write.data.unwrap_or_default())
        .arg(unseen);
    for frame in write.frames {
        cmd.arg(frame.as_str());
    }
    cmd
}

/// The command forgetting a session that ended on `node`.
pub(crate) fn forget(
    config: &ClusterConfig,
    node: &str,
    id: &str,
    ended: Option<std::time::Duration>,
) -> Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(FORGET)
        .arg(4)
        .arg(session_key(config, id))
        .arg(replay_key(config, id))
        .arg(node_sessions_key(config, node))
        .arg(ended_key(config, id))
        .arg(node)
        .arg(id)
        .arg(ended.map(|ttl| ttl_ms(ttl).to_string()).unwrap_or_default());
    cmd
}

/// Reads a session; `None` when Redis has no such session (never written, ended, or expired).
pub(crate) async fn load(
    conn: &mut MultiplexedConnection,
    config: &ClusterConfig,
    id: &str,
) -> RedisResult<Option<StoredSession>> {
    let (fields, frames): (HashMap<String, String>, Vec<String>) = redis::pipe()
        .cmd("HGETALL")
        .arg(session_key(config, id))
        .cmd("LRANGE")
        .arg(replay_key(config, id))
        .arg(0)
        .arg(-1)
        .query_async(conn)
        .await?;
    let Some(node) = fields.get("node") else {
        return Ok(None);
    };
    let number = |name: &str| fields.get(name).and_then(|value| value.parse().ok());
    let rooms = fields
        .get("rooms")
        .and_then(|rooms| serde_json::from_str(rooms).ok())
        .unwrap_or_default();
    Ok(Some(StoredSession {
        node: node.clone(),
        gen: number("gen").unwrap_or(0),
        first: number("first").unwrap_or(1),
        unseen: number("unseen"),
        rooms,
        data: fields.get("data").cloned(),
        frames,
    }))
}

/// Makes `node` the owner of session `id`, whose token generation is now `gen`, and returns the owner
/// it had; with `only_from`, only when that owner is `only_from` (a takeover must not win over a client
/// that resumed meanwhile).
pub(crate) async fn claim(
    conn: &mut MultiplexedConnection,
    config: &ClusterConfig,
    node: &str,
    only_from: Option<&str>,
    id: &str,
    gen: u64,
) -> RedisResult<Claimed> {
    let owner: Option<String> = redis::cmd("HGET")
        .arg(session_key(config, id))
        .arg("node")
        .query_async(conn)
        .await?;
    let owner = owner.unwrap_or_default();
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(CLAIM)
        .arg(3)
        .arg(session_key(config, id))
        .arg(node_sessions_key(config, &owner))
        .arg(node_sessions_key(config, node))
        .arg(node)
        .arg(only_from.unwrap_or(""))
        .arg(id)
        .arg(gen)
        .arg(&owner);
    let claimed: i64 = cmd.query_async(conn).await?;
    Ok(if claimed == 1 {
        Claimed::From(owner)
    } else {
        Claimed::Lost
    })
}

/// What a claim did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Claimed {
    /// This node owns the session now; it had this owner before (empty when none).
    From(String),
    /// Another node owns it (the owner changed since it was read, or is not the one required).
    Lost,
}

/// The sessions node `node` owned (to adopt them once it is dead).
pub(crate) async fn owned_by(
    conn: &mut MultiplexedConnection,
    config: &ClusterConfig,
    node: &str,
) -> RedisResult<Vec<String>> {
    redis::cmd("SMEMBERS")
        .arg(node_sessions_key(config, node))
        .query_async(conn)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_carries_the_frames_after_its_fields() {
        let config = ClusterConfig::new("redis://127.0.0.1");
        let frames = [tokio_tungstenite::tungstenite::Utf8Bytes::from("{\"a\":1}")];
        let cmd = write(
            &config,
            "n1",
            std::time::Duration::from_secs(5),
            &SessionWrite {
                id: "s1",
                gen: 2,
                first: 3,
                next: 4,
                rooms: None,
                data: Some("{\"user\":\"ada\"}"),
                unseen: Some(3),
                frames: &frames,
            },
        );
        let packed = String::from_utf8_lossy(&cmd.get_packed_command()).into_owned();
        assert!(packed.contains("helios:session:s1") && packed.contains("helios:sessions:n1"));
        assert!(packed.contains("helios:conns"));
        assert!(packed.contains("\r\ns1\r\n$14\r\n{\"user\":\"ada\"}\r\n$1\r\n3\r\n"));
        assert!(packed.ends_with("{\"a\":1}\r\n"));
    }

    #[test]
    fn write_replies_read_as_outcomes() {
        let outcome = |reply| WriteOutcome::from_reply(Ok(reply));
        assert_eq!(outcome(Value::Int(1)), WriteOutcome::Stored);
        assert_eq!(outcome(Value::Int(0)), WriteOutcome::OwnedElsewhere);
        assert_eq!(outcome(Value::Int(2)), WriteOutcome::OutOfStep);
        assert_eq!(outcome(Value::Nil), WriteOutcome::Lost);
        let refused = redis::RedisError::from((redis::ErrorKind::Extension, "OOM"));
        assert_eq!(
            WriteOutcome::from_reply(Err(refused)),
            WriteOutcome::Refused
        );
    }
}
