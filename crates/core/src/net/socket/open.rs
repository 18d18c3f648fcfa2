//! A connection's way in: TLS, admission, the handshake's answer, attaching it to the server.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::{timeout_at, Instant};
use tokio_rustls::TlsAcceptor;

use crate::app::call;
use crate::net::admission::{self, Admitted};
use crate::net::attach::{self, Attached};
use crate::net::frame::Reader;
use crate::net::outbox::Outbox;
use crate::net::transport::{Tcp, Tls, Transport};
use crate::net::wire::{Sent, Wire};
use crate::server::Shared;

use super::burst::Burst;
use super::{Opened, Socket};

/// TLS, admission, the handshake's answer and attaching the connection; `None` when any of them failed.
pub(super) async fn open(
    shared: Arc<Shared>,
    calls: mpsc::Sender<String>,
    shutdown: watch::Receiver<bool>,
    stream: TcpStream,
    remote: SocketAddr,
    tls: Option<TlsAcceptor>,
) -> Option<Opened> {
    let _ = stream.set_nodelay(true);
    // One deadline for TLS, admission and handshake together: a client that trickles bytes gets no more.
    let deadline = Instant::now() + shared.config.handshake_timeout;
    let mut wire = None;
    let transport = match tls {
        None => {
            let plain = Arc::new(Wire::new(stream));
            wire = Some(plain.clone());
            Transport::Plain(plain)
        }
        Some(acceptor) => match timeout_at(deadline, acceptor.accept(Tcp(stream))).await {
            Ok(Ok(stream)) => Transport::Tls(Box::new(Tls::new(stream))),
            Ok(Err(error)) => {
                tracing::debug!(%remote, %error, "TLS handshake failed");
                return None;
            }
            Err(_) => {
                tracing::debug!(%remote, "TLS handshake timed out");
                return None;
            }
        },
    };
    let admitted = match timeout_at(
        deadline,
        admission::admit(&shared, &calls, transport, remote),
    )
    .await
    {
        Ok(Some(admitted)) => admitted,
        Ok(None) => return None,
        Err(_) => {
            tracing::debug!(%remote, "admission timed out");
            return None;
        }
    };
    let Admitted {
        stream: mut transport,
        url,
        answer,
        early,
        data,
        slot,
    } = admitted;
    // Over plain TCP the answer is held in the wire until the connection is attached, so that it leaves
    // in one write with the frames attaching sends (a session's `created`, a resume's replay). Not in a
    // cluster, where attaching may wait for another node: the client has its answer at once there.
    let hold = shared.cluster.is_none();
    let answered = match &wire {
        Some(wire) => wire
            .write(answer.as_bytes(), &[], hold, usize::MAX)
            .map(drop),
        None => {
            let answered = async {
                transport.write_all(answer.as_bytes()).await?;
                transport.flush().await
            };
            timeout_at(deadline, answered)
                .await
                .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
        }
    };
    if let Err(error) = answered {
        tracing::debug!(%remote, %error, "handshake failed");
        return None;
    }
    let mut socket = Socket {
        transport,
        reader: Reader::new(shared.config.max_message_size, &early),
        // Beyond 4 GiB unsent per connection there is no practical difference.
        limit: u32::try_from(shared.config.outbound_limit()).unwrap_or(u32::MAX),
        stranded: false,
    };
    let outbox = Arc::new(Outbox::new(
        shared.config.outbound_limit(),
        wire.clone(),
        shared.stats.clone(),
    ));
    let address = remote.to_string();
    let attached = attach::attach(
        &shared,
        &url,
        &address,
        data.as_deref(),
        outbox.clone(),
        &calls,
    );
    let (conn, told) = match attached.await {
        Attached::New(conn) => {
            // Told now, or else with the first call about the connection.
            let told = if shared.reports_opens() {
                conn.introduce()
            } else {
                None
            };
            (conn, told.unwrap_or_default())
        }
        Attached::Restored(conn, told) => (conn, told),
        Attached::Resumed(conn, resumed) => {
            let told = conn.told(call::recovered(conn.key, resumed.replayed, resumed.gap));
            (conn, told)
        }
    };
    // What the socket did not take is the loop's to write.
    socket.stranded = wire.as_ref().is_some_and(|wire| {
        let sent = wire.release();
        wire.trim();
        sent == Sent::Stranded
    });
    Some(Opened {
        shared,
        calls,
        shutdown,
        conn,
        outbox,
        wire,
        socket,
        burst: Burst(told),
        _slot: slot,
    })
}
