//! The seed CNN's training step on this machine: seconds per MNIST epoch (60,000 images,
//! batch 128, SGD momentum) extrapolated from timed steps, on 1 and 2 threads.
//!
//!     cargo bench -p amlip-core --bench nn_step [-- STEPS]
//!
//! `scripts/bench-allreduce.sh` runs it beside PyTorch for the comparison.

use std::time::Instant;

use amlip_core::nn::{Network, Optimizer, Spec, Targets};

fn main() {
    let steps: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20);
    let net = Network::new(Spec::cnn()).expect("the seed CNN checks");
    let batch = 128;
    let x: Vec<f32> = (0..batch * 784)
        .map(|i| ((i * 7919) % 256) as f32 / 255.0)
        .collect();
    let y: Vec<u8> = (0..batch).map(|i| (i % 10) as u8).collect();
    let opt = Optimizer::Sgd {
        lr: 0.01,
        momentum: 0.5,
    };
    for threads in [1, 2] {
        let mut p = net.init(1);
        let mut state = opt.state(net.len());
        let mut grad = vec![0.0; net.len()];
        // One warm-up step.
        net.gradient(&p, &x, Targets::Classes(&y), 0, threads, &mut grad)
            .expect("shapes fit");
        let t = Instant::now();
        for s in 0..steps {
            grad.fill(0.0);
            net.gradient(&p, &x, Targets::Classes(&y), s as u64, threads, &mut grad)
                .expect("shapes fit");
            opt.step(&mut p, &grad, &mut state);
        }
        let per_step = t.elapsed().as_secs_f64() / steps as f64;
        let per_epoch = per_step * (60_000f64 / batch as f64).ceil();
        println!(
            "{{\"threads\": {threads}, \"step_ms\": {:.1}, \"epoch_s\": {per_epoch:.1}}}",
            per_step * 1e3
        );
    }
}
