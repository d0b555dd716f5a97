//! A session [`Observer`] for terminals: a bar of jobs solved, one line per computing node
//! saying what it is doing ("Computing1.f8.33.d7.f9: digit 0 shard 1/3 - step 27/40"), and
//! notes, re-sends and stall reports printed above them. Drawn only on a terminal; elsewhere
//! notes and reports are plain lines on stdout.

use std::collections::HashMap;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::batch::Event;
use crate::session::Observer;
use crate::wire::{AmlipId, TaskId};

/// The progress display.
pub struct ProgressView {
    multi: MultiProgress,
    bar: Option<ProgressBar>,
    nodes: HashMap<AmlipId, (TaskId, ProgressBar)>,
}

impl Default for ProgressView {
    fn default() -> Self {
        Self::new()
    }
}

impl ProgressView {
    /// A display on stderr, redrawn 5 times a second.
    pub fn new() -> Self {
        Self {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(5)),
            bar: None,
            nodes: HashMap::new(),
        }
    }

    /// Prints a line above the display (on stdout when there is no display).
    pub fn println(&self, line: &str) {
        if self.multi.is_hidden() {
            println!("{line}");
        } else {
            let _ = self.multi.println(line);
        }
    }

    fn clear(&mut self) {
        for (_, (_, line)) in self.nodes.drain() {
            line.finish_and_clear();
        }
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Observer for ProgressView {
    fn started(&mut self, jobs: usize) {
        self.clear();
        let bar = self.multi.add(ProgressBar::new(jobs as u64));
        bar.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} jobs solved  {msg}")
                .expect("template"),
        );
        self.bar = Some(bar);
    }

    fn event(&mut self, event: &Event<String>) {
        match event {
            Event::Running {
                label,
                task_id,
                node,
                done,
                total,
            } => {
                let multi = &self.multi;
                let (task, line) = self.nodes.entry(node.clone()).or_insert_with(|| {
                    let pb = multi.add(ProgressBar::new_spinner());
                    pb.set_style(ProgressStyle::with_template("  {msg}").expect("template"));
                    (*task_id, pb)
                });
                *task = *task_id;
                let step = if *total > 0 {
                    format!("step {done}/{total}")
                } else {
                    "starting".into()
                };
                line.set_message(format!("{node}: {label} - {step}"));
            }
            Event::Resent {
                label,
                from,
                reason,
                ..
            } => self.println(&format!("re-sending {label} (was on {from}): {reason}")),
            Event::Done(outcome) => {
                if outcome.result.is_ok() {
                    if let Some(bar) = &self.bar {
                        bar.inc(1);
                    }
                }
                self.nodes.retain(|_, (task, line)| {
                    let keep = *task != outcome.task_id;
                    if !keep {
                        line.finish_and_clear();
                    }
                    keep
                });
                if let Some(bar) = &self.bar {
                    bar.set_message(format!("{} running", self.nodes.len()));
                }
            }
            Event::Waiting(w) => self.println(&w.to_string()),
            Event::Sent { .. } => {}
        }
    }

    fn note(&mut self, line: &str) {
        self.println(line);
    }
}

impl Drop for ProgressView {
    fn drop(&mut self) {
        self.clear();
    }
}
