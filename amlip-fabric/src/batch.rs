//! Many jobs at once: submit them, then consume their outcomes as they arrive, as an iterator
//! or an async `Stream`, with progress events that a progress bar or a log can render.
//!
//! ```no_run
//! use std::time::Duration;
//! use amlip_fabric::{config::NodeConfig, node::MainNode};
//!
//! let main = MainNode::with_config(NodeConfig::new("Main").domain(7).localhost())?;
//! let mut batch = main.batch().job_timeout(Duration::from_secs(60));
//! for i in 0..10 {
//!     batch.submit(i, format!("job {i}"))?;
//! }
//! for outcome in &mut batch {
//!     match outcome.result {
//!         Ok(s) => println!("job {} solved by {} in {:?}", outcome.label, s.server_id, outcome.elapsed),
//!         Err(e) => println!("job {} failed: {e}", outcome.label),
//!     }
//! }
//! # Ok::<(), amlip_fabric::Error>(())
//! ```
//!
//! Every job has a deadline (the batch's job timeout unless given its own), so iterating ends
//! by then at the latest. Cancelling the batch (or dropping it, or raising the
//! [`CancelToken`] it watches) cancels its unfinished jobs; each then ends as
//! [`JobError::Cancelled`].

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::Stream;

use crate::cancel::CancelToken;
use crate::error::{Error, JobError};
use crate::node::ClientHandle;
use crate::protocol::client::{JobUpdate, Responder, Solution};
use crate::wire::{AmlipId, TaskId};

/// How often a waiting batch looks at its deadlines and cancel token.
const TICK: Duration = Duration::from_millis(100);
/// How long past a job's deadline the batch waits for the engine's verdict before deciding
/// itself (only if the engine has died).
const BACKSTOP: Duration = Duration::from_secs(2);

/// How one job ended.
#[derive(Debug, Clone)]
pub struct Outcome<L> {
    /// The label it was submitted with.
    pub label: L,
    /// Its id.
    pub task_id: TaskId,
    /// The solution, or why there is none.
    pub result: Result<Solution, JobError>,
    /// From submission to outcome.
    pub elapsed: Duration,
    /// How often it was re-sent to another computing node.
    pub resent: u32,
}

/// What happened to a batch's jobs.
#[derive(Debug, Clone)]
pub enum Event<L> {
    /// The job was sent (it waits for a computing node to take it).
    Sent {
        /// The job's label.
        label: L,
        /// Its id.
        task_id: TaskId,
    },
    /// A computing node holds the job and last reported `done` of `total` steps (0 of 0 until
    /// its code reports).
    Running {
        /// The job's label.
        label: L,
        /// Its id.
        task_id: TaskId,
        /// The computing node.
        node: AmlipId,
        /// Steps done.
        done: u32,
        /// Steps in all.
        total: u32,
    },
    /// The job's holder was given up on (gone, or past the deadline); it was requested again.
    Resent {
        /// The job's label.
        label: L,
        /// Its id.
        task_id: TaskId,
        /// The node given up on.
        from: AmlipId,
        /// Why.
        reason: String,
    },
    /// The job ended.
    Done(Outcome<L>),
    /// Nothing happened for a while (the batch's stall report period): what is awaited.
    Waiting(Waiting<L>),
}

/// What a batch waits for, when nothing has happened for a while.
#[derive(Debug, Clone)]
pub struct Waiting<L> {
    /// Jobs without an outcome.
    pub unsolved: Vec<L>,
    /// Of those, the ones a computing node holds, and which.
    pub running: Vec<(L, AmlipId)>,
    /// Jobs no computing node has taken yet (the main's whole queue).
    pub not_taken: usize,
    /// Computing nodes alive on the domain.
    pub computing_nodes: usize,
    /// The domain.
    pub domain: u16,
}

impl<L: fmt::Display> fmt::Display for Waiting<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "waiting: {} job(s) unsolved ({} not taken yet); {} computing node(s) alive on domain {}",
            self.unsolved.len(),
            self.not_taken,
            self.computing_nodes,
            self.domain
        )?;
        for (i, (label, node)) in self.running.iter().enumerate() {
            write!(
                f,
                "{}{label} on {node}",
                if i == 0 { "; running: " } else { ", " }
            )?;
        }
        Ok(())
    }
}

impl<L> Event<L> {
    /// The same event with its labels mapped (e.g. to text for a log).
    pub fn map<M>(self, mut f: impl FnMut(L) -> M) -> Event<M> {
        match self {
            Event::Sent { label, task_id } => Event::Sent {
                label: f(label),
                task_id,
            },
            Event::Running {
                label,
                task_id,
                node,
                done,
                total,
            } => Event::Running {
                label: f(label),
                task_id,
                node,
                done,
                total,
            },
            Event::Resent {
                label,
                task_id,
                from,
                reason,
            } => Event::Resent {
                label: f(label),
                task_id,
                from,
                reason,
            },
            Event::Done(o) => Event::Done(Outcome {
                label: f(o.label),
                task_id: o.task_id,
                result: o.result,
                elapsed: o.elapsed,
                resent: o.resent,
            }),
            Event::Waiting(w) => Event::Waiting(Waiting {
                unsolved: w.unsolved.into_iter().map(&mut f).collect(),
                running: w.running.into_iter().map(|(l, n)| (f(l), n)).collect(),
                not_taken: w.not_taken,
                computing_nodes: w.computing_nodes,
                domain: w.domain,
            }),
        }
    }
}

struct Pending<L> {
    label: L,
    sent: Instant,
    deadline: Instant,
    timeout: Duration,
    resent: u32,
}

/// A set of jobs from one main node, consumed as they finish. Made by
/// [`MainNode::batch`](crate::node::MainNode::batch) or
/// [`AsyncMainNode::batch`](crate::node::AsyncMainNode::batch).
pub struct Batch<'a, L> {
    client: &'a ClientHandle,
    tx: flume::Sender<(TaskId, JobUpdate)>,
    rx: flume::Receiver<(TaskId, JobUpdate)>,
    pending: HashMap<TaskId, Pending<L>>,
    /// Events the batch made itself (`Sent`), handed out before waiting for more.
    made: VecDeque<Event<L>>,
    job_timeout: Duration,
    stall_report: Duration,
    last_event: Instant,
    cancel: Option<CancelToken>,
    cancelled: bool,
    exclusive: bool,
}

impl<'a, L: Clone> Batch<'a, L> {
    pub(crate) fn new(client: &'a ClientHandle) -> Self {
        let (tx, rx) = flume::unbounded();
        Self {
            client,
            tx,
            rx,
            pending: HashMap::new(),
            made: VecDeque::new(),
            job_timeout: Duration::from_secs(3600),
            stall_report: Duration::from_secs(10),
            last_event: Instant::now(),
            cancel: None,
            cancelled: false,
            exclusive: false,
        }
    }

    /// Each job's timeout unless submitted with its own (default one hour).
    pub fn job_timeout(mut self, timeout: Duration) -> Self {
        self.job_timeout = timeout;
        self
    }

    /// After this long without any event, report what the batch waits for
    /// ([`Event::Waiting`]; default 10 s).
    pub fn stall_report(mut self, after: Duration) -> Self {
        self.stall_report = after;
        self
    }

    /// Sends each job only to an idle computing node that asks for it, never queued behind
    /// another job (jobs that must run at once on distinct nodes, like an all-reduce group's
    /// workers; the default pipelines jobs to busy nodes when that is faster).
    pub fn exclusive(mut self, exclusive: bool) -> Self {
        self.exclusive = exclusive;
        self
    }

    /// Cancel the batch when `token` is raised.
    pub fn cancel_on(mut self, token: &CancelToken) -> Self {
        self.cancel = Some(token.clone());
        self
    }

    /// Sends a job; returns its id at once.
    pub fn submit(&mut self, label: L, job: impl Into<Bytes>) -> Result<TaskId, Error> {
        self.submit_with_timeout(label, job, self.job_timeout)
    }

    /// Sends a job that fails with [`JobError::Timeout`] if not solved within `timeout`.
    pub fn submit_with_timeout(
        &mut self,
        label: L,
        job: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<TaskId, Error> {
        let now = Instant::now();
        let id = self.client.submit(
            job.into(),
            Some(timeout),
            Responder::Updates(self.tx.clone()),
            self.exclusive,
        )?;
        self.made.push_back(Event::Sent {
            label: label.clone(),
            task_id: id,
        });
        self.pending.insert(
            id,
            Pending {
                label,
                sent: now,
                deadline: now + timeout,
                timeout,
                resent: 0,
            },
        );
        self.last_event = now;
        Ok(id)
    }

    /// Jobs without an outcome yet.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Cancels every unfinished job; each then ends as [`JobError::Cancelled`].
    pub fn cancel(&mut self) {
        self.cancelled = true;
        for id in self.pending.keys() {
            self.client.cancel(*id);
        }
    }

    /// The next event; `None` once every job has its outcome. Waits at most until the
    /// pending jobs' deadlines.
    pub fn next_event(&mut self) -> Option<Event<L>> {
        if let Some(ev) = self.made.pop_front() {
            return Some(ev);
        }
        loop {
            if self.pending.is_empty() {
                return None;
            }
            if !self.cancelled && self.cancel.as_ref().is_some_and(CancelToken::is_cancelled) {
                self.cancel();
            }
            match self.rx.recv_timeout(TICK) {
                Ok((id, update)) => {
                    if let Some(ev) = self.on_update(id, update) {
                        self.last_event = Instant::now();
                        return Some(ev);
                    }
                }
                Err(_) => {
                    if let Some(ev) = self.on_idle() {
                        return Some(ev);
                    }
                }
            }
        }
    }

    /// Every event until every job has its outcome.
    pub fn events(&mut self) -> impl Iterator<Item = Event<L>> + use<'_, 'a, L> {
        std::iter::from_fn(move || self.next_event())
    }

    /// The outcomes as an async stream, in the order they arrive (progress events are
    /// skipped). No more jobs can be submitted. It ends once every job has its outcome; if
    /// the main node stops first, the remaining jobs end as [`JobError::Stopped`].
    pub fn into_stream(self) -> impl Stream<Item = Outcome<L>> + 'a
    where
        L: 'a,
    {
        use futures::StreamExt;
        self.into_event_stream().filter_map(|ev| async move {
            match ev {
                Event::Done(o) => Some(o),
                _ => None,
            }
        })
    }

    /// Every event as an async stream (no [`Event::Waiting`] reports: those need a timer).
    pub fn into_event_stream(mut self) -> impl Stream<Item = Event<L>> + 'a
    where
        L: 'a,
    {
        // Only the engine's responders hold senders now: if it dies, the stream sees it.
        let (dead, _) = flume::unbounded();
        drop(std::mem::replace(&mut self.tx, dead));
        futures::stream::unfold(self, |mut batch| async move {
            if let Some(ev) = batch.made.pop_front() {
                return Some((ev, batch));
            }
            loop {
                if batch.pending.is_empty() {
                    return None;
                }
                match batch.rx.recv_async().await {
                    Ok((id, update)) => {
                        if let Some(ev) = batch.on_update(id, update) {
                            return Some((ev, batch));
                        }
                    }
                    Err(_) => {
                        let id = *batch.pending.keys().next().expect("not empty");
                        let ev = batch.finish(id, Err(JobError::Stopped { task_id: id }));
                        return Some((ev, batch));
                    }
                }
            }
        })
    }

    fn on_update(&mut self, id: TaskId, update: JobUpdate) -> Option<Event<L>> {
        let p = self.pending.get_mut(&id)?;
        Some(match update {
            JobUpdate::Running {
                server,
                done,
                total,
            } => Event::Running {
                label: p.label.clone(),
                task_id: id,
                node: server,
                done,
                total,
            },
            JobUpdate::Resent { from, reason } => {
                p.resent += 1;
                Event::Resent {
                    label: p.label.clone(),
                    task_id: id,
                    from,
                    reason,
                }
            }
            JobUpdate::Finished(result) => return Some(self.finish(id, result)),
        })
    }

    fn finish(&mut self, id: TaskId, result: Result<Solution, JobError>) -> Event<L> {
        let p = self.pending.remove(&id).expect("pending");
        Event::Done(Outcome {
            label: p.label,
            task_id: id,
            result,
            elapsed: p.sent.elapsed(),
            resent: p.resent,
        })
    }

    /// Nothing arrived for a tick: decide jobs a dead engine will never answer, and report a
    /// stall.
    fn on_idle(&mut self) -> Option<Event<L>> {
        let now = Instant::now();
        if self.client.is_stopped() || now > self.earliest_deadline() + BACKSTOP {
            let expired = self
                .pending
                .iter()
                .find(|(_, p)| self.client.is_stopped() || now > p.deadline + BACKSTOP)
                .map(|(id, p)| (*id, p.timeout));
            if let Some((id, timeout)) = expired {
                let error = if self.client.is_stopped() {
                    JobError::Stopped { task_id: id }
                } else {
                    JobError::Timeout {
                        task_id: id,
                        timeout,
                        hint: " (the main node's engine did not answer)".into(),
                    }
                };
                return Some(self.finish(id, Err(error)));
            }
        }
        if now.duration_since(self.last_event) < self.stall_report {
            return None;
        }
        self.last_event = now;
        let stats = self.client.stats();
        let running = stats
            .running
            .iter()
            .filter_map(|r| {
                self.pending
                    .get(&r.task_id)
                    .map(|p| (p.label.clone(), r.server_id.clone()))
            })
            .collect();
        Some(Event::Waiting(Waiting {
            unsolved: self.pending.values().map(|p| p.label.clone()).collect(),
            running,
            not_taken: stats.waiting,
            computing_nodes: stats.computing_nodes.len(),
            domain: self.client.domain,
        }))
    }

    fn earliest_deadline(&self) -> Instant {
        self.pending
            .values()
            .map(|p| p.deadline)
            .min()
            .unwrap_or_else(Instant::now)
    }
}

impl<L: Clone> Iterator for Batch<'_, L> {
    type Item = Outcome<L>;

    /// The next outcome (progress events are skipped); `None` once every job has one.
    fn next(&mut self) -> Option<Outcome<L>> {
        loop {
            match self.next_event()? {
                Event::Done(o) => return Some(o),
                _ => continue,
            }
        }
    }
}

impl<L> Drop for Batch<'_, L> {
    fn drop(&mut self) {
        for id in self.pending.keys() {
            self.client.cancel(*id);
        }
    }
}
