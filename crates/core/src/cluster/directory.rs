//! Where each connection lives: a Redis hash from connection id to node id, and the one script that
//! routes a message to a connection's node in a single step, so routed messages keep their order with
//! everything else the node publishes.

use redis::Cmd;

use super::config::ClusterConfig;

/// Publishes ARGV[3] on the channel of the node that holds connection ARGV[1]; returns -1 when no node
/// holds it, otherwise how many subscribers got it (0: the node is gone).
const ROUTE: &str = r"local node = redis.call('HGET', KEYS[1], ARGV[1])
if not node then return -1 end
return redis.call('PUBLISH', ARGV[2] .. node, ARGV[3])";

/// Forgets connection ARGV[1] only if node ARGV[2] still holds it (a session may have moved on).
const FORGET: &str = r"if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
return redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0";

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

/// Records that `node` holds connection `conn`.
pub(crate) fn hold(config: &ClusterConfig, conn: &str, node: &str) -> Cmd {
    let mut cmd = redis::cmd("HSET");
    cmd.arg(conns_key(config)).arg(conn).arg(node);
    cmd
}

/// Forgets that `node` holds `conn`, unless another node took it over.
pub(crate) fn release(config: &ClusterConfig, conn: &str, node: &str) -> Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(FORGET)
        .arg(1)
        .arg(conns_key(config))
        .arg(conn)
        .arg(node);
    cmd
}

/// Sends `envelope` to the node holding `conn`.
pub(crate) fn route(config: &ClusterConfig, conn: &str, envelope: &str) -> Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(ROUTE)
        .arg(1)
        .arg(conns_key(config))
        .arg(conn)
        .arg(config.node_channel(""))
        .arg(envelope);
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_addresses_the_node_channel_prefix() {
        let config = ClusterConfig::new("redis://127.0.0.1");
        let packed =
            String::from_utf8_lossy(&route(&config, "c1", "[]").get_packed_command()).into_owned();
        assert!(packed.contains("helios:conns") && packed.contains("helios:node:"));
        assert_eq!(Routed::from_reply(-1), Routed::Unknown);
        assert_eq!(Routed::from_reply(0), Routed::Unknown);
        assert_eq!(Routed::from_reply(2), Routed::Delivered);
    }
}
