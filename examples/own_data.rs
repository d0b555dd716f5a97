//! Train on your own table: a CSV (string classes, a header, a label column by name) loaded,
//! split, and trained by AML and by the MLP over 3 computing nodes.
//! Run: `cargo run --release -p amlip-examples --example own_data -- --domain 7`
//! (it starts its own 3 computing nodes; nothing else needs to run).
use std::time::Duration;

use amlip_core::dataset::{self, LoadOptions};
use amlip_core::kind::Registry;
use amlip_core::prelude::*;
use amlip_core::session::{AmlShards, MlpShards, Runner};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let domain = amlip_examples::domain();
    let cfg = |name: &str| NodeConfig::new(name).domain(domain).localhost();
    let node = |i| AsyncComputingNode::serve(cfg(&format!("Worker{i}")), Registry::builtin());
    let _nodes = [node(0)?, node(1)?, node(2)?];

    let csv = amlip_examples::fixtures_dir().join("tabular-train.csv");
    let opts = LoadOptions {
        label: Some("species".into()),
        ..LoadOptions::default()
    };
    // No test file: a stratified 20% of the rows is held out.
    let data = dataset::load_splits(&csv, None, 0.2, 1, &opts)?;
    println!("{}", data.train.describe());

    let main = MainNode::with_config(cfg("Main"))?;
    let mut runner = Runner::new(&main, Duration::from_secs(300));
    runner.wait_for_nodes(3)?;
    let aml = AmlShards {
        digit: None, // one classifier per class
        test_set: data.test_source.clone(),
        ..AmlShards::default()
    };
    let report = aml.run(&mut runner, &data.train, &data.test)?;
    println!("{}", report.table);
    let mlp = MlpShards {
        test_set: data.test_source.clone(),
        ..MlpShards::default()
    };
    let report = mlp.run(&mut runner, &data.train, &data.test)?;
    println!("{}", report.table);
    Ok(())
}
