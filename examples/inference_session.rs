//! SmartSim's "first inference session" on amlip: put a tensor, set a model, run it, get the
//! output, for the ONNX models of SmartSim's example (a CNN for 28x28 images, KMeans on its
//! 10x2 data, a RandomForest regressor on Iris), from `datasets/fixtures/onnx`.
//!
//! The models travel to the serving node through a model manager, as they would to any
//! `computing-node --serve-models` on the domain; this example starts that node itself.
//!   `cargo run --release -p amlip-examples --example inference_session -- --domain 7`
use std::time::Duration;

use amlip_core::infer::{HostOptions, ModelHost, ModelServer, Session};
use amlip_core::payload::Tensor;
use amlip_core::prelude::*;
use ndarray::{Array2, Array4};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cfg = |name: &str| {
        NodeConfig::new(name)
            .domain(amlip_examples::domain())
            .localhost()
    };
    // The serving side: an inference node that serves every model published on the domain.
    let follow = HostOptions { follow: true };
    let _server = ModelHost::start(&cfg("Server"), ModelServer::new(), follow)?;
    let models = amlip_examples::fixtures_dir().join("onnx");

    // The client side, as in SmartSim.
    let mut client = Session::connect(cfg("Client"), Duration::from_secs(60))?;
    let image = Array4::<f32>::from_elem((1, 1, 28, 28), 0.5);
    client.put_tensor("image", Tensor::from_f32(image.view()));
    client.set_model_from_file("cnn", &models.join("cnn.onnx"))?;
    client.run_model("cnn", &["image"], &["log_probabilities"])?;
    let out = client.get_tensor("log_probabilities").expect("an output");
    println!("cnn: output {:?}", out.shape());

    let points = Array2::from_shape_fn((10, 2), |(i, j)| (2 * i + j) as f32);
    client.put_tensor("points", Tensor::from_f32(points.view()));
    client.set_model_from_file("kmeans", &models.join("kmeans.onnx"))?;
    client.run_model("kmeans", &["points"], &["clusters", "distances"])?;
    println!(
        "kmeans: clusters {:?}",
        client.get_tensor("clusters").map(|t| t.shape().to_vec())
    );

    let flower = Array2::from_shape_vec((1, 4), vec![5.1f32, 3.5, 1.4, 0.2])?;
    client.put_tensor("flower", Tensor::from_f32(flower.view()));
    client.set_model_from_file("forest", &models.join("forest.onnx"))?;
    client.run_model("forest", &["flower"], &["prediction"])?;
    let p = client.get_tensor("prediction").expect("an output");
    let value = f32::from_le_bytes(p.bytes()[..4].try_into()?);
    println!("forest: prediction {value:.3} for an Iris setosa (class 0)");
    assert!(value.abs() < 0.5, "a setosa predicted as {value}");
    Ok(())
}
