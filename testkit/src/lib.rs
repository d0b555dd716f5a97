//! What amlip's tests share, so that every test runs real nodes the same way:
//!
//! - [`domain`]: a DDS domain id leased for one test, that no other test of any checkout on this
//!   host uses meanwhile (a file lock per domain, and a probe that nobody else's participant is
//!   on it).
//! - [`wait_until`]: poll a condition until it holds, for a bounded time.
//! - [`Proc`]: a child process (a real binary) with its output collected, killed on drop.

mod domain;
mod process;

pub use domain::{domain, Domain};
pub use process::{binary, example, fastdds_peer, Proc};

use std::time::{Duration, Instant};

/// Polls `cond` every 20 ms until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}
