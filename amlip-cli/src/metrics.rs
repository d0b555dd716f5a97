//! Prometheus metrics (`--metrics ADDR:PORT`): a collector of the `prometheus-client` crate
//! that reads the node's counters at each scrape, served at `/metrics` in the text format.
//!
//! Names: `amlip_jobs_{sent,solved,resent,failed,duplicates_dropped}_total` (mains),
//! `amlip_jobs_{served,failed,refused}_total` (computing nodes, `role="computing"`),
//! `amlip_job_round_trip_seconds{size=...}` (a histogram by payload size class),
//! `amlip_{sent,received}_bytes_total`, `amlip_peers_alive{kind}`, and the training
//! progress `amlip_training_{round,rounds,loss,accuracy,mse}` while `main-node train` runs.
//!
//! Where a cluster monitor feeds it (`main-node status --serve`, `train --serve`), the whole
//! domain as one scrape target: `amlip_cluster_nodes{kind,state}`, per node
//! `amlip_node_jobs_{done_total,in_flight}{node,kind}`, per main (from its summary)
//! `amlip_main_jobs_{sent,solved,failed,resent,duplicates_dropped}_total{main}`,
//! `amlip_main_jobs_in_flight`, `amlip_main_solved_per_second`, `amlip_main_up{main,state}`,
//! and per session its latest figures, `amlip_session_{step,steps,loss,accuracy,mse}`
//! `{main,kind,session,state}`.

use std::sync::{Arc, Mutex};

use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use axum::Router;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::node::{
    ComputingProbe, MainProbe, MainView, MonitorProbe, NodeView, PointView, SessionView,
    ROUND_TRIP_BUCKETS, SIZE_CLASSES,
};
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
        if let Some(m) = &inner.monitor {
            cluster(e, &m.nodes())?;
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

/// A metric family read off each of a list of things (nodes, mains, sessions).
struct Read<T> {
    name: &'static str,
    help: &'static str,
    ty: MetricType,
    /// `None`: no sample for that one.
    value: fn(&T) -> Option<f64>,
}

impl<T> Read<T> {
    const fn counter(name: &'static str, help: &'static str, value: fn(&T) -> Option<f64>) -> Self {
        Self {
            name,
            help,
            ty: MetricType::Counter,
            value,
        }
    }

    const fn gauge(name: &'static str, help: &'static str, value: fn(&T) -> Option<f64>) -> Self {
        Self {
            name,
            help,
            ty: MetricType::Gauge,
            value,
        }
    }
}

/// Encodes each of `reads` over `items`, one sample per item under its labels (a family with
/// no sample is left out).
fn families<T, L: EncodeLabelSet>(
    e: &mut DescriptorEncoder,
    items: &[(L, &T)],
    reads: &[Read<T>],
) -> Result<(), std::fmt::Error> {
    for r in reads {
        let rows: Vec<(&L, f64)> = (items.iter())
            .filter_map(|(labels, item)| Some((labels, (r.value)(item)?)))
            .collect();
        if rows.is_empty() {
            continue;
        }
        let mut m = e.encode_descriptor(r.name, r.help, None, r.ty)?;
        for (labels, v) in rows {
            let f = m.encode_family(labels)?;
            match r.ty {
                MetricType::Counter => ConstCounter::new(v).encode(f)?,
                _ => ConstGauge::new(v).encode(f)?,
            }
        }
    }
    Ok(())
}

const NODE_READS: [Read<NodeView>; 2] = [
    Read::counter(
        "amlip_node_jobs_done",
        "Jobs served (computing nodes) or solved (mains), from each amlip node's heartbeat.",
        |n| n.jobs_done.map(|v| v as f64),
    ),
    Read::gauge(
        "amlip_node_jobs_in_flight",
        "Jobs held (computing nodes) or waiting (mains), from each amlip node's heartbeat.",
        |n| n.jobs_in_flight.map(|v| v as f64),
    ),
];

const MAIN_READS: [Read<MainView>; 7] = [
    Read::counter("amlip_main_jobs_sent", "Jobs each main submitted.", |m| {
        Some(m.sent as f64)
    }),
    Read::counter(
        "amlip_main_jobs_solved",
        "Jobs each main had solved.",
        |m| Some(m.solved as f64),
    ),
    Read::counter(
        "amlip_main_jobs_failed",
        "Jobs of each main ended without a solution.",
        |m| Some(m.failed as f64),
    ),
    Read::counter("amlip_main_jobs_resent", "Jobs each main re-sent.", |m| {
        Some(m.resent as f64)
    }),
    Read::counter(
        "amlip_main_jobs_duplicates_dropped",
        "Answers each main dropped because their job was already decided.",
        |m| Some(m.duplicates_dropped as f64),
    ),
    Read::gauge(
        "amlip_main_jobs_in_flight",
        "Jobs of each main waiting for or held by a computing node.",
        |m| Some(m.in_flight as f64),
    ),
    Read::gauge(
        "amlip_main_solved_per_second",
        "Jobs each main had solved per second, over its last 10 s.",
        |m| Some(m.solved_per_s),
    ),
];

/// A session's latest aggregate figure that `f` reads.
fn latest(s: &SessionView, f: fn(&PointView) -> Option<f64>) -> Option<f64> {
    (s.points.iter().rev())
        .filter(|p| p.shard.is_none())
        .find_map(f)
}

const SESSION_READS: [Read<SessionView>; 5] = [
    Read::gauge(
        "amlip_session_step",
        "Steps (rounds, epochs, tasks) each session has done.",
        |s| Some(s.step as f64),
    ),
    Read::gauge(
        "amlip_session_steps",
        "Steps each session has in all (0: unknown).",
        |s| Some(s.steps as f64),
    ),
    Read::gauge(
        "amlip_session_loss",
        "Each session's latest training loss (aggregate).",
        |s| latest(s, |p| p.loss),
    ),
    Read::gauge(
        "amlip_session_accuracy",
        "Each session's latest test accuracy (aggregate).",
        |s| latest(s, |p| p.accuracy),
    ),
    Read::gauge(
        "amlip_session_mse",
        "Each session's latest test MSE (aggregate).",
        |s| latest(s, |p| p.mse),
    ),
];

/// A session's kind or name as a label value: the characters that simple exposition parsers
/// split on (`,` `=` `{` `}` quotes, backslashes, line breaks) replaced by look-alikes, so that
/// a name from a user's pipeline file cannot break a scrape.
fn label_value(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            ',' => ';',
            '=' => ':',
            '{' => '(',
            '}' => ')',
            '"' => '\'',
            '\\' => '/',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect()
}

/// The cluster's gauges, from what a monitor sees (see the module's doc).
fn cluster(e: &mut DescriptorEncoder, nodes: &[NodeView]) -> Result<(), std::fmt::Error> {
    let mut by_state = std::collections::BTreeMap::new();
    for n in nodes {
        *by_state
            .entry([("kind", n.kind.as_str()), ("state", n.state.as_str())])
            .or_insert(0usize) += 1;
    }
    let counts: Vec<_> = by_state.iter().map(|(l, n)| (*l, n)).collect();
    let read = Read::gauge(
        "amlip_cluster_nodes",
        "Nodes on the domain, by kind and state.",
        |n: &usize| Some(*n as f64),
    );
    families(e, &counts, &[read])?;
    let items: Vec<_> = (nodes.iter())
        .map(|n| ([("node", n.id.as_str()), ("kind", n.kind.as_str())], n))
        .collect();
    families(e, &items, &NODE_READS)?;
    let mains: Vec<_> = (nodes.iter())
        .filter_map(|n| Some(([("main", n.id.as_str())], n.main.as_ref()?)))
        .collect();
    families(e, &mains, &MAIN_READS)?;
    let up: Vec<_> = (mains.iter())
        .map(|([main], m)| ([*main, ("state", m.state.as_str())], *m))
        .collect();
    let read = Read::gauge(
        "amlip_main_up",
        "Each main seen: 1, labelled running, finished or lost.",
        |_: &MainView| Some(1.0),
    );
    families(e, &up, &[read])?;
    let sessions: Vec<_> = (mains.iter())
        .flat_map(|([(_, id)], m)| {
            m.sessions.iter().map(move |s| {
                let labels = [
                    ("main", id.to_string()),
                    ("kind", label_value(&s.kind)),
                    ("session", label_value(&s.name)),
                    ("state", s.state.clone()),
                ];
                (labels, s)
            })
        })
        .collect();
    families(e, &sessions, &SESSION_READS)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hostile_session_name_cannot_break_a_scrape() {
        let name = "prep,train=\"x\"{y}\\z\nw";
        assert_eq!(label_value(name), "prep;train:'x'(y)/z w");
        let mut registry = Registry::default();
        let nodes = vec![NodeView {
            id: "Main.01.02.03.04".into(),
            kind: "main".into(),
            state: "running".into(),
            host: None,
            jobs_in_flight: Some(0),
            jobs_done: Some(2),
            last_heard_ms: 0,
            amlip: true,
            main: Some(MainView {
                state: "running".into(),
                sent: 2,
                solved: 2,
                failed: 0,
                resent: 0,
                duplicates_dropped: 0,
                in_flight: 0,
                computing_nodes: 1,
                solved_per_s: 0.5,
                bytes_sent: 10,
                bytes_received: 10,
                uptime_s: 1.0,
                sessions: vec![SessionView {
                    kind: "pipeline".into(),
                    name: name.into(),
                    state: "running".into(),
                    detail: String::new(),
                    step: 1,
                    steps: 2,
                    step_name: "task".into(),
                    points: vec![],
                }],
            }),
        }];
        #[derive(Debug)]
        struct Fixed(Vec<NodeView>);
        impl Collector for Fixed {
            fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
                cluster(&mut e, &self.0)
            }
        }
        registry.register_collector(Box::new(Fixed(nodes)));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("amlip_session_step{main=\"Main.01.02.03.04\",kind=\"pipeline\",session=\"prep;train:'x'(y)/z w\",state=\"running\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("amlip_main_jobs_solved_total{main=\"Main.01.02.03.04\"} 2"),
            "{text}"
        );
    }
}
