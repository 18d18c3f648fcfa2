//! The byte stream under a WebSocket: plain TCP, or TLS over TCP.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use super::wire::Wire;

/// A client's stream, encrypted or not.
#[derive(Debug)]
pub(crate) enum Transport {
    /// Shared with the connection's outbox, which writes frames to it directly.
    Plain(Arc<Wire>),
    // Boxed: a TLS session is large, and most servers run without one.
    Tls(Box<TlsStream<TcpStream>>),
}

impl Transport {
    /// Ready once a read may find bytes. Over TLS always: decrypted bytes can wait in the session while the
    /// socket itself has nothing.
    pub(crate) fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        match self {
            Transport::Plain(wire) => wire.poll_read_ready(cx),
            Transport::Tls(_) => Poll::Ready(()),
        }
    }
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(wire) => {
                let read = std::task::ready!(wire.poll_read(cx, buf.initialize_unfilled()))?;
                buf.advance(read);
                Poll::Ready(Ok(()))
            }
            Transport::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            // Never blocks: what the socket does not take waits in the wire's backlog, which a flush
            // writes out. tungstenite's own frames (pongs, closes) are few and small: no limit.
            Transport::Plain(wire) => {
                Poll::Ready(wire.write(buf, &[], false, usize::MAX).map(|_| buf.len()))
            }
            Transport::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(wire) => wire.poll_drain(cx),
            Transport::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(wire) => wire.poll_shutdown(cx),
            Transport::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}
