//! Sessions: signed resume tokens, the per-session replay buffer, and the rules of resuming and refreshing.
//! Pure logic over values; the network layer applies it to sockets.

mod replay;
#[cfg(test)]
mod replay_properties;
mod token;

use std::time::Duration;

pub(crate) use replay::Replay;
pub(crate) use token::{Claims, Tokens};

/// Session recovery settings.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The HMAC secret tokens are signed with; at least 32 bytes.
    pub secret: Vec<u8>,
    /// How long a session waits for its client to come back, and how long a token is valid.
    pub ttl: Duration,
    /// Most messages kept for replay.
    pub buffer_messages: usize,
    /// Most bytes kept for replay.
    pub buffer_bytes: usize,
}

/// The smallest accepted secret, in bytes (the HS256 key size).
pub const MIN_SECRET_LEN: usize = 32;
