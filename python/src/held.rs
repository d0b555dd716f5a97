//! What every class here holds: a node (or session, producer, consumer) owned until `stop()`,
//! reachable from any Python thread, and a clear `StoppedError` once it is gone.

use std::sync::Mutex;

use pyo3::prelude::*;

use crate::errors::StoppedError;

/// A value owned until [`take`](Held::take); `what` names it in the error after that.
pub struct Held<T> {
    value: Mutex<Option<T>>,
    what: String,
}

impl<T> Held<T> {
    pub fn new(value: T, what: impl Into<String>) -> Self {
        Self {
            value: Mutex::new(Some(value)),
            what: what.into(),
        }
    }

    /// Runs `f` on the value; `StoppedError` once it was taken.
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> PyResult<R> {
        let stopped = || StoppedError::new_err(format!("{} is stopped", self.what));
        let mut value = self.value.lock().map_err(|_| stopped())?;
        value.as_mut().map(f).ok_or_else(stopped)
    }

    /// The value, once: to drop it (with the GIL released) or consume it.
    pub fn take(&self) -> Option<T> {
        self.value.lock().ok().and_then(|mut v| v.take())
    }
}
