//! Pipelines of tasks (Twister2Flow's `PipelineGraph`): a graph read from TOML (or built in
//! Rust), checked before anything runs, printed, run with independent tasks in parallel, each
//! task on computing nodes, a failed task re-run (bounded), and timed.
//!
//! - this module: [`Pipeline`], [`Task`], [`Work`] and the checks (unknown kinds and fields,
//!   unknown or cyclic dependencies, duplicate names).
//! - `run`: [`Pipeline::run`] on a [`MainNode`](crate::node::MainNode).
//! - `kinds`: the job kinds computing nodes serve for it: `prepare_data` (load, check and
//!   split a data set under the node's data directory), `evaluate` (a trained network on a
//!   test set), `program` (an operator-allowed program; opt-in).
//!
//! ```toml
//! name = "seed"
//! [[task]]
//! name = "prepare"
//! kind = "prepare"
//! data = "mnist"
//! [[task]]
//! name = "train"
//! kind = "train"
//! after = ["prepare"]
//! model = "cnn"
//! workers = 2
//! [[task]]
//! name = "evaluate"
//! kind = "evaluate"
//! after = ["train"]
//! ```

mod kinds;
mod run;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

pub use kinds::{Evaluate, PrepareData, Program};
pub use run::{RunOptions, TaskReport};

/// What is wrong with a pipeline, or why it stopped.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The file or graph is not a pipeline that can run.
    #[error("pipeline {file}: {why}")]
    Invalid {
        /// The file (or `<built in Rust>`).
        file: String,
        /// What is wrong.
        why: String,
    },
    /// A task failed after its retries.
    #[error("task {task:?} failed after {attempts} attempt(s): {why}")]
    TaskFailed {
        /// The task.
        task: String,
        /// Attempts made.
        attempts: u32,
        /// The last error.
        why: String,
    },
    /// Ctrl-C.
    #[error("interrupted")]
    Interrupted,
}

/// A task: a name, the tasks it needs, what it does, how often to retry it.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// Unique in the pipeline.
    pub name: String,
    /// Tasks whose outputs it takes.
    pub after: Vec<String>,
    /// Re-runs after a failure (node lost beyond the protocol's own re-sending, error answer).
    pub retries: u32,
    /// What it does.
    pub work: Work,
}

/// What a task does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Work {
    /// Load a data set on a computing node (a path under its data directory), check it, hold
    /// out a test set if it has none.
    Prepare {
        /// The data, relative to the node's data directory (`mnist`).
        data: String,
        /// Keep only this many training samples.
        #[serde(default)]
        limit: Option<usize>,
        /// Test fraction when the data has no test files.
        #[serde(default = "default_split")]
        test_split: f64,
    },
    /// Train a network on the prepared data by all-reduce across `workers` computing nodes.
    Train {
        /// `cnn` or `dense`.
        #[serde(default = "default_model")]
        model: String,
        /// Workers in the group.
        #[serde(default = "default_workers")]
        workers: usize,
        /// Epochs.
        #[serde(default = "one")]
        epochs: usize,
        /// Mini-batch per worker.
        #[serde(default = "default_batch")]
        batch: usize,
        /// `adam` or `sgd`.
        #[serde(default = "default_optimizer")]
        optimizer: String,
        /// Learning rate (default: adam 0.001, sgd 0.01).
        #[serde(default)]
        lr: Option<f32>,
        /// SGD momentum.
        #[serde(default = "default_momentum")]
        momentum: f32,
    },
    /// Score the trained model (from `after`) on the test set (from the first task upstream
    /// that prepared one), on a computing node.
    Evaluate {},
    /// Run a program on a computing node that allows it (`computing-node --allow-programs DIR`;
    /// `program` is a path under DIR).
    Program {
        /// The program, relative to the node's allowed directory.
        program: String,
        /// Its arguments.
        #[serde(default)]
        args: Vec<String>,
        /// Longest run, in seconds.
        #[serde(default = "default_program_timeout")]
        timeout_s: f64,
    },
}

fn default_split() -> f64 {
    0.2
}
fn default_model() -> String {
    "cnn".into()
}
fn default_workers() -> usize {
    2
}
fn one() -> usize {
    1
}
fn default_batch() -> usize {
    64
}
fn default_optimizer() -> String {
    "adam".into()
}
fn default_momentum() -> f32 {
    0.5
}
fn default_program_timeout() -> f64 {
    600.0
}

impl Work {
    /// The kind's name, as the file spells it.
    pub fn kind(&self) -> &'static str {
        match self {
            Work::Prepare { .. } => "prepare",
            Work::Train { .. } => "train",
            Work::Evaluate {} => "evaluate",
            Work::Program { .. } => "program",
        }
    }
}

/// Task kinds a pipeline file may name.
pub const KINDS: [&str; 4] = ["prepare", "train", "evaluate", "program"];

/// A checked graph of tasks, in a topological order.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// Its name.
    pub name: String,
    /// The tasks, each after the tasks it needs.
    pub tasks: Vec<Task>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileForm {
    #[serde(default)]
    name: Option<String>,
    #[serde(rename = "task", default)]
    tasks: Vec<toml::Table>,
}

impl Pipeline {
    /// Reads and checks a pipeline file.
    pub fn from_file(path: &std::path::Path) -> Result<Pipeline, PipelineError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| PipelineError::Invalid {
            file: file.clone(),
            why: format!("cannot read it: {e}"),
        })?;
        Self::from_toml(&text, &file)
    }

    /// Parses and checks a pipeline in TOML (`file` names it in errors).
    pub fn from_toml(text: &str, file: &str) -> Result<Pipeline, PipelineError> {
        let invalid = |why: String| PipelineError::Invalid {
            file: file.to_owned(),
            why,
        };
        let form: FileForm =
            toml::from_str(text).map_err(|e| invalid(e.to_string().trim_end().to_owned()))?;
        let mut tasks = Vec::new();
        for (i, mut t) in form.tasks.into_iter().enumerate() {
            let name = match t.remove("name") {
                Some(toml::Value::String(s)) if !s.is_empty() => s,
                _ => {
                    return Err(invalid(format!(
                        "task {} has no name (name = \"...\")",
                        i + 1
                    )))
                }
            };
            let after = match t.remove("after") {
                None => Vec::new(),
                Some(v) => v.try_into::<Vec<String>>().map_err(|_| {
                    invalid(format!("task {name:?}: after must be a list of task names"))
                })?,
            };
            let retries = match t.remove("retries") {
                None => 2,
                Some(toml::Value::Integer(n)) if (0..=10).contains(&n) => n as u32,
                Some(v) => {
                    return Err(invalid(format!(
                        "task {name:?}: retries {v:?} is not in 0..=10"
                    )))
                }
            };
            let kind = match t.get("kind") {
                Some(toml::Value::String(k)) => k.clone(),
                _ => {
                    return Err(invalid(format!(
                        "task {name:?} has no kind (one of {})",
                        KINDS.join(", ")
                    )))
                }
            };
            if !KINDS.contains(&kind.as_str()) {
                return Err(invalid(format!(
                    "task {name:?}: unknown kind {kind:?} (kinds: {})",
                    KINDS.join(", ")
                )));
            }
            let work: Work = toml::Value::Table(t).try_into().map_err(|e| {
                invalid(format!(
                    "task {name:?} ({kind}): {}",
                    e.to_string().trim_end()
                ))
            })?;
            tasks.push(Task {
                name,
                after,
                retries,
                work,
            });
        }
        Self::new(form.name.unwrap_or_else(|| "pipeline".into()), tasks).map_err(invalid)
    }

    /// Checks a graph built in Rust: unique names, known dependencies, no cycle, inputs each
    /// task needs. Orders the tasks so that each comes after those it needs.
    pub fn new(name: String, tasks: Vec<Task>) -> Result<Pipeline, String> {
        if tasks.is_empty() {
            return Err("no tasks ([[task]] tables)".into());
        }
        let mut by_name = BTreeMap::new();
        for (i, t) in tasks.iter().enumerate() {
            if by_name.insert(t.name.as_str(), i).is_some() {
                return Err(format!("two tasks are named {:?}", t.name));
            }
        }
        for t in &tasks {
            for d in &t.after {
                if !by_name.contains_key(d.as_str()) {
                    return Err(format!(
                        "task {:?} comes after {d:?}, which is not a task",
                        t.name
                    ));
                }
                if d == &t.name {
                    return Err(format!("task {:?} comes after itself", t.name));
                }
            }
        }
        // Kahn's algorithm; what is left over lies on a cycle.
        let mut done: Vec<usize> = Vec::new();
        let mut placed = BTreeSet::new();
        while done.len() < tasks.len() {
            let ready: Vec<usize> = (0..tasks.len())
                .filter(|i| {
                    !placed.contains(i)
                        && tasks[*i]
                            .after
                            .iter()
                            .all(|d| placed.contains(&by_name[d.as_str()]))
                })
                .collect();
            if ready.is_empty() {
                let cycle = find_cycle(&tasks, &by_name, &placed);
                return Err(format!("tasks {} form a cycle", cycle.join(" -> ")));
            }
            for i in ready {
                placed.insert(i);
                done.push(i);
            }
        }
        let ordered: Vec<Task> = done.into_iter().map(|i| tasks[i].clone()).collect();
        let p = Pipeline {
            name,
            tasks: ordered,
        };
        for t in &p.tasks {
            let up = p.upstream(&t.name);
            let has = |k: &str| up.iter().any(|u| u.work.kind() == k);
            match &t.work {
                Work::Train {
                    model, optimizer, ..
                } => {
                    if !has("prepare") {
                        return Err(format!(
                            "task {:?} (train) needs a prepare task upstream",
                            t.name
                        ));
                    }
                    if !["cnn", "dense"].contains(&model.as_str())
                        || !["adam", "sgd"].contains(&optimizer.as_str())
                    {
                        return Err(format!("task {:?} (train): model {model:?} / optimizer {optimizer:?}: models cnn, dense; optimizers adam, sgd", t.name));
                    }
                }
                Work::Evaluate {} if !has("train") || !has("prepare") => {
                    return Err(format!(
                        "task {:?} (evaluate) needs a train task and a prepare task upstream",
                        t.name
                    ));
                }
                _ => {}
            }
        }
        Ok(p)
    }

    /// Every task `name` depends on, directly or not, nearest first.
    pub fn upstream(&self, name: &str) -> Vec<&Task> {
        let mut out: Vec<&Task> = Vec::new();
        let mut frontier = vec![name.to_owned()];
        while let Some(n) = frontier.pop() {
            let Some(t) = self.tasks.iter().find(|t| t.name == n) else {
                continue;
            };
            for d in &t.after {
                if let Some(dt) = self.tasks.iter().find(|t| &t.name == d) {
                    if !out.iter().any(|o| o.name == dt.name) {
                        out.push(dt);
                        frontier.insert(0, dt.name.clone());
                    }
                }
            }
        }
        out
    }

    /// The tasks in stages: each stage's tasks need only earlier stages, so they run at once.
    pub fn stages(&self) -> Vec<Vec<&Task>> {
        let mut level: BTreeMap<&str, usize> = BTreeMap::new();
        for t in &self.tasks {
            let l = t
                .after
                .iter()
                .map(|d| level[d.as_str()] + 1)
                .max()
                .unwrap_or(0);
            level.insert(&t.name, l);
        }
        let mut stages: Vec<Vec<&Task>> =
            vec![Vec::new(); level.values().max().map_or(0, |m| m + 1)];
        for t in &self.tasks {
            stages[level[t.name.as_str()]].push(t);
        }
        stages
    }
}

fn find_cycle(
    tasks: &[Task],
    by_name: &BTreeMap<&str, usize>,
    placed: &BTreeSet<usize>,
) -> Vec<String> {
    // Walk unplaced dependencies from any unplaced task until a task repeats.
    let start = (0..tasks.len())
        .find(|i| !placed.contains(i))
        .expect("a task is left");
    let mut path = vec![start];
    loop {
        let cur = *path.last().expect("non-empty");
        let next = tasks[cur]
            .after
            .iter()
            .map(|d| by_name[d.as_str()])
            .find(|i| !placed.contains(i))
            .expect("a left task waits on a left task");
        if let Some(pos) = path.iter().position(|&p| p == next) {
            let mut cyc: Vec<String> = path[pos..]
                .iter()
                .rev()
                .map(|&i| tasks[i].name.clone())
                .collect();
            cyc.push(cyc[0].clone());
            return cyc;
        }
        path.push(next);
    }
}

impl fmt::Display for Pipeline {
    /// The graph, stage by stage: what runs at once, and what each task needs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "pipeline {}: {} task(s)", self.name, self.tasks.len())?;
        for (i, stage) in self.stages().iter().enumerate() {
            for t in stage {
                let after = if t.after.is_empty() {
                    String::new()
                } else {
                    format!("  <- {}", t.after.join(", "))
                };
                writeln!(
                    f,
                    "  stage {}  {:<16} {:<9}{after}",
                    i + 1,
                    t.name,
                    t.work.kind()
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = r#"
name = "seed"
[[task]]
name = "prepare"
kind = "prepare"
data = "mnist"
[[task]]
name = "train"
kind = "train"
after = ["prepare"]
workers = 2
[[task]]
name = "evaluate"
kind = "evaluate"
after = ["train"]
[[task]]
name = "hello"
kind = "program"
program = "hello.sh"
after = ["prepare"]
"#;

    #[test]
    fn the_seed_pipeline_parses_in_stages() {
        let p = Pipeline::from_toml(SEED, "seed.toml").unwrap();
        let stages: Vec<Vec<&str>> = p
            .stages()
            .iter()
            .map(|s| s.iter().map(|t| t.name.as_str()).collect())
            .collect();
        assert_eq!(
            stages,
            vec![vec!["prepare"], vec!["train", "hello"], vec!["evaluate"]]
        );
        let shown = p.to_string();
        assert!(
            shown.contains("stage 2  train            train      <- prepare"),
            "{shown}"
        );
    }

    #[test]
    fn bad_files_are_named_errors() {
        let cycle = SEED.replace(
            "name = \"prepare\"\nkind = \"prepare\"",
            "name = \"prepare\"\nkind = \"prepare\"\nafter = [\"evaluate\"]",
        );
        let e = Pipeline::from_toml(&cycle, "c.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("form a cycle")
                && ["prepare", "train", "evaluate"]
                    .iter()
                    .all(|t| e.contains(t)),
            "{e}"
        );
        let unknown = SEED.replace("kind = \"evaluate\"", "kind = \"evaluat\"");
        let e = Pipeline::from_toml(&unknown, "u.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("task \"evaluate\": unknown kind \"evaluat\" (kinds: prepare, train, evaluate, program)"), "{e}");
        let field = SEED.replace("workers = 2", "workers = 2\nepoch = 3");
        let e = Pipeline::from_toml(&field, "f.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("task \"train\" (train)") && e.contains("epoch"),
            "{e}"
        );
        let missing = SEED.replace("after = [\"train\"]", "after = [\"trian\"]");
        let e = Pipeline::from_toml(&missing, "m.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("comes after \"trian\", which is not a task"),
            "{e}"
        );
        let e = Pipeline::from_toml("[[task]]\nname = 3", "n.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("task 1 has no name"), "{e}");
        let e = Pipeline::from_toml("name = [", "bad.toml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("pipeline bad.toml: "), "{e}");
    }
}
