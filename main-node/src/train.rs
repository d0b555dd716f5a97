//! `main-node train`: flags -> an AML or MLP training session of the library -> the table,
//! the model file and the JSON report.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use amlip_cli::dashboard::Dashboard;
use amlip_cli::metrics::Sources;
use amlip_cli::{self as cli, progress::ProgressView, NodeArgs};
use amlip_cli::{plot, tables};
use amlip_core::cancel::CancelToken;
use amlip_core::dataset::{self, Format, LoadOptions, Task};
use amlip_core::kind::mlp_train::MlpHyper;
use amlip_core::nn::{Optimizer, Spec};
use amlip_core::prelude::*;
use amlip_core::session::{AllReduce, AllReduceReport, AmlShards, MlpShards, Progress, Runner};
use anyhow::{bail, Context};

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// Algebraic Machine Learning: one binary classifier (--class) or one per class.
    Aml,
    /// A one-hidden-layer network (784-128-10 on MNIST, sized from the data otherwise)
    /// trained by federated averaging over rounds; classifies or regresses.
    Mlp,
    /// The seed CNN (conv 32, conv 64, max-pool, dropout, dense 128, dropout, dense 10;
    /// 1.2 M parameters) on 28x28 images, trained by all-reduce across --parallel workers.
    Cnn,
    /// The Keras-style dense network (inputs-128-classes, ReLU, softmax cross-entropy),
    /// trained by all-reduce across --parallel workers.
    Dense,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncArg {
    /// Synchronous data parallelism: gradients averaged across the workers by a ring
    /// all-reduce every step (cnn, dense).
    Allreduce,
    /// Federated averaging of locally trained models every round (mlp).
    Fedavg,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptimizerArg {
    /// SGD with momentum.
    Sgd,
    /// Adam.
    Adam,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskArg {
    /// Predict a class.
    Classify,
    /// Predict a number.
    Regress,
}

#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// The model to train.
    #[arg(long, value_enum, default_value = "aml")]
    model: ModelKind,
    /// AML: train the binary classifier "is it this class?" (a class's name as the data
    /// spells it, or its index; a digit on MNIST); without it, one classifier per class.
    #[arg(long, visible_alias = "digit", value_name = "CLASS")]
    class: Option<String>,
    /// Shards of the training set: one job per shard (per digit for 10-class AML, per round
    /// for MLP); with --sync allreduce, the workers of the group.
    #[arg(long, visible_alias = "parallel", default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=1000))]
    jobs: u16,
    /// AML: batches each job trains.
    #[arg(long, default_value_t = 10, value_parser = |s: &str| cli::count_in(s, 1, 10_000))]
    batches: usize,
    /// AML: positive and negative images per batch.
    #[arg(long, num_args = 2, value_names = ["POS", "NEG"], default_values_t = [100, 900],
          value_parser = |s: &str| cli::count_in(s, 1, 1_000_000))]
    batch_sizes: Vec<usize>,
    /// AML: drop each shard's atoms that another shard's positives fail before merging.
    #[arg(long)]
    filter_merge: bool,
    /// MLP: federated rounds.
    #[arg(long, default_value_t = 5, value_parser = |s: &str| cli::count_in(s, 1, 10_000))]
    rounds: usize,
    /// How workers combine their training (default: allreduce for cnn and dense, fedavg for
    /// mlp).
    #[arg(long, value_enum)]
    sync: Option<SyncArg>,
    /// Epochs: local epochs per round for mlp [default: 2]; epochs in all with all-reduce
    /// [default: 3].
    #[arg(long, value_parser = |s: &str| cli::count_in(s, 1, 1000))]
    epochs: Option<usize>,
    /// Mini-batch size (per worker with all-reduce).
    #[arg(long, default_value_t = 64, value_parser = |s: &str| cli::count_in(s, 1, 1_000_000))]
    batch: usize,
    /// Optimizer of the all-reduce networks [default: adam].
    #[arg(long, value_enum)]
    optimizer: Option<OptimizerArg>,
    /// Learning rate [default: mlp 0.05; sgd 0.01; adam 0.001].
    #[arg(long, visible_alias = "lr", value_parser = cli::positive_f32)]
    learning_rate: Option<f32>,
    /// SGD momentum [default: mlp 0.9; sgd 0.5].
    #[arg(long, value_parser = |s: &str| cli::unit_fraction(s).map(|x| x as f32))]
    momentum: Option<f32>,
    /// All-reduce: threads each worker computes its gradient with.
    #[arg(long, default_value_t = 1, value_parser = |s: &str| cli::count_in(s, 1, 256))]
    threads: usize,
    /// All-reduce: how long a step may wait on a silent worker before the group re-forms
    /// without it.
    #[arg(long, default_value = "60s", value_parser = cli::positive_duration)]
    step_timeout: Duration,
    /// All-reduce: append `world_size,training_time,communication_time,testing_time` rows
    /// (rank 0's seconds, one per formation of the group) to this CSV file.
    #[arg(long, value_name = "FILE.csv")]
    stats: Option<PathBuf>,
    /// Seed of the sharding, the training and the initial weights.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Use only this many training samples (quick runs).
    #[arg(long, value_parser = |s: &str| cli::count_in(s, 1, usize::MAX))]
    limit: Option<usize>,
    /// The data: a .csv/.tsv table, a .npy table, a .npz or .safetensors file of named
    /// arrays (each maybe .gz), or a directory of IDX files (MNIST's layout, any image shape).
    #[arg(
        long,
        env = "AMLIP_DATA",
        default_value = "datasets/mnist",
        value_name = "FILE_OR_DIR"
    )]
    data: PathBuf,
    /// The data's format, if its name does not say (csv, npy, npz, safetensors, idx).
    #[arg(long, value_parser = |s: &str| s.parse::<Format>())]
    format: Option<Format>,
    /// The label: a CSV column's name or 0-based index, a .npy column's index, or a tensor's
    /// name [default: the last column, or a tensor called labels, label, y, targets, target].
    #[arg(long, value_name = "COLUMN")]
    label: Option<String>,
    /// The features tensor of a .npz or .safetensors file [default: features, x, X, images,
    /// data, inputs, or the only other tensor].
    #[arg(long, value_name = "TENSOR")]
    features: Option<String>,
    /// Classify or regress [default: text and whole-number labels are classes, fractional
    /// ones values to regress].
    #[arg(long, value_enum)]
    task: Option<TaskArg>,
    /// A test set in its own file (same format and columns as --data).
    #[arg(long, value_name = "FILE", conflicts_with = "test_split")]
    test: Option<PathBuf>,
    /// Without --test (and a directory without test files): hold out this fraction of the
    /// data, stratified by class, as the test set.
    #[arg(long, default_value_t = 0.2, value_parser = cli::unit_fraction)]
    test_split: f64,
    /// AML: levels each numeric feature is cut into, at training-set quantiles (image bytes
    /// are on or off instead).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u8).range(1..=64))]
    levels: u8,
    /// MLP: hidden units.
    #[arg(long, default_value_t = 128, value_parser = |s: &str| cli::count_in(s, 1, 65_536))]
    hidden: usize,
    /// Fraction of the training set held out to choose AML cutoffs.
    #[arg(long, default_value_t = 0.1, value_parser = cli::unit_fraction)]
    holdout: f64,
    /// Bound on the whole run.
    #[arg(long, default_value = "10m", value_parser = cli::positive_duration)]
    timeout: Duration,
    /// Wait for this many computing nodes before sending jobs.
    #[arg(long, default_value_t = 0)]
    wait_nodes: usize,
    /// Write the trained model here (AML binary classifier: `.json` writes the AML-IP tutorial
    /// JSON form; anything else an amlip payload, safetensors).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write the results table as JSON here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Publish the trained model under NAME through a model manager: computing nodes started
    /// with --serve-models fetch and serve it (then `main-node infer NAME ...`).
    #[arg(long, value_name = "NAME")]
    publish: Option<String>,
    /// With --publish: wait until this many nodes serve the model.
    #[arg(long, default_value_t = 1)]
    publish_wait_nodes: usize,
    /// Write accuracy (or MSE) and loss per round, per shard and aggregate, as a plot
    /// (`.svg` or `.png`).
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
    /// Serve the live dashboard (nodes, jobs, training curves) at http://ADDR:PORT/ while
    /// training (it watches the domain with a status node of its own).
    #[arg(long, value_name = "ADDR:PORT")]
    serve: Option<std::net::SocketAddr>,
    /// Stay on the domain this long after the results are printed, so that late duplicates
    /// (from computing nodes that were thought gone) are seen and counted, and status views
    /// keep showing this main; Ctrl-C ends it early.
    #[arg(long, default_value = "0s", value_parser = cli::duration_arg)]
    linger: Duration,
}

pub fn run(
    node: &NodeArgs,
    args: &TrainArgs,
    stop: &CancelToken,
    sources: &Sources,
) -> anyhow::Result<()> {
    if let Some(p) = &args.plot {
        plot::check_path(p).context("--plot")?;
    }
    let start = Instant::now();
    let path = cli::locate(&args.data);
    let opts = LoadOptions {
        format: args.format,
        label: args.label.clone(),
        features: args.features.clone(),
        task: args.task.map(|t| match t {
            TaskArg::Classify => Task::Classify,
            TaskArg::Regress => Task::Regress,
        }),
        ..LoadOptions::default()
    };
    let data = dataset::load_splits(
        &path,
        args.test.as_deref(),
        args.test_split,
        args.seed,
        &opts,
    )
    .with_context(|| format!("cannot load the data {} (set --data)", path.display()))?;
    let mut train = data.train;
    if let Some(n) = args.limit {
        train = train.head(n);
    }
    let class = (args.class.as_deref())
        .map(|c| train.class_named(c).with_context(|| format!("--class {c}")))
        .transpose()?;
    let mnist = path.is_dir() && args.test.is_none();
    let test_set = if mnist {
        "official test set".to_owned()
    } else {
        format!("test: {}", data.test_source)
    };
    let main = MainNode::with_config(node.config("Main")).context("cannot start the main node")?;
    let progress = Progress::new();
    sources.main(main.probe());
    sources.progress(progress.clone());
    let _dashboard = Dashboard::start_if(args.serve, node.config("Dashboard"), sources)?;
    println!(
        "main node {} on domain {}: {} training {unit}, {} test {unit}, {} shard(s)",
        main.id(),
        main.domain(),
        train.len(),
        data.test.len(),
        args.jobs,
        unit = train.unit()
    );
    println!("data {}: {}", path.display(), train.describe());
    println!("test set ({}): {}", data.test_source, data.test.describe());
    let mut runner = Runner::new(&main, args.timeout)
        .record_to(&progress)
        .observe(ProgressView::new())
        .cancel_on(stop);
    let shards = args.jobs as usize;
    if matches!(args.model, ModelKind::Cnn | ModelKind::Dense) {
        runner.wait_for_nodes(args.wait_nodes.max(shards))?;
        let report = group_session(args, &train)?.run(&mut runner, &train, &data.test)?;
        drop(runner);
        return finish_group(&main, args, &report, start);
    }
    runner.wait_for_nodes(args.wait_nodes)?;
    if args.sync == Some(SyncArg::Allreduce) || args.optimizer.is_some() {
        bail!("--sync allreduce and --optimizer train --model cnn or dense; --model mlp trains by federated averaging with SGD");
    }
    let report = match args.model {
        ModelKind::Aml => AmlShards {
            digit: class,
            levels: args.levels,
            test_set,
            shards,
            batches: args.batches,
            batch_sizes: (args.batch_sizes[0], args.batch_sizes[1]),
            filter_merge: args.filter_merge,
            holdout: args.holdout,
            seed: args.seed,
        }
        .run(&mut runner, &train, &data.test)?,
        ModelKind::Mlp => MlpShards {
            shards,
            rounds: args.rounds,
            hidden: args.hidden,
            test_set,
            hyper: MlpHyper {
                epochs: args.epochs.unwrap_or(2),
                batch: args.batch,
                learning_rate: args.learning_rate.unwrap_or(0.05),
                momentum: args.momentum.unwrap_or(0.9),
            },
            seed: args.seed,
        }
        .run(&mut runner, &train, &data.test)?,
        ModelKind::Cnn | ModelKind::Dense => unreachable!("trained above"),
    };
    drop(runner); // clears the progress display
    let wall = start.elapsed().as_secs_f64();
    println!("\n{}", report.table);
    let jobs_line = |c: &ClientStats| {
        println!(
            "jobs: {} sent, {} solved, {} re-sent, {} duplicate solution(s) dropped, {} solution(s) aggregated",
            c.submitted, c.solved, c.resent, c.duplicates_dropped, report.aggregated
        )
    };
    jobs_line(&main.stats());
    println!("wall time {wall:.1} s");
    // The results first; then, if asked, stay to count late duplicates and say so again.
    // Ctrl-C only cuts the lingering short: the results are in, and still get written.
    if !args.linger.is_zero() {
        let linger = Instant::now();
        stop.wait_timeout(args.linger);
        print!("after lingering {:.0} s: ", linger.elapsed().as_secs_f64());
        jobs_line(&main.stats());
    }
    let c = main.stats();
    if let Some(out) = &args.out {
        report
            .save_model(out)
            .with_context(|| format!("cannot write {}", out.display()))?;
        println!("model written to {}", out.display());
    }
    if let Some(name) = &args.publish {
        publish(node, name, &report, args)?;
    }
    if let Some(path) = &args.plot {
        plot::write(path, &progress.points(), &report.table.title)
            .with_context(|| format!("cannot write the plot {}", path.display()))?;
        println!("plot written to {}", path.display());
    }
    if let Some(path) = &args.report {
        cli::write_file(path, serde_json::to_string_pretty(&report.json(&c, wall))?)?;
        println!("report written to {}", path.display());
    }
    Ok(())
}

/// The all-reduce session the flags ask for.
fn group_session(args: &TrainArgs, train: &dataset::Dataset) -> anyhow::Result<AllReduce> {
    if args.sync == Some(SyncArg::Fedavg) {
        bail!(
            "--sync fedavg trains --model mlp; --model cnn and dense train with --sync allreduce"
        );
    }
    let spec = match args.model {
        ModelKind::Cnn => Spec::cnn_for(&train.sample_shape).context("--model cnn")?,
        _ => Spec::dense(train.width(), args.hidden, train.classes().max(1)),
    };
    let sgd = args.optimizer == Some(OptimizerArg::Sgd);
    let optimizer = Optimizer::choose(sgd, args.learning_rate, args.momentum)
        .context("--momentum (add --optimizer sgd)")?;
    Ok(AllReduce {
        spec,
        optimizer,
        workers: args.jobs as usize,
        batch: args.batch,
        epochs: args.epochs.unwrap_or(3),
        seed: args.seed,
        threads: args.threads,
        step_timeout: args.step_timeout,
    })
}

/// Prints an all-reduce session's results and writes what the flags ask for.
fn finish_group(
    main: &MainNode,
    args: &TrainArgs,
    report: &AllReduceReport,
    start: Instant,
) -> anyhow::Result<()> {
    println!("{}", tables::allreduce(report, &main.stats()));
    println!("wall time {:.1} s", start.elapsed().as_secs_f64());
    if let Some(path) = &args.stats {
        report
            .append_csv(path)
            .with_context(|| format!("cannot append to {}", path.display()))?;
        println!("timings appended to {}", path.display());
    }
    if let Some(out) = &args.out {
        cli::write_file(out, report.model_payload()?.encode()?)?;
        println!("model written to {} (safetensors: parameters by PyTorch's names, the spec in the metadata)", out.display());
    }
    if let Some(path) = &args.report {
        let json = report.json(start.elapsed().as_secs_f64());
        cli::write_file(path, serde_json::to_string_pretty(&json)?)?;
        println!("report written to {}", path.display());
    }
    Ok(())
}

/// Offers the trained model under `name` and waits until `--publish-wait-nodes` nodes serve it
/// (the publisher answers their requests for the file meanwhile).
fn publish(
    node: &NodeArgs,
    name: &str,
    report: &amlip_core::session::TrainReport,
    args: &TrainArgs,
) -> anyhow::Result<()> {
    let file = report
        .model
        .file_bytes_with(std::path::Path::new("model.safetensors"), &report.data)?;
    let publisher = amlip_core::infer::Publisher::start(&node.config("Publisher"))
        .context("cannot start the model manager")?;
    let served = publisher
        .publish_and_wait(name, file, args.publish_wait_nodes, args.timeout, |info| {
            println!(
                "model {name:?} v{} ({}) published; waiting for {} node(s) to serve it",
                info.version, info.kind, args.publish_wait_nodes
            )
        })
        .context("--publish-wait-nodes")?;
    for s in &served {
        println!("model {name:?} v{} served by {}", s.info.version, s.by);
    }
    Ok(())
}
