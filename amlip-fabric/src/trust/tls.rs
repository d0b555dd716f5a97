//! The direct path's mutual TLS: both sides present their identity certificate, check the
//! other's against the domain's identity CA (rustls and webpki, TLS 1.3 only), and, once the
//! handshake is done, its common name against the node they expect (the hello names it).
//! [`Link`] is a connection, plain or TLS, so the code over it is one. Sample streams use the
//! same, checking membership only (their ends are known by stream, not by node name).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::rustls::server::danger::ClientCertVerifier;
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{
    self, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig,
};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::{common_name, Trust, TrustError};

/// A node's TLS sides, made once from its [`Trust`].
#[derive(Clone)]
pub struct Tls {
    connector: TlsConnector,
    acceptor: TlsAcceptor,
}

impl Tls {
    /// Client and server configurations presenting `trust`'s certificate and accepting only
    /// certificates of its domain's identity CA.
    pub fn new(trust: &Trust) -> Result<Self, TrustError> {
        let t = &trust.inner;
        let setup = |e: &dyn std::fmt::Display| TrustError::Setup(format!("TLS: {e}"));
        // AES-128-GCM first: the cheapest suite on CPUs with AES instructions (10 MB payloads).
        let mut provider = rustls::crypto::ring::default_provider();
        provider
            .cipher_suites
            .sort_by_key(|s| s.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
        let provider = Arc::new(provider);
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from(t.ca.to_der().map_err(|e| setup(&e))?))
            .map_err(|e| setup(&e))?;
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| setup(&e))?;
        let chain = vec![CertificateDer::from(
            t.cert.to_der().map_err(|e| setup(&e))?,
        )];
        let key = || -> Result<PrivateKeyDer<'static>, TrustError> {
            let der = t.key.private_key_to_pkcs8().map_err(|e| setup(&e))?;
            Ok(PrivateKeyDer::Pkcs8(der.into()))
        };
        let mut server = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| setup(&e))?
            .with_client_cert_verifier(verifier.clone())
            .with_single_cert(chain.clone(), key()?)
            .map_err(|e| setup(&e))?;
        // No session tickets: an idle connection then has nothing to read, which is how the
        // path tells it is still open.
        server.send_tls13_tickets = 0;
        let client = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| setup(&e))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(DomainServerVerifier(verifier)))
            .with_client_auth_cert(chain, key()?)
            .map_err(|e| setup(&e))?;
        Ok(Self {
            connector: TlsConnector::from(Arc::new(client)),
            acceptor: TlsAcceptor::from(Arc::new(server)),
        })
    }

    /// The client side of a handshake with a member of the domain, named `expect` if given.
    pub async fn connect(&self, tcp: TcpStream, expect: Option<&str>) -> Result<Link, String> {
        // The name is checked after the handshake (node names need not be DNS names).
        let name = ServerName::try_from("amlip-node").expect("a valid DNS name");
        let s = self
            .connector
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake: {e}"))?;
        let got = peer_name(s.get_ref().1.peer_certificates());
        if let Some(expect) = expect.filter(|e| got.as_deref() != Some(*e)) {
            return Err(format!(
                "its certificate is {}'s, not {expect}'s",
                got.as_deref().unwrap_or("nobody")
            ));
        }
        Ok(Link::Client(Box::new(s)))
    }

    /// The server side of a handshake; the peer's certificate name with the connection.
    pub async fn accept(&self, tcp: TcpStream) -> Result<(Link, String), String> {
        let s = self.acceptor.accept(tcp).await.map_err(|e| e.to_string())?;
        let name = peer_name(s.get_ref().1.peer_certificates())
            .ok_or_else(|| "its certificate has no common name".to_string())?;
        Ok((Link::Server(Box::new(s)), name))
    }
}

fn peer_name(certs: Option<&[CertificateDer<'_>]>) -> Option<String> {
    let der = certs?.first()?;
    let cert = openssl::x509::X509::from_der(der).ok()?;
    common_name(&cert)
}

/// Checks a server's certificate as a client's would be: signed by the domain's identity CA,
/// in date. (rustls's server verifier would also match a DNS name, which nodes lack.)
#[derive(Debug)]
struct DomainServerVerifier(Arc<dyn ClientCertVerifier>);

impl ServerCertVerifier for DomainServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.0
            .verify_client_cert(end_entity, intermediates, now)
            .map(|_| ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// A connection of a node's own (the direct path, sample streams): plain TCP in an open
/// domain, TLS in a trusted one. Writers must flush: TLS holds what it encrypted until then.
pub enum Link {
    /// An open domain's connection.
    Plain(TcpStream),
    /// The side that connected, in a trusted domain.
    Client(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// The side that accepted, in a trusted domain.
    Server(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl Link {
    /// The TCP connection underneath.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Self::Plain(s) => s,
            Self::Client(s) => s.get_ref().0,
            Self::Server(s) => s.get_ref().0,
        }
    }
}

impl AsyncRead for Link {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Client(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Self::Server(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Link {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Client(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Self::Server(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Client(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
            Self::Server(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(s) => s.is_write_vectored(),
            Self::Client(s) => s.is_write_vectored(),
            Self::Server(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Client(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Self::Server(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Client(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Self::Server(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
