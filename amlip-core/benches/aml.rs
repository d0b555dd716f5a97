//! AML engine benchmark on MNIST: accuracy and speed against the reference engine's figures
//! (Open-AML-Engine, measured on this kind of machine; `shared/docs/aml.md`).
//!
//!     cargo bench -p amlip-core --bench aml            (about 2 minutes on 2 cores)
//!
//! Every figure is on the official 10k test set, after choosing the misses cutoff on a 10%
//! hold-out of the training set. Each row is the mean over 3 seeds (min-max in brackets).
//! Writes the table as JSON to target/aml-bench.json as well.

use std::path::Path;
use std::time::Instant;

use amlip_core::aml::{self, embedding, Bits, DigitParams, Metrics, Model, OneVsRest};
use amlip_core::dataset::{self, Dataset, Sharding};
use ndarray::{ArrayView1, ArrayView2};
use serde_json::json;

const SEEDS: [u64; 3] = [1, 2, 3];

struct Row {
    metrics: Vec<Metrics>,
    secs_per_batch: Vec<f64>,
    atoms: Vec<usize>,
}

fn train_eval(
    train: &Dataset,
    held: &Dataset,
    test: &Dataset,
    digit: u8,
    batches: usize,
    seed: u64,
) -> (Model, Metrics, f64) {
    let params = DigitParams {
        digit,
        batches,
        seed,
        ..DigitParams::default()
    };
    let t = Instant::now();
    fn xy(d: &Dataset) -> (ArrayView2<'_, u8>, ArrayView1<'_, u8>) {
        (d.pixels().expect("bytes"), d.labels().expect("classes"))
    }
    let (x, y) = xy(train);
    let mut model = aml::train_digit(x, y, &params, |_| std::ops::ControlFlow::Continue(()));
    let secs = t.elapsed().as_secs_f64() / batches as f64;
    let emb = &params.embedding;
    let (x, y) = xy(held);
    aml::calibrate(&mut model, emb, x, y, digit);
    let (x, y) = xy(test);
    let m = aml::evaluate(&model, emb, x, y, digit);
    (model, m, secs)
}

fn stats(v: &[f64]) -> (f64, f64, f64) {
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let min = v.iter().copied().fold(f64::MAX, f64::min);
    let max = v.iter().copied().fold(f64::MIN, f64::max);
    (mean, min, max)
}

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(dataset::MNIST_DIR);
    let data = dataset::load_dir(&dir).expect("MNIST in datasets/mnist");
    let (train, held) = dataset::hold_out(&Dataset::from(data.train), 0.1, 1);
    let test = &Dataset::from(data.test);
    let emb = aml::Embedding::mnist();
    let (held_x, held_y) = (
        held.pixels().expect("bytes"),
        held.labels().expect("classes"),
    );
    let (test_x, test_y) = (
        test.pixels().expect("bytes"),
        test.labels().expect("classes"),
    );
    let mut out = Vec::new();

    println!("AML engine on MNIST (official 10k test set; mean of seeds {SEEDS:?}, min-max in brackets)\n");
    println!(
        "{:<22} {:>24} {:>7} {:>7} {:>9} {:>6} | {:>9} {:>9} {:>8}",
        "task",
        "balanced accuracy",
        "FPR",
        "FNR",
        "s/batch",
        "atoms",
        "ref. acc",
        "ref. s/b",
        "speed-up"
    );
    // (digit, batches, reference balanced accuracy, reference seconds for the whole run)
    for (digit, batches, ref_acc, ref_secs) in [
        (0u8, 10usize, 0.979, 35.0),
        (0, 40, 0.987, 160.0),
        (8, 40, 0.955, 335.0),
    ] {
        let mut row = Row {
            metrics: vec![],
            secs_per_batch: vec![],
            atoms: vec![],
        };
        for seed in SEEDS {
            let (model, m, secs) = train_eval(&train, &held, test, digit, batches, seed);
            row.metrics.push(m);
            row.secs_per_batch.push(secs);
            row.atoms.push(model.len());
        }
        let bal = stats(
            &row.metrics
                .iter()
                .map(|m| m.balanced_accuracy())
                .collect::<Vec<_>>(),
        );
        let fpr = stats(&row.metrics.iter().map(|m| m.fpr()).collect::<Vec<_>>()).0;
        let fnr = stats(&row.metrics.iter().map(|m| m.fnr()).collect::<Vec<_>>()).0;
        let spb = stats(&row.secs_per_batch).0;
        let atoms = row.atoms.iter().sum::<usize>() / row.atoms.len();
        let ref_spb = ref_secs / batches as f64;
        println!(
            "{:<22} {:>7.4} ({:.4}-{:.4}) {:>7.4} {:>7.4} {:>9.3} {:>6} | {:>9.3} {:>9.2} {:>7.0}x",
            format!("digit {digit}, {batches} batches"),
            bal.0,
            bal.1,
            bal.2,
            fpr,
            fnr,
            spb,
            atoms,
            ref_acc,
            ref_spb,
            ref_spb / spb
        );
        out.push(
            json!({"task": format!("digit {digit}, {batches} batches"), "balanced_accuracy": bal.0,
            "balanced_accuracy_min": bal.1, "balanced_accuracy_max": bal.2, "fpr": fpr, "fnr": fnr,
            "seconds_per_batch": spb, "atoms": atoms, "reference_balanced_accuracy": ref_acc,
            "reference_seconds_per_batch": ref_spb, "speedup": ref_spb / spb}),
        );
    }

    // Two shards trained apart, then merged, against one model on all the data.
    println!("\ndigit 0, two disjoint shards of the training set, 30 batches each (seed 1):");
    let shards = dataset::shard(&train, 2, Sharding::Stratified, 1);
    let mut shard_models = Vec::new();
    let mut shard_pos = Vec::new();
    for (i, s) in shards.iter().enumerate() {
        let (model, m, secs) = train_eval(s, &held, test, 0, 30, 1 + i as u64);
        println!("  shard {}            {:>7.4} bal. acc.  FPR {:.4}  FNR {:.4}  {:>5} atoms  {:.3} s/batch", i + 1, m.balanced_accuracy(), m.fpr(), m.fnr(), model.len(), secs);
        out.push(json!({"task": format!("shard {}", i + 1), "balanced_accuracy": m.balanced_accuracy(), "fpr": m.fpr(), "fnr": m.fnr(), "atoms": model.len()}));
        let (sx, sy) = (s.pixels().expect("bytes"), s.labels().expect("classes"));
        let pos: Vec<Bits> = (0..s.len())
            .filter(|&r| sy[r] == 0)
            .map(|r| emb.term(sx.row(r).as_slice().expect("row")))
            .collect();
        shard_models.push(model);
        shard_pos.push(pos);
    }
    for (name, merged) in [
        ("union", aml::merge_shards(&shard_models, None)),
        (
            "filtered union",
            aml::merge_shards(&shard_models, Some(&shard_pos)),
        ),
    ] {
        let mut merged = merged;
        aml::calibrate(&mut merged, &emb, held_x, held_y, 0);
        let m = aml::evaluate(&merged, &emb, test_x, test_y, 0);
        println!(
            "  {name:<17} {:>7.4} bal. acc.  FPR {:.4}  FNR {:.4}  {:>5} atoms",
            m.balanced_accuracy(),
            m.fpr(),
            m.fnr(),
            merged.len()
        );
        out.push(json!({"task": format!("merged: {name}"), "balanced_accuracy": m.balanced_accuracy(), "fpr": m.fpr(), "fnr": m.fnr(), "atoms": merged.len()}));
    }
    let (one, m, _) = train_eval(&train, &held, test, 0, 30, 1);
    println!(
        "  one model, all data {:>5.4} bal. acc.  FPR {:.4}  FNR {:.4}  {:>5} atoms",
        m.balanced_accuracy(),
        m.fpr(),
        m.fnr(),
        one.len()
    );
    out.push(json!({"task": "one model, all data, 30 batches", "balanced_accuracy": m.balanced_accuracy(), "fpr": m.fpr(), "fnr": m.fnr(), "atoms": one.len()}));

    // Ten one-vs-rest models.
    let batches = 40;
    let t = Instant::now();
    let models: Vec<Model> = (0..10u8)
        .map(|d| train_eval(&train, &held, test, d, batches, 1).0)
        .collect();
    let secs = t.elapsed().as_secs_f64();
    let ovr = OneVsRest { models };
    let acc = ovr.accuracy(&emb, test_x, test_y);
    println!("\n10-class (ten one-vs-rest models, {batches} batches each, misses / cutoff): test accuracy {acc:.4}, trained in {secs:.1} s");
    out.push(json!({"task": "10-class one-vs-rest", "batches": batches, "accuracy": acc, "train_seconds": secs}));

    // The model's two forms, on the digit-8 40-batch model (the largest here).
    let (big, _, _) = train_eval(&train, &held, test, 8, 40, 1);
    let t = Instant::now();
    let json_text = big.to_json();
    let json_write = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let back = Model::from_json(&json_text, Some(embedding::N_CONSTANTS)).expect("json");
    let json_read = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let bytes = big.to_bytes();
    let bin_write = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let back_bin = Model::from_bytes(&bytes).expect("binary");
    let bin_read = t.elapsed().as_secs_f64() * 1e3;
    assert_eq!(back.atoms, big.atoms);
    assert_eq!(back_bin, big);
    println!(
        "\nmodel forms ({} atoms): JSON {} bytes, write {:.1} ms, read {:.1} ms; binary {} bytes ({:.1}x smaller), write {:.1} ms, read {:.1} ms",
        big.len(), json_text.len(), json_write, json_read, bytes.len(), json_text.len() as f64 / bytes.len() as f64, bin_write, bin_read
    );
    out.push(json!({"task": "model forms", "atoms": big.len(), "json_bytes": json_text.len(), "json_write_ms": json_write,
        "json_read_ms": json_read, "binary_bytes": bytes.len(), "binary_write_ms": bin_write, "binary_read_ms": bin_read}));

    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("aml-bench.json");
    if std::fs::write(&path, serde_json::to_string_pretty(&out).expect("json")).is_ok() {
        println!("\nwritten to {}", path.display());
    }
}
