//! A cancellation signal that any thread can raise and any wait can watch: Ctrl-C in a binary,
//! a user's "stop" button, a test's deadline.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// Raised once, seen by every clone. Batches and sessions given one stop early when it is
/// raised, cancelling the jobs they still wait for.
#[derive(Clone, Default)]
pub struct CancelToken {
    inner: Arc<(Mutex<bool>, Condvar)>,
}

impl CancelToken {
    /// A token not yet raised.
    pub fn new() -> Self {
        Self::default()
    }

    /// Raises it (idempotent) and wakes every waiter.
    pub fn cancel(&self) {
        let (flag, cv) = &*self.inner;
        *flag.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cv.notify_all();
    }

    /// Whether it was raised.
    pub fn is_cancelled(&self) -> bool {
        *self.inner.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until it is raised or `timeout` passes; returns whether it was raised.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let (flag, cv) = &*self.inner;
        let guard = flag.lock().unwrap_or_else(|e| e.into_inner());
        let (guard, _) = cv
            .wait_timeout_while(guard, timeout, |raised| !*raised)
            .unwrap_or_else(|e| e.into_inner());
        *guard
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_raised_token_wakes_its_waiter() {
        let t = CancelToken::new();
        assert!(!t.wait_timeout(Duration::from_millis(10)));
        let t2 = t.clone();
        let waiter = std::thread::spawn(move || t2.wait_timeout(Duration::from_secs(60)));
        t.cancel();
        assert!(waiter.join().unwrap());
        assert!(t.is_cancelled());
    }
}
