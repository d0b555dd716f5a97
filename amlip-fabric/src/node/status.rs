//! Status nodes: watch every node's status on the domain.

use futures::stream::StreamExt;

use super::{start_engine, STOP_TIMEOUT};
use crate::config::NodeConfig;
use crate::error::Error;
use std::rc::Rc;

use crate::protocol::core::{report_start, Inbound, InboundStreams, NodeCore, Role};
use crate::runtime::{NodeThread, Shutdown};
use crate::wire::{AmlipId, NodeKind, NodeState, Status};

/// A node that calls a closure for each status sample published on the domain (its own
/// included), as AML-IP's StatusNode does.
pub struct StatusNode {
    cfg: NodeConfig,
    thread: Option<NodeThread>,
    id: Option<AmlipId>,
}

impl StatusNode {
    /// A status node named `name` with the default configuration (domain 166).
    pub fn new(name: &str) -> Result<Self, Error> {
        Self::with_config(NodeConfig::new(name))
    }

    /// A status node as `cfg` says.
    pub fn with_config(cfg: NodeConfig) -> Result<Self, Error> {
        Ok(Self {
            cfg,
            thread: None,
            id: None,
        })
    }

    /// The node's id once it runs.
    pub fn id(&self) -> Option<&AmlipId> {
        self.id.as_ref()
    }

    /// Starts calling `callback` for every status sample, on the node's thread. Replaces a
    /// previous callback.
    pub fn process_status_async(
        &mut self,
        callback: impl Fn(Status) + Send + 'static,
    ) -> Result<(), Error> {
        self.stop();
        let (id, thread) = start_engine(
            NodeKind::Status,
            self.cfg.clone(),
            Default::default(),
            "amlip-status",
            move |core, ready, mut shutdown| async move {
                let Some(inbound) = report_start(&ready, core.subscribe(Role::Monitor)) else {
                    return;
                };
                core.publish_status(NodeState::Running).await;
                // rustdds does not loop a participant's own samples back to it; AML-IP's status
                // node does see itself, so report our own status directly.
                callback(Status {
                    id: core.id.clone(),
                    node_kind: NodeKind::Status,
                    state: NodeState::Running,
                });
                watch(&core, inbound, &mut shutdown, |ev| {
                    if let Inbound::Status(s) = ev {
                        callback(s)
                    }
                })
                .await;
                core.publish_status(NodeState::Dropped).await;
            },
        )?;
        self.id = Some(id);
        self.thread = Some(thread);
        Ok(())
    }

    /// Stops calling back and leaves the domain.
    pub fn stop(&mut self) {
        if let Some(mut t) = self.thread.take() {
            t.stop(STOP_TIMEOUT);
        }
    }
}

/// A monitor's inbound loop, until `shutdown`: recovers a participant rustdds stopped, and
/// hands every other event to `on`.
pub(super) async fn watch(
    core: &Rc<NodeCore>,
    mut inbound: InboundStreams,
    shutdown: &mut Shutdown,
    mut on: impl FnMut(Inbound),
) {
    loop {
        tokio::select! {
            _ = shutdown.wait() => break,
            Some(ev) = inbound.next() => match ev {
                Inbound::ParticipantDied if !shutdown.is_triggered() => {
                    match core.recover(Role::Monitor).await {
                        Some(streams) => inbound = streams,
                        None => break,
                    }
                }
                ev => on(ev),
            }
        }
    }
}

impl Drop for StatusNode {
    fn drop(&mut self) {
        self.stop();
    }
}
