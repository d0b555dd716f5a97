//! Training sessions: workflows a main node runs over many jobs, as library types a binary or a
//! user's program only configures.
//!
//! - [`Runner`]: runs batches of jobs for a session within one deadline, tells an
//!   [`Observer`] what happens, stops on a [`CancelToken`], and fails with a
//!   [`SessionError`] that names the jobs left.
//! - [`FedAvg`]: federated averaging of any [`FedModel`](crate::kind::federated::FedModel)
//!   over shards, round after round.
//! - [`AmlShards`]: AML classifiers trained per shard, merged by union and calibrated on a
//!   hold-out; [`MlpShards`]: a network sized from the data (784-128-10 on MNIST) by FedAvg,
//!   classifying or regressing. Both take any [`Dataset`](crate::dataset::Dataset), evaluate
//!   on a test set and return a [`TrainReport`].
//!
//! A new workflow is a new type here that drives a `Runner`; data flows one way: session ->
//! batch -> protocol -> a computing node's registry -> a kind -> a model, and back.

mod allreduce;
mod aml;
mod federated;
mod mlp;
mod progress;
mod report;

use std::fmt::Display;
use std::time::{Duration, Instant};

use bytes::Bytes;

pub use allreduce::{AllReduce, AllReduceReport, EpochLine, Generation};
pub use aml::AmlShards;
pub use federated::{FedAvg, Round, ShardLabel, ShardUpdate};
pub use mlp::MlpShards;
pub use progress::{Progress, TrainPoint};
pub use report::{Row, Score, Table, TrainReport, TrainedModel};

use crate::batch::Event;
use crate::cancel::CancelToken;
use crate::error::{Error, JobError};
use crate::node::MainNode;
use crate::payload::PayloadError;
use crate::summary::{Figures, SessionHandle};
use crate::wire::AmlipId;

/// Why a session stopped before its end.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The cancel token was raised (Ctrl-C).
    #[error("interrupted with {unsolved} of {total} jobs unsolved")]
    Interrupted {
        /// Jobs left.
        unsolved: usize,
        /// Jobs in the batch.
        total: usize,
    },
    /// The session's deadline passed.
    #[error("time is up with {unsolved} of {total} jobs unsolved{hint}: {jobs}")]
    TimeUp {
        /// Jobs left.
        unsolved: usize,
        /// Jobs in the batch.
        total: usize,
        /// What the main saw meanwhile.
        hint: String,
        /// The jobs left, named.
        jobs: String,
    },
    /// A computing node answered a job with an error.
    #[error("job {job} failed: {error}")]
    JobFailed {
        /// The job, named.
        job: String,
        /// What went wrong.
        error: JobError,
    },
    /// A solution could not be read.
    #[error("solution of {job}: {error}")]
    BadSolution {
        /// The job, named.
        job: String,
        /// What is wrong with it.
        error: PayloadError,
    },
    /// The session cannot run as configured (no shards, empty data...).
    #[error("{0}")]
    Config(String),
    /// The main node failed.
    #[error(transparent)]
    Node(#[from] Error),
    /// A job could not be built.
    #[error("cannot build a job: {0}")]
    Payload(#[from] PayloadError),
}

/// Told what a session does: job events (labels as text) and notes (one line each).
pub trait Observer {
    /// A batch of `jobs` jobs was sent.
    fn started(&mut self, _jobs: usize) {}
    /// A job's event.
    fn event(&mut self, _event: &Event<String>) {}
    /// A line about the session's progress ("round 2/5: ...").
    fn note(&mut self, _line: &str) {}
}

/// Refuses a session that has nothing to train on: no shards, or no samples.
fn check_shards(
    what: &str,
    shards: usize,
    train: &crate::dataset::Dataset,
) -> Result<(), SessionError> {
    if shards == 0 || shards > train.len() {
        return Err(SessionError::Config(format!(
            "{what} needs at least one shard and one sample per shard ({shards} shard(s), {} sample(s))",
            train.len()
        )));
    }
    Ok(())
}

/// What a model file records of its training data: the shape of a sample and the classes.
fn data_json(train: &crate::dataset::Dataset) -> serde_json::Value {
    serde_json::json!({
        "sample_shape": train.sample_shape,
        "classes": train.class_names(),
        "class_counts": train.class_counts(),
    })
}

/// An observer that ignores everything.
pub struct Silent;

impl Observer for Silent {}

impl<T: Observer + ?Sized> Observer for &mut T {
    fn started(&mut self, jobs: usize) {
        (**self).started(jobs)
    }
    fn event(&mut self, event: &Event<String>) {
        (**self).event(event)
    }
    fn note(&mut self, line: &str) {
        (**self).note(line)
    }
}

/// A job of a session, solved.
#[derive(Debug, Clone)]
pub struct Solved<L> {
    /// The job's label.
    pub label: L,
    /// The solution's bytes.
    pub solution: Bytes,
    /// The computing node that solved it.
    pub server: AmlipId,
    /// From submission to solution.
    pub seconds: f64,
}

/// Runs a session's batches on a main node, within one deadline.
pub struct Runner<'a> {
    main: &'a MainNode,
    observer: Box<dyn Observer + 'a>,
    deadline: Instant,
    cancel: CancelToken,
    progress: Progress,
    /// The session's entry in its main's summary, once [`begin`](Runner::begin) named it.
    session: Option<SessionHandle>,
}

impl<'a> Runner<'a> {
    /// A runner on `main` with `timeout` for the whole session, telling nobody what happens.
    pub fn new(main: &'a MainNode, timeout: Duration) -> Self {
        Self {
            main,
            observer: Box::new(Silent),
            deadline: Instant::now() + timeout,
            cancel: CancelToken::new(),
            progress: Progress::new(),
            session: None,
        }
    }

    /// Names the session in its main's summary, so that every status view on the domain shows
    /// it: its `kind` (`fedavg`, `aml`, `allreduce`, ...), `name`, and `steps` in all of
    /// `step_name`. Its points ([`progress`](Self::progress)) and lines ([`note`](Self::note))
    /// go there too, until [`end`](Self::end).
    pub fn begin(&mut self, kind: &str, name: &str, step_name: &str, steps: usize) {
        self.session = Some(self.main.session(kind, name, step_name, steps as u32));
    }

    /// Runs `body` as a named session ([`begin`](Self::begin)), then ends its entry with what
    /// `body` returned ([`end`](Self::end)): `line` of the value, or the error.
    pub fn named<T>(
        &mut self,
        (kind, name, step_name, steps): (&str, &str, &str, usize),
        body: impl FnOnce(&mut Self) -> Result<T, SessionError>,
        line: impl FnOnce(&T) -> String,
    ) -> Result<T, SessionError> {
        self.begin(kind, name, step_name, steps);
        let result = body(self);
        self.end(&result, line);
        result
    }

    /// Ends the session's entry with `result`: its final figures (`line` of the value), or the
    /// error.
    pub fn end<T>(&mut self, result: &Result<T, SessionError>, line: impl FnOnce(&T) -> String) {
        let Some(s) = self.session.take() else { return };
        match result {
            Ok(v) => s.finish(&line(v)),
            Err(e) => s.fail(&e.to_string()),
        }
    }

    /// Records the session's progress (round by round figures) into `progress`.
    pub fn record_to(mut self, progress: &Progress) -> Self {
        self.progress = progress.clone();
        self
    }

    /// Records a point of the session's progress.
    pub fn progress(&mut self, point: TrainPoint) {
        if let Some(s) = &self.session {
            let series = point.shard.map_or(0, |k| k as u32 + 1);
            let figures = Figures {
                loss: point.loss,
                accuracy: point.accuracy,
                mse: point.mse,
            };
            s.point(point.round as u32, series, figures);
            if point.shard.is_none() {
                s.step(point.round as u32, point.rounds as u32);
            }
        }
        self.progress.push(point);
    }

    /// Tells `observer` what happens (e.g. `&mut my_progress_view`).
    pub fn observe(mut self, observer: impl Observer + 'a) -> Self {
        self.observer = Box::new(observer);
        self
    }

    /// Stops the session when `token` is raised.
    pub fn cancel_on(mut self, token: &CancelToken) -> Self {
        self.cancel = token.clone();
        self
    }

    /// The main node.
    pub fn main(&self) -> &MainNode {
        self.main
    }

    /// Tells the observer a line about the session.
    pub fn note(&mut self, line: &str) {
        if let Some(s) = &self.session {
            s.say(line);
        }
        self.observer.note(line);
    }

    /// Waits until `n` computing nodes are known (0: no wait), within the deadline.
    pub fn wait_for_nodes(&mut self, n: usize) -> Result<(), SessionError> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        let known = self.main.wait_for_computing_nodes(n, left, &self.cancel);
        if known >= n {
            Ok(())
        } else if self.cancel.is_cancelled() {
            Err(SessionError::Interrupted {
                unsolved: 0,
                total: 0,
            })
        } else {
            Err(SessionError::Config(format!(
                "only {known} of {n} computing nodes appeared on domain {}",
                self.main.domain()
            )))
        }
    }

    /// Sends every job and waits for every solution, in the order they arrive. Fails at the
    /// first job that fails, on cancellation, or when the session's time is up (naming the
    /// jobs left); the jobs left are then cancelled.
    pub fn run<L: Clone + Display>(
        &mut self,
        jobs: Vec<(L, Bytes)>,
    ) -> Result<Vec<Solved<L>>, SessionError> {
        let total = jobs.len();
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        let mut batch = self
            .main
            .batch()
            .job_timeout(remaining)
            .cancel_on(&self.cancel);
        for (label, data) in jobs {
            batch.submit(label, data)?;
        }
        self.observer.started(total);
        let mut done = Vec::with_capacity(total);
        while let Some(event) = batch.next_event() {
            self.observer.event(&event.clone().map(|l| l.to_string()));
            let Event::Done(outcome) = event else {
                continue;
            };
            let label = outcome.label;
            match outcome.result {
                Ok(s) => done.push(Solved {
                    label,
                    solution: s.data,
                    server: s.server_id,
                    seconds: outcome.elapsed.as_secs_f64(),
                }),
                Err(JobError::Cancelled { .. }) if self.cancel.is_cancelled() => {
                    return Err(SessionError::Interrupted {
                        unsolved: batch.pending() + 1,
                        total,
                    });
                }
                Err(JobError::Timeout { hint, .. }) => {
                    let mut left = vec![label.to_string()];
                    let unsolved = batch.pending() + 1;
                    batch.cancel();
                    left.extend(batch.by_ref().map(|o| o.label.to_string()));
                    left.sort();
                    // Name a few: a thousand names help nobody.
                    let mut jobs = left.iter().take(10).cloned().collect::<Vec<_>>().join(", ");
                    if left.len() > 10 {
                        jobs.push_str(&format!(" and {} more", left.len() - 10));
                    }
                    return Err(SessionError::TimeUp {
                        unsolved,
                        total,
                        hint,
                        jobs,
                    });
                }
                Err(error) => {
                    return Err(SessionError::JobFailed {
                        job: label.to_string(),
                        error,
                    })
                }
            }
        }
        Ok(done)
    }
}
