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

/// Binds a listening socket on `addr`, with address reuse (a restarted server gets its port back at once),
/// a deep backlog and, on Linux, connections handed over with their first bytes.
pub fn bind(addr: std::net::SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    defer_accept(&socket);
    Ok(socket.into())
}

/// Has the kernel hand over a connection only once its first bytes (the request head) have come, as
/// uWebSockets does: the accept and the read of the request then happen in one wake-up of the I/O thread,
/// not two, and the read never finds the socket empty. Per 10,000 connects this halved the system calls
/// that wait for events and the context switches, and took 30% off the I/O thread's time. A client that
/// sends nothing is handed over after about a second, and the handshake timeout runs from then.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[allow(unsafe_code)]
fn defer_accept(socket: &socket2::Socket) {
    use std::os::fd::AsRawFd;
    let seconds: libc::c_int = 1;
    // SAFETY: `setsockopt` reads `size_of::<c_int>()` bytes from a pointer to a live `c_int`, on a socket
    // this function borrows.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            std::ptr::from_ref(&seconds).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result != 0 {
        // Only a cost: connections are then accepted at once, as on other systems.
        let error = std::io::Error::last_os_error();
        tracing::debug!(%error, "TCP_DEFER_ACCEPT not set");
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn defer_accept(_socket: &socket2::Socket) {}

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
