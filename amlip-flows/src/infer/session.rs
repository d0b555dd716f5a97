//! A SmartSim-style inference session: put named tensors, set a model (it travels to the
//! serving nodes through a model manager), run it on named inputs, get the named outputs.
//!
//! ```no_run
//! use std::time::Duration;
//! use amlip_fabric::config::NodeConfig;
//! use amlip_fabric::payload::Tensor;
//! use amlip_flows::infer::Session;
//!
//! let mut s = Session::connect(NodeConfig::new("Client").domain(7), Duration::from_secs(30))?;
//! s.set_model_from_file("cnn", "datasets/fixtures/onnx/cnn.onnx".as_ref())?;
//! let x = ndarray::Array4::<f32>::zeros((1, 1, 28, 28));
//! s.put_tensor("input", Tensor::from_f32(x.view()));
//! s.run_model("cnn", &["input"], &["output"])?;
//! println!("{:?}", s.get_tensor("output").map(|t| t.shape().to_vec()));
//! # Ok::<(), amlip_flows::infer::SessionError>(())
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;

use super::model::{InferError, ModelInfo};
use super::publish::Publisher;
use super::wire::{Announcement, Answer, Request};
use crate::config::NodeConfig;
use crate::error::Error;
use crate::node::EdgeNode;
use crate::payload::{PayloadError, Tensor};

/// Why a session call failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// A node could not start or a request failed on the way.
    #[error(transparent)]
    Node(#[from] Error),
    /// The model file, or the inputs, do not fit.
    #[error(transparent)]
    Model(#[from] InferError),
    /// A tensor named in `run_model` was never put.
    #[error("no tensor {0:?} in this session (put it first)")]
    NoTensor(String),
    /// The answer could not be read.
    #[error(transparent)]
    Payload(#[from] PayloadError),
    /// The model has fewer outputs than names were given.
    #[error("model {model:?} gave {got} outputs ({names}), {wanted} were asked for")]
    Outputs {
        /// The model.
        model: String,
        /// Outputs it gave.
        got: usize,
        /// Their names.
        names: String,
        /// Names asked for.
        wanted: usize,
    },
    /// No inference node announced serving the model in time.
    #[error("no inference node serves model {name:?} version {version} after {waited:?}")]
    NotServed {
        /// The model.
        name: String,
        /// Its version.
        version: u64,
        /// How long the session waited.
        waited: Duration,
    },
}

/// A client session: an edge node for requests and a [`Publisher`] for the models it sets.
/// Tensors are kept locally until a run sends them.
pub struct Session {
    edge: EdgeNode,
    publisher: Publisher,
    tensors: BTreeMap<String, Tensor>,
    timeout: Duration,
}

impl Session {
    /// Joins the domain as `cfg` says; every later call waits at most `timeout`.
    pub fn connect(cfg: NodeConfig, timeout: Duration) -> Result<Self, SessionError> {
        Ok(Self {
            edge: EdgeNode::with_config(cfg.suffixed("Edge"))?,
            publisher: Publisher::start(&cfg)?,
            tensors: BTreeMap::new(),
            timeout,
        })
    }

    /// Keeps `tensor` under `name` for later runs (replacing one of that name).
    pub fn put_tensor(&mut self, name: &str, tensor: Tensor) {
        self.tensors.insert(name.to_owned(), tensor);
    }

    /// The tensor under `name`: one put, or an output of a run.
    pub fn get_tensor(&self, name: &str) -> Option<&Tensor> {
        self.tensors.get(name)
    }

    /// Forgets the tensor under `name`; returns it if there was one.
    pub fn delete_tensor(&mut self, name: &str) -> Option<Tensor> {
        self.tensors.remove(name)
    }

    /// Sets the model `name` from a file (ONNX or an amlip model); see [`set_model`](Self::set_model).
    pub fn set_model_from_file(
        &mut self,
        name: &str,
        path: &Path,
    ) -> Result<ModelInfo, SessionError> {
        let file = std::fs::read(path).map_err(|e| InferError::Load {
            name: name.into(),
            why: format!("{}: {e}", path.display()),
        })?;
        self.set_model(name, Bytes::from(file))
    }

    /// Offers the model `file` under `name` to the domain's inference nodes and waits until
    /// one announces that it serves this version. The file is checked here first, so a
    /// corrupt one fails at once, naming what is wrong.
    pub fn set_model(&mut self, name: &str, file: Bytes) -> Result<ModelInfo, SessionError> {
        let info = self.publisher.publish(name, file)?;
        if self
            .publisher
            .wait_served(name, info.version, 1, self.timeout)
            .is_empty()
        {
            return Err(SessionError::NotServed {
                name: name.into(),
                version: info.version,
                waited: self.timeout,
            });
        }
        Ok(info)
    }

    /// Runs the model `name` on the tensors `inputs` (by the names they were put under,
    /// sent in the model's input order) and keeps its outputs under `outputs`, in the
    /// model's output order.
    pub fn run_model(
        &mut self,
        name: &str,
        inputs: &[&str],
        outputs: &[&str],
    ) -> Result<(), SessionError> {
        let infos = self.model_inputs(name);
        let mut sent = BTreeMap::new();
        for (i, key) in inputs.iter().enumerate() {
            let t = self
                .tensors
                .get(*key)
                .ok_or_else(|| SessionError::NoTensor((*key).to_owned()))?;
            let as_name = infos.get(i).cloned().unwrap_or_else(|| (*key).to_owned());
            sent.insert(as_name, t.clone());
        }
        let request = Request {
            model: name.to_owned(),
            inputs: sent,
        }
        .to_bytes()?;
        let solution = self.edge.request_inference(request, self.timeout)?;
        let answer = Answer::from_bytes(&solution.data)?;
        let order = self.model_outputs(name, &answer);
        if order.len() < outputs.len() {
            return Err(SessionError::Outputs {
                model: name.into(),
                got: order.len(),
                names: order.join(", "),
                wanted: outputs.len(),
            });
        }
        let mut answer = answer;
        for (key, out) in outputs.iter().zip(order) {
            if let Some(t) = answer.outputs.remove(&out) {
                self.tensors.insert((*key).to_owned(), t);
            }
        }
        Ok(())
    }

    /// The model's input names, in order, as announced.
    fn model_inputs(&self, name: &str) -> Vec<String> {
        self.announced(name)
            .map(|i| i.inputs.into_iter().map(|s| s.name).collect())
            .unwrap_or_default()
    }

    /// The answer's output names in the model's order (as announced; else the answer's).
    fn model_outputs(&self, name: &str, answer: &Answer) -> Vec<String> {
        match self.announced(name) {
            Some(i)
                if i.outputs
                    .iter()
                    .all(|o| answer.outputs.contains_key(&o.name)) =>
            {
                i.outputs.into_iter().map(|s| s.name).collect()
            }
            _ => answer.outputs.keys().cloned().collect(),
        }
    }

    fn announced(&self, name: &str) -> Option<ModelInfo> {
        self.publisher
            .statistics()
            .into_iter()
            .filter(|s| s.name == name)
            .filter_map(|s| Announcement::parse(&s.data).ok())
            .map(|a| a.info)
            .max_by_key(|i| i.version)
    }
}
