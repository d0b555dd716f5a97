//! Serving models without the network: every ONNX fixture gives what onnxruntime gave (the
//! outputs `datasets/fixtures/onnx/make.py` committed), amlip's own MLP equals its ONNX
//! export, and bad models and inputs are refused with errors that say what was expected.

use std::collections::BTreeMap;
use std::path::PathBuf;

use amlip_core::infer::wire::{Answer, Request};
use amlip_core::infer::{InferError, Model, ModelServer};
use amlip_core::payload::{DType, Tensor};
use bytes::Bytes;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../datasets/fixtures/onnx")
}

/// The tensors onnxruntime was given and gave, by `<model>.<tensor>`.
fn expected() -> BTreeMap<String, Tensor> {
    let bytes = std::fs::read(fixtures().join("expected.safetensors")).unwrap();
    amlip_core::payload::read_tensors(&bytes.into()).unwrap()
}

fn floats(t: &Tensor) -> Vec<f32> {
    t.to_f32s().expect("an f32 tensor")
}

fn ints(t: &Tensor) -> Vec<i64> {
    t.to_i64s().expect("an i64 tensor")
}

fn close(name: &str, got: &Tensor, want: &Tensor) {
    assert_eq!(got.shape(), want.shape(), "{name}: shape");
    let (g, w) = (floats(got), floats(want));
    let worst = g
        .iter()
        .zip(&w)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(worst <= 1e-4, "{name}: differs from onnxruntime by {worst}");
}

fn run(file: &str, inputs: &[(&str, &Tensor)]) -> BTreeMap<String, Tensor> {
    let model = Model::load(&fixtures().join(file), None).unwrap();
    let inputs = inputs
        .iter()
        .map(|(n, t)| ((*n).to_owned(), (*t).clone()))
        .collect();
    model.run(&inputs).unwrap()
}

#[test]
fn every_onnx_fixture_gives_what_onnxruntime_gave() {
    let e = expected();
    let out = run("cnn.onnx", &[("input", &e["cnn.input"])]);
    close("cnn", &out["output"], &e["cnn.output"]);
    let out = run("dense.onnx", &[("input", &e["dense.input"])]);
    close("dense", &out["output"], &e["dense.output"]);
    let out = run("kmeans.onnx", &[("input", &e["kmeans.input"])]);
    assert_eq!(ints(&out["label"]), ints(&e["kmeans.label"]));
    close("kmeans scores", &out["scores"], &e["kmeans.scores"]);
    let out = run("forest.onnx", &[("input", &e["forest.input"])]);
    close("forest", &out["variable"], &e["forest.variable"]);
}

#[test]
fn amlip_s_mlp_equals_its_onnx_export() {
    let e = expected();
    let mlp = run("mlp-mnist.safetensors", &[("input", &e["dense.pixels"])]);
    close(
        "mlp probabilities",
        &mlp["probabilities"],
        &e["dense.output"],
    );
    let onnx = floats(&e["dense.output"]);
    let argmax: Vec<i64> = onnx
        .chunks(10)
        .map(|r| {
            r.iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .unwrap()
                .0 as i64
        })
        .collect();
    assert_eq!(ints(&mlp["label"]), argmax);
}

#[test]
fn bad_models_and_inputs_say_what_was_expected() {
    // A corrupt ONNX file: the first 1000 bytes of the CNN.
    let cnn = std::fs::read(fixtures().join("cnn.onnx")).unwrap();
    let e = Model::from_bytes("broken", 1, Bytes::copy_from_slice(&cnn[..1000])).unwrap_err();
    assert!(matches!(e, InferError::Load { .. }), "{e}");
    assert!(e.to_string().contains("broken"), "{e}");
    let e = Model::from_bytes("junk", 1, Bytes::from_static(b"not a model at all")).unwrap_err();
    assert!(e.to_string().contains("ONNX"), "{e}");

    let server = ModelServer::new();
    server.install(Model::load(&fixtures().join("cnn.onnx"), None).unwrap());
    let ask = |model: &str, t: Tensor| {
        let req = Request {
            model: model.into(),
            inputs: [("input".to_string(), t)].into(),
        };
        server.answer(&req.to_bytes().unwrap())
    };
    let good = Tensor::new(DType::F32, &[2, 1, 28, 28], vec![0u8; 2 * 784 * 4]).unwrap();
    let answer = Answer::from_bytes(&ask("cnn", good.clone()).unwrap()).unwrap();
    assert_eq!(answer.outputs["output"].shape(), &[2, 10]);

    let e = ask("nope", good).unwrap_err().to_string();
    assert!(e.contains("no model \"nope\"") && e.contains("cnn"), "{e}");
    let flat = Tensor::new(DType::F32, &[2, 784], vec![0u8; 2 * 784 * 4]).unwrap();
    let e = ask("cnn", flat).unwrap_err().to_string();
    assert!(e.contains("expected f32 [N, 1, 28, 28]"), "{e}");
    let bytes = Tensor::new(DType::U8, &[1, 1, 28, 28], vec![0u8; 784]).unwrap();
    let e = ask("cnn", bytes).unwrap_err().to_string();
    assert!(e.contains("is u8"), "{e}");
    // The server still answers after all that.
    let again = Tensor::new(DType::F32, &[1, 1, 28, 28], vec![0u8; 784 * 4]).unwrap();
    assert!(ask("cnn", again).is_ok());
}

#[test]
fn plain_aml_ip_requests_get_the_digit_as_text() {
    let server = ModelServer::new();
    server.install(Model::load(&fixtures().join("mlp-mnist.safetensors"), Some("mnist")).unwrap());
    let e = expected();
    let pixels = &e["dense.pixels"];
    let want = {
        let mlp = run("mlp-mnist.safetensors", &[("input", pixels)]);
        ints(&mlp["label"])
    };
    for (i, &digit) in want.iter().enumerate().take(5) {
        let image = &pixels.bytes()[i * 784..(i + 1) * 784];
        let text = serde_json::to_string(&image.to_vec()).unwrap();
        let answer = server.answer(&Bytes::from(text)).unwrap();
        assert_eq!(String::from_utf8_lossy(&answer), digit.to_string());
    }
    let e = server
        .answer(&Bytes::from_static(b"hello"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("expected an MNIST image as a JSON list of 784 integers"),
        "{e}"
    );
}
