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
