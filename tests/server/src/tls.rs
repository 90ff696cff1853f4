//! HTTPS for the tests: the recording [`Receiver`] behind a `rustls` handshake (via
//! `tokio-rustls`), and [`TlsReceiver`], the small API the TLS tests use on it.
//!
//! Every request is answered `200` with `{"ok":true}` unless the test scripts otherwise
//! through [`TlsReceiver::receiver`]. A client that rejects the certificate is counted as a
//! connection but never as a request. Guarantees as for [`Receiver`]: `127.0.0.1` only, and
//! nothing outlives a drop.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::receiver::Receiver;

/// A running HTTPS receiver on `127.0.0.1`; stops when dropped.
#[derive(Debug)]
pub struct TlsReceiver {
    receiver: Receiver,
}

impl TlsReceiver {
    /// Binds `127.0.0.1:0` and serves HTTPS with this certificate chain and private key (PEM).
    ///
    /// # Panics
    /// If the PEM is not a certificate chain and a matching private key, or no loopback port
    /// can be bound (a broken test).
    pub fn start(cert_pem: &str, key_pem: &str) -> TlsReceiver {
        TlsReceiver { receiver: Receiver::start_tls(cert_pem, key_pem) }
    }

    /// The socket address the receiver listens on.
    pub fn addr(&self) -> SocketAddr {
        self.receiver.addr()
    }

    /// `https://127.0.0.1:PORT/hook`.
    pub fn url(&self) -> String {
        self.receiver.url()
    }

    /// How many requests were answered.
    pub fn count(&self) -> usize {
        self.receiver.count()
    }

    /// How many TCP connections were accepted (handshakes that failed included).
    pub fn connections(&self) -> usize {
        self.receiver.connections()
    }

    /// The recording receiver underneath: its requests, behaviors and scripts.
    pub fn receiver(&self) -> &Receiver {
        &self.receiver
    }
}

/// A TLS acceptor (TLS 1.3, `ring`) for this certificate chain and private key (PEM).
///
/// # Panics
/// If the PEM is not a certificate chain and a matching private key.
pub(crate) fn acceptor(cert_pem: &str, key_pem: &str) -> TlsAcceptor {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(cert_pem.as_bytes()).collect::<Result<_, _>>().expect("certificate PEM");
    assert!(!certs.is_empty(), "the certificate PEM holds no certificate");
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("private key PEM");
    let config = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("TLS protocol versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("certificate and key match");
    TlsAcceptor::from(Arc::new(config))
}
