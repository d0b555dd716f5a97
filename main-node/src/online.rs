//! `main-node produce` (a simulated rank streaming samples) and `main-node online` (a trainer
//! following a stream, SmartSim's online training): flags in, `amlip_core::stream` does the
//! work, counts and epochs printed.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use amlip_cli::{self as cli, tables, NodeArgs};
use amlip_core::cancel::CancelToken;
use amlip_core::nn::{Optimizer, Spec};
use amlip_core::node::MainNode;
use amlip_core::stream::{
    Consumer, ConsumerOptions, EpochReport, Fault, Function, OnlineTraining, Policy, Producer,
    ProducerOptions, Simulation,
};
use amlip_core::summary::Figures;
use anyhow::Context;

use crate::train::OptimizerArg;

#[derive(clap::Args, Debug)]
pub struct ProduceArgs {
    /// The stream's name (trainers follow it by name).
    #[arg(long, default_value = "samples")]
    stream: String,
    /// This producer's rank (start one process per rank).
    #[arg(long, default_value_t = 0)]
    rank: u32,
    /// The simulated function sampled at random points: sin (x in [-pi, pi]) or sincos.
    #[arg(long, default_value = "sin")]
    function: Function,
    /// Iterations to publish.
    #[arg(long, default_value_t = 20, value_parser = |s: &str| cli::count_in(s, 1, 100_000_000))]
    iterations: usize,
    /// Samples per iteration.
    #[arg(long, default_value_t = 16, value_parser = |s: &str| cli::count_in(s, 1, 1_000_000))]
    batch: usize,
    /// Time between iterations (the simulation's step).
    #[arg(long, default_value = "200ms", value_parser = cli::duration_arg)]
    every: Duration,
    /// Seeds the points drawn (with the rank and the iteration).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// After the last iteration, wait up to this long for a trainer to read the stream whole.
    #[arg(long, default_value = "60s", value_parser = cli::duration_arg)]
    linger: Duration,
    /// Trainers expected to read the stream: after the last iteration, wait (up to --linger)
    /// until this many have read it whole.
    #[arg(long, default_value_t = 1, value_parser = |s: &str| cli::count_in(s, 1, 1024))]
    readers: usize,
    /// Bytes of batches retained for trainers that come late (the oldest go first).
    #[arg(long, default_value = "256MiB", value_parser = cli::size_arg)]
    retain: usize,
    /// Send a bad batch every fifth iteration (iterations 4, 9, ...), to try a trainer's
    /// checks: `nan` (one sample with a NaN input) or `shape` (one input too many per sample).
    #[arg(long, value_name = "nan|shape")]
    faulty: Option<Fault>,
}

/// Publishes `--iterations` batches of the function's samples, then lingers for readers.
pub fn produce(node: &NodeArgs, args: &ProduceArgs, stop: &CancelToken) -> anyhow::Result<()> {
    let cfg = node.config("Producer");
    let opts = ProducerOptions {
        retain_bytes: args.retain,
        ..Default::default()
    };
    let producer = Producer::start(&cfg, &args.stream, args.rank, opts)
        .context("cannot start the producer")?;
    println!(
        "producer rank {} of stream {:?} on domain {} (id {:016x})",
        args.rank,
        args.stream,
        cfg.domain_id(),
        producer.id()
    );
    let sim = Simulation {
        function: args.function,
        rank: args.rank,
        batch: args.batch,
        iterations: args.iterations,
        every: args.every,
        seed: args.seed,
        fault: args.faulty,
    };
    let sent = sim.run(&producer, stop, &mut |it, n| {
        println!(
            "iteration {it}: {n} samples ({} produced)",
            producer.produced()
        )
    })?;
    if sent.stopped {
        println!("stopped after {} iteration(s)", sent.iterations);
    }
    if sent.bad > 0 {
        println!(
            "sent {} bad sample(s) on purpose ({:?})",
            sent.bad,
            sim.fault.expect("set")
        );
    }
    let done = producer.finish(args.readers, args.linger, stop);
    println!(
        "rank {}: {} samples produced; read whole by {} trainer(s)",
        args.rank, done.produced, done.drained
    );
    if done.drained < args.readers {
        println!(
            "{} of {} trainer(s) read the whole stream within {:?}",
            done.drained, args.readers, args.linger
        );
    }
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct OnlineArgs {
    /// The stream to follow.
    #[arg(long, default_value = "samples")]
    stream: String,
    /// The function the producers sample: sets the network's inputs and the held-out grid the
    /// trainer validates on.
    #[arg(long, default_value = "sin")]
    function: Function,
    /// Producers (ranks) to expect: training ends only after this many were seen and all ended.
    #[arg(long, default_value_t = 1, value_parser = |s: &str| cli::count_in(s, 1, 1024))]
    producers: usize,
    /// How long to wait for the first producer before giving up.
    #[arg(long, default_value = "30s", value_parser = cli::positive_duration)]
    wait: Duration,
    /// Hidden layer widths of the regression network.
    #[arg(long, default_value = "32,32", value_delimiter = ',')]
    hidden: Vec<usize>,
    /// Optimizer.
    #[arg(long, value_enum, default_value = "adam")]
    optimizer: OptimizerArg,
    /// Learning rate.
    #[arg(long, visible_alias = "lr", default_value_t = 0.01, value_parser = cli::positive_f32)]
    learning_rate: f32,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.0, value_parser = |s: &str| cli::unit_fraction(s).map(|x| x as f32))]
    momentum: f32,
    /// Samples per step.
    #[arg(long, default_value_t = 32, value_parser = |s: &str| cli::count_in(s, 1, 1_000_000))]
    batch: usize,
    /// Epochs trained after every stream ended.
    #[arg(long, default_value_t = 50, value_parser = |s: &str| cli::count_in(s, 1, 1_000_000))]
    settle_epochs: usize,
    /// Epochs at most.
    #[arg(long, default_value_t = 100_000, value_parser = |s: &str| cli::count_in(s, 1, 100_000_000))]
    max_epochs: usize,
    /// Stop training after this long, whatever the streams do.
    #[arg(long, default_value = "1h", value_parser = cli::positive_duration)]
    timeout: Duration,
    /// Samples held at most; past it --policy decides which go (each counted as dropped).
    #[arg(long, default_value_t = 1_000_000, value_parser = |s: &str| cli::count_in(s, 1, 1 << 31))]
    keep: usize,
    /// What a full store does: window (keep the newest) or reservoir (a uniform sample of all).
    #[arg(long, default_value = "window")]
    policy: Policy,
    /// Give a producer up as lost after this long without a word from it.
    #[arg(long, default_value = "10s", value_parser = cli::positive_duration)]
    silence: Duration,
    /// Seeds the network and the shuffles.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write the report (epochs, counts per producer) here as JSON.
    #[arg(long, value_name = "FILE.json")]
    json: Option<PathBuf>,
}

/// Follows the stream and trains until it ends; prints epochs, then counts per producer.
pub fn online(node: &NodeArgs, args: &OnlineArgs, stop: &CancelToken) -> anyhow::Result<()> {
    let inputs = args.function.inputs();
    let spec = Spec::regression(inputs, &args.hidden, 1);
    let optimizer = match args.optimizer {
        OptimizerArg::Adam => Optimizer::Adam {
            lr: args.learning_rate,
        },
        OptimizerArg::Sgd => Optimizer::Sgd {
            lr: args.learning_rate,
            momentum: args.momentum,
        },
    };
    let cfg = node.config("Trainer");
    let consumer = Consumer::follow(
        &cfg,
        &args.stream,
        ConsumerOptions {
            keep: args.keep,
            policy: args.policy,
            seed: args.seed,
            shape: Some((inputs, 1)),
            silence: args.silence,
            ..Default::default()
        },
    )
    .context("cannot follow the stream")?;
    let grid = args.function.grid(if inputs == 1 { 201 } else { 41 });
    println!(
        "following stream {:?} on domain {}: network {inputs}-{}-1 ({} parameters), {}, {} held-out points",
        args.stream,
        cfg.domain_id(),
        args.hidden.iter().map(|h| h.to_string()).collect::<Vec<_>>().join("-"),
        spec.params()?.iter().map(|p| p.shape.iter().product::<usize>()).sum::<usize>(),
        optimizer,
        grid.len()
    );
    let training = OnlineTraining {
        optimizer,
        batch: args.batch,
        seed: args.seed,
        producers: args.producers,
        wait: args.wait,
        settle_epochs: args.settle_epochs,
        max_epochs: args.max_epochs,
        timeout: args.timeout,
        validation: Some(grid),
        ..OnlineTraining::new(spec)
    };
    // The trainer's entry in every status view on the domain: a main of its own that sends no
    // job and only says what it does (epochs, loss, validation MSE).
    let main =
        MainNode::with_config(node.config("Online")).context("cannot start the trainer's main")?;
    let session = main.session("online", &args.stream, "epoch", 0);
    let mut printed = Instant::now() - Duration::from_secs(10);
    let mut last_held = 0;
    let mut print_epoch = |e: &EpochReport| {
        let figures = Figures {
            loss: Some(e.loss),
            mse: e.validation,
            ..Figures::default()
        };
        session.point(e.epoch as u32, 0, figures);
        session.step(e.epoch as u32, 0);
        // Epochs on a few samples take microseconds: print when the set grew, at most once a
        // second otherwise, and the last ones.
        if e.held != last_held || printed.elapsed() >= Duration::from_secs(1) {
            println!("{e}");
            printed = Instant::now();
            last_held = e.held;
        }
    };
    let report = match training.run(&consumer, stop, &mut print_epoch) {
        Ok(r) => r,
        Err(e) => {
            session.fail(&e.to_string());
            return Err(e.into());
        }
    };
    if let Some(e) = report.epochs.last() {
        println!("{e}");
        session.finish(&format!("{e} ({})", report.ended));
    }
    println!("{}", tables::online(&report));
    if let Some(path) = &args.json {
        let json = report.json(&args.stream);
        cli::write_file(path, serde_json::to_vec_pretty(&json)?)?;
    }
    Ok(())
}
