//! The public node API, mirroring AML-IP's: [`MainNode`] and [`AsyncMainNode`] send jobs,
//! [`ComputingNode`] and [`AsyncComputingNode`] serve them, [`StatusNode`] watches every node's
//! status and [`ClusterMonitor`] keeps a table of them. Each node owns one DDS participant and
//! one engine thread; dropping a node stops both within a bounded time.

mod computing;
mod inference;
mod main;
mod main_view;
mod model_manager;
mod monitor;
mod status;

use std::future::Future;
use std::rc::Rc;
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::Duration;

pub use crate::protocol::client::{
    ClientStats, RoundTrips, RunningJob, Solution, ROUND_TRIP_BUCKETS, SIZE_CLASSES,
};
pub use computing::{AsyncComputingNode, ComputingNode, ComputingProbe, JobReplier, ServedJob};
pub use inference::{AsyncEdgeNode, AsyncInferenceNode, EdgeNode, InferenceNode};
pub(crate) use main::ClientHandle;
pub use main::{AsyncMainNode, MainNode, MainProbe, SolutionListener};
pub use main_view::{MainView, PointView, SessionView, SUMMARY_MEMORY};
pub use model_manager::{ModelManagerReceiverNode, ModelManagerSenderNode, ModelReplier};
pub use monitor::{kind_name, ClusterMonitor, MonitorProbe, NodeView};
pub use status::StatusNode;

use crate::config::NodeConfig;
use crate::dds::{DdsError, DropCounters};
use crate::error::Error;
use crate::protocol::core::NodeCore;
use crate::runtime::{NodeThread, Shutdown};
use crate::wire::{AmlipId, NodeKind};

/// How long a node may take to create its participant and endpoints.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long dropping a node waits for its engine thread.
const STOP_TIMEOUT: Duration = Duration::from_secs(2);

type Ready = std_mpsc::Sender<Result<(), DdsError>>;

/// Starts a node's engine thread: creates the core there, then runs `body`, which must report
/// readiness once its endpoints exist. Returns when the node is ready, or its start error.
fn start_engine<F, Fut>(
    kind: NodeKind,
    cfg: NodeConfig,
    dropped: Arc<DropCounters>,
    thread_name: &str,
    body: F,
) -> Result<(AmlipId, NodeThread), Error>
where
    F: FnOnce(Rc<NodeCore>, Ready, Shutdown) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    if let Some(t) = cfg.trust.as_ref().filter(|t| t.name() != cfg.name) {
        return Err(Error::Trust(crate::trust::TrustError::Setup(format!(
            "node name {:?} is not its certificate's ({:?}, {}): peers would refuse it",
            cfg.name,
            t.name(),
            t.node_dir().display()
        ))));
    }
    let id = AmlipId::new_random(&cfg.name)?;
    let (ready_tx, ready_rx) = std_mpsc::channel();
    let core_id = id.clone();
    let mut thread = NodeThread::spawn(thread_name, move |shutdown| async move {
        match NodeCore::new(core_id, kind, cfg, dropped) {
            Ok(core) => body(core, ready_tx, shutdown).await,
            Err(e) => {
                let _ = ready_tx.send(Err(e));
            }
        }
    })?;
    match ready_rx.recv_timeout(START_TIMEOUT) {
        Ok(Ok(())) => Ok((id, thread)),
        Ok(Err(e)) => {
            thread.stop(STOP_TIMEOUT);
            Err(e.into())
        }
        Err(_) => {
            thread.stop(STOP_TIMEOUT);
            Err(Error::StartTimeout(START_TIMEOUT))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send_sync<T: Send + Sync>() {}

    #[test]
    fn nodes_can_be_shared_between_threads() {
        send_sync::<MainNode>();
        send_sync::<AsyncMainNode>();
        send_sync::<ComputingNode>();
        send_sync::<AsyncComputingNode>();
        send_sync::<StatusNode>();
    }
}
