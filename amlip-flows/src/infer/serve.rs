//! Serving models over the inference topics: [`ModelServer`] answers requests from the models
//! it holds, and [`ModelHost`] puts it on the domain: an inference node that answers, a model
//! sender that announces what it serves (and hands the files on), and, if asked, a receiver
//! that fetches every newer model a model manager announces.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;

use super::model::{InferError, Model, ModelInfo};
use super::wire::{self, Announcement, Role};
use crate::config::NodeConfig;
use crate::error::{BoxError, Error};
use crate::job::{Job, JobContext};
use crate::node::{
    AsyncInferenceNode, JobReplier, ModelManagerReceiverNode, ModelManagerSenderNode,
};
use crate::payload::{Detected, Payload};
use crate::runtime::BoundedThread;
use crate::wire::{AmlipId, ModelStatistics};

/// How long a host waits for a model sender to hand a model over.
const FETCH_TIMEOUT: Duration = Duration::from_secs(60);

/// The models a node serves, by name. Cloning shares them.
///
/// Replacing a model swaps an `Arc`: a request already running keeps the model it started
/// with and is answered by it, so a replacement never drops a request.
#[derive(Clone, Default)]
pub struct ModelServer {
    models: Arc<RwLock<BTreeMap<String, Arc<Model>>>>,
}

impl ModelServer {
    /// Serves nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves `model` under its name, replacing an older version. Returns false (and keeps
    /// the one held) if the held version is as new or newer.
    pub fn install(&self, model: Model) -> bool {
        let mut models = self.models.write().expect("models");
        let name = model.info().name.clone();
        if let Some(held) = models.get(&name) {
            if held.info().version >= model.info().version {
                return false;
            }
        }
        tracing::info!(
            model = %name,
            version = model.info().version,
            kind = %model.info().kind,
            "serving model"
        );
        models.insert(name, Arc::new(model));
        true
    }

    /// Loads the model file named by `spec`, `[NAME=]FILE` (named after the file's stem
    /// without NAME), and serves it; returns what it serves.
    pub fn load_spec(&self, spec: &str) -> Result<ModelInfo, InferError> {
        let (name, path) = match spec.split_once('=') {
            Some((name, path)) => (Some(name), path),
            None => (None, spec),
        };
        let model = Model::load(std::path::Path::new(path), name)?;
        let info = model.info().clone();
        self.install(model);
        Ok(info)
    }

    /// The model served under `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Model>> {
        self.models.read().expect("models").get(name).cloned()
    }

    /// What is served.
    pub fn models(&self) -> Vec<ModelInfo> {
        self.models
            .read()
            .expect("models")
            .values()
            .map(|m| m.info().clone())
            .collect()
    }

    fn served(&self) -> String {
        let names: Vec<String> = self
            .models
            .read()
            .expect("models")
            .keys()
            .cloned()
            .collect();
        if names.is_empty() {
            "none".into()
        } else {
            names.join(", ")
        }
    }

    fn model(&self, name: &str) -> Result<Arc<Model>, InferError> {
        self.get(name).ok_or_else(|| InferError::Unknown {
            name: name.into(),
            served: self.served(),
        })
    }

    /// The answer to one request: an amlip request payload (named tensors for a named model),
    /// or, from a plain AML-IP edge node, an MNIST image as a JSON list of 784 integers
    /// (answered with the predicted class as text).
    pub fn answer(&self, request: &Bytes) -> Result<Bytes, InferError> {
        match Payload::detect(request) {
            Detected::Amlip(Ok(p)) => {
                let req = wire::Request::from_payload(&p)?;
                let model = self.model(&req.model)?;
                let outputs = model.run(&req.inputs)?;
                Ok(wire::answer(model.info(), outputs)?)
            }
            Detected::Amlip(Err(e)) => Err(e.into()),
            Detected::Plain => self.answer_text(request),
        }
    }

    /// AML-IP's edge nodes send text: a JSON list of pixel values, or
    /// `{"model": NAME, "input": [...]}`. The answer is the class as text.
    fn answer_text(&self, request: &Bytes) -> Result<Bytes, InferError> {
        let (name, pixels) =
            wire::parse_text_request(request).map_err(|why| InferError::Input {
                name: "(plain request)".into(),
                why,
            })?;
        let model = match name {
            Some(name) => self.model(&name)?,
            None => self.image_model(pixels.len())?,
        };
        let spec = &model.info().inputs[0];
        let input = wire::fit_to(&pixels, spec).map_err(|why| InferError::Input {
            name: model.info().name.clone(),
            why,
        })?;
        let outputs = model.run(&BTreeMap::from([(spec.name.clone(), input)]))?;
        Ok(Bytes::from(wire::label_text(model.info(), &outputs)))
    }

    /// The one model that takes `width` values per sample, for requests that name none.
    fn image_model(&self, width: usize) -> Result<Arc<Model>, InferError> {
        let models = self.models.read().expect("models");
        let fits: Vec<&Arc<Model>> = models
            .values()
            .filter(|m| {
                let i = &m.info().inputs;
                let per_sample: Option<usize> = i
                    .first()
                    .and_then(|s| s.shape.iter().skip(1).copied().product());
                i.len() == 1 && per_sample == Some(width)
            })
            .collect();
        match fits.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(InferError::Input {
                name: "(plain request)".into(),
                why: format!(
                    "no model here takes {width} values per sample (models served: {})",
                    self.served()
                ),
            }),
            _ => Err(InferError::Input {
                name: "(plain request)".into(),
                why: format!(
                    "several models take {width} values; name one: {{\"model\": NAME, \"input\": [...]}}"
                ),
            }),
        }
    }
}

impl JobReplier for ModelServer {
    fn process_job(&self, job: &Job, _ctx: &JobContext) -> Result<Bytes, BoxError> {
        Ok(self.answer(&job.data)?)
    }
}

/// A model server on the domain: an [`AsyncInferenceNode`] answering requests, a
/// [`ModelManagerSenderNode`] announcing every model served (and handing its file to receivers
/// that ask), and with [`follow`](HostOptions::follow) a [`ModelManagerReceiverNode`] that
/// fetches every newer model announced on the domain (by model managers and by other hosts)
/// and serves it.
pub struct ModelHost {
    server: ModelServer,
    inference: AsyncInferenceNode,
    sender: Arc<ModelManagerSenderNode>,
    follower: Option<(
        Arc<AtomicBool>,
        BoundedThread,
        Arc<ModelManagerReceiverNode>,
    )>,
}

/// How a [`ModelHost`] behaves.
#[derive(Debug, Clone, Default)]
pub struct HostOptions {
    /// Fetch and serve every model announced on the domain: published by model managers, or
    /// served by other hosts (so hosts that follow serve the same models).
    pub follow: bool,
}

impl ModelHost {
    /// Starts serving `server`'s models with nodes configured as `cfg` (their names get
    /// `Inf`, `Mod` and `Rcv` suffixes).
    pub fn start(cfg: &NodeConfig, server: ModelServer, opts: HostOptions) -> Result<Self, Error> {
        let handed = server.clone();
        let sender = Arc::new(ModelManagerSenderNode::with_config(
            cfg.suffixed("Mod"),
            move |_client: &AmlipId, request: &Bytes| -> Result<Bytes, BoxError> {
                let name = wire::parse_model_request(request)?;
                let models = handed.models.read().expect("models");
                let held = models.iter().map(|(n, m)| (n.as_str(), m));
                Ok(wire::pick_model(&name, held)?.file().clone())
            },
        )?);
        for info in server.models() {
            announce(&sender, Role::Server, &info);
        }
        let mut inference = AsyncInferenceNode::with_config(cfg.suffixed("Inf"))?;
        // Requests are independent and a model is shared read-only: one worker per core, so
        // small requests compute side by side (a large batch is also cut across rayon's
        // threads, see `nn::serve`).
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        inference.run_on(server.clone(), workers)?;
        let follower = if opts.follow {
            let receiver = Arc::new(ModelManagerReceiverNode::with_config(cfg.suffixed("Rcv"))?);
            let stop = Arc::new(AtomicBool::new(false));
            let thread = {
                let (stop, receiver, server, sender) = (
                    stop.clone(),
                    receiver.clone(),
                    server.clone(),
                    sender.clone(),
                );
                BoundedThread::spawn("amlip-model-follow", move || {
                    follow(&stop, &receiver, &server, &sender)
                })?
            };
            Some((stop, thread, receiver))
        } else {
            None
        };
        Ok(Self {
            server,
            inference,
            sender,
            follower,
        })
    }

    /// The models served.
    pub fn server(&self) -> &ModelServer {
        &self.server
    }

    /// The inference node's id (edge nodes' requests go to it).
    pub fn inference_id(&self) -> &AmlipId {
        self.inference.id()
    }

    /// Requests answered so far.
    pub fn served(&self) -> u64 {
        self.inference.served()
    }

    /// Serves `model` too (or instead of an older version), and announces it.
    pub fn install(&self, model: Model) -> bool {
        let info = model.info().clone();
        let installed = self.server.install(model);
        if installed {
            announce(&self.sender, Role::Server, &info);
        }
        installed
    }
}

impl Drop for ModelHost {
    fn drop(&mut self) {
        if let Some((stop, mut thread, _)) = self.follower.take() {
            stop.store(true, Ordering::Relaxed);
            thread.join(Duration::from_secs(2));
        }
        self.inference.stop();
    }
}

fn announce(sender: &ModelManagerSenderNode, role: Role, info: &ModelInfo) {
    let blob = Announcement {
        role,
        info: info.clone(),
    }
    .to_bytes();
    if let Err(e) = sender.publish_statistics(&info.name, blob) {
        tracing::warn!(model = %info.name, "cannot announce the model: {e}");
    }
}

/// Fetches every model announced (by a model manager, or by another host serving it) in a
/// newer version than the one served.
fn follow(
    stop: &AtomicBool,
    receiver: &ModelManagerReceiverNode,
    server: &ModelServer,
    sender: &ModelManagerSenderNode,
) {
    let updates = receiver.watch();
    let mut backlog: Vec<ModelStatistics> = receiver.statistics();
    while !stop.load(Ordering::Relaxed) {
        for s in backlog.drain(..) {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            fetch(&s, receiver, server, sender);
        }
        match updates.recv_timeout(Duration::from_millis(100)) {
            Ok(s) => backlog.push(s),
            Err(flume::RecvTimeoutError::Timeout) => {}
            Err(flume::RecvTimeoutError::Disconnected) => return,
        }
    }
}

fn fetch(
    s: &ModelStatistics,
    receiver: &ModelManagerReceiverNode,
    server: &ModelServer,
    sender: &ModelManagerSenderNode,
) {
    let a = match Announcement::parse(&s.data) {
        Ok(a) => a,
        Err(why) => {
            tracing::warn!(sender = %s.server_id, model = %s.name, "ignoring a model announcement: {why}");
            return;
        }
    };
    // From a model manager, or from another host serving it (hosts that follow the domain
    // end up serving the same models, so any of them can take any request).
    if a.info.name != s.name {
        return;
    }
    if server
        .get(&a.info.name)
        .is_some_and(|m| m.info().version >= a.info.version)
    {
        return;
    }
    tracing::info!(model = %a.info.name, version = a.info.version, sender = %s.server_id, "fetching model");
    let file = match receiver.request_model(
        &s.server_id,
        wire::model_request(&a.info.name),
        FETCH_TIMEOUT,
    ) {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(model = %a.info.name, "model not fetched: {e}");
            return;
        }
    };
    match Model::from_bytes(&a.info.name, a.info.version, file) {
        Ok(model) => {
            let info = model.info().clone();
            if server.install(model) {
                announce(sender, Role::Server, &info);
            }
        }
        Err(e) => tracing::warn!(sender = %s.server_id, "model not served: {e}"),
    }
}
