//! Federated averaging of your own model (softmax regression on MNIST) over 3 computing nodes.
//! Run: `cargo run --release -p amlip-examples --example federated_model -- --domain 7`
//! (it starts its own 3 computing nodes; nothing else needs to run).
use std::time::Duration;

use amlip_core::aml::ClassMetrics;
use amlip_core::dataset::{self, Dataset, Sharding};
use amlip_core::kind::federated::weight;
use amlip_core::prelude::*;
use ndarray::{Array2, ArrayView2, Axis};

/// Class scores = pixels / 255 x w, with w of shape [784, 10].
#[derive(Clone)]
struct Linear(Array2<f32>);

impl FedModel for Linear {
    fn weights(&self) -> Weights {
        Weights::from([("w".into(), self.0.clone().into_dyn())])
    }
    fn from_weights(w: &Weights) -> Result<Self, PayloadError> {
        Ok(Linear(weight(w, "w", &[Some(784), Some(10)])?))
    }
}

/// One epoch of mini-batch SGD on softmax cross-entropy.
struct Sgd;

impl LocalTraining for Sgd {
    const KIND: &'static str = "linear_sgd";
    type Model = Linear;

    fn train(&self, m: &mut Linear, j: &Payload, _: &JobContext) -> Result<LocalOutcome, BoxError> {
        let (shape, images) = j.u8s("images", &[None, Some(784)])?;
        let (n, labels) = (shape[0], j.labels("labels", shape[0], 10)?);
        let x = ArrayView2::from_shape((n, 784), &images[..])?.mapv(|p| p as f32 / 255.0);
        let mut loss = 0.0;
        for rows in (0..n).collect::<Vec<_>>().chunks(100) {
            let xb = x.select(Axis(0), rows);
            let mut g = xb.dot(&m.0);
            for (mut p, &i) in g.rows_mut().into_iter().zip(rows) {
                let max = p.fold(f32::MIN, |a, &b| a.max(b));
                p.mapv_inplace(|s| (s - max).exp());
                p /= p.sum();
                loss -= p[labels[i] as usize].max(1e-9).ln() / n as f32;
                p[labels[i] as usize] -= 1.0;
            }
            m.0.scaled_add(-0.5 / rows.len() as f32, &xb.t().dot(&g));
        }
        Ok(LocalOutcome { samples: n, loss })
    }
}

fn main() -> Result<(), BoxError> {
    let domain = amlip_examples::domain();
    let cfg = |name: &str| NodeConfig::new(name).domain(domain).localhost();
    let kind = || Registry::new().with(FedKind(Sgd));
    let node = |i| AsyncComputingNode::serve(cfg(&format!("Worker{i}")), kind());
    let _nodes = [node(0)?, node(1)?, node(2)?];
    let data = dataset::load_dir(&amlip_examples::mnist_dir())?;
    let mut session = FedAvg::new(Sgd::KIND, Linear(Array2::zeros((784, 10)))).rounds(3);
    for shard in dataset::shard(&Dataset::from(data.train), 3, Sharding::Stratified, 1) {
        session = session.shard(shard.to_payload());
    }
    let test = data.test.images.mapv(|p| p as f32 / 255.0);
    let truth = data.test.labels.as_slice().expect("contiguous");
    let accuracy = |m: &Linear| ClassMetrics::from_scores(test.dot(&m.0).view(), truth).accuracy;
    let main = MainNode::with_config(cfg("Main"))?;
    let mut runner = Runner::new(&main, Duration::from_secs(600));
    runner.wait_for_nodes(3)?;
    let model = session.run(&mut runner, |r, _| {
        println!("round {}: test accuracy {:.4}", r.round, accuracy(&r.model))
    })?;
    assert!(accuracy(&model) > 0.88, "softmax regression reaches 0.88");
    Ok(())
}
