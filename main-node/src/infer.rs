//! `main-node infer` (send inputs to whoever serves a model, print predictions and accuracy)
//! and `main-node models` (the models announced on the domain and who serves them).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use amlip_cli::{self as cli, tables, NodeArgs};
use amlip_core::cancel::CancelToken;
use amlip_core::dataset::{self, LoadOptions};
use amlip_core::infer::query::{self, specs_text as specs};
use amlip_core::infer::Publisher;
use amlip_core::node::{EdgeNode, ModelManagerReceiverNode};
use amlip_core::payload::Payload;
use anyhow::Context;

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
main-node infer mnist-mlp --data datasets/mnist          the MNIST test set; prints accuracy\n  \
main-node infer cnn --data datasets/mnist --limit 256    (pixels scaled to 0..1 for f32 inputs)\n  \
main-node infer forest --input iris.safetensors --out answer.safetensors")]
pub struct InferArgs {
    /// The model's name, as announced (see `main-node models`).
    model: String,
    /// Labelled data to predict: a directory of IDX files (its test set), or a CSV, .npy,
    /// .npz or safetensors file (as `main-node train --data` reads them). Accuracy is printed.
    #[arg(long, required_unless_present_any = ["input", "bench"], conflicts_with = "input")]
    data: Option<PathBuf>,
    /// The label column or tensor of --data.
    #[arg(long)]
    label: Option<String>,
    /// Send this safetensors file's tensors as one request (named as the model's inputs) and
    /// print the outputs.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Write the answer's tensors (--input) or the predicted labels (--data) here, as
    /// safetensors.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Samples per request.
    #[arg(long, default_value_t = 256, value_parser = |s: &str| cli::count_in(s, 1, 1 << 20))]
    batch: usize,
    /// Predict only the first N samples.
    #[arg(long, value_parser = |s: &str| cli::count_in(s, 1, usize::MAX))]
    limit: Option<usize>,
    /// Give up on a request after this long (and on finding the model).
    #[arg(long, default_value = "60s", value_parser = cli::positive_duration)]
    timeout: Duration,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    /// Measure instead: --requests requests of --batch random samples, first one at a time
    /// (latency), then all at once (throughput). Needs no data.
    #[arg(long, conflicts_with_all = ["data", "input"])]
    bench: bool,
    /// With --bench: requests per measurement.
    #[arg(long, default_value_t = 200, value_parser = |s: &str| cli::count_in(s, 1, 1_000_000))]
    requests: usize,
}

pub fn run(node: &NodeArgs, args: &InferArgs, stop: &CancelToken) -> anyhow::Result<()> {
    let publisher = Publisher::start(&node.config("Infer")).context("cannot join the domain")?;
    let edge_cfg = node.config("InferEdge").job_deadline(args.timeout);
    let edge = EdgeNode::with_config(edge_cfg).context("cannot start the edge node")?;
    let info = query::find_served(&publisher, &args.model, args.timeout, stop)?;
    eprintln!(
        "model {:?} v{} ({}), inputs {}, served by {} node(s)",
        info.name,
        info.version,
        info.kind,
        specs(&info.inputs),
        publisher.servers(&info.name, 0).len()
    );
    if args.bench {
        let r = query::bench(&edge, &info, args.batch, args.requests, args.timeout, stop)?;
        if args.json {
            let mut v = serde_json::to_value(&r)?;
            v["model"] = info.name.clone().into();
            println!("{v}");
        } else {
            println!(
                "{} batch {}: latency p50 {:.2} ms, p90 {:.2} ms; {:.1} requests/s ({:.0} samples/s) over {} node(s)",
                info.name, r.batch, r.latency_ms_p50, r.latency_ms_p90, r.requests_per_s,
                r.samples_per_s, r.servers
            );
        }
        return Ok(());
    }
    if let Some(input) = &args.input {
        let bytes =
            std::fs::read(input).with_context(|| format!("cannot read {}", input.display()))?;
        let tensors = amlip_core::payload::read_tensors(&bytes.into())
            .with_context(|| format!("{} is not a safetensors file", input.display()))?;
        let outputs = query::request(&edge, &info, tensors, args.timeout)
            .context("the request got no answer")?;
        for (name, t) in &outputs {
            println!(
                "{name}: {:?} {:?} {}",
                t.dtype(),
                t.shape(),
                query::preview(t)
            );
        }
        if let Some(out) = &args.out {
            let mut p = Payload::new("infer_result");
            for (name, t) in outputs {
                p.insert(&name, t);
            }
            cli::write_file(out, p.encode()?)?;
        }
        return Ok(());
    }
    let path = args
        .data
        .as_ref()
        .expect("clap requires --data, --input or --bench");
    let opts = LoadOptions {
        label: args.label.clone(),
        ..LoadOptions::default()
    };
    let data = dataset::load_scored(path, &opts, args.limit)
        .with_context(|| format!("cannot load {}", path.display()))?;
    let p = query::predict(&edge, &info, &data, args.batch, args.timeout, stop)?;
    let n = p.labels.len();
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "model": info.name, "version": info.version, "kind": info.kind, "samples": n,
                "seconds": p.seconds, "correct": p.correct, "accuracy": p.accuracy(),
            })
        );
    } else {
        println!(
            "model {} v{} ({}): {n} samples in {:.2} s ({:.0}/s)",
            info.name,
            info.version,
            info.kind,
            p.seconds,
            n as f64 / p.seconds.max(1e-9)
        );
        match p.accuracy() {
            Some(a) => println!("accuracy {a:.4} ({}/{})", p.correct, p.scored),
            None => println!("(no class labels to score against)"),
        }
    }
    if let Some(out) = &args.out {
        cli::write_file(out, p.to_payload()?.encode()?)?;
    }
    Ok(())
}

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
main-node models                                      every model announced within 3 s\n  \
main-node models --json --for 5s\n  \
main-node models --fetch mnist --out mnist.safetensors    a model file, from its sender\n  \
main-node models --fetch \"MobileNet V1\" --from AML-ModelSender --out model.bin   from AML-IP")]
pub struct ModelsArgs {
    /// Listen this long, then print what was announced [default: 3s]. With --fetch: wait at
    /// most this long for the model to be announced and handed over [default: 30s].
    #[arg(long = "for", value_name = "DURATION", value_parser = cli::positive_duration)]
    duration: Option<Duration>,
    /// Print JSON, one object per announcement.
    #[arg(long)]
    json: bool,
    /// Fetch this model's file from the model sender announcing it (an amlip node's, or an
    /// AML-IP ModelManagerSenderNode's) instead of listing; needs --out.
    #[arg(long, value_name = "NAME", requires = "out")]
    fetch: Option<String>,
    /// With --fetch: only from this sender (its id, e.g. `AML-Sender.0a.1b.2c.3d`, or name).
    #[arg(long, value_name = "NODE", requires = "fetch")]
    from: Option<String>,
    /// With --fetch: write the model's bytes here.
    #[arg(long, requires = "fetch")]
    out: Option<PathBuf>,
}

pub fn models(node: &NodeArgs, args: &ModelsArgs, stop: &CancelToken) -> anyhow::Result<()> {
    let receiver = ModelManagerReceiverNode::with_config(node.config("Models"))
        .context("cannot start the model receiver")?;
    if let (Some(name), Some(out)) = (&args.fetch, &args.out) {
        let start = Instant::now();
        let wait = args.duration.unwrap_or(Duration::from_secs(30));
        let got = amlip_core::infer::fetch(&receiver, name, args.from.as_deref(), wait)?;
        std::fs::write(out, &got.file)
            .with_context(|| format!("cannot write the model to {}", out.display()))?;
        println!(
            "fetched {name:?} ({} bytes) from {} in {:.0} ms into {}",
            got.file.len(),
            got.statistics.server_id,
            start.elapsed().as_secs_f64() * 1e3,
            out.display()
        );
        return Ok(());
    }
    stop.wait_timeout(args.duration.unwrap_or(Duration::from_secs(3)));
    let mut stats = receiver.statistics();
    print!("{}", tables::models(&mut stats, args.json, node.domain));
    Ok(())
}
