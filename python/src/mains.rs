//! The nodes that send work: `Main` (AML-IP's main nodes, on the job topics) and `Edge` (its
//! edge nodes, on the inference topics). Both are asynchronous underneath; an outcome goes to
//! the [`Collector`] its job was submitted with (blocking calls, batches, asyncio), else to the
//! node's Python callback (AML-IP's async nodes), called on the node's listener thread.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use amlip_core::error::{Error as AmlipError, JobError};
use amlip_core::node::{AsyncEdgeNode, AsyncMainNode, ClientStats, SolutionListener};
use amlip_core::wire::{AmlipId, TaskId};
use bytes::Bytes;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{PyBytes, PyDict};

use crate::errors::to_py;
use crate::held::Held;
use crate::wait;

/// How a job ended: its solution and who computed it, or why not.
type Outcome = Result<(Bytes, AmlipId), JobError>;

/// Where outcomes go: the collector a job was submitted with, else the callback.
struct Router {
    slots: Mutex<HashMap<TaskId, flume::Sender<(TaskId, Outcome)>>>,
    callback: Option<Py<PyAny>>,
}

impl Router {
    fn route(&self, task: TaskId, outcome: Outcome) {
        let slot = self.slots.lock().ok().and_then(|mut s| s.remove(&task));
        if let Some(tx) = slot {
            let _ = tx.send((task, outcome));
            return;
        }
        let Some(cb) = &self.callback else {
            return;
        };
        if wait::exiting() {
            return;
        }
        Python::attach(|py| {
            let called = match outcome {
                Ok((data, server)) => cb.call1(
                    py,
                    (PyBytes::new(py, &data), task, server.to_string(), py.None()),
                ),
                Err(e) => cb.call1(
                    py,
                    (
                        py.None(),
                        task,
                        py.None(),
                        to_py(AmlipError::Job(e)).value(py).clone(),
                    ),
                ),
            };
            if let Err(e) = called {
                // As Python's own threads do: the traceback on stderr, the node goes on.
                e.print(py);
            }
        });
    }
}

struct Listen(Arc<Router>);

impl SolutionListener for Listen {
    fn solution_received(&self, solution: Bytes, task_id: TaskId, server_id: AmlipId) {
        self.0.route(task_id, Ok((solution, server_id)))
    }

    fn job_failed(&self, task_id: TaskId, error: JobError) {
        self.0.route(task_id, Err(error))
    }
}

enum Client {
    Main(AsyncMainNode),
    Edge(AsyncEdgeNode),
}

impl Client {
    fn submit(&self, data: Bytes, timeout: Option<Duration>) -> Result<TaskId, AmlipError> {
        match (self, timeout) {
            (Client::Main(n), Some(t)) => n.request_job_solution_with_timeout(data, t),
            (Client::Main(n), None) => n.request_job_solution(data),
            (Client::Edge(n), Some(t)) => n.request_inference_with_timeout(data, t),
            (Client::Edge(n), None) => n.request_inference(data),
        }
    }

    fn cancel(&self, task: TaskId) {
        match self {
            Client::Main(n) => n.cancel(task),
            Client::Edge(n) => n.cancel(task),
        }
    }

    fn stats(&self) -> ClientStats {
        match self {
            Client::Main(n) => n.stats(),
            Client::Edge(n) => n.stats(),
        }
    }
}

/// Receives the outcomes of the jobs submitted with it, in the order they end.
#[pyclass(module = "amlip._native", frozen)]
pub struct Collector {
    tx: flume::Sender<(TaskId, Outcome)>,
    rx: flume::Receiver<(TaskId, Outcome)>,
}

/// One ended job for Python: `(task_id, solution bytes or None, server id or None, error or
/// None)`.
type Ended<'py> = (
    TaskId,
    Option<Bound<'py, PyBytes>>,
    Option<String>,
    Option<PyErr>,
);

fn ended(py: Python<'_>, (task, outcome): (TaskId, Outcome)) -> Ended<'_> {
    match outcome {
        Ok((data, server)) => (
            task,
            Some(PyBytes::new(py, &data)),
            Some(server.to_string()),
            None,
        ),
        Err(e) => (task, None, None, Some(to_py(AmlipError::Job(e)))),
    }
}

#[pymethods]
impl Collector {
    #[new]
    fn new() -> Self {
        let (tx, rx) = flume::unbounded();
        Self { tx, rx }
    }

    /// The next ended job, waiting at most `timeout` seconds (`None`: for ever); `None` if
    /// nothing ended in time.
    #[pyo3(signature = (timeout = None))]
    fn next<'py>(&self, py: Python<'py>, timeout: Option<f64>) -> PyResult<Option<Ended<'py>>> {
        let deadline = wait::deadline(timeout)?;
        let got = wait::until(py, deadline, |slice| self.rx.recv_timeout(slice).ok())?;
        Ok(got.map(|g| ended(py, g)))
    }
}

/// A main node (or, with `edge=True`, an edge node).
#[pyclass(module = "amlip._native", frozen)]
pub struct Main {
    node: Held<Client>,
    router: Arc<Router>,
    id: String,
    domain: u16,
}

impl Main {
    fn with_node<T>(&self, f: impl FnOnce(&Client) -> T) -> PyResult<T> {
        self.node.with(|n| f(n))
    }

    fn submit_to(
        &self,
        data: Bytes,
        timeout: Option<f64>,
        tx: &flume::Sender<(TaskId, Outcome)>,
    ) -> PyResult<TaskId> {
        let timeout = timeout.map(wait::duration).transpose()?;
        // The slot is in place before the listener can look for it.
        let mut slots = self.router.slots.lock().expect("slots");
        let task = self
            .with_node(|n| n.submit(data, timeout))?
            .map_err(to_py)?;
        slots.insert(task, tx.clone());
        Ok(task)
    }
}

#[pymethods]
impl Main {
    /// Starts the node; `callback(solution, task_id, server_id, error)` gets the outcomes of
    /// jobs submitted without a collector.
    #[new]
    #[pyo3(signature = (name, domain = None, network = None, edge = false, callback = None))]
    fn new(
        py: Python<'_>,
        name: &str,
        domain: Option<u16>,
        network: Option<&str>,
        edge: bool,
        callback: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        let cfg = crate::config::node(name, domain, network)?;
        let domain = cfg.domain_id();
        let router = Arc::new(Router {
            slots: Mutex::new(HashMap::new()),
            callback,
        });
        let listen = Listen(router.clone());
        let node = py
            .detach(|| {
                if edge {
                    AsyncEdgeNode::with_config(cfg, listen).map(Client::Edge)
                } else {
                    AsyncMainNode::with_config(cfg, listen).map(Client::Main)
                }
            })
            .map_err(to_py)?;
        let id = match &node {
            Client::Main(n) => n.id().to_string(),
            Client::Edge(n) => n.id().to_string(),
        };
        Ok(Self {
            node: Held::new(node, format!("node {id}")),
            router,
            id,
            domain,
        })
    }

    /// The node's id, e.g. `Main.0a.1b.2c.3d`.
    #[getter]
    fn id(&self) -> &str {
        &self.id
    }

    /// The node's DDS domain.
    #[getter]
    fn domain(&self) -> u16 {
        self.domain
    }

    /// Sends `data`; returns its task id at once. Its outcome goes to `collector`, else to the
    /// node's callback. `timeout`: seconds until the job fails (default: the node's deadline).
    #[pyo3(signature = (data, timeout = None, collector = None))]
    fn submit(
        &self,
        data: PyBackedBytes,
        timeout: Option<f64>,
        collector: Option<&Collector>,
    ) -> PyResult<TaskId> {
        let data = Bytes::from_owner(data);
        match collector {
            Some(c) => self.submit_to(data, timeout, &c.tx),
            None => {
                let timeout = timeout.map(wait::duration).transpose()?;
                self.with_node(|n| n.submit(data, timeout))?.map_err(to_py)
            }
        }
    }

    /// Sends `data` and waits at most `timeout` seconds for its solution: `(solution,
    /// server_id, task_id)`. Ctrl-C cancels the job and raises `KeyboardInterrupt`.
    #[pyo3(signature = (data, timeout = None))]
    fn request<'py>(
        &self,
        py: Python<'py>,
        data: PyBackedBytes,
        timeout: Option<f64>,
    ) -> PyResult<(Bound<'py, PyBytes>, String, TaskId)> {
        let (tx, rx) = flume::bounded(1);
        let task = self.submit_to(Bytes::from_owner(data), timeout, &tx)?;
        // The engine fails the job at its deadline; the margin only covers a dead engine.
        let deadline = wait::deadline(timeout)?.map(|d| d + Duration::from_secs(2));
        let got = wait::until(py, deadline, |slice| rx.recv_timeout(slice).ok());
        let got = match got {
            Ok(Some(g)) => g,
            Ok(None) => {
                self.cancel(task);
                return Err(crate::errors::TimeoutError::new_err(format!(
                    "job {task} got no solution in time"
                )));
            }
            Err(interrupted) => {
                self.cancel(task);
                return Err(interrupted);
            }
        };
        match ended(py, got) {
            (task, Some(data), Some(server), None) => Ok((data, server, task)),
            (_, _, _, Some(err)) => Err(err),
            _ => unreachable!("an outcome is a solution or an error"),
        }
    }

    /// Gives up on a job (its collector or callback hears it cancelled).
    fn cancel(&self, task: TaskId) {
        let _ = self.with_node(|n| n.cancel(task));
    }

    /// Counters: submitted, solved, failed, resent, duplicates dropped, waiting, running,
    /// computing nodes known, bytes sent and received.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.with_node(|n| n.stats())?;
        let d = PyDict::new(py);
        d.set_item("submitted", s.submitted)?;
        d.set_item("solved", s.solved)?;
        d.set_item("failed", s.failed)?;
        d.set_item("resent", s.resent)?;
        d.set_item("duplicates_dropped", s.duplicates_dropped)?;
        d.set_item("waiting", s.waiting)?;
        d.set_item("running", s.running.len())?;
        let nodes: Vec<String> = s.computing_nodes.iter().map(|i| i.to_string()).collect();
        d.set_item("computing_nodes", nodes)?;
        d.set_item("direct_sent", s.direct_sent)?;
        d.set_item("bytes_sent", s.bytes_sent)?;
        d.set_item("bytes_received", s.bytes_received)?;
        Ok(d)
    }

    /// Waits at most `timeout` seconds until `n` computing (or inference) nodes are known;
    /// returns how many are.
    #[pyo3(signature = (n, timeout = 30.0))]
    fn wait_for_nodes(&self, py: Python<'_>, n: usize, timeout: f64) -> PyResult<usize> {
        let deadline = wait::deadline(Some(timeout))?;
        let known = || {
            self.with_node(|c| c.stats().computing_nodes.len())
                .unwrap_or(0)
        };
        let got = wait::until(py, deadline, |slice| {
            let k = known();
            if k >= n {
                return Some(k);
            }
            std::thread::sleep(slice.min(Duration::from_millis(20)));
            None
        })?;
        Ok(got.unwrap_or_else(known))
    }

    /// Leaves the domain (status `dropped`); jobs still waiting fail as stopped.
    fn stop(&self, py: Python<'_>) {
        let node = self.node.take();
        let started = Instant::now();
        py.detach(move || drop(node));
        tracing::debug!(id = %self.id, "stopped in {:?}", started.elapsed());
    }
}
