//! Publishing models: a model manager sender that offers model files under names, announces
//! each new version, and tells when inference nodes serve it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::model::{Model, ModelInfo};
use super::wire::{self, Announcement, Role};
use super::InferError;
use crate::config::NodeConfig;
use crate::error::{BoxError, Error};
use crate::node::{ModelManagerReceiverNode, ModelManagerSenderNode};
use crate::wire::{AmlipId, ModelStatistics};

/// Offers models to the domain's inference nodes (those started with `follow`, e.g.
/// `computing-node --serve-models`) and sees who serves them.
pub struct Publisher {
    sender: ModelManagerSenderNode,
    receiver: ModelManagerReceiverNode,
    files: Arc<Mutex<BTreeMap<String, Bytes>>>,
}

/// Who serves a model, by the announcements seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    /// The model as announced by a server.
    pub info: ModelInfo,
    /// The announcing node (the model sender beside the inference node).
    pub by: AmlipId,
}

impl Publisher {
    /// Joins the domain as `cfg` says (node names get `Mod` and `Rcv` suffixes).
    pub fn start(cfg: &NodeConfig) -> Result<Self, Error> {
        let files: Arc<Mutex<BTreeMap<String, Bytes>>> = Arc::default();
        let offered = files.clone();
        let sender = ModelManagerSenderNode::with_config(
            cfg.suffixed("Mod"),
            move |_client: &AmlipId, request: &Bytes| -> Result<Bytes, BoxError> {
                let name = wire::parse_model_request(request)?;
                let files = offered.lock().expect("files");
                let held = files.iter().map(|(n, f)| (n.as_str(), f));
                Ok(wire::pick_model(&name, held)?.clone())
            },
        )?;
        Ok(Self {
            sender,
            receiver: ModelManagerReceiverNode::with_config(cfg.suffixed("Rcv"))?,
            files,
        })
    }

    /// Offers `file` as model `name` in a new version (milliseconds since 1970, so a later
    /// publication replaces an earlier one) and announces it. The file is loaded here first:
    /// a corrupt one is refused at once, naming what is wrong.
    pub fn publish(&self, name: &str, file: Bytes) -> Result<ModelInfo, InferError> {
        let version = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_millis() as u64);
        let info = Model::from_bytes(name, version, file.clone())?
            .info()
            .clone();
        self.files
            .lock()
            .expect("files")
            .insert(name.to_owned(), file);
        let blob = Announcement {
            role: Role::Sender,
            info: info.clone(),
        }
        .to_bytes();
        self.sender
            .publish_statistics(name, blob)
            .map_err(|e| InferError::Load {
                name: name.into(),
                why: format!("cannot announce it: {e}"),
            })?;
        Ok(info)
    }

    /// [`publish`](Self::publish)es `file` as `name`, then waits at most `timeout` until `n`
    /// nodes serve that version (answering their requests for the file meanwhile); fewer is
    /// an error saying how many did.
    pub fn publish_and_wait(
        &self,
        name: &str,
        file: Bytes,
        n: usize,
        timeout: Duration,
        on_published: impl FnOnce(&ModelInfo),
    ) -> Result<Vec<Served>, InferError> {
        let info = self.publish(name, file)?;
        on_published(&info);
        let served = self.wait_served(name, info.version, n, timeout);
        if served.len() < n {
            return Err(InferError::Load {
                name: name.into(),
                why: format!(
                    "served by {} node(s) after {timeout:?}, fewer than {n} (are computing nodes \
                     running with --serve-models?)",
                    served.len()
                ),
            });
        }
        Ok(served)
    }

    /// The servers announcing `name` at `version` or newer.
    pub fn servers(&self, name: &str, version: u64) -> Vec<Served> {
        servers_in(&self.receiver.statistics(), name, version)
    }

    /// Waits at most `timeout` until `n` servers announce `name` at `version` or newer;
    /// returns those seen by then (fewer if time ran out).
    pub fn wait_served(
        &self,
        name: &str,
        version: u64,
        n: usize,
        timeout: Duration,
    ) -> Vec<Served> {
        let updates = self.receiver.watch();
        let start = Instant::now();
        loop {
            let seen = self.servers(name, version);
            if seen.len() >= n {
                return seen;
            }
            let Some(left) = timeout.checked_sub(start.elapsed()) else {
                return seen;
            };
            if updates.recv_timeout(left).is_err() {
                return self.servers(name, version);
            }
        }
    }

    /// Every announcement seen on the domain.
    pub fn statistics(&self) -> Vec<ModelStatistics> {
        self.receiver.statistics()
    }
}

/// The servers among `stats` announcing `name` at `version` or newer.
pub fn servers_in(stats: &[ModelStatistics], name: &str, version: u64) -> Vec<Served> {
    stats
        .iter()
        .filter(|s| s.name == name)
        .filter_map(|s| {
            let a = Announcement::parse(&s.data).ok()?;
            (a.role == Role::Server && a.info.version >= version).then(|| Served {
                info: a.info,
                by: s.server_id.clone(),
            })
        })
        .collect()
}
