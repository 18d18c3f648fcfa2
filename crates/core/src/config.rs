//! Server settings, with the defaults a production server starts from.

use std::time::Duration;

use crate::cluster::ClusterConfig;
use crate::session::SessionConfig;

/// What the server does with frames that are not protocol messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ParseMode {
    /// Answer them with an `error` message.
    #[default]
    Strict,
    /// Hand them to the application.
    Permissive,
}

/// Settings of one server.
#[derive(Debug, Clone)]
pub struct Config {
    /// What happens to frames that are not protocol messages.
    pub parse_mode: ParseMode,
    /// Largest message a client may send, in bytes; larger ones close the connection with 1009.
    pub max_message_size: usize,
    /// Most bytes queued for one connection before it is closed with 1013, so a client that does not read
    /// cannot make the server's memory grow.
    pub max_backpressure: usize,
    /// How long a client may take to complete the WebSocket handshake.
    pub handshake_timeout: Duration,
    /// How long a closing connection waits for the client's close frame.
    pub close_timeout: Duration,
    /// Pings from the server, or `None` to send none.
    pub health_check: Option<HealthCheck>,
    /// Origins allowed to connect (exact `Origin` header values); `None` allows any.
    pub allowed_origins: Option<Vec<String>>,
    /// Most connections at once; upgrades beyond it are answered 503.
    pub max_connections: Option<usize>,
    /// A path answered with the stats as JSON to plain HTTP requests.
    pub health_path: Option<String>,
    /// Whether the application decides each upgrade (call 11, op 7).
    pub upgrade_hook: bool,
    /// Messages each connection may send, or `None` for no limit.
    pub rate_limit: Option<RateLimit>,
    /// Close connections that send nothing for this long (pongs do not count), or `None` to keep them.
    pub idle_timeout: Option<Duration>,
    /// Most rooms one connection may be in.
    pub max_subscriptions: usize,
    /// Most server-to-client requests waiting for one connection's answers.
    pub max_pending_requests: usize,
    /// Session recovery, or `None` for plain connections.
    pub sessions: Option<SessionConfig>,
    /// Send every message back as it came, skipping the protocol: for conformance testing of the
    /// WebSocket layer (Autobahn|Testsuite), never for applications.
    pub echo: bool,
    /// Several nodes as one system through Redis, or `None` for a server on its own (nothing connects).
    pub cluster: Option<ClusterConfig>,
}

/// A per-connection message rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained messages per second.
    pub per_second: u32,
    /// Messages allowed at once above the rate.
    pub burst: u32,
    /// Refused messages in a row after which the connection is closed with 1008.
    pub close_after: u32,
}

/// How the server pings connections to find the dead ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthCheck {
    /// Time between pings.
    pub interval: Duration,
    /// How long a pong may take.
    pub timeout: Duration,
    /// Unanswered pings in a row after which the connection is closed.
    pub max_missed: u32,
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
            max_missed: 2,
        }
    }
}

impl Config {
    /// Most bytes one connection may have waiting to be written: `max_backpressure`, plus, with sessions,
    /// the replay buffer's bytes. A resume queues a whole replay at once, and the control message with the
    /// session's next token comes last: were the replay held to `max_backpressure`, a client coming back
    /// to more than that would be dropped with its token spent, and its session lost with it.
    pub fn outbound_limit(&self) -> usize {
        let replay = self
            .sessions
            .as_ref()
            .map_or(0, |sessions| sessions.buffer_bytes);
        self.max_backpressure.saturating_add(replay)
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            parse_mode: ParseMode::Strict,
            max_message_size: 1024 * 1024,
            max_backpressure: 1024 * 1024,
            handshake_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(2),
            health_check: Some(HealthCheck::default()),
            allowed_origins: None,
            max_connections: None,
            health_path: None,
            upgrade_hook: false,
            rate_limit: None,
            idle_timeout: None,
            sessions: None,
            echo: false,
            cluster: None,
            max_subscriptions: 100,
            max_pending_requests: 1000,
        }
    }
}
