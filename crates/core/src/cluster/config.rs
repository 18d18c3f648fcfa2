//! Cluster settings: where Redis is, how channels and keys are named, and the bounds that keep a node
//! serving when Redis is away.

use std::time::Duration;

/// How a server joins a cluster of Helios nodes through Redis.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// The Redis URL (`redis://host:port/db`).
    pub url: String,
    /// Prefix of every channel and key, so several clusters can share one Redis.
    pub channel_prefix: String,
    /// Most commands waiting for Redis; more are refused (and counted) while Redis is slow or away.
    pub queue_limit: usize,
    /// Time between heartbeats; a node that misses three is taken for dead.
    pub heartbeat: Duration,
    /// How often changed sessions are written to Redis: the most a node's death can take from a
    /// session's copy, against one write per changed session per interval.
    pub session_flush: Duration,
}

impl ClusterConfig {
    /// Settings with the defaults for everything but the URL.
    pub fn new(url: impl Into<String>) -> Self {
        ClusterConfig {
            url: url.into(),
            channel_prefix: "helios".to_owned(),
            queue_limit: 10_000,
            heartbeat: Duration::from_secs(1),
            session_flush: Duration::from_millis(50),
        }
    }

    /// Checks the URL, so a mistake is reported when the server is created rather than logged later.
    pub fn check(&self) -> Result<(), super::ClusterError> {
        redis::Client::open(self.url.as_str())?;
        Ok(())
    }

    /// The channel every node listens to (broadcasts, room queries).
    pub(crate) fn all_channel(&self) -> String {
        format!("{}:all", self.channel_prefix)
    }

    /// The channel of one node (directed messages: emits, requests, answers).
    pub(crate) fn node_channel(&self, node: &str) -> String {
        format!("{}:node:{node}", self.channel_prefix)
    }

    /// A key under the prefix.
    pub(crate) fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.channel_prefix)
    }

    /// How long a node stays alive without a heartbeat.
    pub(crate) fn node_ttl(&self) -> Duration {
        self.heartbeat * 3
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_live_under_the_prefix() {
        let mut config = ClusterConfig::new("redis://127.0.0.1:6379");
        config.channel_prefix = "app".to_owned();
        assert_eq!(config.all_channel(), "app:all");
        assert_eq!(config.node_channel("n1"), "app:node:n1");
        assert_eq!(config.key("conns"), "app:conns");
    }
}
