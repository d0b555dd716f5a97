//! Serving models without the network: every ONNX fixture gives what onnxruntime gave (the
//! outputs `datasets/fixtures/onnx/make.py` committed), amlip's own MLP equals its ONNX
//! export, and bad models and inputs are refused with errors that say what was expected.

use std::collections::BTreeMap;
use std::path::PathBuf;

use amlip_core::infer::wire::{Answer, Request};
use amlip_core::infer::{InferError, Model, ModelServer, OnnxEngine};
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
    run_on(file, OnnxEngine::Auto, inputs).1
}

/// The engine that served `file` (as `ModelInfo::engine` says) and its outputs.
fn run_on(
    file: &str,
    engine: OnnxEngine,
    inputs: &[(&str, &Tensor)],
) -> (String, BTreeMap<String, Tensor>) {
    let bytes = Bytes::from(std::fs::read(fixtures().join(file)).unwrap());
    let model = Model::from_bytes_on(file, 1, bytes, engine).unwrap();
    let inputs = inputs
        .iter()
        .map(|(n, t)| ((*n).to_owned(), (*t).clone()))
        .collect();
    (model.info().engine.clone(), model.run(&inputs).unwrap())
}

#[test]
fn every_onnx_fixture_gives_what_onnxruntime_gave_on_both_engines() {
    let e = expected();
    // Graphs amlip's kernels import: served by them unless tract is asked for, and the same
    // answers (within onnxruntime's 1e-4) either way.
    for (file, model, output) in [
        ("cnn.onnx", "cnn", "output"),
        ("dense.onnx", "dense", "output"),
        ("layers.onnx", "layers", "probabilities"),
    ] {
        let input = &e[&format!("{model}.input")];
        let want = &e[&format!("{model}.{output}")];
        let (engine, ours) = run_on(file, OnnxEngine::Auto, &[("input", input)]);
        assert_eq!(engine, "amlip", "{file}");
        close(&format!("{model} on amlip"), &ours[output], want);
        let (engine, tract) = run_on(file, OnnxEngine::Tract, &[("input", input)]);
        assert!(engine.starts_with("tract"), "{file}: {engine}");
        close(&format!("{model} on tract"), &tract[output], want);
        close(
            &format!("{model}: amlip against tract"),
            &ours[output],
            &tract[output],
        );
    }
    // A batch of one and a batch cut across threads give each sample the same answer (to the
    // last bits, which the matrix products' blocking by batch size may change).
    let x = floats(&e["cnn.input"]);
    let one = Tensor::new(
        DType::F32,
        &[1, 1, 28, 28],
        x[784..1568]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let (_, single) = run_on("cnn.onnx", OnnxEngine::Auto, &[("input", &one)]);
    let (_, all) = run_on("cnn.onnx", OnnxEngine::Auto, &[("input", &e["cnn.input"])]);
    let (a, b) = (floats(&single["output"]), floats(&all["output"]));
    assert!(
        a.iter().zip(&b[10..20]).all(|(x, y)| (x - y).abs() < 1e-5),
        "{a:?} {b:?}"
    );
    let out = run("kmeans.onnx", &[("input", &e["kmeans.input"])]);
    assert_eq!(ints(&out["label"]), ints(&e["kmeans.label"]));
    close("kmeans scores", &out["scores"], &e["kmeans.scores"]);
    let out = run("forest.onnx", &[("input", &e["forest.input"])]);
    close("forest", &out["variable"], &e["forest.variable"]);
}

#[test]
fn graphs_amlip_s_kernels_do_not_take_fall_back_to_tract_and_say_why() {
    let e = expected();
    // scikit-learn's KMeans: operators amlip's kernels do not have.
    let (engine, out) = run_on(
        "kmeans.onnx",
        OnnxEngine::Auto,
        &[("input", &e["kmeans.input"])],
    );
    assert!(engine.starts_with("tract: operator "), "{engine}");
    assert_eq!(ints(&out["label"]), ints(&e["kmeans.label"]));
    // The forest is matrix products, but with a branch and integer outputs.
    let (engine, _) = run_on(
        "forest.onnx",
        OnnxEngine::Auto,
        &[("input", &e["forest.input"])],
    );
    assert!(engine.starts_with("tract: "), "{engine}");
    // A padded convolution: amlip's kernels take none; tract serves it, as onnxruntime would.
    let (engine, out) = run_on(
        "padded.onnx",
        OnnxEngine::Auto,
        &[("input", &e["padded.input"])],
    );
    assert!(
        engine.starts_with("tract: Conv") && engine.contains("padding"),
        "{engine}"
    );
    close("padded", &out["output"], &e["padded.output"]);
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
