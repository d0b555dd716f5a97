//! Where a node's engine runs: a dedicated thread with a single-threaded tokio runtime, and the
//! [`Shutdown`] that ends it.
//!
//! Node APIs are blocking (as AML-IP's), so a node must not rely on the caller's runtime: each
//! node owns one thread. Stopping is bounded: the engine gets the signal, does its last writes
//! (status `dropped`), and the thread is joined for at most the given time; a thread that does
//! not finish in time is detached rather than hanging the caller.

use std::future::Future;
use std::sync::mpsc as std_mpsc;
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::watch;

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

    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }
}

/// A running node thread.
pub struct NodeThread {
    stop: watch::Sender<bool>,
    finished: Mutex<std_mpsc::Receiver<()>>,
    thread: Option<JoinHandle<()>>,
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
        let (done_tx, finished) = std_mpsc::channel();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let local = tokio::task::LocalSet::new();
                local.block_on(&rt, make(Shutdown { rx }));
                // Dropping the runtime here cancels every task the engine spawned.
                drop(rt);
                let _ = done_tx.send(());
            })?;
        Ok(Self {
            stop,
            finished: Mutex::new(finished),
            thread: Some(thread),
        })
    }

    /// Signals stop without waiting.
    pub fn signal_stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Signals stop and waits up to `timeout` for the thread to end.
    /// Returns false if it did not end in time (it is then left to finish on its own).
    pub fn stop(&mut self, timeout: Duration) -> bool {
        self.signal_stop();
        let Some(thread) = self.thread.take() else {
            return true;
        };
        let finished = self.finished.lock().map(|rx| rx.recv_timeout(timeout));
        match finished.unwrap_or(Err(std_mpsc::RecvTimeoutError::Disconnected)) {
            Ok(()) | Err(std_mpsc::RecvTimeoutError::Disconnected) => {
                let _ = thread.join();
                true
            }
            Err(std_mpsc::RecvTimeoutError::Timeout) => {
                tracing::warn!("node thread did not stop within {timeout:?}; detaching it");
                false
            }
        }
    }

    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
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
    fn stops_promptly() {
        let mut t = NodeThread::spawn("t", |mut s| async move { s.wait().await }).unwrap();
        let start = std::time::Instant::now();
        assert!(t.stop(Duration::from_secs(1)));
        assert!(start.elapsed() < Duration::from_millis(500));
    }

    #[test]
    fn a_stuck_thread_is_detached_not_waited_for() {
        let mut t = NodeThread::spawn("stuck", |_s| async move {
            std::thread::sleep(Duration::from_millis(800));
        })
        .unwrap();
        let start = std::time::Instant::now();
        assert!(!t.stop(Duration::from_millis(100)));
        assert!(start.elapsed() < Duration::from_millis(500));
    }
}
