//! A batch of jobs with a progress bar: AML training jobs (one per digit, on a shard of MNIST)
//! sent at once to every computing node on the domain; the bar counts solutions and each
//! node's line shows the training step its job reports.
//!
//! Run, with one or more computing nodes on the same domain:
//!   `cargo run --release -p computing-node -- --domain 7 --network localhost`
//!   `cargo run --release -p amlip-examples --example batch_progress -- --domain 7`
use std::collections::HashMap;
use std::time::Duration;

use amlip_core::batch::Event;
use amlip_core::dataset;
use amlip_core::kind::aml_train::{AmlTrain, AmlTrainJob, AmlTrainParams};
use amlip_core::kind::{job_bytes, read_solution};
use amlip_core::prelude::*;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

fn main() -> Result<(), BoxError> {
    let cfg = NodeConfig::new("BatchMain")
        .domain(amlip_examples::domain())
        .localhost();
    let main = MainNode::with_config(cfg)?;
    let shard = dataset::load_dir(&amlip_examples::mnist_dir())?
        .train
        .select(&(0..6000).collect::<Vec<_>>());
    let mut batch = main.batch().job_timeout(Duration::from_secs(300));
    for digit in 0..6u8 {
        let params = AmlTrainParams {
            digit,
            batches: 8,
            positives: 50,
            negatives: 450,
            ..AmlTrainParams::default()
        };
        let job = AmlTrainJob {
            params,
            images: shard.images.clone(),
            labels: shard.labels.clone(),
        };
        batch.submit(digit, job_bytes::<AmlTrain>(&job)?)?;
    }
    let bars = MultiProgress::new();
    let solved = bars.add(ProgressBar::new(6));
    solved.set_style(ProgressStyle::with_template("{bar:30} {pos}/{len} solved")?);
    let mut lines: HashMap<AmlipId, ProgressBar> = HashMap::new();
    for event in batch.events() {
        match event {
            Event::Running {
                label,
                node,
                done,
                total,
                ..
            } => {
                let line = lines
                    .entry(node.clone())
                    .or_insert_with(|| bars.add(ProgressBar::new_spinner()));
                line.set_message(format!("{node}: digit {label}, batch {done}/{total}"));
            }
            Event::Resent { label, reason, .. } => {
                bars.println(format!("digit {label} re-sent: {reason}"))?
            }
            Event::Waiting(w) => bars.println(w.to_string())?,
            Event::Sent { .. } => {}
            Event::Done(outcome) => {
                let solution = outcome.result?;
                let model = read_solution::<AmlTrain>(&solution.data)?;
                solved.inc(1);
                bars.suspend(|| {
                    println!(
                        "digit {}: {} atoms in {:.1} s, by {}",
                        outcome.label,
                        model.model.len(),
                        outcome.elapsed.as_secs_f64(),
                        solution.server_id
                    )
                });
            }
        }
    }
    solved.finish();
    Ok(())
}
