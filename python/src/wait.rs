//! Blocking without holding the interpreter: every wait here releases the GIL, wakes every
//! [`SLICE`] to run Python's signal handlers (so Ctrl-C raises `KeyboardInterrupt` at once),
//! and ends at its deadline.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pyo3::prelude::*;

/// How long a blocking call waits before it looks for a signal again.
const SLICE: Duration = Duration::from_millis(50);

/// Set when the interpreter exits (`amlip`'s atexit hook): callbacks into Python stop.
static EXITING: AtomicBool = AtomicBool::new(false);

/// Whether the interpreter is exiting: threads must not call into Python any more.
pub fn exiting() -> bool {
    EXITING.load(Ordering::Acquire)
}

/// Marks the interpreter as exiting (called from `atexit`, before the nodes stop).
#[pyfunction]
pub fn interpreter_exiting() {
    EXITING.store(true, Ordering::Release);
}

/// A deadline `seconds` from now; `None` waits for ever. Negative or NaN is refused.
pub fn deadline(seconds: Option<f64>) -> PyResult<Option<Instant>> {
    seconds
        .map(|s| duration(s).map(|d| Instant::now() + d))
        .transpose()
}

/// `seconds` as a duration: finite and not negative.
pub fn duration(seconds: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(seconds)
        .map_err(|_| crate::errors::argument(format!("{seconds} is not a time in seconds")))
}

/// Calls `poll` with the GIL released, at most [`SLICE`] at a time, until it gives a value
/// (`Some`), the deadline passes (`None`) or a signal handler raises (its exception).
pub fn until<T: Send>(
    py: Python<'_>,
    deadline: Option<Instant>,
    mut poll: impl FnMut(Duration) -> Option<T> + Send,
) -> PyResult<Option<T>> {
    loop {
        let slice = match deadline {
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => left.min(SLICE),
                _ => return Ok(None),
            },
            None => SLICE,
        };
        if let Some(v) = py.detach(|| poll(slice)) {
            return Ok(Some(v));
        }
        py.check_signals()?;
    }
}
