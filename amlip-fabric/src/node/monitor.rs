//! Cluster monitors: every node on the domain and what it does, for `main-node status` and
//! dashboards. AML-IP's own nodes are seen through the status topic (id, kind, state); amlip
//! nodes also through their heartbeats (host, jobs held and done, how recently heard), and
//! amlip mains through their summaries (job counters, sessions and their curves), which stay
//! visible for [`SUMMARY_MEMORY`] after the main left.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::main_view::{main_view, MainView, MAX_SUMMARIES, SUMMARY_MEMORY};
use super::status::watch;
use super::{start_engine, STOP_TIMEOUT};
use crate::config::NodeConfig;
use crate::dds::{DropCounters, DroppedSamples};
use crate::error::Error;
use crate::protocol::core::{report_start, Inbound, Role};
use crate::runtime::NodeThread;
use crate::wire::ext::NodeInfo;
use crate::wire::summary::MainSummary;
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
            .map(|s| main_view(s, e.state, &state)),
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
