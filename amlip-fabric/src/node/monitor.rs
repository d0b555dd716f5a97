//! Cluster monitors: every node on the domain and what it does, for `main-node status` and
//! dashboards. AML-IP's own nodes are seen through the status topic (id, kind, state); amlip
//! nodes also through their heartbeats (host, jobs held and done, how recently heard), and
//! amlip mains through their summaries (job counters, sessions and their curves), which stay
//! visible for [`SUMMARY_MEMORY`] after the main left.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::status::watch;
use super::{start_engine, STOP_TIMEOUT};
use crate::config::NodeConfig;
use crate::dds::{DropCounters, DroppedSamples};
use crate::error::Error;
use crate::protocol::core::{report_start, Inbound, Role};
use crate::runtime::NodeThread;
use crate::wire::ext::NodeInfo;
use crate::wire::summary::{MainSummary, SessionState};
use crate::wire::{AmlipId, NodeKind, NodeState};

/// A node as a monitor sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeView {
    /// Its id (`Name.xx.xx.xx.xx`).
    pub id: String,
    /// `main`, `computing`, `status`, ... (AML-IP's kinds, in lower case).
    pub kind: String,
    /// `running`, `stopped` or `dropped` as the node says; `silent` when an amlip node's
    /// heartbeats stopped (three periods, at least 3 s); `lost` when DDS saw its participant
    /// go.
    pub state: String,
    /// An address it announced (amlip nodes), the first that is not loopback.
    pub host: Option<String>,
    /// Jobs it holds (computing nodes) or waits for (mains), from its last heartbeat.
    pub jobs_in_flight: Option<usize>,
    /// Jobs served (computing nodes) or solved (mains), from its last heartbeat.
    pub jobs_done: Option<u64>,
    /// Milliseconds since it was last heard.
    pub last_heard_ms: u64,
    /// Whether it is an amlip node (sends heartbeats).
    pub amlip: bool,
    /// Mains: what the main said it does, in its last summary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub main: Option<MainView>,
}

/// A main's jobs and sessions, from its last summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MainView {
    /// `running`; `finished` once it left (its figures are final); `lost` when it vanished
    /// without a word (killed, cut off).
    pub state: String,
    /// Jobs submitted.
    pub sent: u64,
    /// Jobs solved.
    pub solved: u64,
    /// Jobs ended without a solution.
    pub failed: u64,
    /// Jobs re-sent.
    pub resent: u64,
    /// Answers dropped because their job was already decided.
    pub duplicates_dropped: u64,
    /// Jobs waiting for or held by a computing node.
    pub in_flight: u32,
    /// Computing nodes it knows alive.
    pub computing_nodes: u32,
    /// Jobs solved per second, over its last 10 s.
    pub solved_per_s: f64,
    /// Bytes of jobs it sent.
    pub bytes_sent: u64,
    /// Bytes of solutions it accepted.
    pub bytes_received: u64,
    /// Seconds since it started.
    pub uptime_s: f64,
    /// Its sessions: running ones first, then the latest finished.
    pub sessions: Vec<SessionView>,
}

/// One session of a main.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionView {
    /// `fedavg`, `aml`, `allreduce`, `pipeline`, `ailoop`, ...
    pub kind: String,
    /// Its name.
    pub name: String,
    /// `running`, `done` or `failed`; `lost` if its main vanished while it ran.
    pub state: String,
    /// Its last line, final figures, or why it failed.
    pub detail: String,
    /// Steps done.
    pub step: u32,
    /// Steps in all (0: unknown).
    pub steps: u32,
    /// `round`, `epoch`, `task`, `iteration`.
    pub step_name: String,
    /// Its curve, oldest first.
    pub points: Vec<PointView>,
}

/// One point of a session's curve.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PointView {
    /// The round, epoch or iteration.
    pub step: u32,
    /// `None`: the aggregate model; `Some(k)`: shard (or worker) k, 0-based.
    pub shard: Option<u32>,
    /// Training loss.
    pub loss: Option<f64>,
    /// Test accuracy.
    pub accuracy: Option<f64>,
    /// Test mean squared error.
    pub mse: Option<f64>,
    /// Seconds since the session began.
    pub seconds: f64,
}

/// How long a main's last summary stays in view after it left or vanished.
pub const SUMMARY_MEMORY: Duration = Duration::from_secs(600);
/// Mains whose summaries a monitor keeps (memory a peer can make it use is bounded).
const MAX_SUMMARIES: usize = 64;

#[derive(Debug, Clone)]
struct Entry {
    kind: NodeKind,
    state: NodeState,
    lost: bool,
    info: Option<NodeInfo>,
    heard: Instant,
    summary: Option<Box<MainSummary>>,
}

type Table = Arc<Mutex<BTreeMap<AmlipId, Entry>>>;

/// A status node that keeps a table of every node it has seen. Drop it (or [`stop`]) to
/// leave the domain.
///
/// [`stop`]: ClusterMonitor::stop
pub struct ClusterMonitor {
    id: AmlipId,
    table: Table,
    thread: Option<NodeThread>,
    dropped: Arc<DropCounters>,
}

impl ClusterMonitor {
    /// Joins the domain of `cfg` as a status node and starts watching.
    pub fn start(cfg: NodeConfig) -> Result<Self, Error> {
        let table: Table = Arc::default();
        let t = table.clone();
        let dropped = Arc::new(DropCounters::default());
        let (id, thread) = start_engine(
            NodeKind::Status,
            cfg,
            dropped.clone(),
            "amlip-monitor",
            move |core, ready, mut shutdown| async move {
                let Some(inbound) = report_start(&ready, core.subscribe(Role::Monitor)) else {
                    return;
                };
                core.publish_status(NodeState::Running).await;
                let me = core.id.clone();
                watch(&core, inbound, &mut shutdown, |ev| match ev {
                    Inbound::Status(s) if s.id != me => {
                        record(&t, &s.id, |e| {
                            e.kind = s.node_kind;
                            e.state = s.state;
                        });
                    }
                    Inbound::Info(info) if info.id != me => {
                        let id = info.id.clone();
                        record(&t, &id, |e| {
                            e.kind = info.kind;
                            e.state = info.state;
                            e.info = Some(info);
                        });
                    }
                    Inbound::Summary(s) if s.id != me => {
                        let id = s.id.clone();
                        record(&t, &id, |e| {
                            if e.kind == NodeKind::Undetermined {
                                e.kind = NodeKind::Main;
                            }
                            e.summary = Some(s);
                        });
                        forget_oldest_summaries(&t);
                    }
                    Inbound::PeersLost(ids) => {
                        let mut table = t.lock().expect("monitor table");
                        for id in ids {
                            if let Some(e) = table.get_mut(&id) {
                                e.lost = true;
                            }
                        }
                    }
                    _ => {}
                })
                .await;
                core.publish_status(NodeState::Dropped).await;
            },
        )?;
        Ok(Self {
            id,
            table,
            thread: Some(thread),
            dropped,
        })
    }

    /// The monitor's own id (it is not in its table).
    pub fn id(&self) -> &AmlipId {
        &self.id
    }

    /// Every node seen so far, by id.
    pub fn nodes(&self) -> Vec<NodeView> {
        self.probe().nodes()
    }

    /// Samples its readers dropped (malformed, foreign type), by topic.
    pub fn dropped_samples(&self) -> BTreeMap<String, DroppedSamples> {
        self.dropped.snapshot()
    }

    /// A handle that reads the table from any thread (dashboards).
    pub fn probe(&self) -> MonitorProbe {
        MonitorProbe(self.table.clone())
    }

    /// Leaves the domain (it says `dropped` on the status topic).
    pub fn stop(&mut self) {
        if let Some(mut t) = self.thread.take() {
            t.stop(STOP_TIMEOUT);
        }
    }
}

/// Reads a [`ClusterMonitor`]'s table from any thread.
#[derive(Clone)]
pub struct MonitorProbe(Table);

impl MonitorProbe {
    /// Every node seen so far, by id.
    pub fn nodes(&self) -> Vec<NodeView> {
        let now = Instant::now();
        let table = self.0.lock().expect("monitor table");
        table.iter().map(|(id, e)| view(id, e, now)).collect()
    }
}

impl Drop for ClusterMonitor {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Updates (or adds) `id`'s entry: heard now, no longer lost.
fn record(table: &Table, id: &AmlipId, update: impl FnOnce(&mut Entry)) {
    let mut t = table.lock().expect("monitor table");
    let e = t.entry(id.clone()).or_insert_with(|| Entry {
        kind: NodeKind::Undetermined,
        state: NodeState::Unknown,
        lost: false,
        info: None,
        heard: Instant::now(),
        summary: None,
    });
    update(e);
    e.heard = Instant::now();
    e.lost = false;
}

/// Keeps at most [`MAX_SUMMARIES`] summaries: those heard longest ago go first.
fn forget_oldest_summaries(table: &Table) {
    let mut t = table.lock().expect("monitor table");
    let mut with: Vec<(Instant, AmlipId)> = (t.iter())
        .filter(|(_, e)| e.summary.is_some())
        .map(|(id, e)| (e.heard, id.clone()))
        .collect();
    if with.len() <= MAX_SUMMARIES {
        return;
    }
    with.sort();
    for (_, id) in &with[..with.len() - MAX_SUMMARIES] {
        if let Some(e) = t.get_mut(id) {
            e.summary = None;
        }
    }
}

/// A main's summary as shown: `finished` once it said it left (its participant going after
/// that is no loss), `running` while heard, else `lost`.
fn main_view(s: &MainSummary, e: &Entry, node_state: &str) -> MainView {
    let state = match (e.state, node_state) {
        (NodeState::Dropped | NodeState::Stopped, _) => "finished",
        (_, "running") => "running",
        _ => "lost",
    };
    // An f32 widened as its shortest decimal (0.8976, not 0.897599995...): what the main
    // measured, as it printed it.
    let widen = |v: f32| v.to_string().parse::<f64>().unwrap_or(v as f64);
    let figure = |v: f32| (!v.is_nan()).then(|| widen(v));
    MainView {
        state: state.to_owned(),
        sent: s.jobs_sent,
        solved: s.jobs_solved,
        failed: s.jobs_failed,
        resent: s.jobs_resent,
        duplicates_dropped: s.duplicates_dropped,
        in_flight: s.jobs_in_flight,
        computing_nodes: s.computing_nodes,
        solved_per_s: if state == "running" {
            widen(s.solved_per_s)
        } else {
            0.0
        },
        bytes_sent: s.bytes_sent,
        bytes_received: s.bytes_received,
        uptime_s: s.uptime_ms as f64 / 1000.0,
        sessions: (s.sessions.iter())
            .map(|x| SessionView {
                kind: x.kind.clone(),
                name: x.name.clone(),
                state: match (x.state, state) {
                    (SessionState::Running, "running") => "running",
                    (SessionState::Running, _) => "lost",
                    (other, _) => other.name(),
                }
                .to_owned(),
                detail: x.detail.clone(),
                step: x.step,
                steps: x.steps,
                step_name: x.step_name.clone(),
                points: (x.points.iter())
                    .map(|p| PointView {
                        step: p.step,
                        shard: p.series.checked_sub(1),
                        loss: figure(p.loss),
                        accuracy: figure(p.accuracy),
                        mse: figure(p.mse),
                        seconds: widen(p.seconds),
                    })
                    .collect(),
            })
            .collect(),
    }
}

fn view(id: &AmlipId, e: &Entry, now: Instant) -> NodeView {
    let ago = now.saturating_duration_since(e.heard);
    let silent = e.info.as_ref().is_some_and(|i| {
        let period = Duration::from_millis(i.heartbeat_ms.max(1) as u64);
        ago > (3 * period).max(Duration::from_secs(3))
    });
    let state = if e.lost {
        "lost".to_owned()
    } else if silent && e.state == NodeState::Running {
        "silent".to_owned()
    } else {
        match e.state {
            NodeState::Running => "running".to_owned(),
            NodeState::Stopped => "stopped".to_owned(),
            NodeState::Dropped => "dropped".to_owned(),
            NodeState::Unknown => "unknown".to_owned(),
            NodeState::Other(n) => format!("state {n}"),
        }
    };
    let info = e.info.as_ref();
    NodeView {
        id: id.to_string(),
        kind: kind_name(e.kind),
        host: info.and_then(|i| {
            i.direct_addrs
                .iter()
                .find(|a| !a.is_loopback())
                .or(i.direct_addrs.first())
                .map(|a| a.to_string())
        }),
        jobs_in_flight: info.map(|i| match i.kind {
            NodeKind::Main => i.open_tasks.len(),
            _ => i.jobs.len(),
        }),
        jobs_done: info.map(|i| i.jobs_done as u64),
        last_heard_ms: ago.as_millis() as u64,
        amlip: info.is_some(),
        main: (e.summary.as_ref())
            .filter(|_| state == "running" || ago < SUMMARY_MEMORY)
            .map(|s| main_view(s, e, &state)),
        state,
    }
}

/// AML-IP's name of a node kind, in lower case.
pub fn kind_name(kind: NodeKind) -> String {
    match kind {
        NodeKind::Undetermined => "undetermined".into(),
        NodeKind::Discovery => "discovery".into(),
        NodeKind::Agent => "agent".into(),
        NodeKind::Main => "main".into(),
        NodeKind::Computing => "computing".into(),
        NodeKind::Status => "status".into(),
        NodeKind::Meta => "meta".into(),
        NodeKind::Edge => "edge".into(),
        NodeKind::Inference => "inference".into(),
        NodeKind::ModelReceiver => "model_receiver".into(),
        NodeKind::ModelSender => "model_sender".into(),
        NodeKind::Fiware => "fiware".into(),
        NodeKind::Other(n) => format!("kind {n}"),
    }
}
