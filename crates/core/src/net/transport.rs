//! The byte stream under a WebSocket: plain TCP, or TLS over TCP.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use super::frame;
use super::wire::{Sent, Wire};

/// A client's stream, encrypted or not.
#[derive(Debug)]
pub(crate) enum Transport {
    /// Shared with the connection's outbox, which writes frames to it directly.
    Plain(Arc<Wire>),
    // Boxed: a TLS session is large, and most servers run without one.
    Tls(Box<TlsStream<TcpStream>>),
}

impl Transport {
    /// Reads what the stream has into `buf`, waiting for it to be readable.
    pub(crate) fn poll_read_into(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self {
            Transport::Plain(wire) => wire.poll_read(cx, buf),
            Transport::Tls(stream) => {
                let mut buf = ReadBuf::new(buf);
                std::task::ready!(Pin::new(stream.as_mut()).poll_read(cx, &mut buf))?;
                Poll::Ready(Ok(buf.filled().len()))
            }
        }
    }

    /// Sends one final frame. Over plain TCP it is written at once, or waits in the wire's backlog, which
    /// refuses it past `limit` bytes; over TLS it waits in the session until a flush. True when bytes were
    /// left in the wire's backlog: the caller must see that it is drained.
    pub(crate) async fn send(
        &mut self,
        opcode: u8,
        payload: &[u8],
        limit: usize,
    ) -> io::Result<bool> {
        let (header, used) = frame::header(opcode, payload.len());
        match self {
            Transport::Plain(wire) => match wire.write(&header[..used], payload, false, limit)? {
                Sent::Over(_) => Err(io::Error::other("outbound limit passed")),
                sent => Ok(sent == Sent::Stranded),
            },
            Transport::Tls(stream) => {
                // One write, so the frame goes out as one TLS record rather than its header in a record alone.
                let mut frame = Vec::with_capacity(used + payload.len());
                frame.extend_from_slice(&header[..used]);
                frame.extend_from_slice(payload);
                stream.write_all(&frame).await.map(|()| false)
            }
        }
    }
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let read = std::task::ready!(self.get_mut().poll_read_into(cx, buf.initialize_unfilled()))?;
        buf.advance(read);
        Poll::Ready(Ok(()))
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
            // writes out. Only admission writes this way (its HTTP answers), so no limit.
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
