//! The network: the listener, one task per socket, outbound queues and what happens to each frame.

mod admission;
mod attach;
mod connection;
pub(crate) mod cork;
mod frame;
#[cfg(test)]
mod frame_properties;
mod handshake;
mod health;
mod inbound;
mod introduction;
pub(crate) mod keys;
mod listener;
mod outbox;
mod rate;
mod restore;
mod socket;
mod tls;
mod transport;
mod wire;

pub(crate) use admission::Verdict;
pub(crate) use attach::end;
pub(crate) use connection::{Connection, Pending, Refusal, SessionView};
pub(crate) use listener::accept;
pub use listener::bind;
pub(crate) use outbox::{Outbox, Text};
pub(crate) use restore::adopt;
pub use tls::{TlsError, TlsIdentity};

/// Resolves once `shutdown` turns true or its sender is gone.
pub(crate) async fn stopped(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`; drop it here rather than across the caller's awaits.
    let _ = shutdown.wait_for(|stop| *stop).await;
}
