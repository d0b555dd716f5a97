//! Serving and querying models over DDS with the real binaries: `computing-node --model` and
//! `--serve-models`, `main-node train --publish`, `main-node infer` and `main-node models`, and
//! the library's edge node and publisher in the test process.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::common::{computing, domain, main as main_proc, Domain, Proc};
use amlip_core::config::NodeConfig;
use amlip_core::error::{Error, JobError};
use amlip_core::infer::wire::{Answer, Request};
use amlip_core::infer::Publisher;
use amlip_core::node::{EdgeNode, ModelManagerSenderNode};
use amlip_core::payload::{DType, Tensor};
use amlip_testkit::wait_until;
use bytes::Bytes;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../datasets/fixtures/onnx")
}

fn fixture(name: &str) -> String {
    fixtures().join(name).to_string_lossy().into_owned()
}

fn mnist() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../datasets/mnist")
        .to_string_lossy()
        .into_owned()
}

/// The tensors onnxruntime was given and gave (`datasets/fixtures/onnx/make.py`).
fn expected() -> BTreeMap<String, Tensor> {
    let bytes = std::fs::read(fixtures().join("expected.safetensors")).unwrap();
    amlip_core::payload::read_tensors(&bytes.into()).unwrap()
}

fn floats(t: &Tensor) -> Vec<f32> {
    t.to_f32s().expect("an f32 tensor")
}

fn worst_difference(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.shape(), b.shape());
    floats(a)
        .iter()
        .zip(floats(b))
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn cfg(name: &str, d: &Domain) -> NodeConfig {
    NodeConfig::new(name).domain(d.id()).localhost()
}

/// A computing node serving models; waits until its inference node is up and returns it with
/// that node's id.
fn host(name: &str, d: &Domain, args: &[&str]) -> (Proc, String) {
    let p = computing(name, d, args);
    let id = |out: String| {
        out.lines()
            .find_map(|l| l.strip_prefix("inference node "))
            .and_then(|l| l.split_whitespace().next().map(str::to_owned))
    };
    assert!(
        wait_until(Duration::from_secs(60), || id(p.output()).is_some()),
        "{name} did not start serving:\n{}",
        p.output()
    );
    let id = id(p.output()).unwrap();
    (p, id)
}

fn request(model: &str, input: &str, t: &Tensor) -> Bytes {
    Request {
        model: model.into(),
        inputs: [(input.to_string(), t.clone())].into(),
    }
    .to_bytes()
    .unwrap()
}

fn run_to_end(mut p: Proc, what: &str) -> String {
    let status = p
        .wait_exit(Duration::from_secs(300))
        .unwrap_or_else(|| panic!("{what} is still running:\n{}", p.output()));
    let out = p.output();
    assert!(status.success(), "{what} failed:\n{out}");
    out
}

#[test]
fn edge_requests_to_every_fixture_return_onnxruntime_s_outputs() {
    let d = domain();
    let models = [
        format!("cnn={}", fixture("cnn.onnx")),
        format!("dense={}", fixture("dense.onnx")),
        format!("kmeans={}", fixture("kmeans.onnx")),
        format!("forest={}", fixture("forest.onnx")),
    ];
    let mut args = vec![];
    for m in &models {
        args.extend(["--model", m.as_str()]);
    }
    let (_host, _) = host("Models", &d, &args);
    let edge = EdgeNode::with_config(cfg("Edge", &d)).unwrap();
    let e = expected();
    let t = Duration::from_secs(60);
    for (model, output) in [
        ("cnn", "output"),
        ("dense", "output"),
        ("kmeans", "scores"),
        ("forest", "variable"),
    ] {
        let input = &e[&format!("{model}.input")];
        let solution = edge
            .request_inference(request(model, "input", input), t)
            .unwrap();
        let answer = Answer::from_bytes(&solution.data).unwrap();
        let want = &e[&format!("{model}.{output}")];
        let diff = worst_difference(&answer.outputs[output], want);
        assert!(diff <= 1e-4, "{model}: {diff} from onnxruntime's output");
    }
    let kmeans = edge
        .request_inference(request("kmeans", "input", &e["kmeans.input"]), t)
        .unwrap();
    let labels = &Answer::from_bytes(&kmeans.data).unwrap().outputs["label"];
    assert_eq!(labels.bytes(), e["kmeans.label"].bytes());

    // Status samples carry AML-IP's kinds: the edge (7), the inference node (8) and the model
    // sender beside it (10), as `main-node status` names them.
    let out = run_to_end(
        main_proc(&d, &["status", "--json", "--for", "4s"]),
        "status",
    );
    let nodes: Vec<serde_json::Value> =
        serde_json::from_str(out.lines().find(|l| l.starts_with('[')).unwrap()).unwrap();
    let kinds: Vec<&str> = nodes.iter().filter_map(|n| n["kind"].as_str()).collect();
    for kind in ["edge", "inference", "model_sender", "computing"] {
        assert!(kinds.contains(&kind), "no {kind} node in {kinds:?}");
    }

    // `main-node models` lists the four, served by that node.
    let out = run_to_end(
        main_proc(&d, &["models", "--json", "--for", "5s"]),
        "models",
    );
    // The CNN and the dense network run on amlip's own kernels; scikit-learn's KMeans and
    // the forest on tract, with the reason.
    for (name, engine) in [
        ("cnn", "\"engine\":\"amlip\""),
        ("dense", "\"engine\":\"amlip\""),
        ("kmeans", "\"engine\":\"tract: operator "),
        ("forest", "\"engine\":\"tract: "),
    ] {
        assert!(
            out.lines()
                .any(|l| l.contains(&format!("\"model\":\"{name}\""))
                    && l.contains("\"role\":\"server\"")
                    && l.contains(engine)),
            "{name} not listed with {engine}:\n{out}"
        );
    }
}

fn accuracy_of(report: &std::path::Path) -> f64 {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
    v["aggregate"]["accuracy"].as_f64().unwrap()
}

fn infer_accuracy(d: &Domain, model: &str) -> f64 {
    let data = mnist();
    let out = run_to_end(
        main_proc(d, &["infer", model, "--data", &data, "--json"]),
        "infer",
    );
    let line = out.lines().find(|l| l.starts_with('{')).unwrap();
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["samples"], 10_000, "{out}");
    v["accuracy"].as_f64().unwrap()
}

#[test]
fn published_models_are_fetched_served_and_score_as_trained() {
    let d = domain();
    let _a = host("A", &d, &["--serve-models"]);
    let _b = host("B", &d, &["--serve-models"]);
    let dir = std::env::temp_dir().join(format!("amlip-publish-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let data = mnist();
    for (model, name, extra) in [
        ("mlp", "mnist-mlp", &["--rounds", "1", "--epochs", "1"][..]),
        ("aml", "aml-digit3", &["--digit", "3"][..]),
    ] {
        let report = dir.join(format!("{name}.json"));
        let r = report.to_string_lossy().into_owned();
        let mut args = vec![
            "train",
            "--model",
            model,
            "--data",
            &data,
            "--jobs",
            "2",
            "--wait-nodes",
            "2",
            "--report",
            &r,
            "--publish",
            name,
            "--publish-wait-nodes",
            "2",
        ];
        args.extend_from_slice(extra);
        let out = run_to_end(main_proc(&d, &args), "train --publish");
        assert_eq!(
            out.matches(&format!("model \"{name}\" v")).count(),
            3,
            "published once, served by both nodes:\n{out}"
        );
        let trained = accuracy_of(&report);
        let served = infer_accuracy(&d, name);
        assert_eq!(
            served, trained,
            "{name}: `main-node infer` scores {served}, the training report {trained}"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_model_spreads_to_following_nodes_and_a_killed_server_s_request_is_resent() {
    let d = domain();
    // B serves what the domain serves: it fetches A's model from A.
    let model = format!("cnn={}", fixture("cnn.onnx"));
    let (mut a, a_id) = host("A", &d, &["--model", &model, "--serve-models"]);
    let (mut b, b_id) = host("B", &d, &["--serve-models"]);
    let watcher = Publisher::start(&cfg("Watcher", &d)).unwrap();
    assert_eq!(
        watcher
            .wait_served("cnn", 1, 2, Duration::from_secs(60))
            .len(),
        2,
        "B did not fetch the model from A"
    );
    let edge =
        EdgeNode::with_config(cfg("Edge", &d).liveness_timeout(Duration::from_secs(1))).unwrap();
    let cancel = amlip_core::cancel::CancelToken::new();
    assert_eq!(
        edge.wait_for_inference_nodes(2, Duration::from_secs(30), &cancel),
        2
    );
    // Requests big enough (512 images each) that a node is caught holding one.
    let images = Tensor::new(DType::F32, &[512, 1, 28, 28], vec![0u8; 512 * 784 * 4]).unwrap();
    let mut batch = edge.batch::<usize>().job_timeout(Duration::from_secs(120));
    for i in 0..12 {
        batch.submit(i, request("cnn", "input", &images)).unwrap();
    }
    let mut victim = None;
    assert!(
        wait_until(Duration::from_secs(60), || {
            let held: Vec<String> = edge
                .stats()
                .running
                .iter()
                .map(|r| r.server_id.to_string())
                .collect();
            victim = held.into_iter().find(|s| *s == a_id || *s == b_id);
            victim.is_some()
        }),
        "no node took a request"
    );
    let victim = victim.unwrap();
    if victim == a_id {
        a.kill_hard()
    } else {
        b.kill_hard()
    }
    let mut answered = 0;
    for outcome in &mut batch {
        let s = outcome.result.unwrap();
        assert_ne!(
            s.server_id.to_string(),
            victim,
            "answered by the killed node"
        );
        let answer = Answer::from_bytes(&s.data).unwrap();
        assert_eq!(answer.outputs["output"].shape(), &[512, 10]);
        answered += 1;
    }
    assert_eq!(answered, 12);
    let stats = edge.stats();
    assert!(stats.resent >= 1, "the killed node's request was re-sent");
    // Between amlip nodes, requests are handed over the direct path.
    assert!(stats.direct_sent >= 12, "{stats:?}");
}

#[test]
fn a_model_replaced_mid_stream_loses_no_request() {
    let d = domain();
    let _a = host("A", &d, &["--serve-models"]);
    let _b = host("B", &d, &["--serve-models"]);
    let publisher = Publisher::start(&cfg("Pub", &d)).unwrap();
    let onnx = Bytes::from(std::fs::read(fixture("dense.onnx")).unwrap());
    let v1 = publisher.publish("digits", onnx).unwrap();
    assert_eq!(
        publisher
            .wait_served("digits", v1.version, 2, Duration::from_secs(60))
            .len(),
        2
    );
    let e = expected();
    // Four images per request, as the dense network takes them (f32, 0..1).
    let x = &e["dense.input"];
    let four = Tensor::new(DType::F32, &[4, 784], x.bytes().slice(..4 * 784 * 4)).unwrap();
    let want = floats(&e["dense.output"])[..40].to_vec();
    let edge = EdgeNode::with_config(cfg("Edge", &d)).unwrap();
    let mut batch = edge.batch::<usize>().job_timeout(Duration::from_secs(120));
    for i in 0..1000 {
        batch.submit(i, request("digits", "input", &four)).unwrap();
    }
    let mut versions = BTreeMap::<u64, usize>::new();
    let mut v2 = None;
    let mut answered = 0;
    for outcome in &mut batch {
        let s = outcome
            .result
            .unwrap_or_else(|e| panic!("request {} lost: {e}", outcome.label));
        let answer = Answer::from_bytes(&s.data).unwrap();
        // v1 (ONNX) calls its output "output", v2 (amlip's MLP, the same network) "probabilities".
        let out = answer
            .outputs
            .get("output")
            .or_else(|| answer.outputs.get("probabilities"))
            .unwrap();
        let worst = floats(out)
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(worst <= 1e-4, "request {}: off by {worst}", outcome.label);
        *versions.entry(answer.version).or_default() += 1;
        answered += 1;
        if answered == 300 {
            // Replace the model while 700 requests are still to be answered.
            let mlp = Bytes::from(std::fs::read(fixture("mlp-mnist.safetensors")).unwrap());
            v2 = Some(publisher.publish("digits", mlp).unwrap().version);
        }
    }
    assert_eq!(answered, 1000);
    let v2 = v2.unwrap();
    assert!(versions.contains_key(&v1.version), "{versions:?}");
    assert_eq!(
        publisher
            .wait_served("digits", v2, 2, Duration::from_secs(60))
            .len(),
        2,
        "both nodes serve the new version"
    );
    // After the replacement every node answers with it.
    let s = edge
        .request_inference(request("digits", "input", &four), Duration::from_secs(60))
        .unwrap();
    assert_eq!(Answer::from_bytes(&s.data).unwrap().version, v2);
}

fn failure(r: Result<amlip_core::node::Solution, Error>) -> String {
    match r {
        Err(Error::Job(JobError::Failed { message, .. })) => message,
        other => panic!("expected an error answer, got {other:?}"),
    }
}

#[test]
fn bad_input_gets_clear_errors_and_the_node_keeps_serving() {
    let d = domain();
    // A corrupt ONNX file: the node refuses to start and says why.
    let dir = std::env::temp_dir().join(format!("amlip-badmodel-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let broken = dir.join("broken.onnx");
    let cnn = std::fs::read(fixture("cnn.onnx")).unwrap();
    std::fs::write(&broken, &cnn[..5000]).unwrap();
    let bad = format!("{}", broken.display());
    let mut p = computing("Broken", &d, &["--model", &bad]);
    let status = p.wait_exit(Duration::from_secs(60)).expect("exits");
    assert!(!status.success());
    assert!(
        p.output().contains("model \"broken\"") && p.output().contains("--model"),
        "{}",
        p.output()
    );

    let dense = format!("dense={}", fixture("dense.onnx"));
    let (host, _) = host("Host", &d, &["--model", &dense, "--serve-models"]);
    let edge = EdgeNode::with_config(cfg("Edge", &d)).unwrap();
    let t = Duration::from_secs(60);
    let x = Tensor::new(DType::F32, &[1, 784], vec![0u8; 784 * 4]).unwrap();
    let e = failure(edge.request_inference(request("nope", "input", &x), t));
    assert!(
        e.contains("no model \"nope\" here") && e.contains("dense"),
        "{e}"
    );
    let wrong = Tensor::new(DType::F32, &[1, 10], vec![0u8; 40]).unwrap();
    let e = failure(edge.request_inference(request("dense", "input", &wrong), t));
    assert!(e.contains("expected f32 [N, 784]"), "{e}");
    let e = failure(edge.request_inference(Bytes::from_static(b"what is this?"), t));
    assert!(e.contains("expected an MNIST image as a JSON list"), "{e}");

    // Corrupt announcements and a corrupt model file offered by a model manager: the host
    // logs them and keeps serving.
    let liar = ModelManagerSenderNode::with_config(
        cfg("Liar", &d),
        |_: &amlip_core::wire::AmlipId, _: &Bytes| -> Result<Bytes, amlip_core::error::BoxError> {
            Ok(Bytes::from_static(b"\x08\x01garbage that is not ONNX"))
        },
    )
    .unwrap();
    liar.publish_statistics("garbled", &b"\xff\x00 not json"[..])
        .unwrap();
    let fake = serde_json::json!({"amlip_model": "sender", "info": {
        "name": "fake", "kind": "onnx", "version": 1, "bytes": 10, "outputs": [],
        "inputs": [{"name": "input", "dtype": "f32", "shape": [null, 4]}]}});
    liar.publish_statistics("fake", fake.to_string()).unwrap();
    assert!(
        host.wait_for("ignoring a model announcement", t),
        "{}",
        host.output()
    );
    assert!(host.wait_for("model not served", t), "{}", host.output());
    // Still serving, plain AML-IP text requests included.
    let s = edge
        .request_inference(request("dense", "input", &x), t)
        .unwrap();
    assert_eq!(
        Answer::from_bytes(&s.data).unwrap().outputs["output"].shape(),
        &[1, 10]
    );
    let image = serde_json::to_string(&vec![0u8; 784]).unwrap();
    let s = edge.request_inference(image, t).unwrap();
    let digit: u8 = String::from_utf8_lossy(&s.data).parse().unwrap();
    assert!(digit < 10);
    std::fs::remove_dir_all(&dir).ok();
}
