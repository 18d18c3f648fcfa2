//! The accept loop: takes new TCP connections until shutdown and gives each its socket task.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;

use crate::server::Shared;

use super::socket;

/// Connections the kernel may hold before they are accepted: a burst of connects larger than the usual
/// 128 would otherwise wait on SYN retransmissions, seconds each.
const BACKLOG: i32 = 1024;

/// Binds a listening socket on `addr`, with address reuse (a restarted server gets its port back at once)
/// and a deep backlog.
pub fn bind(addr: std::net::SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// Longest pause after failing accepts (for instance when out of file descriptors).
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// Accepts connections until `closed` turns true (the server drains or stops); dropping the listener
/// then frees the port. Each socket task gets `shutdown`, which turns true when the server stops.
pub(crate) async fn accept(
    shared: Arc<Shared>,
    listener: TcpListener,
    calls: mpsc::Sender<String>,
    mut closed: watch::Receiver<bool>,
    shutdown: watch::Receiver<bool>,
    tls: Option<TlsAcceptor>,
) {
    let mut backoff = Duration::from_millis(5);
    loop {
        tokio::select! {
            _ = super::stopped(&mut closed) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, remote)) => {
                    backoff = Duration::from_millis(5);
                    tokio::spawn(socket::serve(shared.clone(), calls.clone(), shutdown.clone(), stream, remote, tls.clone()));
                }
                Err(error) => {
                    tracing::warn!(%error, ?backoff, "accept failed, backing off");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
                }
            },
        }
    }
}
