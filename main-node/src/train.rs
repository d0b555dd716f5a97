//! `main-node train`: distributed MNIST training. Shards the training set, sends one job per
//! shard (per digit, per round) to the computing nodes, aggregates the solutions as they arrive,
//! evaluates on the official test set, prints a table, and writes the model and a report.

use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use amlip_core::aml::{self, ClassMetrics, Metrics, Model, OneVsRest};
use amlip_core::cli::{self, NodeArgs};
use amlip_core::dataset::{self, Mnist, Sharding};
use amlip_core::jobs::ml::{self, AmlTrainParams, MlpTrainParams};
use amlip_core::jobs::payload::PayloadBuilder;
use amlip_core::mlp::{Mlp, SparseImages};
use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::runner::Runner;

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// Algebraic Machine Learning: one binary classifier (--digit) or ten (10-class).
    Aml,
    /// A 784-128-10 neural network trained by federated averaging over rounds.
    Mlp,
}

#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// The model to train.
    #[arg(long, value_enum, default_value = "aml")]
    model: ModelKind,

    /// AML: train the binary classifier "is it this digit?"; without it, a 10-class
    /// classifier (ten binary ones).
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=9))]
    digit: Option<u8>,

    /// Shards of the training set: one job per shard (per digit for 10-class AML, per round
    /// for MLP).
    #[arg(long, default_value_t = 3)]
    jobs: usize,

    /// AML: batches each job trains.
    #[arg(long, default_value_t = 10)]
    batches: usize,

    /// AML: positive and negative images per batch.
    #[arg(long, num_args = 2, value_names = ["POS", "NEG"], default_values_t = [100, 900])]
    batch_sizes: Vec<usize>,

    /// AML: drop each shard's atoms that another shard's positives fail before merging.
    #[arg(long)]
    filter_merge: bool,

    /// MLP: federated rounds.
    #[arg(long, default_value_t = 5)]
    rounds: usize,

    /// MLP: local epochs per round.
    #[arg(long, default_value_t = 2)]
    epochs: usize,

    /// MLP: mini-batch size, learning rate, momentum.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    #[arg(long, default_value_t = 0.05)]
    learning_rate: f32,
    #[arg(long, default_value_t = 0.9)]
    momentum: f32,

    /// Seed of the sharding, the training and the initial weights.
    #[arg(long, default_value_t = 1)]
    seed: u64,

    /// Use only this many training images (quick runs).
    #[arg(long)]
    limit: Option<usize>,

    /// MNIST directory (IDX files, gzip'd or not).
    #[arg(long, env = "AMLIP_DATA", default_value = "datasets/mnist")]
    data: PathBuf,

    /// Fraction of the training set held out to choose AML cutoffs.
    #[arg(long, default_value_t = 0.1)]
    holdout: f64,

    /// Bound on the whole run.
    #[arg(long, default_value = "30m", value_parser = cli::duration_arg)]
    timeout: Duration,

    /// Wait for this many computing nodes before sending jobs.
    #[arg(long, default_value_t = 0)]
    wait_nodes: usize,

    /// Write the trained model here (AML binary classifier: `.json` writes the AML-IP tutorial
    /// JSON form; any other name writes amlip's binary container).
    #[arg(long)]
    out: Option<PathBuf>,

    /// Write the results table as JSON here.
    #[arg(long)]
    report: Option<PathBuf>,

    /// Stay on the domain this long after the last solution, so that late duplicates (from
    /// computing nodes that were thought gone) are seen and counted.
    #[arg(long, default_value = "0s", value_parser = cli::duration_arg)]
    linger: Duration,
}

/// One row of the results table.
#[derive(Debug, Clone)]
struct Row {
    name: String,
    accuracy: f64,
    balanced: f64,
    fpr: f64,
    fnr: f64,
    seconds: Option<f64>,
    detail: String,
}

impl Row {
    fn binary(name: String, m: &Metrics, seconds: Option<f64>, detail: String) -> Self {
        Row {
            name,
            accuracy: m.accuracy(),
            balanced: m.balanced_accuracy(),
            fpr: m.fpr(),
            fnr: m.fnr(),
            seconds,
            detail,
        }
    }

    fn classes(name: String, m: &ClassMetrics, seconds: Option<f64>, detail: String) -> Self {
        Row {
            name,
            accuracy: m.accuracy,
            balanced: m.balanced_accuracy,
            fpr: m.fpr,
            fnr: m.fnr,
            seconds,
            detail,
        }
    }

    fn json(&self) -> Value {
        json!({"name": self.name, "accuracy": self.accuracy, "balanced_accuracy": self.balanced,
               "fpr": self.fpr, "fnr": self.fnr, "seconds": self.seconds, "detail": self.detail})
    }
}

fn print_table(title: &str, rows: &[Row]) {
    println!("\n{title}");
    println!(
        "{:<26} {:>9} {:>9} {:>7} {:>7} {:>9}",
        "", "accuracy", "bal. acc", "FPR", "FNR", "time (s)"
    );
    for r in rows {
        println!(
            "{:<26} {:>9.4} {:>9.4} {:>7.4} {:>7.4} {:>9}  {}",
            r.name,
            r.accuracy,
            r.balanced,
            r.fpr,
            r.fnr,
            r.seconds.map_or("".into(), |s| format!("{s:.2}")),
            r.detail
        );
    }
}

/// Finds the MNIST directory: as given, else next to the repository the binary was built in.
fn data_dir(given: &Path) -> PathBuf {
    if given.exists() || given.is_absolute() {
        return given.to_owned();
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().map(|a| a.join(given)).find(|p| p.exists()))
        .unwrap_or_else(|| given.to_owned())
}

pub fn run(node: &NodeArgs, args: &TrainArgs, stop: &Receiver<()>) -> anyhow::Result<()> {
    if args.jobs == 0 {
        bail!("--jobs must be at least 1");
    }
    let start = Instant::now();
    let dir = data_dir(&args.data);
    let data = dataset::load_dir(&dir)
        .with_context(|| format!("cannot load MNIST from {} (set --data)", dir.display()))?;
    let mut train = data.train;
    if let Some(n) = args.limit {
        let idx: Vec<usize> = (0..n.min(train.len())).collect();
        train = train.select(&idx);
    }
    let test = data.test;
    let runner = Runner::start(node.config("Main"), args.timeout)?;
    println!(
        "main node {} on domain {}: {} training images, {} test images, {} shard(s)",
        runner.id(),
        runner.domain(),
        train.len(),
        test.len(),
        args.jobs
    );
    runner.wait_nodes(args.wait_nodes, stop)?;
    let (title, rows, model_file, aggregated) = match args.model {
        ModelKind::Aml => train_aml(&runner, args, &train, &test, stop)?,
        ModelKind::Mlp => train_mlp(&runner, args, &train, &test, stop)?,
    };
    let wall = start.elapsed().as_secs_f64();
    if !args.linger.is_zero() && stop.recv_timeout(args.linger).is_ok() {
        bail!("interrupted");
    }
    print_table(&title, &rows);
    let c = runner.counts();
    println!(
        "\njobs: {} sent, {} solved, {} re-sent, {} duplicate solution(s) dropped, {} solution(s) aggregated",
        c.sent, c.solved, c.resent, c.duplicates_dropped, aggregated
    );
    println!("wall time {wall:.1} s");
    if let Some(out) = &args.out {
        std::fs::write(out, &model_file)
            .with_context(|| format!("cannot write {}", out.display()))?;
        println!("model written to {}", out.display());
    }
    if let Some(path) = &args.report {
        let report = json!({
            "model": format!("{:?}", args.model).to_lowercase(),
            "digit": args.digit,
            "jobs": args.jobs,
            "training_images": train.len(),
            "rows": rows.iter().map(Row::json).collect::<Vec<_>>(),
            "aggregate": rows.last().map(Row::json),
            "jobs_sent": c.sent,
            "solved": c.solved,
            "resent": c.resent,
            "duplicates_dropped": c.duplicates_dropped,
            "aggregated": aggregated,
            "wall_seconds": wall,
        });
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("report written to {}", path.display());
    }
    Ok(())
}

/// Title, table rows, model file, and how many solutions were aggregated.
type Outcome = (String, Vec<Row>, Vec<u8>, usize);

fn train_aml(
    runner: &Runner,
    args: &TrainArgs,
    train: &Mnist,
    test: &Mnist,
    stop: &Receiver<()>,
) -> anyhow::Result<Outcome> {
    let (rest, held) = dataset::hold_out(train, args.holdout, args.seed);
    let shards = dataset::shard(&rest, args.jobs, Sharding::Stratified, args.seed);
    let digits: Vec<u8> = match args.digit {
        Some(d) => vec![d],
        None => (0..10).collect(),
    };
    let mut jobs = Vec::new();
    for &digit in &digits {
        for (i, s) in shards.iter().enumerate() {
            let params = AmlTrainParams {
                digit,
                batches: args.batches,
                positives: args.batch_sizes[0],
                negatives: args.batch_sizes[1],
                seed: args.seed.wrapping_add(i as u64 * 1000 + digit as u64),
                shard: i,
                shards: args.jobs,
            };
            jobs.push((
                (digit, i),
                ml::aml_train_job(&params, s.images.view(), s.labels.view()),
            ));
        }
    }
    runner.println(&format!(
        "sending {} AML job(s): {} digit(s) x {} shard(s) of ~{} images, {} batches of {}+{}",
        jobs.len(),
        digits.len(),
        args.jobs,
        shards[0].len(),
        args.batches,
        args.batch_sizes[0],
        args.batch_sizes[1]
    ));
    let n = args.jobs;
    let done = runner.run(
        jobs,
        |&(d, i)| format!("digit {d} shard {}/{n}", i + 1),
        stop,
    )?;

    let aggregated = done.len();
    let mut rows = Vec::new();
    let mut per_digit: Vec<Vec<Model>> = vec![Vec::new(); 10];
    for d in &done {
        let (digit, shard) = d.label;
        let (info, model) = ml::parse_aml_model(&d.solution)
            .with_context(|| format!("solution of digit {digit} shard {}", shard + 1))?;
        if digits.len() == 1 {
            let mut m = model.clone();
            aml::calibrate(&mut m, held.images.view(), held.labels.view(), digit);
            let metrics = aml::evaluate(&m, test.images.view(), test.labels.view(), digit);
            rows.push(Row::binary(
                format!("shard {}/{n} ({} images)", shard + 1, info.images),
                &metrics,
                Some(d.seconds),
                format!("{} atoms, by {}", m.len(), d.server),
            ));
        }
        per_digit[digit as usize].push(model);
    }
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    let positives = |d: u8, s: &Mnist| -> Vec<aml::Bits> {
        (0..s.len())
            .filter(|&r| s.labels[r] == d)
            .map(|r| aml::embedding::term(s.images.row(r).as_slice().expect("row")))
            .collect()
    };
    let mut merged = Vec::new();
    for &digit in &digits {
        let shard_pos: Option<Vec<Vec<aml::Bits>>> = args
            .filter_merge
            .then(|| shards.iter().map(|s| positives(digit, s)).collect());
        let mut m = aml::merge_shards(&per_digit[digit as usize], shard_pos.as_deref());
        aml::calibrate(&mut m, held.images.view(), held.labels.view(), digit);
        if digits.len() > 1 {
            let metrics = aml::evaluate(&m, test.images.view(), test.labels.view(), digit);
            rows.push(Row::binary(
                format!("digit {digit} (merged)"),
                &metrics,
                None,
                format!("{} atoms, cutoff {}", m.len(), m.cutoff.unwrap_or(1)),
            ));
        }
        merged.push(m);
    }
    let merge = if args.filter_merge {
        "filtered union"
    } else {
        "union"
    };
    if let [m] = merged.as_slice() {
        let digit = digits[0];
        let metrics = aml::evaluate(m, test.images.view(), test.labels.view(), digit);
        rows.push(Row::binary(
            format!("aggregate ({merge})"),
            &metrics,
            None,
            format!("{} atoms, cutoff {}", m.len(), m.cutoff.unwrap_or(1)),
        ));
        let file = match &args.out {
            Some(p) if p.extension().is_some_and(|e| e == "json") => m.to_json().into_bytes(),
            _ => {
                let bytes = m.to_bytes();
                PayloadBuilder::new(
                    "aml_classifier",
                    json!({"digit": digit, "cutoff": m.cutoff}),
                )
                .u8("model", &[bytes.len()], &bytes)
                .build()
                .to_vec()
            }
        };
        let title = format!(
            "AML, digit {digit}, {n} shard(s), {} batches each (official test set)",
            args.batches
        );
        Ok((title, rows, file, aggregated))
    } else {
        let ovr = OneVsRest { models: merged };
        let predicted = ovr.predict_images(test.images.view());
        let metrics =
            ClassMetrics::from_predictions(&predicted, test.labels.as_slice().expect("labels"), 10);
        rows.push(Row::classes(
            "aggregate (10-class)".into(),
            &metrics,
            None,
            format!("ten merged one-vs-rest models ({merge})"),
        ));
        let mut b = PayloadBuilder::new(
            "aml_ten_class",
            json!({"cutoffs": ovr.models.iter().map(|m| m.cutoff).collect::<Vec<_>>()}),
        );
        for (d, m) in ovr.models.iter().enumerate() {
            let bytes = m.to_bytes();
            b = b.u8(&format!("digit{d}"), &[bytes.len()], &bytes);
        }
        let title = format!(
            "AML 10-class, {n} shard(s) x 10 digits, {} batches each (official test set)",
            args.batches
        );
        Ok((title, rows, b.build().to_vec(), aggregated))
    }
}

fn train_mlp(
    runner: &Runner,
    args: &TrainArgs,
    train: &Mnist,
    test: &Mnist,
    stop: &Receiver<()>,
) -> anyhow::Result<Outcome> {
    let shards = dataset::shard(train, args.jobs, Sharding::Stratified, args.seed);
    let x_test = SparseImages::from_bytes(test.images.view());
    let truth = test.labels.as_slice().expect("labels");
    let mut global = Mlp::mnist(args.seed);
    let n = args.jobs;
    let mut rows = Vec::new();
    let mut aggregated = 0;
    for round in 1..=args.rounds {
        let jobs: Vec<(usize, bytes::Bytes)> = shards
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let params = MlpTrainParams {
                    round,
                    shard: i,
                    shards: n,
                    epochs: args.epochs,
                    batch: args.batch,
                    learning_rate: args.learning_rate,
                    momentum: args.momentum,
                    seed: args.seed.wrapping_add((round * 1000 + i) as u64),
                };
                (
                    i,
                    ml::mlp_train_job(&params, s.images.view(), s.labels.view(), &global),
                )
            })
            .collect();
        let t = Instant::now();
        let done = runner.run(
            jobs,
            |i| format!("MLP round {round} shard {}/{n}", i + 1),
            stop,
        )?;
        let mut updates = Vec::new();
        let mut shard_rows = Vec::new();
        for d in &done {
            let (info, model) = ml::parse_mlp_update(&d.solution)
                .with_context(|| format!("solution of round {round} shard {}", d.label + 1))?;
            let m = ClassMetrics::from_predictions(&model.predict(&x_test), truth, 10);
            shard_rows.push(Row::classes(
                format!("shard {}/{n} ({} images)", d.label + 1, info.samples),
                &m,
                Some(d.seconds),
                format!("loss {:.4}, by {}", info.loss, d.server),
            ));
            updates.push((model, info.samples));
        }
        aggregated += updates.len();
        global = Mlp::federated_average(&updates)
            .context("the shards' networks do not have the same shape")?;
        let m = ClassMetrics::from_predictions(&global.predict(&x_test), truth, 10);
        runner.println(&format!(
            "round {round}/{}: FedAvg of {} shards -> test accuracy {:.4} ({:.1} s)",
            args.rounds,
            updates.len(),
            m.accuracy,
            t.elapsed().as_secs_f64()
        ));
        if round == args.rounds {
            shard_rows.sort_by(|a, b| a.name.cmp(&b.name));
            rows.extend(shard_rows);
            rows.push(Row::classes(
                "aggregate (FedAvg)".into(),
                &m,
                None,
                format!("after {} round(s) of {} epoch(s)", args.rounds, args.epochs),
            ));
        }
    }
    let file = ml::with_mlp(
        PayloadBuilder::new("mlp_model", json!({"rounds": args.rounds})),
        &global,
    )
    .build()
    .to_vec();
    let title = format!(
        "MLP 784-128-10, {n} shard(s), {} round(s) of {} epoch(s), FedAvg (official test set; rows are the last round)",
        args.rounds, args.epochs
    );
    Ok((title, rows, file, aggregated))
}
