//! The byte stream under a WebSocket: plain TCP, or TLS over TCP.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use super::frame;
use super::wire::{self, Sent, Wire};

/// A client's stream, encrypted or not.
#[derive(Debug)]
pub(crate) enum Transport {
    /// Shared with the connection's outbox, which writes frames to it directly.
    Plain(Arc<Wire>),
    // Boxed: a TLS session is large, and most servers run without one.
    Tls(Box<Tls>),
}

/// A TLS stream and the frames sent to it since its last flush.
///
/// The frames wait here and leave together at the flush: a batch of replies becomes one TLS record (up
/// to 16 KiB of them) sealed once and written in one system call, where writing each frame to the
/// session would seal a record and make a system call per frame.
#[derive(Debug)]
pub(crate) struct Tls {
    stream: TlsStream<Tcp>,
    /// Frames not yet handed to the session; the first `handed` bytes have been.
    queued: Vec<u8>,
    handed: usize,
}

impl Tls {
    pub(crate) fn new(stream: TlsStream<Tcp>) -> Self {
        Tls {
            stream,
            queued: Vec::new(),
            handed: 0,
        }
    }

    /// Hands the queued frames to the session, which writes what the socket takes of its records.
    fn poll_hand_queued(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.handed < self.queued.len() {
            let rest = &self.queued[self.handed..];
            let taken = ready!(Pin::new(&mut self.stream).poll_write(cx, rest))?;
            if taken == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.handed += taken;
        }
        self.handed = 0;
        self.queued.clear();
        wire::kept(&mut self.queued);
        Poll::Ready(Ok(()))
    }
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
            Transport::Tls(tls) => {
                let mut buf = ReadBuf::new(buf);
                ready!(Pin::new(&mut tls.stream).poll_read(cx, &mut buf))?;
                Poll::Ready(Ok(buf.filled().len()))
            }
        }
    }

    /// Sends one final frame. Over plain TCP it is written at once, or waits in the wire's backlog, which
    /// refuses it past `limit` bytes; over TLS it waits for the next flush (see [`Tls`]). True when bytes
    /// were left in the wire's backlog: the caller must see that it is drained.
    pub(crate) fn send(&mut self, opcode: u8, payload: &[u8], limit: usize) -> io::Result<bool> {
        let (header, used) = frame::header(opcode, payload.len());
        match self {
            Transport::Plain(wire) => match wire.write(&header[..used], payload, false, limit)? {
                Sent::Over(_) => Err(io::Error::other("outbound limit passed")),
                sent => Ok(sent == Sent::Stranded),
            },
            Transport::Tls(tls) => {
                tls.queued.extend_from_slice(&header[..used]);
                tls.queued.extend_from_slice(payload);
                Ok(false)
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
        let read = ready!(self.get_mut().poll_read_into(cx, buf.initialize_unfilled()))?;
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
            Transport::Tls(tls) => {
                ready!(tls.poll_hand_queued(cx))?;
                Pin::new(&mut tls.stream).poll_write(cx, buf)
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(wire) => wire.poll_drain(cx),
            Transport::Tls(tls) => {
                ready!(tls.poll_hand_queued(cx))?;
                Pin::new(&mut tls.stream).poll_flush(cx)
            }
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(wire) => wire.poll_shutdown(cx),
            Transport::Tls(tls) => {
                ready!(tls.poll_hand_queued(cx))?;
                Pin::new(&mut tls.stream).poll_shutdown(cx)
            }
        }
    }
}

/// The TCP stream under a TLS session, written with `send`/`sendmsg` as the plain wire is (see
/// [`wire::try_send`]).
#[derive(Debug)]
pub(crate) struct Tcp(pub(crate) TcpStream);

impl AsyncRead for Tcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    /// The session's records as they are queued: most often one.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let tcp = &self.get_mut().0;
        loop {
            ready!(tcp.poll_write_ready(cx))?;
            match wire::try_send(tcp, bufs) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                sent => return Poll::Ready(sent),
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}
