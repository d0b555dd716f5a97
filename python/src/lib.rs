//! `amlip._native`: the Rust half of the `amlip` and `amlip_py` Python packages.
//!
//! The Python packages hold no protocol logic: each class here wraps a node or workflow of
//! `amlip-core`, and the Python modules give them their Pythonic (`amlip`) and AML-IP (`amlip_py`)
//! faces. Module map:
//! - `errors`: the `amlip.Error` hierarchy and how library errors become it.
//! - `held`: what each class owns until `stop()`, and the error after.
//! - `wait`: blocking calls that release the GIL and still stop at Ctrl-C.
//! - `config`: node names, domains and networks as Python passes them.
//! - `tensors`: payloads as (kind, params JSON, tensors as dtype/shape/bytes).
//! - `mains`: the main and edge nodes (blocking, batch and callback forms).
//! - `servers`: computing and inference nodes, with job kinds written in Python.
//! - `watch`: the status node, the cluster table, the model managers.
//! - `client`: SmartSim's client over amlip inference; sample streams.
//! - `train`: training sessions and pipelines (`amlip.train`, `amlip.pipeline`).
//!
//! Every blocking call releases the GIL; callbacks into Python run on a node's listener,
//! worker or dispatcher thread, never on its engine thread, so a slow callback cannot stall
//! the protocol.

mod client;
mod config;
mod errors;
mod held;
mod mains;
mod servers;
mod tensors;
mod train;
mod wait;
mod watch;

use pyo3::prelude::*;

/// The native module; `amlip` and `amlip_py` import from it.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::register(m)?;
    m.add_class::<mains::Main>()?;
    m.add_class::<mains::Collector>()?;
    m.add_class::<servers::Computing>()?;
    m.add_class::<watch::Status>()?;
    m.add_class::<watch::ModelSender>()?;
    m.add_class::<watch::ModelReceiver>()?;
    m.add_class::<client::Client>()?;
    m.add_class::<client::Producer>()?;
    m.add_class::<client::Consumer>()?;
    m.add_function(wrap_pyfunction!(watch::cluster, m)?)?;
    m.add_function(wrap_pyfunction!(train::train, m)?)?;
    m.add_function(wrap_pyfunction!(train::pipeline, m)?)?;
    m.add_function(wrap_pyfunction!(tensors::encode, m)?)?;
    m.add_function(wrap_pyfunction!(tensors::decode, m)?)?;
    m.add_function(wrap_pyfunction!(config::new_id, m)?)?;
    m.add_function(wrap_pyfunction!(config::log, m)?)?;
    m.add_function(wrap_pyfunction!(wait::interpreter_exiting, m)?)?;
    m.add("DEFAULT_DOMAIN", amlip_core::dds::DEFAULT_DOMAIN)?;
    Ok(())
}
