//! `NativeServer`, the JavaScript mirror of `helios_core::Server`.

use std::net::ToSocketAddrs;
use std::sync::Arc;

use std::time::Duration;

use helios_core::cluster::ClusterConfig;
use helios_core::session::SessionConfig;
use helios_core::{Config, HealthCheck, ParseMode, RateLimit, Server, TlsIdentity};
use napi::bindgen_prelude::{within_runtime_if_available, PromiseRaw};
use napi::threadsafe_function::ThreadsafeFunction;
use napi::{Env, Result, Status};
use napi_derive::napi;

use crate::app::JsApp;
use crate::error::to_js;

/// Health-check settings, in milliseconds.
#[napi(object)]
pub struct NativeHealthCheck {
    /// Time between pings.
    pub interval: u32,
    /// How long a pong may take.
    pub timeout: u32,
    /// Unanswered pings in a row after which the connection is closed.
    pub max_missed: u32,
}

/// A TLS certificate chain and key, PEM text.
#[napi(object)]
pub struct NativeTls {
    /// The certificate chain, leaf first.
    pub cert: String,
    /// The private key.
    pub key: String,
}

/// Session recovery settings.
#[napi(object)]
pub struct NativeSessions {
    /// The token secret (at least 32 bytes).
    pub secret: String,
    /// Milliseconds a session waits for its client.
    pub ttl: u32,
    /// Most messages kept for replay.
    pub buffer_messages: u32,
    /// Most bytes kept for replay.
    pub buffer_bytes: u32,
}

/// Cluster settings.
#[napi(object)]
pub struct NativeCluster {
    /// The Redis URL.
    pub redis: String,
    /// Prefix of every channel and key.
    pub channel_prefix: String,
    /// Most commands waiting for Redis.
    pub queue_limit: u32,
    /// Milliseconds between heartbeats.
    pub heartbeat: u32,
    /// Milliseconds between writes of changed sessions.
    pub session_flush: u32,
}

/// A per-connection message rate.
#[napi(object)]
pub struct NativeRateLimit {
    /// Sustained messages per second.
    pub messages_per_second: u32,
    /// Messages allowed at once above the rate.
    pub burst: u32,
    /// Refused messages in a row after which the connection is closed.
    pub close_after: u32,
}

/// Settings the JavaScript face has already validated.
#[napi(object)]
pub struct NativeOptions {
    /// `strict` or `permissive`.
    pub parse_mode: String,
    /// Largest client message, in bytes.
    pub max_message_size: Option<u32>,
    /// Most bytes queued for one connection.
    pub max_backpressure: Option<u32>,
    /// Pings from the server; none when absent.
    pub health_check: Option<NativeHealthCheck>,
    /// Origins allowed to connect; any when absent.
    pub allowed_origins: Option<Vec<String>>,
    /// Most connections at once.
    pub max_connections: Option<u32>,
    /// Path answered with the stats to plain HTTP requests.
    pub health_path: Option<String>,
    /// Whether the JavaScript upgrade hook decides each upgrade.
    pub upgrade_hook: bool,
    /// Messages each connection may send.
    pub rate_limit: Option<NativeRateLimit>,
    /// Milliseconds of silence after which a connection is closed.
    pub idle_timeout: Option<u32>,
    /// Session recovery.
    pub sessions: Option<NativeSessions>,
    /// Echo every message, skipping the protocol (conformance testing).
    pub echo: Option<bool>,
    /// Most rooms one connection may be in.
    pub max_subscriptions: Option<u32>,
    /// Most server requests waiting for one connection's answers.
    pub max_pending_requests: Option<u32>,
    /// Milliseconds a client has to complete its upgrade (TLS included).
    pub handshake_timeout: Option<u32>,
    /// Several nodes as one system through Redis.
    pub cluster: Option<NativeCluster>,
}

/// What `broadcast` did.
#[napi(object)]
pub struct BroadcastResult {
    /// Deliveries selected: one per recipient and room.
    pub targets: u32,
    /// Frames queued.
    pub sent: u32,
}

/// The native server. The JavaScript `Helios` class owns one and keeps it referenced while serving.
#[napi]
pub struct NativeServer {
    server: Arc<Server>,
}

#[napi]
impl NativeServer {
    /// A server that is not serving yet.
    #[napi(constructor)]
    pub fn new(options: NativeOptions) -> Result<Self> {
        let parse_mode = match options.parse_mode.as_str() {
            "strict" => ParseMode::Strict,
            "permissive" => ParseMode::Permissive,
            other => return Err(to_js(format!("unknown parse mode '{other}'"))),
        };
        let cluster = options
            .cluster
            .map(|cluster| {
                let config = ClusterConfig {
                    url: cluster.redis,
                    channel_prefix: cluster.channel_prefix,
                    queue_limit: cluster.queue_limit as usize,
                    heartbeat: Duration::from_millis(u64::from(cluster.heartbeat)),
                    session_flush: Duration::from_millis(u64::from(cluster.session_flush)),
                };
                config.check().map(|()| config).map_err(to_js)
            })
            .transpose()?;
        let defaults = Config::default();
        let config = Config {
            parse_mode,
            max_message_size: options
                .max_message_size
                .map_or(defaults.max_message_size, |size| size as usize),
            max_backpressure: options
                .max_backpressure
                .map_or(defaults.max_backpressure, |size| size as usize),
            health_check: options.health_check.map(|health| HealthCheck {
                interval: Duration::from_millis(u64::from(health.interval)),
                timeout: Duration::from_millis(u64::from(health.timeout)),
                max_missed: health.max_missed,
            }),
            allowed_origins: options.allowed_origins,
            max_connections: options.max_connections.map(|max| max as usize),
            health_path: options.health_path,
            upgrade_hook: options.upgrade_hook,
            echo: options.echo.unwrap_or(false),
            max_subscriptions: options
                .max_subscriptions
                .map_or(defaults.max_subscriptions, |max| max as usize),
            max_pending_requests: options
                .max_pending_requests
                .map_or(defaults.max_pending_requests, |max| max as usize),
            handshake_timeout: options
                .handshake_timeout
                .map_or(defaults.handshake_timeout, |ms| {
                    Duration::from_millis(u64::from(ms))
                }),
            sessions: options.sessions.map(|sessions| SessionConfig {
                secret: sessions.secret.into_bytes(),
                ttl: Duration::from_millis(u64::from(sessions.ttl)),
                buffer_messages: sessions.buffer_messages as usize,
                buffer_bytes: sessions.buffer_bytes as usize,
            }),
            rate_limit: options.rate_limit.map(|limit| RateLimit {
                per_second: limit.messages_per_second,
                burst: limit.burst,
                close_after: limit.close_after,
            }),
            idle_timeout: options
                .idle_timeout
                .map(|ms| Duration::from_millis(u64::from(ms))),
            cluster,
            ..defaults
        };
        Ok(NativeServer {
            server: Arc::new(Server::new(config)),
        })
    }

    /// Registers the method handler `handler` under `pattern`.
    #[napi]
    pub fn add_method(&self, pattern: String, handler: u32) -> Result<()> {
        self.server
            .router_mut()
            .add_method(&pattern, handler)
            .map_err(to_js)
    }

    /// Registers middleware `handler` for the methods matching `pattern`.
    #[napi]
    pub fn add_middleware(&self, pattern: String, handler: u32) -> Result<()> {
        self.server
            .router_mut()
            .add_middleware(&pattern, handler)
            .map_err(to_js)
    }

    /// Registers event handler `handler` for the topics matching `pattern`.
    #[napi]
    pub fn add_event_handler(&self, pattern: String, handler: u32) -> Result<()> {
        self.server
            .router_mut()
            .add_event_handler(&pattern, handler)
            .map_err(to_js)
    }

    /// Removes an event handler; returns whether it was registered.
    #[napi]
    pub fn remove_event_handler(&self, handler: u32) -> bool {
        self.server.router_mut().remove_event_handler(handler)
    }

    /// Declares a public room: an exact name anyone may join.
    #[napi]
    pub fn declare_public_room(&self, name: String) -> Result<()> {
        self.server.rooms().declare_public(&name).map_err(to_js)
    }

    /// Declares a protected room: topics matching `pattern` are joined when validator `handler` allows it.
    #[napi]
    pub fn declare_protected_room(&self, pattern: String, handler: u32) -> Result<()> {
        self.server
            .rooms()
            .declare_protected(&pattern, handler)
            .map_err(to_js)
    }

    /// Sends the event `data` (JSON text) to the room `target`, or to every room matching the pattern
    /// `target`; the connection with key `exclude` gets nothing; `volatile` frames are dropped rather
    /// than close a slow connection.
    #[napi]
    pub fn broadcast(
        &self,
        target: String,
        data: String,
        exclude: Option<i64>,
        volatile: bool,
    ) -> Result<BroadcastResult> {
        let exclude = exclude.and_then(|key| u64::try_from(key).ok());
        let result = self
            .server
            .broadcast(&target, &data, exclude, volatile)
            .map_err(to_js)?;
        Ok(BroadcastResult {
            targets: u32::try_from(result.targets).unwrap_or(u32::MAX),
            sent: u32::try_from(result.sent).unwrap_or(u32::MAX),
        })
    }

    /// The keys of the connections in the room `topic`.
    #[napi]
    pub fn room_members(&self, topic: String) -> Vec<i64> {
        let members = self.server.rooms().members(&topic);
        members
            .into_iter()
            .filter_map(|key| i64::try_from(key).ok())
            .collect()
    }

    /// This node's id in its cluster, or null.
    #[napi]
    pub fn node_id(&self) -> Option<String> {
        self.server.node_id().map(str::to_owned)
    }

    /// The live nodes of the cluster (empty without one).
    #[napi]
    pub fn cluster_nodes(&self) -> Vec<String> {
        self.server.cluster_nodes()
    }

    /// Rooms with at least one member.
    #[napi]
    pub fn room_count(&self) -> u32 {
        u32::try_from(self.server.rooms().room_count()).unwrap_or(u32::MAX)
    }

    /// Binds `hostname:port` (port 0 picks a free one), starts serving (over TLS when `tls` is given) and
    /// returns the bound port. `on_batch` receives every batch of calls as JSON text.
    #[napi(catch_unwind)]
    pub fn listen(
        &self,
        hostname: String,
        port: u32,
        tls: Option<NativeTls>,
        on_batch: ThreadsafeFunction<String, (), String, Status, false>,
    ) -> Result<u32> {
        let port = u16::try_from(port).map_err(|_| to_js(format!("invalid port {port}")))?;
        let cannot =
            |error: std::io::Error| to_js(format!("cannot listen on {hostname}:{port}: {error}"));
        let addr = (hostname.as_str(), port)
            .to_socket_addrs()
            .map_err(cannot)?
            .next()
            .ok_or_else(|| to_js(format!("cannot listen on {hostname}:{port}: no address")))?;
        let listener = helios_core::bind(addr).map_err(cannot)?;
        let app = JsApp { on_batch };
        let tls = tls.map(|tls| TlsIdentity {
            cert_pem: tls.cert,
            key_pem: tls.key,
        });
        let address =
            within_runtime_if_available(|| self.server.start(listener, tls.as_ref(), app))
                .map_err(to_js)?;
        Ok(u32::from(address.port()))
    }

    /// Carries out a flush of operations (see the core's `app::op`).
    #[napi(catch_unwind)]
    pub fn apply(&self, ops: String) -> Result<()> {
        self.server.apply(&ops).map_err(to_js)
    }

    /// The calls that queued while JavaScript ran a batch, as one more batch (JSON array text), or null.
    #[napi]
    pub fn take_calls(&self) -> Option<String> {
        self.server.take_calls()
    }

    /// Starts a turn: frames sent until `endTurn` are held and then written together, one write per
    /// connection. Called around each batch.
    #[napi]
    pub fn begin_turn(&self) {
        self.server.begin_turn();
    }

    /// Ends the turn `beginTurn` started; an I/O thread writes what it held.
    #[napi]
    pub fn end_turn(&self) {
        self.server.end_turn();
    }

    /// Whether every health-check pong is reported (call 9, `pong`).
    #[napi]
    pub fn report_pongs(&self, report: bool) {
        self.server.report_pongs(report);
    }

    /// Whether every connection is reported as it opens (call 0), or only with the first call about it.
    #[napi]
    pub fn report_opens(&self, report: bool) {
        self.server.report_opens(report);
    }

    /// The open calls of the live connections not reported yet, as a JSON array; they are reported now.
    #[napi]
    pub fn introduce_all(&self) -> String {
        self.server.introduce_all()
    }

    /// The server's counters, as JSON text.
    #[napi]
    pub fn stats(&self) -> String {
        serde_json::to_string(&self.server.stats()).unwrap_or_default()
    }

    /// Live connections.
    #[napi]
    pub fn connection_count(&self) -> u32 {
        u32::try_from(self.server.connection_count()).unwrap_or(u32::MAX)
    }

    /// Starts a graceful stop: frees the port, sends every client `server:shutdown` with `notice` (JSON
    /// text) and refuses new requests.
    #[napi]
    pub fn drain(&self, notice: String) -> Result<()> {
        self.server.drain(&notice).map_err(to_js)
    }

    /// Stops serving; resolves once every connection is closed and reported, and the port is free.
    #[napi]
    pub fn stop<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, ()>> {
        let server = self.server.clone();
        env.spawn_future(async move {
            server.stop().await;
            Ok(())
        })
    }
}
