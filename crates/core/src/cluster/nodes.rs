//! Which nodes are alive: each node refreshes a key that expires after three heartbeats and lists
//! itself in a set; every heartbeat reads the set back, keeps the nodes whose key still exists and
//! forgets the others. The node that removes a dead one from the set takes its sessions over and removes
//! its entries from the connection directory.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::RedisResult;
use tokio::sync::watch;

use super::config::ClusterConfig;
use super::link::stopped;
use super::Cluster;
use crate::sync::ReadWrite;

fn alive_key(config: &ClusterConfig, node: &str) -> String {
    config.key(&format!("alive:{node}"))
}

fn nodes_key(config: &ClusterConfig) -> String {
    config.key("nodes")
}

/// One heartbeat of `node`: marks it alive for the node ttl and returns the live nodes and the ones that
/// just died (their keys expired).
pub(crate) async fn beat(
    conn: &mut MultiplexedConnection,
    config: &ClusterConfig,
    node: &str,
) -> RedisResult<(Vec<String>, Vec<String>)> {
    let ttl = u64::try_from(config.node_ttl().as_millis()).unwrap_or(u64::MAX);
    let (listed,): (Vec<String>,) = redis::pipe()
        .cmd("SET")
        .arg(alive_key(config, node))
        .arg(1)
        .arg("PX")
        .arg(ttl)
        .ignore()
        .cmd("SADD")
        .arg(nodes_key(config))
        .arg(node)
        .ignore()
        .cmd("SMEMBERS")
        .arg(nodes_key(config))
        .query_async(conn)
        .await?;
    let keys: Vec<String> = listed
        .iter()
        .map(|other| alive_key(config, other))
        .collect();
    let alive: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query_async(conn).await?;
    let (mut live, mut dead) = (Vec::new(), Vec::new());
    for (other, alive) in listed.into_iter().zip(alive) {
        if alive.is_some() {
            live.push(other);
        } else {
            dead.push(other);
        }
    }
    live.sort();
    Ok((live, dead))
}

/// Removes `node` from the set (it died, or it is leaving); true for the one caller that removed it.
pub(crate) async fn forget(
    conn: &mut MultiplexedConnection,
    config: &ClusterConfig,
    node: &str,
) -> RedisResult<bool> {
    let removed: i64 = redis::cmd("SREM")
        .arg(nodes_key(config))
        .arg(node)
        .query_async(conn)
        .await?;
    Ok(removed == 1)
}

/// The commands of a node leaving on purpose, so the others stop counting it at once.
pub(crate) fn leave(config: &ClusterConfig, node: &str) -> [redis::Cmd; 2] {
    let mut del = redis::cmd("DEL");
    del.arg(alive_key(config, node));
    let mut srem = redis::cmd("SREM");
    srem.arg(nodes_key(config)).arg(node);
    [del, srem]
}

/// How long a node waits between heartbeats, never less than 50 ms.
pub(crate) fn interval(config: &ClusterConfig) -> Duration {
    config.heartbeat.max(Duration::from_millis(50))
}

/// How long the subscription connection may be quiet before it is pinged, and how long a ping (of either
/// connection) may wait for its answer: silent past that, a connection is taken for lost. Three
/// heartbeats (at least 150 ms), the time after which other nodes take a silent node for dead: a Redis
/// that cannot answer a ping that fast would have this node taken for dead anyway, and an idle
/// subscription is pinged no more than once per node ttl.
pub(crate) fn quiet_limit(config: &ClusterConfig) -> Duration {
    interval(config) * 3
}

/// Beats every heartbeat interval until `shutdown`, keeping the list of live nodes current.
pub(super) async fn heartbeat(cluster: Arc<Cluster>, mut shutdown: watch::Receiver<bool>) {
    let mut ticks = tokio::time::interval(interval(&cluster.config));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reconnects = 0;
    // Since when this node's heartbeats have succeeded without a break. Others are taken for dead only
    // once it has beaten for a whole node ttl: after Redis was away (restarted with its data, out of
    // memory, read-only), every node's key has expired, and the first node back must give the others the
    // time to beat again rather than take them all for dead.
    let mut beating_since: Option<tokio::time::Instant> = None;
    // Set when the link came back: once a beat has gone through, the directory is put right again.
    let mut register_again = false;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            // Beats at once when the link is up again, rather than at the next tick.
            _ = cluster.link.came_up() => {}
            _ = stopped(&mut shutdown) => return,
        }
        let Some(mut conn) = cluster.link.commands() else {
            continue;
        };
        let now = cluster.link.counters.reconnects.load(Ordering::Relaxed);
        if now != reconnects {
            reconnects = now;
            beating_since = None;
            register_again = true;
        }
        // A beat later than a node ttl comes too late to keep this node alive; waiting longer on a
        // connection that went silent would only delay the beat on the new one.
        let beaten = tokio::time::timeout(
            quiet_limit(&cluster.config),
            beat(&mut conn, &cluster.config, &cluster.node_id),
        );
        match beaten.await {
            Ok(Ok((live, dead))) => {
                // After the beat, not before: a node that took this one for dead meanwhile stops
                // removing its entries once it beats again (see `directory::reap`), so the entries
                // written now stay.
                if std::mem::take(&mut register_again) {
                    cluster.register_again();
                } else {
                    cluster.catch_up_directory();
                }
                let since = *beating_since.get_or_insert_with(tokio::time::Instant::now);
                let dead = if since.elapsed() >= cluster.config.node_ttl() {
                    dead
                } else {
                    Vec::new()
                };
                for node in dead {
                    if let Ok(true) = forget(&mut conn, &cluster.config, &node).await {
                        tracing::warn!(%node, "cluster: a node stopped beating and is taken for dead");
                        if let Some((local, _)) = cluster.local() {
                            local.adopt(&node);
                        }
                        cluster.reap(node);
                    }
                }
                *cluster.nodes.writing() = live;
            }
            Ok(Err(error)) => {
                beating_since = None;
                tracing::debug!(%error, "cluster: heartbeat failed");
            }
            Err(_) => {
                beating_since = None;
                tracing::debug!("cluster: heartbeat unanswered");
            }
        }
    }
}
