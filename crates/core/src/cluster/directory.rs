//! Where each connection lives, and the one script that routes a message to a connection's node in a
//! single step, so routed messages keep their order with everything else the node publishes.
//!
//! Keys, under the prefix:
//!
//! | key                 | type | holds                                                             |
//! |---------------------|------|-------------------------------------------------------------------|
//! | `conns`             | hash | connection id → the node holding it (what routing reads)          |
//! | `conns:<node>`      | set  | the ids node `node` registered: an index of its entries in `conns` |
//!
//! Opening and closing a connection cost one script each, O(1): the entry and its index member are
//! written or removed together. The index is what lets a node's entries be cleaned without reading the
//! whole directory: a node back after an outage removes those of its connections that closed meanwhile
//! ([`prune`], a cursor over its own set), and whoever takes a dead node for dead removes all of its
//! entries ([`reap`], in batches). An entry is only removed while it still names the node in question: a
//! session that resumed on another node belongs to that node now. Routing also treats an entry naming a
//! node that is no longer in the live set (`nodes`) as unknown, so a dead node's connections are unknown
//! at once, before (or without) the cleanup.

use redis::aio::MultiplexedConnection;
use redis::{Cmd, RedisResult};

use super::config::ClusterConfig;

/// Ids handled per round trip when a node's entries are cleaned: a batch keeps Redis busy for a bounded
/// time, and the task doing it yields between batches.
pub(crate) const BATCH: usize = 500;

/// KEYS: directory, the node's index. ARGV: connection, node. Records that the node holds the connection.
const HOLD: &str = r"redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return redis.call('SADD', KEYS[2], ARGV[1])";

/// KEYS: directory, the node's index. ARGV: node, then connection ids. Forgets each connection, in the
/// directory only while it still names the node (a session may have moved on), in the index always.
const FORGET: &str = r"for i = 2, #ARGV do
if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[1] then redis.call('HDEL', KEYS[1], ARGV[i]) end
redis.call('SREM', KEYS[2], ARGV[i])
end
return #ARGV - 1";

/// KEYS: directory, live nodes. ARGV: connection, node channel prefix, message. Publishes the message on
/// the channel of the node holding the connection; -1 when no live node holds it, otherwise how many
/// subscribers got it (0: the node's subscription is gone).
const ROUTE: &str = r"local node = redis.call('HGET', KEYS[1], ARGV[1])
if not node or redis.call('SISMEMBER', KEYS[2], node) == 0 then return -1 end
return redis.call('PUBLISH', ARGV[2] .. node, ARGV[3])";

/// KEYS: directory, the dead node's index, live nodes, the dead node's liveness key. ARGV: node, count.
/// Takes up to `count` ids out of the index and removes their entries that still name the node; -1 when
/// the node is alive again (it beat since it was taken for dead: its entries are its own again).
const REAP: &str = r"if redis.call('SISMEMBER', KEYS[3], ARGV[1]) == 1 or redis.call('EXISTS', KEYS[4]) == 1 then return -1 end
local ids = redis.call('SPOP', KEYS[2], ARGV[2])
for _, id in ipairs(ids) do
if redis.call('HGET', KEYS[1], id) == ARGV[1] then redis.call('HDEL', KEYS[1], id) end
end
return #ids";

/// What became of a routed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Routed {
    /// The node holding the connection got it.
    Delivered,
    /// No live node holds the connection.
    Unknown,
}

impl Routed {
    /// Reads the route script's reply.
    pub(crate) fn from_reply(reply: i64) -> Routed {
        if reply > 0 {
            Routed::Delivered
        } else {
            Routed::Unknown
        }
    }
}

pub(super) fn conns_key(config: &ClusterConfig) -> String {
    config.key("conns")
}

pub(super) fn index_key(config: &ClusterConfig, node: &str) -> String {
    config.key(&format!("conns:{node}"))
}

/// Records that `node` holds connection `conn`.
pub(crate) fn hold(config: &ClusterConfig, conn: &str, node: &str) -> Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(HOLD)
        .arg(2)
        .arg(conns_key(config))
        .arg(index_key(config, node))
        .arg(conn)
        .arg(node);
    cmd
}

/// Forgets that `node` holds each of `conns`, unless another node took one over.
pub(crate) fn release<'a>(
    config: &ClusterConfig,
    node: &str,
    conns: impl IntoIterator<Item = &'a str>,
) -> Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(FORGET)
        .arg(2)
        .arg(conns_key(config))
        .arg(index_key(config, node))
        .arg(node);
    for conn in conns {
        cmd.arg(conn);
    }
    cmd
}

/// Sends `envelope` to the live node holding `conn`.
pub(crate) fn route(config: &ClusterConfig, conn: &str, envelope: &str) -> Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(ROUTE)
        .arg(2)
        .arg(conns_key(config))
        .arg(config.key("nodes"))
        .arg(conn)
        .arg(config.node_channel(""))
        .arg(envelope);
    cmd
}

/// One batch of the cleanup of dead node `node`: removes up to `count` of its entries.
pub(crate) fn reap_batch(config: &ClusterConfig, node: &str, count: usize) -> Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(REAP)
        .arg(4)
        .arg(conns_key(config))
        .arg(index_key(config, node))
        .arg(config.key("nodes"))
        .arg(config.key(&format!("alive:{node}")))
        .arg(node)
        .arg(count);
    cmd
}

/// Removes every entry of dead node `node`, a batch per round trip; stops early if the node comes back.
/// Returns how many ids were taken out of its index.
pub(crate) async fn reap(
    conn: &mut MultiplexedConnection,
    config: &ClusterConfig,
    node: &str,
) -> RedisResult<usize> {
    let mut total = 0;
    loop {
        let taken: i64 = reap_batch(config, node, BATCH).query_async(conn).await?;
        let Ok(taken) = usize::try_from(taken) else {
            // The node is alive again.
            return Ok(total);
        };
        total += taken;
        if taken < BATCH {
            return Ok(total);
        }
    }
}

/// Removes the entries of `node` whose connection `held` says it no longer holds: connections that closed
/// while their release could not reach Redis. Reads the node's index with a cursor, a batch per round
/// trip. `rehold` is called with the ids removed and re-registers those that are held by now (a session
/// resumed here while the batch was on its way). Returns how many entries were removed.
pub(crate) async fn prune(
    conn: &mut MultiplexedConnection,
    config: &ClusterConfig,
    node: &str,
    held: impl Fn(&str) -> bool,
    rehold: impl Fn(&[String]),
) -> RedisResult<usize> {
    let index = index_key(config, node);
    let mut cursor: u64 = 0;
    let mut removed = 0;
    loop {
        let (next, ids): (u64, Vec<String>) = redis::cmd("SSCAN")
            .arg(&index)
            .arg(cursor)
            .arg("COUNT")
            .arg(BATCH)
            .query_async(conn)
            .await?;
        let gone: Vec<String> = ids.into_iter().filter(|id| !held(id)).collect();
        if !gone.is_empty() {
            let _: i64 = release(config, node, gone.iter().map(String::as_str))
                .query_async(conn)
                .await?;
            removed += gone.len();
            rehold(&gone);
        }
        if next == 0 {
            return Ok(removed);
        }
        cursor = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packed(cmd: &Cmd) -> String {
        String::from_utf8_lossy(&cmd.get_packed_command()).into_owned()
    }

    #[test]
    fn routing_addresses_the_node_channel_prefix_and_checks_the_live_nodes() {
        let config = ClusterConfig::new("redis://127.0.0.1");
        let route = packed(&route(&config, "c1", "[]"));
        assert!(route.contains("helios:conns") && route.contains("helios:node:"));
        assert!(route.contains("helios:nodes"));
        assert_eq!(Routed::from_reply(-1), Routed::Unknown);
        assert_eq!(Routed::from_reply(0), Routed::Unknown);
        assert_eq!(Routed::from_reply(2), Routed::Delivered);
    }

    #[test]
    fn a_node_indexes_its_entries_under_its_own_key() {
        let config = ClusterConfig::new("redis://127.0.0.1");
        assert!(packed(&hold(&config, "c1", "n1")).contains("helios:conns:n1"));
        let release = packed(&release(&config, "n1", ["c1", "c2"]));
        assert!(release.contains("helios:conns:n1") && release.ends_with("c1\r\n$2\r\nc2\r\n"));
        let reap = packed(&reap_batch(&config, "n2", 10));
        assert!(reap.contains("helios:conns:n2") && reap.contains("helios:alive:n2"));
    }
}
