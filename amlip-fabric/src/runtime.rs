//! Threads a node owns, and how they stop.
//!
//! - [`BoundedThread`]: a named thread that is joined for at most a given time; one that does
//!   not finish in time (a user's job still computing) is detached rather than hanging the
//!   caller. Every thread the library starts is one.
//! - [`NodeThread`]: a node's engine: a `BoundedThread` running a single-threaded tokio runtime
//!   until its [`Shutdown`] fires. Node APIs are blocking (as AML-IP's), so a node never relies
//!   on the caller's runtime.

use std::future::Future;
use std::sync::mpsc as std_mpsc;
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::watch;

/// A thread joined for a bounded time.
pub struct BoundedThread {
    handle: Option<JoinHandle<()>>,
    /// In a mutex only so that nodes holding a thread are `Sync`.
    finished: Mutex<std_mpsc::Receiver<()>>,
}

impl BoundedThread {
    /// Starts `f` on a thread named `name`.
    pub fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> std::io::Result<Self> {
        let (tx, finished) = std_mpsc::channel();
        let handle = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                // Sent on unwind too: the sender is dropped, which `join` also accepts.
                f();
                let _ = tx.send(());
            })?;
        Ok(Self {
            handle: Some(handle),
            finished: Mutex::new(finished),
        })
    }

    /// Waits up to `timeout` for the thread to end. Returns false if it did not (it is then
    /// left to finish on its own).
    pub fn join(&mut self, timeout: Duration) -> bool {
        let Some(handle) = self.handle.take() else {
            return true;
        };
        let finished = match self.finished.get_mut() {
            Ok(rx) => rx.recv_timeout(timeout),
            Err(_) => Err(std_mpsc::RecvTimeoutError::Disconnected),
        };
        match finished {
            Ok(()) | Err(std_mpsc::RecvTimeoutError::Disconnected) => {
                let _ = handle.join();
                true
            }
            Err(std_mpsc::RecvTimeoutError::Timeout) => {
                tracing::warn!(
                    thread = handle.thread().name().unwrap_or("?"),
                    "thread still running after {timeout:?}; not waiting for it"
                );
                false
            }
        }
    }

    /// Whether the thread has ended.
    pub fn is_finished(&self) -> bool {
        self.handle.as_ref().is_none_or(|h| h.is_finished())
    }
}

/// The receiving side of a node's stop signal.
#[derive(Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

impl Shutdown {
    /// Resolves once stop was requested (or the node was dropped).
    pub async fn wait(&mut self) {
        // An error means the sender is gone, which also means stop.
        let _ = self.rx.wait_for(|stop| *stop).await;
    }

    /// Whether shutdown was asked for.
    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }
}

/// A running node engine.
pub struct NodeThread {
    stop: watch::Sender<bool>,
    thread: BoundedThread,
}

impl NodeThread {
    /// Starts a thread named `name` running the future `make` builds. The future is built on
    /// that thread, so it need not be `Send`. It should end soon after its [`Shutdown`] fires.
    pub fn spawn<F, Fut>(name: &str, make: F) -> std::io::Result<Self>
    where
        F: FnOnce(Shutdown) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let (stop, rx) = watch::channel(false);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = BoundedThread::spawn(name, move || {
            let local = tokio::task::LocalSet::new();
            local.block_on(&rt, make(Shutdown { rx }));
            // Dropping the runtime here cancels every task the engine spawned.
            drop(rt);
        })?;
        Ok(Self { stop, thread })
    }

    /// Signals stop and waits up to `timeout` for the thread to end.
    /// Returns false if it did not end in time (it is then left to finish on its own).
    pub fn stop(&mut self, timeout: Duration) -> bool {
        let _ = self.stop.send(true);
        self.thread.join(timeout)
    }

    /// Whether the engine has ended (stopped, or failed).
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }
}

impl Drop for NodeThread {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_thread_stops_when_told() {
        let mut t = NodeThread::spawn("t", |mut s| async move { s.wait().await }).unwrap();
        assert!(!t.is_finished());
        assert!(t.stop(Duration::from_secs(10)));
        assert!(t.is_finished());
    }

    #[test]
    fn a_stuck_thread_is_detached_not_waited_for() {
        let (release, wait) = std_mpsc::channel::<()>();
        let mut t = BoundedThread::spawn("stuck", move || {
            let _ = wait.recv_timeout(Duration::from_secs(30));
        })
        .unwrap();
        // Not finished within the bound: detached, and the call returns.
        assert!(!t.join(Duration::from_millis(50)));
        assert!(t.join(Duration::from_millis(50)), "already detached");
        drop(release);
    }

    #[test]
    fn a_panicking_thread_counts_as_finished() {
        let mut t = BoundedThread::spawn("panics", || panic!("on purpose")).unwrap();
        assert!(t.join(Duration::from_secs(10)));
    }
}
