//! Prometheus metrics (`--metrics ADDR:PORT`): a collector of the `prometheus-client` crate
//! that reads the node's counters at each scrape, served at `/metrics` in the text format.
//!
//! Names: `amlip_jobs_{sent,solved,resent,failed,duplicates_dropped}_total` (mains),
//! `amlip_jobs_{served,failed,refused}_total` (computing nodes, `role="computing"`),
//! `amlip_job_round_trip_seconds{size=...}` (a histogram by payload size class),
//! `amlip_{sent,received}_bytes_total`, `amlip_peers_alive{kind}`, and the training
//! progress `amlip_training_{round,rounds,loss,accuracy,mse}` while `main-node train` runs.

use std::sync::{Arc, Mutex};

use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use axum::Router;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::node::{ComputingProbe, MainProbe, MonitorProbe, ROUND_TRIP_BUCKETS, SIZE_CLASSES};
use crate::session::Progress;

/// Where the numbers come from: the nodes of this process and the training in progress.
#[derive(Clone, Default)]
pub struct Sources {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    main: Option<MainProbe>,
    computing: Option<ComputingProbe>,
    progress: Option<Progress>,
    monitor: Option<MonitorProbe>,
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sources")
    }
}

impl Sources {
    /// Reports this main's counters.
    pub fn main(&self, probe: MainProbe) {
        self.inner.lock().expect("sources").main = Some(probe);
    }

    /// Reports this computing node's counters.
    pub fn computing(&self, probe: ComputingProbe) {
        self.inner.lock().expect("sources").computing = Some(probe);
    }

    /// Reports a training's progress.
    pub fn progress(&self, progress: Progress) {
        self.inner.lock().expect("sources").progress = Some(progress);
    }

    /// Shows the nodes a monitor sees (dashboards).
    pub fn monitor(&self, probe: MonitorProbe) {
        self.inner.lock().expect("sources").monitor = Some(probe);
    }

    /// What the dashboard shows, as JSON: nodes, the main's counters, the training's points.
    pub fn snapshot(&self) -> serde_json::Value {
        let inner = self.inner.lock().expect("sources");
        let nodes = inner
            .monitor
            .as_ref()
            .map(|m| m.nodes())
            .unwrap_or_default();
        let main = inner.main.as_ref().map(|m| {
            let s = m.stats();
            serde_json::json!({"sent": s.submitted, "solved": s.solved, "failed": s.failed,
                "resent": s.resent, "duplicates_dropped": s.duplicates_dropped,
                "in_flight": s.waiting + s.running.len(),
                "computing_nodes": s.computing_nodes.len()})
        });
        let training = inner
            .progress
            .as_ref()
            .map(|p| p.points())
            .unwrap_or_default();
        serde_json::json!({"nodes": nodes, "main": main, "training": training})
    }
}

impl Collector for Sources {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let inner = self.inner.lock().expect("sources");
        let e = &mut encoder;
        if let Some(main) = &inner.main {
            let s = main.stats();
            counter(
                e,
                "amlip_jobs_sent",
                "Jobs submitted by this main.",
                s.submitted,
            )?;
            counter(e, "amlip_jobs_solved", "Jobs solved.", s.solved)?;
            counter(
                e,
                "amlip_jobs_resent",
                "Jobs re-sent (holder gone, deadline passed).",
                s.resent,
            )?;
            counter(
                e,
                "amlip_jobs_failed",
                "Jobs ended without a solution.",
                s.failed,
            )?;
            counter(
                e,
                "amlip_jobs_duplicates_dropped",
                "Answers dropped because their job was already decided.",
                s.duplicates_dropped,
            )?;
            counter(
                e,
                "amlip_sent_bytes",
                "Bytes of jobs submitted.",
                s.bytes_sent,
            )?;
            counter(
                e,
                "amlip_received_bytes",
                "Bytes of solutions accepted.",
                s.bytes_received,
            )?;
            let mut h = e.encode_descriptor(
                "amlip_job_round_trip",
                "Job round trips, submission to solution, by payload size class.",
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?;
            for ((name, _), (counts, sum)) in SIZE_CLASSES.iter().zip(&s.round_trips.classes) {
                let labels = [("size", *name)];
                let buckets: Vec<(f64, u64)> = ROUND_TRIP_BUCKETS
                    .iter()
                    .copied()
                    .chain([f64::INFINITY])
                    .zip(counts.iter().copied())
                    .collect();
                let count = counts.iter().sum();
                h.encode_family(&labels)?
                    .encode_histogram::<NoLabelSet>(*sum, count, &buckets, None)?;
            }
            let g = e.encode_descriptor(
                "amlip_peers_alive",
                "Peers known alive, by kind.",
                None,
                MetricType::Gauge,
            )?;
            let mut g = g;
            ConstGauge::new(s.computing_nodes.len() as i64)
                .encode(g.encode_family(&[("kind", "computing")])?)?;
            let g = e.encode_descriptor(
                "amlip_jobs_in_flight",
                "Jobs waiting for or held by a computing node.",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new((s.waiting + s.running.len()) as i64).encode(g)?;
        }
        if let Some(c) = &inner.computing {
            counter(
                e,
                "amlip_jobs_served",
                "Jobs answered with a solution.",
                c.jobs_served(),
            )?;
            counter(
                e,
                "amlip_jobs_errors",
                "Jobs answered with an error.",
                c.jobs_failed(),
            )?;
            counter(
                e,
                "amlip_requests_refused",
                "Availability requests dropped unanswered.",
                c.requests_refused(),
            )?;
        }
        if let Some(p) = &inner.progress {
            let last = p.last();
            if let Some(l) = last {
                gauge(
                    e,
                    "amlip_training_round",
                    "The training's last round done.",
                    l.round as f64,
                )?;
                gauge(
                    e,
                    "amlip_training_rounds",
                    "The training's rounds in all.",
                    l.rounds as f64,
                )?;
                if let Some(x) = l.loss {
                    gauge(
                        e,
                        "amlip_training_loss",
                        "Mean training loss of the last round.",
                        x,
                    )?;
                }
                if let Some(x) = l.accuracy {
                    gauge(
                        e,
                        "amlip_training_accuracy",
                        "Test accuracy after the last round.",
                        x,
                    )?;
                }
                if let Some(x) = l.mse {
                    gauge(e, "amlip_training_mse", "Test MSE after the last round.", x)?;
                }
            }
        }
        Ok(())
    }
}

fn counter(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    v: u64,
) -> Result<(), std::fmt::Error> {
    let m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    ConstCounter::new(v).encode(m)
}

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, v: f64) -> Result<(), std::fmt::Error> {
    let m = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
    ConstGauge::new(v).encode(m)
}

/// The `/metrics` route over `sources`.
pub fn router(sources: Sources) -> Router {
    metrics_route(Router::new(), sources)
}

/// Adds the `/metrics` route over `sources` to `router`.
pub fn metrics_route(router: Router, sources: Sources) -> Router {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(sources));
    let registry = Arc::new(registry);
    router.route(
        "/metrics",
        get(move || {
            let registry = registry.clone();
            async move {
                let mut body = String::new();
                match prometheus_client::encoding::text::encode(&mut body, &registry) {
                    Ok(()) => (
                        [(
                            CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        body,
                    ),
                    Err(_) => (
                        [(CONTENT_TYPE, "text/plain")],
                        "cannot encode metrics".into(),
                    ),
                }
            }
        }),
    )
}
