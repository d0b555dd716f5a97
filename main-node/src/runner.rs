//! Sends a set of jobs through an async main node and waits for all of them, with a progress
//! display (jobs sent / running / solved, and what each computing node is doing) and a bound on
//! the whole run. When nothing progresses, it says why: how many computing nodes are alive and
//! which jobs wait.

use std::collections::HashMap;
use std::sync::mpsc::{self, Receiver};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use amlip_core::prelude::*;
use anyhow::{bail, Context};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A job's outcome as the listener reports it.
pub type Outcome = (TaskId, Result<(Bytes, AmlipId), JobError>);

/// A solution listener that forwards every outcome to a channel.
pub struct Forward(pub Mutex<mpsc::Sender<Outcome>>);

impl SolutionListener for Forward {
    fn solution_received(&self, solution: Bytes, task_id: TaskId, server_id: AmlipId) {
        let _ = self
            .0
            .lock()
            .expect("listener")
            .send((task_id, Ok((solution, server_id))));
    }

    fn job_failed(&self, task_id: TaskId, error: JobError) {
        let _ = self.0.lock().expect("listener").send((task_id, Err(error)));
    }
}

/// One finished job.
pub struct Done<L> {
    pub label: L,
    pub solution: Bytes,
    pub server: AmlipId,
    pub seconds: f64,
}

/// A main node that runs batches of jobs.
pub struct Runner {
    main: AsyncMainNode,
    outcomes: Receiver<Outcome>,
    deadline: Instant,
    progress: MultiProgress,
    /// Jobs sent and solutions handed back, over every `run`.
    sent: std::cell::Cell<usize>,
    solved: std::cell::Cell<usize>,
}

/// What a main did over a whole run, for reports and fault scenarios.
#[derive(Debug, Clone, Copy)]
pub struct Counts {
    pub sent: usize,
    pub solved: usize,
    pub resent: u64,
    pub duplicates_dropped: u64,
}

impl Runner {
    pub fn start(cfg: NodeConfig, timeout: Duration) -> anyhow::Result<Self> {
        let (tx, outcomes) = mpsc::channel();
        let main = AsyncMainNode::with_config(cfg, Forward(Mutex::new(tx)))
            .context("cannot start the main node")?;
        // Drawn only on a terminal; plain logs otherwise.
        let progress = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(5));
        Ok(Self {
            main,
            outcomes,
            deadline: Instant::now() + timeout,
            progress,
            sent: Default::default(),
            solved: Default::default(),
        })
    }

    pub fn id(&self) -> &AmlipId {
        self.main.id()
    }

    /// Counts so far. Solutions that arrive after their job was solved (from a node thought
    /// gone) are dropped and counted as duplicates.
    pub fn counts(&self) -> Counts {
        let stats = self.main.stats();
        Counts {
            sent: self.sent.get(),
            solved: self.solved.get(),
            resent: stats.resent,
            duplicates_dropped: stats.duplicates_dropped,
        }
    }

    pub fn domain(&self) -> u16 {
        self.main.domain()
    }

    /// Prints a line above the progress display.
    pub fn println(&self, line: &str) {
        if self.progress.is_hidden() {
            println!("{line}");
        } else {
            let _ = self.progress.println(line);
        }
    }

    /// Waits until `n` computing nodes are known (0: no wait), within the run's deadline.
    pub fn wait_nodes(&self, n: usize, stop: &Receiver<()>) -> anyhow::Result<()> {
        while self.main.stats().computing_nodes.len() < n {
            if stop.try_recv().is_ok() {
                bail!("interrupted");
            }
            if Instant::now() > self.deadline {
                bail!(
                    "only {} of {n} computing nodes appeared on domain {}",
                    self.main.stats().computing_nodes.len(),
                    self.domain()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Sends every job and waits for every solution. `describe` names a job in the display.
    /// Fails if any job fails, on Ctrl-C, or when the run's time is up.
    pub fn run<L: Clone>(
        &self,
        jobs: Vec<(L, Bytes)>,
        describe: impl Fn(&L) -> String,
        stop: &Receiver<()>,
    ) -> anyhow::Result<Vec<Done<L>>> {
        let total = jobs.len();
        let bar = self.progress.add(ProgressBar::new(total as u64));
        bar.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} jobs solved  {msg}")
                .expect("template"),
        );
        let mut pending: HashMap<TaskId, (L, Instant)> = HashMap::new();
        for (label, data) in jobs {
            let remaining = self.deadline.saturating_duration_since(Instant::now());
            let task = self
                .main
                .request_job_solution_with_timeout(data, remaining)?;
            pending.insert(task, (label, Instant::now()));
            self.sent.set(self.sent.get() + 1);
        }
        let mut done = Vec::with_capacity(total);
        let mut node_lines: HashMap<AmlipId, ProgressBar> = HashMap::new();
        let mut last_progress = Instant::now();
        let mut last_report = Instant::now();
        while !pending.is_empty() {
            if stop.try_recv().is_ok() {
                bail!(
                    "interrupted with {} of {total} jobs unsolved",
                    pending.len()
                );
            }
            if Instant::now() > self.deadline {
                let waiting: Vec<String> = pending.values().map(|(l, _)| describe(l)).collect();
                bail!(
                    "time is up with {} of {total} jobs unsolved: {}",
                    pending.len(),
                    waiting.join(", ")
                );
            }
            match self.outcomes.recv_timeout(Duration::from_millis(200)) {
                Ok((task, outcome)) => {
                    let Some((label, at)) = pending.remove(&task) else {
                        continue;
                    };
                    last_progress = Instant::now();
                    match outcome {
                        Ok((solution, server)) => {
                            bar.inc(1);
                            self.solved.set(self.solved.get() + 1);
                            done.push(Done {
                                label,
                                solution,
                                server,
                                seconds: at.elapsed().as_secs_f64(),
                            });
                        }
                        Err(JobError::Timeout { hint, .. }) => {
                            // The run's deadline: list everything still unsolved.
                            let mut waiting = vec![describe(&label)];
                            waiting.extend(pending.values().map(|(l, _)| describe(l)));
                            bail!(
                                "time is up with {} of {total} jobs unsolved{hint}: {}",
                                waiting.len(),
                                waiting.join(", ")
                            );
                        }
                        Err(e) => bail!("job {} failed: {e}", describe(&label)),
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => bail!("the main node stopped"),
            }
            let stats = self.main.stats();
            self.draw(&bar, &stats, &pending, &describe, &mut node_lines);
            // Nothing solved for a while: say what we are waiting for.
            if last_progress.elapsed() > Duration::from_secs(10)
                && last_report.elapsed() > Duration::from_secs(10)
            {
                last_report = Instant::now();
                let held: Vec<String> = stats
                    .running
                    .iter()
                    .filter_map(|r| {
                        pending
                            .get(&r.task_id)
                            .map(|(l, _)| format!("{} on {}", describe(l), r.server_id))
                    })
                    .collect();
                self.println(&format!(
                    "waiting: {} job(s) unsolved ({} not taken yet); {} computing node(s) alive on domain {}{}{}",
                    pending.len(),
                    stats.waiting,
                    stats.computing_nodes.len(),
                    self.domain(),
                    if held.is_empty() { "" } else { "; running: " },
                    held.join(", ")
                ));
            }
        }
        for (_, line) in node_lines {
            line.finish_and_clear();
        }
        bar.finish_and_clear();
        Ok(done)
    }

    fn draw<L>(
        &self,
        bar: &ProgressBar,
        stats: &ClientStats,
        pending: &HashMap<TaskId, (L, Instant)>,
        describe: &impl Fn(&L) -> String,
        lines: &mut HashMap<AmlipId, ProgressBar>,
    ) {
        if self.progress.is_hidden() {
            return;
        }
        bar.set_message(format!(
            "{} running, {} waiting, {} computing node(s)",
            stats.running.len(),
            stats.waiting,
            stats.computing_nodes.len()
        ));
        let mut seen = Vec::new();
        for r in &stats.running {
            let Some((label, _)) = pending.get(&r.task_id) else {
                continue;
            };
            let line = lines.entry(r.server_id.clone()).or_insert_with(|| {
                let pb = self.progress.add(ProgressBar::new_spinner());
                pb.set_style(ProgressStyle::with_template("  {msg}").expect("template"));
                pb
            });
            let step = if r.total > 0 {
                format!("step {}/{}", r.done, r.total)
            } else {
                "starting".into()
            };
            line.set_message(format!("{}: {} - {step}", r.server_id, describe(label)));
            seen.push(r.server_id.clone());
        }
        lines.retain(|id, line| {
            let keep = seen.contains(id);
            if !keep {
                line.finish_and_clear();
            }
            keep
        });
    }
}
