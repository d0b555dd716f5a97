//! Watching the domain and trading models: the status node (every node's status, to a Python
//! callback), the cluster table (`amlip.cluster()`), and AML-IP's model-manager sender and
//! receiver.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use amlip_core::error::BoxError;
use amlip_core::node::{
    ClusterMonitor, ModelManagerReceiverNode, ModelManagerSenderNode, StatusNode,
};
use amlip_core::wire::{AmlipId, ModelStatistics, Status as WireStatus};
use bytes::Bytes;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::PyBytes;

use crate::config::parse_id;
use crate::errors::{to_py, Error};
use crate::held::Held;
use crate::wait;

/// A status node: `start(callback)` calls `callback(id, kind, state)` for every status
/// sample (kind and state as AML-IP's wire numbers), on a thread of its own.
#[pyclass(module = "amlip._native", frozen)]
pub struct Status {
    node: Held<StatusNode>,
    dispatcher: Mutex<Option<JoinHandle<()>>>,
}

#[pymethods]
impl Status {
    #[new]
    #[pyo3(signature = (name, domain = None, network = None))]
    fn new(
        py: Python<'_>,
        name: &str,
        domain: Option<u16>,
        network: Option<&str>,
    ) -> PyResult<Self> {
        let cfg = crate::config::node(name, domain, network)?;
        let node = py.detach(|| StatusNode::with_config(cfg)).map_err(to_py)?;
        Ok(Self {
            node: Held::new(node, "the status node"),
            dispatcher: Mutex::new(None),
        })
    }

    /// The node's id once started.
    #[getter]
    fn id(&self) -> Option<String> {
        self.node.with(|n| n.id().map(|i| i.to_string())).ok()?
    }

    /// Starts calling `callback(id, kind, state)` for every status seen (its own first).
    fn start(&self, py: Python<'_>, callback: Py<PyAny>) -> PyResult<()> {
        let (tx, rx) = flume::unbounded::<WireStatus>();
        let dispatcher = std::thread::Builder::new()
            .name("amlip-py-status".into())
            .spawn(move || {
                for s in rx {
                    if wait::exiting() {
                        return;
                    }
                    Python::attach(|py| {
                        let args = (s.id.to_string(), s.node_kind.to_u32(), s.state.to_u32());
                        if let Err(e) = callback.call1(py, args) {
                            e.print(py);
                        }
                    });
                }
            })
            .map_err(|e| Error::new_err(format!("cannot start the status thread: {e}")))?;
        self.node
            .with(|node| py.detach(|| node.process_status_async(move |s| drop(tx.send(s)))))?
            .map_err(to_py)?;
        if let Ok(mut d) = self.dispatcher.lock() {
            *d = Some(dispatcher);
        }
        Ok(())
    }

    /// Stops calling back and leaves the domain.
    fn stop(&self, py: Python<'_>) {
        let node = self.node.take();
        let dispatcher = self.dispatcher.lock().ok().and_then(|mut d| d.take());
        py.detach(move || {
            drop(node); // ends the status thread's sender, so the dispatcher ends too
            if let Some(d) = dispatcher {
                let _ = d.join();
            }
        });
    }
}

/// The nodes of a domain after watching it for `seconds`, as JSON (a list of objects: id,
/// kind, state, host, jobs_in_flight, jobs_done, last_heard_ms, amlip).
#[pyfunction]
#[pyo3(signature = (domain = None, network = None, seconds = 3.0))]
pub fn cluster(
    py: Python<'_>,
    domain: Option<u16>,
    network: Option<&str>,
    seconds: f64,
) -> PyResult<String> {
    let cfg = crate::config::node("Status", domain, network)?;
    let monitor = py.detach(|| ClusterMonitor::start(cfg)).map_err(to_py)?;
    let deadline = wait::deadline(Some(seconds))?;
    wait::until(py, deadline, |slice| {
        std::thread::sleep(slice);
        None::<()>
    })?;
    let nodes = monitor.nodes();
    py.detach(move || drop(monitor));
    serde_json::to_string(&nodes).map_err(|e| Error::new_err(e.to_string()))
}

type Replier = Arc<Mutex<Option<Py<PyAny>>>>;

/// AML-IP's model-manager sender: announces models (`publish`) and answers requests with
/// `replier(client_id, request) -> bytes | str`, set by `start`.
#[pyclass(module = "amlip._native", frozen)]
pub struct ModelSender {
    node: Held<ModelManagerSenderNode>,
    replier: Replier,
    id: String,
}

fn reply(replier: &Replier, client: &AmlipId, request: &Bytes) -> Result<Bytes, BoxError> {
    if wait::exiting() {
        return Err("the sender's Python interpreter is exiting".into());
    }
    let f = Python::attach(|py| {
        replier
            .lock()
            .ok()
            .and_then(|r| r.as_ref().map(|f| f.clone_ref(py)))
    });
    let Some(f) = f else {
        return Err("this sender has no model to hand over yet (start() not called)".into());
    };
    Python::attach(|py| {
        let out = f
            .call1(py, (client.to_string(), PyBytes::new(py, request)))
            .map_err(|e| BoxError::from(e.to_string()))?;
        let out = out.bind(py);
        if let Ok(b) = out.extract::<PyBackedBytes>() {
            return Ok(Bytes::from_owner(b));
        }
        out.extract::<String>()
            .map(|s| Bytes::from(s.into_bytes()))
            .map_err(|_| "the model replier returned neither bytes nor str".into())
    })
}

#[pymethods]
impl ModelSender {
    #[new]
    #[pyo3(signature = (name, domain = None, network = None))]
    fn new(
        py: Python<'_>,
        name: &str,
        domain: Option<u16>,
        network: Option<&str>,
    ) -> PyResult<Self> {
        let cfg = crate::config::node(name, domain, network)?;
        let replier: Replier = Arc::new(Mutex::new(None));
        let r = replier.clone();
        let node = py
            .detach(|| {
                ModelManagerSenderNode::with_config(cfg, move |c: &AmlipId, q: &Bytes| {
                    reply(&r, c, q)
                })
            })
            .map_err(to_py)?;
        let id = node.id().to_string();
        Ok(Self {
            node: Held::new(node, format!("sender {id}")),
            replier,
            id,
        })
    }

    /// The sender's id (receivers address requests to it).
    #[getter]
    fn id(&self) -> &str {
        &self.id
    }

    /// Announces the model `name` with `statistics` (late joiners receive it too).
    fn publish(&self, name: &str, statistics: PyBackedBytes) -> PyResult<()> {
        self.node
            .with(|n| n.publish_statistics(name, Bytes::from_owner(statistics)))?
            .map_err(to_py)
    }

    /// Starts answering requests with `replier(client_id, request) -> bytes | str`.
    fn start(&self, replier: Py<PyAny>) {
        if let Ok(mut r) = self.replier.lock() {
            *r = Some(replier);
        }
    }

    /// Leaves the domain.
    fn stop(&self, py: Python<'_>) {
        let node = self.node.take();
        py.detach(move || drop(node));
        if let Ok(mut r) = self.replier.lock() {
            *r = None;
        }
    }
}

/// AML-IP's model-manager receiver: sees announcements, asks a sender for its model.
#[pyclass(module = "amlip._native", frozen)]
pub struct ModelReceiver {
    node: Held<ModelManagerReceiverNode>,
    watch: flume::Receiver<ModelStatistics>,
    id: String,
}

type Announced<'py> = (String, String, Bound<'py, PyBytes>);

fn announced(py: Python<'_>, s: ModelStatistics) -> Announced<'_> {
    (s.name, s.server_id.to_string(), PyBytes::new(py, &s.data))
}

#[pymethods]
impl ModelReceiver {
    #[new]
    #[pyo3(signature = (name, domain = None, network = None))]
    fn new(
        py: Python<'_>,
        name: &str,
        domain: Option<u16>,
        network: Option<&str>,
    ) -> PyResult<Self> {
        let cfg = crate::config::node(name, domain, network)?;
        let node = py
            .detach(|| ModelManagerReceiverNode::with_config(cfg))
            .map_err(to_py)?;
        Ok(Self {
            watch: node.watch(),
            id: node.id().to_string(),
            node: Held::new(node, "the receiver"),
        })
    }

    /// The receiver's id.
    #[getter]
    fn id(&self) -> &str {
        &self.id
    }

    /// Every (model name, sender id, statistics) seen so far, the latest per sender and model.
    fn statistics<'py>(&self, py: Python<'py>) -> PyResult<Vec<Announced<'py>>> {
        let stats = self.node.with(|n| n.statistics())?;
        Ok(stats.into_iter().map(|s| announced(py, s)).collect())
    }

    /// The next announcement from now on, waiting at most `timeout` seconds; `None` if none.
    #[pyo3(signature = (timeout = None))]
    fn next_statistics<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<f64>,
    ) -> PyResult<Option<Announced<'py>>> {
        let deadline = wait::deadline(timeout)?;
        let got = wait::until(py, deadline, |slice| match self.watch.recv_timeout(slice) {
            Ok(s) => Some(Some(s)),
            Err(flume::RecvTimeoutError::Timeout) => None,
            Err(flume::RecvTimeoutError::Disconnected) => Some(None),
        })?;
        Ok(got.flatten().map(|s| announced(py, s)))
    }

    /// Asks `sender` (its id) for a model with `request`; waits at most `timeout` seconds.
    #[pyo3(signature = (sender, request, timeout = 30.0))]
    fn request<'py>(
        &self,
        py: Python<'py>,
        sender: &str,
        request: PyBackedBytes,
        timeout: f64,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let sender = parse_id(sender)?;
        let timeout = wait::duration(timeout)?;
        let request = Bytes::from_owner(request);
        let timeout = timeout.max(Duration::from_millis(1));
        let model = self
            .node
            .with(|n| py.detach(|| n.request_model(&sender, request, timeout)))?
            .map_err(to_py)?;
        Ok(PyBytes::new(py, &model))
    }

    /// Leaves the domain.
    fn stop(&self, py: Python<'_>) {
        let node = self.node.take();
        py.detach(move || drop(node));
    }
}
