//! The nodes that do work: computing nodes (AML-IP's, on the job topics) and inference nodes
//! (on the inference topics), in AML-IP's blocking form (`process_one`: one job per call, on
//! the caller's thread) or its background form (`serve`: every job, on the node's threads).
//!
//! A background node serves job kinds written in Python (a function of JSON parameters and
//! tensors, registered under a kind name) beside, if asked, the built-in kinds; payloads that
//! name no kind (AML-IP's plain text) go to a plain handler. The GIL is taken only while
//! Python code runs; an exception becomes an error solution carrying its message, and the node
//! keeps serving.

use std::time::Instant;

use amlip_core::error::BoxError;
use amlip_core::job::{Job, JobContext};
use amlip_core::kind::{BuiltinKinds, Registry};
use amlip_core::node::{AsyncComputingNode, AsyncInferenceNode, ComputingNode, InferenceNode};
use amlip_core::payload::Payload;
use bytes::Bytes;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{PyBytes, PyDict};

use crate::errors::{argument, to_py};
use crate::held::Held;
use crate::tensors::{self, TensorIn};
use crate::wait;

enum Node {
    Sync(ComputingNode),
    SyncInference(InferenceNode),
    Async(AsyncComputingNode),
    AsyncInference(AsyncInferenceNode),
}

/// An exception as the error a main reads: `ValueError: what went wrong`.
fn describe(py: Python<'_>, e: PyErr) -> BoxError {
    let text = e.value(py).to_string();
    let kind = e
        .get_type(py)
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "Exception".into());
    if text.is_empty() {
        kind.into()
    } else {
        format!("{kind}: {text}").into()
    }
}

/// Runs `f` with the GIL, unless the interpreter is going away.
fn in_python<T>(f: impl FnOnce(Python<'_>) -> Result<T, BoxError>) -> Result<T, BoxError> {
    if wait::exiting() {
        return Err("the node's Python interpreter is exiting".into());
    }
    Python::attach(f)
}

/// A plain handler: `handler(data: bytes, task_id, client_id) -> bytes | str`.
fn plain_call(py: Python<'_>, handler: &Py<PyAny>, job: &Job) -> Result<Bytes, BoxError> {
    let data = PyBytes::new(py, &job.data);
    let out = handler
        .call1(py, (data, job.task_id, job.client_id.to_string()))
        .map_err(|e| describe(py, e))?;
    let out = out.bind(py);
    if let Ok(b) = out.extract::<PyBackedBytes>() {
        return Ok(Bytes::from_owner(b));
    }
    if let Ok(s) = out.extract::<String>() {
        return Ok(Bytes::from(s.into_bytes()));
    }
    Err(format!(
        "the job handler returned {}, not bytes or str",
        out.get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_default()
    )
    .into())
}

/// A kind written in Python: `f(params_json, tensors) -> (params_json, tensors)`.
fn kind_call(py: Python<'_>, f: &Py<PyAny>, p: Payload, kind: &str) -> Result<Payload, BoxError> {
    let inputs = tensors::to_py(py, p.tensors());
    let out = f
        .call1(py, (p.params_json().to_string(), inputs))
        .map_err(|e| describe(py, e))?;
    let (params, outputs): (String, Vec<TensorIn>) = out.extract(py).map_err(|e| {
        format!("job kind {kind:?} returned something else than (params, tensors): {e}")
    })?;
    tensors::build(kind, &params, outputs).map_err(|e| describe(py, e))
}

/// A computing or inference node.
#[pyclass(module = "amlip._native", frozen)]
pub struct Computing {
    node: Held<Node>,
    id: String,
    domain: u16,
}

impl Computing {
    fn with_node<T>(&self, f: impl FnOnce(&mut Node) -> T) -> PyResult<T> {
        self.node.with(f)
    }
}

#[pymethods]
impl Computing {
    /// Joins the domain. `inference`: on the inference topics (an inference node);
    /// `blocking`: AML-IP's one-job-per-call form (`process_one`), else `serve`.
    #[new]
    #[pyo3(signature = (name, domain = None, network = None, inference = false, blocking = false))]
    fn new(
        py: Python<'_>,
        name: &str,
        domain: Option<u16>,
        network: Option<&str>,
        inference: bool,
        blocking: bool,
    ) -> PyResult<Self> {
        let cfg = crate::config::node(name, domain, network)?;
        let domain = cfg.domain_id();
        let node = py
            .detach(move || match (inference, blocking) {
                (false, true) => ComputingNode::with_config(cfg).map(Node::Sync),
                (true, true) => InferenceNode::with_config(cfg).map(Node::SyncInference),
                (false, false) => AsyncComputingNode::with_config(cfg).map(Node::Async),
                (true, false) => AsyncInferenceNode::with_config(cfg).map(Node::AsyncInference),
            })
            .map_err(to_py)?;
        let id = match &node {
            Node::Sync(n) => n.id().to_string(),
            Node::SyncInference(n) => n.id().to_string(),
            Node::Async(n) => n.id().to_string(),
            Node::AsyncInference(n) => n.id().to_string(),
        };
        Ok(Self {
            node: Held::new(node, format!("node {id}")),
            id,
            domain,
        })
    }

    /// The node's id.
    #[getter]
    fn id(&self) -> &str {
        &self.id
    }

    /// The node's DDS domain.
    #[getter]
    fn domain(&self) -> u16 {
        self.domain
    }

    /// Starts serving in the background: payloads of each kind in `kinds` (name -> function of
    /// `(params_json, tensors)`), the built-in kinds if `builtin`, and payloads naming no kind
    /// with `plain(data, task_id, client_id) -> bytes`; with `raw`, `plain` gets every job,
    /// whatever it holds (as AML-IP's nodes do). Returns the kinds served.
    #[pyo3(signature = (kinds = None, plain = None, builtin = false, raw = false))]
    fn serve(
        &self,
        kinds: Option<&Bound<'_, PyDict>>,
        plain: Option<Py<PyAny>>,
        builtin: bool,
        raw: bool,
    ) -> PyResult<Vec<String>> {
        if raw {
            let handler = plain.ok_or_else(|| argument("raw serving needs a plain handler"))?;
            let replier =
                move |job: &Job, _: &JobContext| in_python(|py| plain_call(py, &handler, job));
            self.with_node(|n| match n {
                Node::Async(n) => n.run(replier).map_err(to_py),
                Node::AsyncInference(n) => n.run(replier).map_err(to_py),
                _ => Err(argument("a blocking node serves with process_one()")),
            })??;
            return Ok(Vec::new());
        }
        let mut registry = if builtin {
            Registry::builtin()
        } else {
            Registry::new()
        };
        for (name, f) in kinds.into_iter().flat_map(|d| d.iter()) {
            let name: String = name.extract()?;
            if !f.is_callable() {
                return Err(argument(format!("job kind {name:?}: not a function")));
            }
            let f: Py<PyAny> = f.unbind();
            let kind = name.clone();
            registry = registry.with_named(&name, move |p: Payload, _: &JobContext| {
                in_python(|py| kind_call(py, &f, p, &kind))
            });
        }
        if let Some(handler) = plain {
            registry = registry.plain(move |job: &Job, _: &JobContext| {
                in_python(|py| plain_call(py, &handler, job))
            });
        }
        let served: Vec<String> = registry.kinds().iter().map(|k| k.to_string()).collect();
        self.with_node(|n| match n {
            Node::Async(n) => n.run(registry).map_err(to_py),
            Node::AsyncInference(n) => n.run(registry).map_err(to_py),
            _ => Err(argument("a blocking node serves with process_one()")),
        })??;
        Ok(served)
    }

    /// Waits at most `timeout` seconds (`None`: for ever) for one job and answers it with
    /// `handler(data, task_id, client_id) -> bytes | str` on this thread: `(task_id,
    /// client_id, error or None)`, or `None` if no job came.
    #[pyo3(signature = (handler, timeout = None))]
    fn process_one(
        &self,
        py: Python<'_>,
        handler: Py<PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<Option<(u32, String, Option<String>)>> {
        let deadline = wait::deadline(timeout)?;
        let served = wait::until(py, deadline, |slice| {
            let call = |job: &Job| Python::attach(|py| plain_call(py, &handler, job));
            let r = self.with_node(|n| match n {
                Node::Sync(n) => Some(n.process_job(call, slice)),
                Node::SyncInference(n) => Some(n.process_inference(call, slice)),
                _ => None,
            });
            match r {
                Ok(Some(Err(amlip_core::Error::NoJob(_)))) => None,
                other => Some(other),
            }
        })?;
        match served {
            None => Ok(None),
            Some(Ok(Some(Ok(s)))) => Ok(Some((s.task_id, s.client_id.to_string(), s.error))),
            Some(Ok(Some(Err(e)))) => Err(to_py(e)),
            Some(Ok(None)) => Err(argument("a background node serves with serve()")),
            Some(Err(e)) => Err(e),
        }
    }

    /// Jobs answered with a solution, and with an error.
    fn counts(&self) -> PyResult<(u64, u64)> {
        self.with_node(|n| match n {
            Node::Sync(n) => (n.jobs_served(), 0),
            Node::SyncInference(_) => (0, 0),
            Node::Async(n) => (n.jobs_served(), n.jobs_failed()),
            Node::AsyncInference(n) => (n.served(), n.probe().jobs_failed()),
        })
    }

    /// Stops serving and leaves the domain (a job in progress is still answered).
    fn stop(&self, py: Python<'_>) {
        let node = self.node.take();
        let started = Instant::now();
        py.detach(move || drop(node));
        tracing::debug!(id = %self.id, "stopped in {:?}", started.elapsed());
    }
}
