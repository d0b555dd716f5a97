//! The live dashboard (`main-node status --serve ADDR:PORT`, `main-node train --serve`): one
//! HTML page embedded in the binary (no build step, nothing fetched from the internet) that
//! polls `/api/snapshot` every second and draws the nodes, the jobs, the throughput and the
//! training curves; `/metrics` is served beside it.

use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use axum::Router;

use super::metrics::{metrics_route, Sources};

const PAGE: &str = include_str!("dashboard.html");

/// The dashboard's routes: `/` (the page), `/api/snapshot` (JSON) and `/metrics`.
pub fn router(sources: Sources) -> Router {
    let snap = sources.clone();
    let r = Router::new()
        .route(
            "/",
            get(|| async { ([(CONTENT_TYPE, "text/html; charset=utf-8")], PAGE) }),
        )
        .route(
            "/api/snapshot",
            get(move || {
                let snap = snap.clone();
                async move {
                    (
                        [(CONTENT_TYPE, "application/json")],
                        snap.snapshot().to_string(),
                    )
                }
            }),
        );
    metrics_route(r, sources)
}

/// A dashboard of its own: a cluster monitor on the domain feeding `sources`, and the page
/// served at `addr` (`main-node train --serve`). Both stop when it is dropped.
pub struct Dashboard {
    _monitor: amlip_core::node::ClusterMonitor,
    _server: super::serve::HttpServer,
}

/// Why a dashboard could not start.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// Its monitor could not join the domain.
    #[error("cannot start the dashboard's status node: {0}")]
    Monitor(#[from] amlip_core::Error),
    /// Its address could not be served.
    #[error("cannot serve the dashboard (--serve): {0}")]
    Serve(#[from] super::serve::ServeError),
}

impl Dashboard {
    /// Starts one at `addr`, if given, with a monitor configured as `cfg`.
    pub fn start_if(
        addr: Option<std::net::SocketAddr>,
        cfg: amlip_core::config::NodeConfig,
        sources: &Sources,
    ) -> Result<Option<Self>, DashboardError> {
        let Some(addr) = addr else { return Ok(None) };
        let monitor = amlip_core::node::ClusterMonitor::start(cfg)?;
        sources.monitor(monitor.probe());
        let server = super::serve::HttpServer::start(addr, router(sources.clone()))?;
        println!("dashboard at http://{}/", server.addr());
        Ok(Some(Self {
            _monitor: monitor,
            _server: server,
        }))
    }
}
