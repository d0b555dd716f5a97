//! SmartSim's online training on amlip: two simulated ranks stream samples of sin(x) while a
//! trainer, started after them, catches up and trains on the growing set.
//! Run: `cargo run --release -p amlip-examples --example online_training -- --domain 7`
//! (everything runs in this process: two producers, one trainer).
use std::time::Duration;

use amlip_core::cancel::CancelToken;
use amlip_core::nn::Spec;
use amlip_core::prelude::*;
use amlip_core::stream::{
    Consumer, ConsumerOptions, Function, OnlineTraining, Producer, ProducerOptions,
};

fn main() -> Result<(), BoxError> {
    let domain = amlip_examples::domain();
    let cfg = |name: &str| NodeConfig::new(name).domain(domain).localhost();
    // Two ranks of a simulation, each publishing 16 samples per iteration.
    let ranks: Vec<_> = (0..2u32)
        .map(|rank| {
            let producer = Producer::start(&cfg("Sim"), "sin", rank, ProducerOptions::default());
            std::thread::spawn(move || -> Result<u64, String> {
                let producer = producer.map_err(|e| e.to_string())?;
                for it in 0..20u64 {
                    let batch = Function::Sin.sample(16, it * 10 + rank as u64);
                    producer.publish(it, &batch).map_err(|e| e.to_string())?;
                    std::thread::sleep(Duration::from_millis(20)); // the simulation's step
                }
                let done = producer.finish(1, Duration::from_secs(60), &CancelToken::new());
                Ok(done.produced)
            })
        })
        .collect();
    // The trainer follows the stream: it sees the samples produced before it started too.
    let consumer = Consumer::follow(
        &cfg("Trainer"),
        "sin",
        ConsumerOptions {
            shape: Some((1, 1)),
            ..Default::default()
        },
    )?;
    let mut training = OnlineTraining::new(Spec::regression(1, &[32, 32], 1));
    training.producers = 2;
    training.validation = Some(Function::Sin.grid(201));
    let mut held = 0;
    let report = training.run(&consumer, &CancelToken::new(), &mut |e| {
        if e.held != held {
            held = e.held;
            println!(
                "epoch {}: {} samples held, loss {:.5}",
                e.epoch, e.held, e.loss
            );
        }
    })?;
    for r in ranks {
        r.join().map_err(|_| "a rank panicked")??;
    }
    for p in &report.producers {
        println!(
            "rank {}: produced {}, received {}, kept {}, dropped {}, rejected {}",
            p.rank,
            p.produced,
            p.received,
            p.kept,
            p.dropped(),
            p.rejected()
        );
    }
    let mse = report
        .epochs
        .last()
        .and_then(|e| e.validation)
        .unwrap_or(f64::NAN);
    println!(
        "validation MSE {mse:.6} after {} epochs ({})",
        report.epochs.len(),
        report.ended
    );
    Ok(())
}
