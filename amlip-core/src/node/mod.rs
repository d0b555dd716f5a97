//! The public node API, mirroring AML-IP's: [`MainNode`] and [`AsyncMainNode`] send jobs,
//! [`ComputingNode`] and [`AsyncComputingNode`] serve them, [`StatusNode`] watches every node's
//! status. Each node owns one DDS participant and one engine thread; dropping a node stops both
//! within a bounded time.

mod computing;
mod main;
mod status;

use std::future::Future;
use std::rc::Rc;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

pub use computing::{AsyncComputingNode, ComputingNode, JobReplier, ServedJob};
pub use main::{AsyncMainNode, MainNode, SolutionListener};
pub use status::StatusNode;

use crate::config::NodeConfig;
use crate::dds::DdsError;
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
    thread_name: &str,
    body: F,
) -> Result<(AmlipId, NodeThread), Error>
where
    F: FnOnce(Rc<NodeCore>, Ready, Shutdown) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let id = AmlipId::new_random(&cfg.name)?;
    let (ready_tx, ready_rx) = std_mpsc::channel();
    let core_id = id.clone();
    let mut thread = NodeThread::spawn(thread_name, move |shutdown| async move {
        match NodeCore::new(core_id, kind, cfg) {
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

/// A helper thread that ends by itself once its channel closes, joined for a bounded time.
struct HelperThread {
    handle: Option<std::thread::JoinHandle<()>>,
    finished: std::sync::Mutex<std_mpsc::Receiver<()>>,
}

impl HelperThread {
    fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> std::io::Result<Self> {
        let (tx, finished) = std_mpsc::channel();
        let handle = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                f();
                let _ = tx.send(());
            })?;
        Ok(Self {
            handle: Some(handle),
            finished: std::sync::Mutex::new(finished),
        })
    }

    fn join(&mut self, timeout: Duration) {
        if let Some(h) = self.handle.take() {
            let finished = self.finished.lock().map(|rx| rx.recv_timeout(timeout));
            match finished.unwrap_or(Err(std_mpsc::RecvTimeoutError::Disconnected)) {
                Err(std_mpsc::RecvTimeoutError::Timeout) => {
                    tracing::warn!(
                        "a job or listener callback is still running; not waiting for it"
                    );
                }
                _ => {
                    let _ = h.join();
                }
            }
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
