//! `main-node jobs`' workload: batches of upper-case jobs of a given size, a window of them in
//! flight, every solution checked, per-job times and who solved what.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::cancel::CancelToken;
use crate::error::{Error, JobError};
use crate::prelude::*;

/// What to send.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Jobs per batch.
    pub count: usize,
    /// Bytes per job (the solution has as many).
    pub size: usize,
    /// Jobs in flight at once.
    pub in_flight: usize,
    /// Batches, one after the other.
    pub batches: usize,
    /// Pause between batches.
    pub pause: Duration,
    /// Each job's deadline.
    pub timeout: Duration,
}

/// What happened to one job, as it is decided.
pub enum JobEvent<'a> {
    /// Solved right: by whom, its size, its round trip.
    Solved {
        /// The job's number.
        job: usize,
        /// The solution.
        solution: &'a Solution,
        /// From submission to solution.
        elapsed: Duration,
    },
    /// Failed (or solved wrong).
    Failed {
        /// The job's number.
        job: usize,
        /// Why.
        why: String,
    },
    /// A batch ended.
    BatchDone {
        /// Which.
        batch: usize,
        /// Its wall time.
        elapsed: Duration,
    },
    /// Pausing before the next batch.
    Pausing(Duration),
}

/// What the workload measured.
#[derive(Debug, Default)]
pub struct JobsReport {
    /// Round trips of the jobs solved right, sorted.
    pub times: Vec<Duration>,
    /// Jobs that failed, in words.
    pub failures: Vec<String>,
    /// Jobs solved per computing node.
    pub by_node: BTreeMap<String, usize>,
    /// Wall time of all batches.
    pub elapsed: Duration,
}

impl JobsReport {
    /// The `p` quantile of the round trips, in ms (NaN with none).
    pub fn percentile_ms(&self, p: f64) -> f64 {
        self.times
            .get(((self.times.len().max(1) - 1) as f64 * p).round() as usize)
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
    }
}

/// Why the workload stopped short.
#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    /// The node could not submit.
    #[error(transparent)]
    Node(#[from] Error),
    /// Ctrl-C.
    #[error("interrupted with {unanswered} of {total} jobs unanswered")]
    Interrupted {
        /// Jobs not decided.
        unanswered: usize,
        /// All jobs.
        total: usize,
    },
}

/// Job `i`'s payload: its number, then lower-case letters up to `size` bytes.
pub fn payload(i: usize, size: usize) -> Vec<u8> {
    let mut p = format!("job-{i}-").into_bytes();
    p.truncate(size);
    p.resize(size, b'a' + (i % 26) as u8);
    p
}

/// Runs the workload from `main`, telling `on` about every job as it is decided.
pub fn run(
    main: &MainNode,
    w: &Workload,
    stop: &CancelToken,
    on: &mut dyn FnMut(JobEvent<'_>),
) -> Result<JobsReport, JobsError> {
    let start = Instant::now();
    let total = w.count * w.batches;
    let mut report = JobsReport::default();
    for b in 0..w.batches {
        if b > 0 {
            on(JobEvent::Pausing(w.pause));
            if stop.wait_timeout(w.pause) {
                return Err(JobsError::Interrupted {
                    unanswered: total - report.times.len() - report.failures.len(),
                    total,
                });
            }
        }
        let batch_start = Instant::now();
        let mut batch = main.batch().job_timeout(w.timeout).cancel_on(stop);
        let jobs = b * w.count..(b + 1) * w.count;
        let mut next = jobs.start;
        while next < jobs.end && next < jobs.start + w.in_flight {
            batch.submit(next, payload(next, w.size))?;
            next += 1;
        }
        while let Some(outcome) = batch.next() {
            if next < jobs.end && !stop.is_cancelled() {
                batch.submit(next, payload(next, w.size))?;
                next += 1;
            }
            let job = outcome.label;
            match outcome.result {
                Ok(s) if s.data[..] == payload(job, w.size).to_ascii_uppercase()[..] => {
                    report.times.push(outcome.elapsed);
                    *report.by_node.entry(s.server_id.to_string()).or_default() += 1;
                    on(JobEvent::Solved {
                        job,
                        solution: &s,
                        elapsed: outcome.elapsed,
                    });
                }
                Ok(s) => {
                    let why = format!("wrong solution from {}", s.server_id);
                    report.failures.push(format!("job {job}: {why}"));
                    on(JobEvent::Failed { job, why });
                }
                Err(JobError::Cancelled { .. }) if stop.is_cancelled() => {
                    return Err(JobsError::Interrupted {
                        unanswered: batch.pending() + 1 + (jobs.end - next),
                        total,
                    });
                }
                Err(e) => {
                    report.failures.push(format!("job {job}: {e}"));
                    on(JobEvent::Failed {
                        job,
                        why: e.to_string(),
                    });
                }
            }
        }
        if stop.is_cancelled() {
            return Err(JobsError::Interrupted {
                unanswered: total - report.times.len() - report.failures.len(),
                total,
            });
        }
        on(JobEvent::BatchDone {
            batch: b,
            elapsed: batch_start.elapsed(),
        });
    }
    report.times.sort();
    report.elapsed = start.elapsed();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::payload;

    #[test]
    fn payloads_are_distinct_and_sized() {
        assert_eq!(payload(3, 10), b"job-3-dddd".to_vec());
        assert_eq!(payload(3, 2), b"jo".to_vec());
        assert_ne!(payload(1, 50), payload(2, 50));
    }
}
