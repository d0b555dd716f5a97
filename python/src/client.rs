//! SmartSim's client over amlip inference (`Client`: put a tensor, set a model, run it, get
//! the outputs), and sample streams from and into Python (`Producer`, `Consumer`).

use std::time::Duration;

use amlip_core::cancel::CancelToken;
use amlip_core::infer::Session;
use amlip_core::stream::{
    Consumer as StreamConsumer, ConsumerOptions, Policy, Producer as StreamProducer,
    ProducerOptions, Samples,
};
use bytes::Bytes;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::PyBytes;

use crate::errors::{argument, to_py, Error, StoppedError};
use crate::held::Held;
use crate::tensors;
use crate::wait;

fn session_err(e: amlip_core::infer::SessionError) -> PyErr {
    use amlip_core::infer::SessionError as S;
    match e {
        S::Node(e) => to_py(e),
        S::Payload(e) => crate::errors::payload(e),
        S::NotServed { .. } => crate::errors::TimeoutError::new_err(e.to_string()),
        S::NoTensor(_) => crate::errors::ArgumentError::new_err(e.to_string()),
        other => Error::new_err(other.to_string()),
    }
}

/// A SmartSim-style client session.
#[pyclass(module = "amlip._native", frozen)]
pub struct Client {
    session: Held<Session>,
}

impl Client {
    fn with<T>(&self, f: impl FnOnce(&mut Session) -> T) -> PyResult<T> {
        self.session.with(f)
    }
}

#[pymethods]
impl Client {
    /// Joins the domain; every later call waits at most `timeout` seconds.
    #[new]
    #[pyo3(signature = (name = "Client", domain = None, network = None, timeout = 60.0))]
    fn new(
        py: Python<'_>,
        name: &str,
        domain: Option<u16>,
        network: Option<&str>,
        timeout: f64,
    ) -> PyResult<Self> {
        let cfg = crate::config::node(name, domain, network)?;
        let timeout = wait::duration(timeout)?;
        let session = py
            .detach(|| Session::connect(cfg, timeout))
            .map_err(session_err)?;
        Ok(Self {
            session: Held::new(session, "the client"),
        })
    }

    fn put_tensor(
        &self,
        name: &str,
        dtype: &str,
        shape: Vec<usize>,
        data: PyBackedBytes,
    ) -> PyResult<()> {
        let t = tensors::tensor(name, dtype, &shape, data)?;
        self.with(|s| s.put_tensor(name, t))
    }

    fn get_tensor<'py>(
        &self,
        py: Python<'py>,
        name: &str,
    ) -> PyResult<Option<tensors::OneOut<'py>>> {
        self.with(|s| s.get_tensor(name).map(|t| tensors::one_to_py(py, t)))
    }

    fn delete_tensor(&self, name: &str) -> PyResult<bool> {
        self.with(|s| s.delete_tensor(name).is_some())
    }

    /// Offers the model file to the domain's inference nodes and waits until one serves it:
    /// `(version, kind)`.
    fn set_model(
        &self,
        py: Python<'_>,
        name: &str,
        file: PyBackedBytes,
    ) -> PyResult<(u64, String)> {
        let file = Bytes::from_owner(file);
        let info = self
            .with(|s| py.detach(|| s.set_model(name, file)))?
            .map_err(session_err)?;
        Ok((info.version, info.kind))
    }

    /// Runs the model on the tensors named `inputs`; keeps its outputs under `outputs`.
    fn run_model(
        &self,
        py: Python<'_>,
        name: &str,
        inputs: Vec<String>,
        outputs: Vec<String>,
    ) -> PyResult<()> {
        let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        let outputs: Vec<&str> = outputs.iter().map(String::as_str).collect();
        self.with(|s| py.detach(|| s.run_model(name, &inputs, &outputs)))?
            .map_err(session_err)
    }

    /// Leaves the domain.
    fn close(&self, py: Python<'_>) {
        let s = self.session.take();
        py.detach(move || drop(s));
    }
}

/// Floats from little-endian f32 bytes.
fn floats(data: &[u8]) -> Vec<f32> {
    data.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn float_bytes<'py>(py: Python<'py>, v: &[f32]) -> Bound<'py, PyBytes> {
    let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
    PyBytes::new(py, &bytes)
}

/// One rank of a simulation publishing samples on a stream.
#[pyclass(module = "amlip._native", frozen)]
pub struct Producer {
    inner: Held<StreamProducer>,
}

#[pymethods]
impl Producer {
    #[new]
    #[pyo3(signature = (stream, rank, domain = None, network = None, retain_bytes = 256 << 20))]
    fn new(
        py: Python<'_>,
        stream: &str,
        rank: u32,
        domain: Option<u16>,
        network: Option<&str>,
        retain_bytes: usize,
    ) -> PyResult<Self> {
        let cfg = crate::config::node("Producer", domain, network)?;
        let opts = ProducerOptions {
            retain_bytes,
            ..ProducerOptions::default()
        };
        let p = py
            .detach(|| StreamProducer::start(&cfg, stream, rank, opts))
            .map_err(|e| Error::new_err(e.to_string()))?;
        Ok(Self {
            inner: Held::new(p, "the producer"),
        })
    }

    /// Publishes `n` samples of iteration `iteration`: inputs of `input_len` floats and
    /// targets of `target_len`, as little-endian f32 bytes.
    fn publish(
        &self,
        iteration: u64,
        inputs: PyBackedBytes,
        input_len: usize,
        targets: PyBackedBytes,
        target_len: usize,
    ) -> PyResult<()> {
        let batch = Samples::new(floats(&inputs), input_len, floats(&targets), target_len)
            .map_err(|e| argument(e.to_string()))?;
        self.inner
            .with(|p| p.publish(iteration, &batch))?
            .map_err(|e| Error::new_err(e.to_string()))
    }

    /// Samples published so far.
    fn produced(&self) -> PyResult<u64> {
        Ok(self.inner.with(|p| p.produced()).unwrap_or(0))
    }

    /// Ends the stream and waits at most `linger` seconds until `readers` consumers have read
    /// it whole: `(produced, drained)`.
    #[pyo3(signature = (readers = 1, linger = 30.0))]
    fn finish(&self, py: Python<'_>, readers: usize, linger: f64) -> PyResult<(u64, usize)> {
        let linger = wait::duration(linger)?;
        let Some(p) = self.inner.take() else {
            return Err(StoppedError::new_err("the producer has finished"));
        };
        let cancel = CancelToken::new();
        let (tx, rx) = flume::bounded(1);
        let c = cancel.clone();
        std::thread::Builder::new()
            .name("amlip-py-finish".into())
            .spawn(move || {
                let f = p.finish(readers, linger, &c);
                let _ = tx.send((f.produced, f.drained));
            })
            .map_err(|e| Error::new_err(format!("cannot start a thread: {e}")))?;
        match wait::until(py, None, |slice| rx.recv_timeout(slice).ok()) {
            Ok(got) => Ok(got.unwrap_or((0, 0))),
            Err(interrupted) => {
                cancel.cancel();
                Err(interrupted)
            }
        }
    }
}

/// Follows a stream: every producer's samples, up to `keep` held.
#[pyclass(module = "amlip._native", frozen)]
pub struct Consumer {
    inner: Held<StreamConsumer>,
}

impl Consumer {
    fn with<T>(&self, f: impl FnOnce(&StreamConsumer) -> T) -> PyResult<T> {
        self.inner.with(|c| f(c))
    }
}

#[pymethods]
impl Consumer {
    #[new]
    #[pyo3(signature = (stream, domain = None, network = None, keep = 1_000_000, reservoir = false, silence = 10.0))]
    fn new(
        py: Python<'_>,
        stream: &str,
        domain: Option<u16>,
        network: Option<&str>,
        keep: usize,
        reservoir: bool,
        silence: f64,
    ) -> PyResult<Self> {
        let cfg = crate::config::node("Consumer", domain, network)?;
        let opts = ConsumerOptions {
            keep,
            policy: if reservoir {
                Policy::Reservoir
            } else {
                Policy::Window
            },
            silence: wait::duration(silence)?,
            ..ConsumerOptions::default()
        };
        let c = py
            .detach(|| StreamConsumer::follow(&cfg, stream, opts))
            .map_err(|e| Error::new_err(e.to_string()))?;
        Ok(Self {
            inner: Held::new(c, "the consumer"),
        })
    }

    /// The samples held: `(inputs f32 bytes, input_len, targets f32 bytes, target_len, n)`,
    /// or `None` before the first.
    #[allow(clippy::type_complexity)]
    fn samples<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<
        Option<(
            Bound<'py, PyBytes>,
            usize,
            Bound<'py, PyBytes>,
            usize,
            usize,
        )>,
    > {
        let got = self.with(|c| c.samples())?;
        Ok(got.map(|(s, _)| {
            let n = s.len();
            (
                float_bytes(py, &s.inputs),
                s.input_len,
                float_bytes(py, &s.targets),
                s.target_len,
                n,
            )
        }))
    }

    /// Counts per producer, as JSON.
    fn counts(&self) -> PyResult<String> {
        let counts = self.with(|c| c.counts())?;
        serde_json::to_string(&counts).map_err(|e| Error::new_err(e.to_string()))
    }

    /// Whether every producer followed has ended (or was lost) and all it sent is in.
    fn settled(&self) -> PyResult<bool> {
        self.with(|c| c.settled())
    }

    /// Waits at most `timeout` seconds until `n` producers are followed; returns how many are.
    #[pyo3(signature = (n, timeout = 30.0))]
    fn wait_for_producers(&self, py: Python<'_>, n: usize, timeout: f64) -> PyResult<usize> {
        let deadline = wait::deadline(Some(timeout))?;
        let got = wait::until(py, deadline, |slice| {
            let k = self.with(|c| c.producers()).unwrap_or(0);
            if k >= n {
                return Some(k);
            }
            std::thread::sleep(slice.min(Duration::from_millis(20)));
            None
        })?;
        Ok(got.unwrap_or_else(|| self.with(|c| c.producers()).unwrap_or(0)))
    }

    /// Waits at most `timeout` seconds until every producer has ended and all it sent is in.
    #[pyo3(signature = (timeout = 60.0))]
    fn wait_settled(&self, py: Python<'_>, timeout: f64) -> PyResult<bool> {
        let deadline = wait::deadline(Some(timeout))?;
        let got = wait::until(py, deadline, |slice| {
            if self.with(|c| c.settled()).unwrap_or(true) {
                return Some(());
            }
            let since = self.with(|c| c.version()).unwrap_or(0);
            let _ = self.with(|c| c.wait_changed(since, slice));
            None
        })?;
        Ok(got.is_some())
    }

    /// Stops following.
    fn stop(&self, py: Python<'_>) {
        let c = self.inner.take();
        py.detach(move || drop(c));
    }
}
