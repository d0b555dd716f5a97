//! The exceptions Python sees: `amlip.Error` and its kinds, each carrying the library's
//! message (a job's error carries the computing node's own words).

use amlip_core::error::{Error as AmlipError, JobError as AmlipJobError};
use amlip_core::payload::PayloadError as AmlipPayloadError;
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(amlip, Error, PyException, "Every error amlip raises.");
create_exception!(
    amlip,
    TimeoutError,
    Error,
    "Nothing came within the time allowed."
);
create_exception!(
    amlip,
    JobError,
    Error,
    "A computing node could not process a job; the message is its own."
);
create_exception!(
    amlip,
    PayloadError,
    Error,
    "A payload is not what it should be (the message names the tensor or field)."
);
create_exception!(amlip, ArgumentError, Error, "An argument amlip cannot use.");
create_exception!(amlip, StoppedError, Error, "The node is stopped.");

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("Error", py.get_type::<Error>())?;
    m.add("TimeoutError", py.get_type::<TimeoutError>())?;
    m.add("JobError", py.get_type::<JobError>())?;
    m.add("PayloadError", py.get_type::<PayloadError>())?;
    m.add("ArgumentError", py.get_type::<ArgumentError>())?;
    m.add("StoppedError", py.get_type::<StoppedError>())?;
    Ok(())
}

/// A library error as the exception of its kind.
pub fn to_py(e: AmlipError) -> PyErr {
    let msg = e.to_string();
    match e {
        AmlipError::Job(AmlipJobError::Timeout { .. }) | AmlipError::NoJob(_) => {
            TimeoutError::new_err(msg)
        }
        AmlipError::Job(AmlipJobError::Stopped { .. }) | AmlipError::Stopped => {
            StoppedError::new_err(msg)
        }
        AmlipError::Job(_) => JobError::new_err(msg),
        AmlipError::Payload(_) => PayloadError::new_err(msg),
        AmlipError::Id(_) => ArgumentError::new_err(msg),
        _ => Error::new_err(msg),
    }
}

/// A payload defect as `amlip.PayloadError`.
pub fn payload(e: AmlipPayloadError) -> PyErr {
    PayloadError::new_err(e.to_string())
}

/// A bad argument, said plainly.
pub fn argument(msg: impl Into<String>) -> PyErr {
    ArgumentError::new_err(msg.into())
}
