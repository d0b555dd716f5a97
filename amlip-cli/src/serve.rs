//! A small HTTP server (axum on a tokio runtime of its own thread) for `/metrics` and the
//! dashboard. The port is bound before the call returns, so a taken port is a clear error;
//! dropping the server stops it within a bounded time.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;

use crate::runtime::BoundedThread;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address could not be bound (taken, or not this host's).
    #[error("cannot listen on {addr}: {error}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        error: std::io::Error,
    },
    /// The server's thread could not start.
    #[error("cannot start the HTTP server's thread: {0}")]
    Thread(std::io::Error),
}

/// A running HTTP server.
pub struct HttpServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<BoundedThread>,
}

impl HttpServer {
    /// Serves `router` on `addr` (port 0: any free port).
    pub fn start(addr: SocketAddr, router: Router) -> Result<Self, ServeError> {
        let listener =
            std::net::TcpListener::bind(addr).map_err(|error| ServeError::Bind { addr, error })?;
        let local = listener
            .local_addr()
            .map_err(|error| ServeError::Bind { addr, error })?;
        listener
            .set_nonblocking(true)
            .map_err(|error| ServeError::Bind { addr, error })?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = BoundedThread::spawn("amlip-http", move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!("cannot start the HTTP server's runtime: {e}");
                    return;
                }
            };
            rt.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!("cannot serve HTTP on {local}: {e}");
                        return;
                    }
                };
                let shutdown = async {
                    let _ = rx.await;
                };
                if let Err(e) = axum::serve(listener, router)
                    .with_graceful_shutdown(shutdown)
                    .await
                {
                    tracing::error!("HTTP server on {local}: {e}");
                }
            });
        })
        .map_err(ServeError::Thread)?;
        Ok(Self {
            addr: local,
            stop: Some(tx),
            thread: Some(thread),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves `router` on `addr` if one is given, and prints `"{what} at http://ADDR{path}"`
    /// (the port chosen when `addr` asks for port 0).
    pub fn start_if(
        addr: Option<SocketAddr>,
        router: impl FnOnce() -> Router,
        what: &str,
        path: &str,
    ) -> Result<Option<Self>, ServeError> {
        let Some(addr) = addr else {
            return Ok(None);
        };
        let server = Self::start(addr, router())?;
        println!("{what} at http://{}{path}", server.addr());
        Ok(Some(server))
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let mut t = t;
            t.join(Duration::from_secs(3));
        }
    }
}
