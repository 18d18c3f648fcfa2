//! The byte stream under every client: TCP, or TLS (rustls) over TCP for `wss://` URLs, trusting the
//! certificate `--ca` names.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

/// How `wss://` connections are made: set once by [`trust`].
static TLS: OnceLock<TlsConnector> = OnceLock::new();

/// Trusts the PEM certificates in the file at `path` for `wss://` URLs.
pub fn trust(path: &str) -> Result<(), String> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| format!("--ca {path}: {e}"))? {
        let cert = cert.map_err(|e| format!("--ca {path}: {e}"))?;
        roots.add(cert).map_err(|e| format!("--ca {path}: {e}"))?;
    }
    // AES-128-GCM offered first, as browsers offer it (rustls's own client order starts with AES-256): a
    // rustls server follows the client's order, where BoringSSL (Bun.serve) picks AES-128 itself.
    let mut provider = tokio_rustls::rustls::crypto::ring::default_provider();
    provider.cipher_suites.sort_by_key(|suite| {
        suite.suite() != tokio_rustls::rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
    });
    let provider = Arc::new(provider);
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    TLS.set(TlsConnector::from(Arc::new(config)))
        .map_err(|_| "--ca given twice".to_string())
}

/// A connection's stream.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    /// `tcp`, connected to `addr` (`host:port`), as is or, for a `wss://` `url`, after a TLS handshake.
    pub async fn open(tcp: TcpStream, addr: &str, url: &str) -> Result<Stream, String> {
        if !url.starts_with("wss://") {
            return Ok(Stream::Plain(tcp));
        }
        let connector = TLS.get().ok_or("wss:// URLs need --ca")?;
        let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| format!("server name {host}: {e}"))?;
        let tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS {addr}: {e}"))?;
        Ok(Stream::Tls(Box::new(tls)))
    }

    /// The TCP socket underneath.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(tls) => tls.get_ref().0,
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}
