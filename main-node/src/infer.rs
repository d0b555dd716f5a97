//! `main-node infer` (send inputs to whoever serves a model, print predictions and accuracy)
//! and `main-node models` (the models announced on the domain and who serves them).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use amlip_core::cancel::CancelToken;
use amlip_core::cli::{self, NodeArgs};
use amlip_core::dataset::{self, Dataset, Features, LoadOptions};
use amlip_core::infer::wire::{Announcement, Answer, Request, Role};
use amlip_core::infer::{shape_text, ModelInfo, Publisher, TensorSpec};
use amlip_core::node::{EdgeNode, ModelManagerReceiverNode};
use amlip_core::payload::{DType, Payload, Tensor};
use anyhow::{bail, Context};

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
    let mut edge_cfg = node.config("InferEdge");
    edge_cfg = edge_cfg.job_deadline(args.timeout);
    let edge = EdgeNode::with_config(edge_cfg).context("cannot start the edge node")?;
    let info = find_model(&publisher, &args.model, args.timeout, stop)?;
    eprintln!(
        "model {:?} v{} ({}), inputs {}, served by {} node(s)",
        info.name,
        info.version,
        info.kind,
        specs(&info.inputs),
        publisher.servers(&info.name, 0).len()
    );
    match (&args.data, &args.input) {
        _ if args.bench => bench(&edge, &info, args, stop),
        (Some(data), _) => predict_dataset(&edge, &info, data, args, stop),
        (None, Some(input)) => one_request(&edge, &info, input, args),
        (None, None) => unreachable!("clap requires one"),
    }
}

/// The newest announcement of a server holding `name`, waiting for one up to `timeout`.
fn find_model(
    publisher: &Publisher,
    name: &str,
    timeout: Duration,
    stop: &CancelToken,
) -> anyhow::Result<ModelInfo> {
    let start = Instant::now();
    loop {
        if let Some(s) = publisher
            .servers(name, 0)
            .into_iter()
            .max_by_key(|s| s.info.version)
        {
            return Ok(s.info);
        }
        if start.elapsed() > timeout || stop.wait_timeout(Duration::from_millis(50)) {
            let mut names: Vec<String> = publisher
                .statistics()
                .iter()
                .map(|s| s.name.clone())
                .collect();
            names.sort();
            names.dedup();
            bail!(
                "no node serves model {name:?} (models announced: {})",
                if names.is_empty() {
                    "none".into()
                } else {
                    names.join(", ")
                }
            );
        }
    }
}

fn one_request(
    edge: &EdgeNode,
    info: &ModelInfo,
    input: &std::path::Path,
    args: &InferArgs,
) -> anyhow::Result<()> {
    let bytes = std::fs::read(input).with_context(|| format!("cannot read {}", input.display()))?;
    let tensors = amlip_core::payload::read_tensors(&bytes.into())
        .with_context(|| format!("{} is not a safetensors file", input.display()))?;
    let request = Request {
        model: info.name.clone(),
        inputs: tensors,
    }
    .to_bytes()?;
    let solution = edge
        .request_inference(request, args.timeout)
        .context("the request got no answer")?;
    let answer = Answer::from_bytes(&solution.data)?;
    for (name, t) in &answer.outputs {
        println!("{name}: {:?} {:?} {}", t.dtype(), t.shape(), preview(t));
    }
    if let Some(out) = &args.out {
        let mut p = Payload::new("infer_result");
        for (name, t) in &answer.outputs {
            p.insert(name, t.clone());
        }
        std::fs::write(out, p.encode()?)
            .with_context(|| format!("cannot write {}", out.display()))?;
    }
    Ok(())
}

fn preview(t: &Tensor) -> String {
    let vals: Vec<String> = if let Some(v) = t.to_f32s() {
        v.iter().take(8).map(|x| format!("{x:.4}")).collect()
    } else if let Some(v) = t.to_i64s() {
        v.iter().take(8).map(i64::to_string).collect()
    } else {
        t.bytes().iter().take(8).map(u8::to_string).collect()
    };
    let more = if t.len() > 8 { ", ..." } else { "" };
    format!("[{}{more}]", vals.join(", "))
}

fn predict_dataset(
    edge: &EdgeNode,
    info: &ModelInfo,
    path: &std::path::Path,
    args: &InferArgs,
    stop: &CancelToken,
) -> anyhow::Result<()> {
    let opts = LoadOptions {
        label: args.label.clone(),
        ..LoadOptions::default()
    };
    let data: Dataset = if path.is_dir() {
        dataset::load_splits(path, None, 0.2, 1, &opts)
            .with_context(|| format!("cannot load {}", path.display()))?
            .test
    } else {
        dataset::load(path, &opts).with_context(|| format!("cannot load {}", path.display()))?
    };
    let data = match args.limit {
        Some(n) if n < data.len() => data.head(n),
        _ => data,
    };
    let spec = match info.inputs.as_slice() {
        [one] => one.clone(),
        _ => bail!(
            "model {:?} takes {} inputs ({}); --data feeds models of one input (use --input)",
            info.name,
            info.inputs.len(),
            specs(&info.inputs)
        ),
    };
    let n = data.len();
    let start = Instant::now();
    let mut batch = edge
        .batch::<usize>()
        .job_timeout(args.timeout)
        .cancel_on(stop);
    for (k, lo) in (0..n).step_by(args.batch).enumerate() {
        let hi = (lo + args.batch).min(n);
        let rows: Vec<usize> = (lo..hi).collect();
        let input = input_tensor(&data.select(&rows), &spec)?;
        let request = Request {
            model: info.name.clone(),
            inputs: [(spec.name.clone(), input)].into(),
        }
        .to_bytes()?;
        batch.submit(k, request)?;
    }
    let mut predicted = vec![None::<i64>; n];
    for outcome in &mut batch {
        let solution = outcome
            .result
            .with_context(|| format!("request {} failed", outcome.label))?;
        let answer = Answer::from_bytes(&solution.data)?;
        let labels = answer
            .labels()
            .context("the answer has no label and no score matrix to take a class from")?;
        let lo = outcome.label * args.batch;
        for (i, l) in labels.into_iter().enumerate() {
            if let Some(slot) = predicted.get_mut(lo + i) {
                *slot = Some(l);
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let predicted: Vec<i64> = predicted
        .into_iter()
        .map(|p| p.context("a request's answer was missing samples"))
        .collect::<anyhow::Result<_>>()?;
    let (correct, total) = accuracy(info, &data, &predicted);
    let acc = (total > 0).then(|| correct as f64 / total as f64);
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "model": info.name, "version": info.version, "kind": info.kind,
                "samples": n, "seconds": secs, "correct": correct, "accuracy": acc,
            })
        );
    } else {
        println!(
            "model {} v{} ({}): {n} samples in {secs:.2} s ({:.0}/s)",
            info.name,
            info.version,
            info.kind,
            n as f64 / secs.max(1e-9)
        );
        match acc {
            Some(a) => println!("accuracy {a:.4} ({correct}/{total})"),
            None => println!("(no class labels to score against)"),
        }
    }
    if let Some(out) = &args.out {
        let t = Tensor::new(
            DType::I64,
            &[n],
            predicted
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect::<Vec<u8>>(),
        )?;
        let p = Payload::new("predictions").with_tensor("label", t);
        std::fs::write(out, p.encode()?)
            .with_context(|| format!("cannot write {}", out.display()))?;
    }
    Ok(())
}

/// A batch of samples as the model's input: reshaped to its shape, pixels scaled to 0..1
/// for float inputs (as PyTorch and Keras MNIST models take them), numbers as they are.
fn input_tensor(d: &Dataset, spec: &TensorSpec) -> anyhow::Result<Tensor> {
    let shape = spec.batch_shape(d.len(), d.width());
    let t = match (&d.features, spec.dtype.as_str()) {
        (Features::Pixels(x), "u8") => {
            Tensor::new(DType::U8, &shape, x.iter().copied().collect::<Vec<u8>>())?
        }
        (Features::Pixels(x), "f32") => Tensor::new(
            DType::F32,
            &shape,
            x.iter()
                .flat_map(|&p| (p as f32 / 255.0).to_le_bytes())
                .collect::<Vec<u8>>(),
        )?,
        (Features::Values(x), "f32") => Tensor::new(
            DType::F32,
            &shape,
            x.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>(),
        )?,
        (_, other) => bail!(
            "the model takes {other} {}; --data gives {}",
            shape_text(&spec.shape),
            if matches!(d.features, Features::Pixels(_)) {
                "pixels (u8)"
            } else {
                "numbers (f32)"
            }
        ),
    };
    Ok(t)
}

/// Correct predictions and samples scored, comparing class names (a binary AML model's
/// classes are `not X` and `X`).
fn accuracy(info: &ModelInfo, d: &Dataset, predicted: &[i64]) -> (usize, usize) {
    let (Some(labels), names) = (d.labels(), d.class_names()) else {
        return (0, 0);
    };
    let name_of = |p: i64| -> String {
        usize::try_from(p)
            .ok()
            .and_then(|p| info.classes.get(p).cloned())
            .unwrap_or_else(|| p.to_string())
    };
    let binary = match info.classes.as_slice() {
        [not, yes] if not.strip_prefix("not ") == Some(yes.as_str()) => Some(yes.clone()),
        _ => None,
    };
    let correct = labels
        .iter()
        .zip(predicted)
        .filter(|(&l, &p)| {
            let truth = names
                .get(l as usize)
                .cloned()
                .unwrap_or_else(|| l.to_string());
            let truth = match &binary {
                Some(yes) if truth != *yes => format!("not {yes}"),
                _ => truth,
            };
            name_of(p) == truth
        })
        .count();
    (correct, labels.len())
}

fn specs(s: &[TensorSpec]) -> String {
    s.iter()
        .map(|s| format!("{} {} {}", s.name, s.dtype, shape_text(&s.shape)))
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  main-node models              every model announced within 3 s\n  \
main-node models --json --for 5s"
)]
#[command(after_help = "Examples:\n  \
main-node models                                      what is announced, and by whom\n  \
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
    stats.sort_by(|a, b| (&a.name, &a.server_id).cmp(&(&b.name, &b.server_id)));
    if !args.json {
        println!(
            "{:<16} {:>14} {:<14} {:<7} {:<34} INPUTS",
            "MODEL", "VERSION", "KIND", "ROLE", "NODE"
        );
    }
    for s in &stats {
        match Announcement::parse(&s.data) {
            Ok(a) if args.json => println!(
                "{}",
                serde_json::json!({"model": s.name, "node": s.server_id.to_string(),
                    "role": a.role, "info": a.info})
            ),
            Ok(a) => println!(
                "{:<16} {:>14} {:<14} {:<7} {:<34} {}",
                s.name,
                a.info.version,
                a.info.kind,
                match a.role {
                    Role::Sender => "offers",
                    Role::Server => "serves",
                },
                s.server_id.to_string(),
                specs(&a.info.inputs)
            ),
            Err(why) if args.json => println!(
                "{}",
                serde_json::json!({"model": s.name, "node": s.server_id.to_string(), "error": why})
            ),
            Err(why) => println!("{:<16} (from {}) {why}", s.name, s.server_id),
        }
    }
    if stats.is_empty() && !args.json {
        println!("(no model announced on domain {})", node.domain);
    }
    Ok(())
}

/// Latency (one request in flight) and throughput (all in flight) of `--requests` requests of
/// `--batch` random samples.
fn bench(
    edge: &EdgeNode,
    info: &ModelInfo,
    args: &InferArgs,
    stop: &CancelToken,
) -> anyhow::Result<()> {
    let [spec] = info.inputs.as_slice() else {
        bail!(
            "--bench feeds models of one input; {:?} takes {}",
            info.name,
            specs(&info.inputs)
        );
    };
    let mut shape = vec![args.batch];
    for d in spec.shape.iter().skip(1) {
        shape.push(d.context("--bench needs a model whose inputs have fixed sizes but the batch")?);
    }
    let n: usize = shape.iter().product();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32
    };
    let input = match spec.dtype.as_str() {
        "f32" => Tensor::new(
            DType::F32,
            &shape,
            (0..n)
                .flat_map(|_| next().to_le_bytes())
                .collect::<Vec<u8>>(),
        )?,
        "u8" => Tensor::new(
            DType::U8,
            &shape,
            (0..n).map(|_| (next() * 255.0) as u8).collect::<Vec<u8>>(),
        )?,
        other => bail!("--bench makes f32 or u8 inputs; the model takes {other}"),
    };
    let request = Request {
        model: info.name.clone(),
        inputs: [(spec.name.clone(), input)].into(),
    }
    .to_bytes()?;
    // Warm up (writers matched, the direct path connected, caches filled).
    for _ in 0..5 {
        edge.request_inference(request.clone(), args.timeout)?;
    }
    let mut latencies = Vec::with_capacity(args.requests);
    for _ in 0..args.requests {
        if stop.is_cancelled() {
            bail!("interrupted");
        }
        let t = Instant::now();
        edge.request_inference(request.clone(), args.timeout)?;
        latencies.push(t.elapsed().as_secs_f64() * 1e3);
    }
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
    let start = Instant::now();
    let mut batch = edge
        .batch::<usize>()
        .job_timeout(args.timeout)
        .cancel_on(stop);
    for i in 0..args.requests {
        batch.submit(i, request.clone())?;
    }
    for outcome in &mut batch {
        outcome
            .result
            .with_context(|| format!("request {} failed", outcome.label))?;
    }
    let secs = start.elapsed().as_secs_f64();
    let rate = args.requests as f64 / secs;
    let servers = edge.stats().computing_nodes.len();
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "model": info.name, "batch": args.batch, "requests": args.requests,
                "servers": servers, "latency_ms_p50": pct(0.5), "latency_ms_p90": pct(0.9),
                "requests_per_s": rate, "samples_per_s": rate * args.batch as f64,
            })
        );
    } else {
        println!(
            "{} batch {}: latency p50 {:.2} ms, p90 {:.2} ms; {rate:.1} requests/s ({:.0} samples/s) over {servers} node(s)",
            info.name,
            args.batch,
            pct(0.5),
            pct(0.9),
            rate * args.batch as f64
        );
    }
    Ok(())
}
