//! TLS: turns a PEM certificate chain and key into an acceptor, so the listener can serve wss://.

use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// A certificate chain and its private key, both PEM.
#[derive(Debug, Clone)]
pub struct TlsIdentity {
    /// The certificate chain, leaf first.
    pub cert_pem: String,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key_pem: String,
}

/// Why a TLS identity cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate PEM holds no certificate, or one that does not parse.
    #[error("invalid TLS certificate: {0}")]
    Certificate(String),
    /// The key PEM holds no key, or one that does not parse.
    #[error("invalid TLS key: {0}")]
    Key(String),
    /// rustls refused the pair (for instance, a key that does not match the certificate).
    #[error("unusable TLS certificate and key: {0}")]
    Config(#[from] tokio_rustls::rustls::Error),
}

impl TlsIdentity {
    /// The acceptor for this identity; HTTP/1.1 only, as WebSocket upgrades need.
    pub fn acceptor(&self) -> Result<TlsAcceptor, TlsError> {
        let certs = CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| TlsError::Certificate(error.to_string()))?;
        if certs.is_empty() {
            return Err(TlsError::Certificate(
                "no certificate in the PEM".to_owned(),
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes())
            .map_err(|error| TlsError::Key(error.to_string()))?;
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_is_not_a_certificate_or_key() {
        let empty = TlsIdentity {
            cert_pem: String::new(),
            key_pem: String::new(),
        };
        assert!(matches!(empty.acceptor(), Err(TlsError::Certificate(_))));
    }
}
