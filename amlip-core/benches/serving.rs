//! ONNX models served in-process by each engine: milliseconds per request (median) of the
//! fixtures' CNN and dense network at batch 1 and 64, on amlip's own kernels and on tract,
//! with the ratio. No network: this is the compute a served request pays;
//! `scripts/bench-inference.sh` measures requests through the domain beside onnxruntime.
//!
//!     cargo bench -p amlip-core --bench serving [-- REQUESTS]

use std::collections::BTreeMap;
use std::time::Instant;

use amlip_core::infer::{Model, OnnxEngine};
use amlip_core::payload::{DType, Tensor};
use bytes::Bytes;

fn main() {
    let requests: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets/fixtures/onnx");
    println!(
        "{:<6} {:>5} | {:>10} {:>10} {:>7}",
        "model", "batch", "amlip ms", "tract ms", "ratio"
    );
    for (name, sample) in [("cnn", vec![1, 28, 28]), ("dense", vec![784])] {
        let file = Bytes::from(std::fs::read(dir.join(format!("{name}.onnx"))).expect("fixture"));
        let load = |e| Model::from_bytes_on(name, 1, file.clone(), e).expect("loads");
        let (ours, tract) = (load(OnnxEngine::Auto), load(OnnxEngine::Tract));
        for batch in [1usize, 64] {
            let shape: Vec<usize> = std::iter::once(batch).chain(sample.clone()).collect();
            let n: usize = shape.iter().product();
            let bytes: Vec<u8> = (0..n)
                .flat_map(|i| (((i * 7919) % 256) as f32 / 255.0).to_le_bytes())
                .collect();
            let t = Tensor::new(DType::F32, &shape, bytes).expect("sized");
            let inputs = BTreeMap::from([("input".to_string(), t)]);
            let time = |m: &Model| {
                m.run(&inputs).expect("runs");
                let mut ms: Vec<f64> = (0..requests)
                    .map(|_| {
                        let s = Instant::now();
                        m.run(&inputs).expect("runs");
                        s.elapsed().as_secs_f64() * 1e3
                    })
                    .collect();
                ms.sort_by(f64::total_cmp);
                ms[ms.len() / 2]
            };
            let (a, b) = (time(&ours), time(&tract));
            println!("{name:<6} {batch:>5} | {a:>10.3} {b:>10.3} {:>6.2}x", b / a);
        }
    }
}
