//! Distributed MNIST training end to end with the real binaries, the AML-IP tutorial's job
//! form, and malformed ML payloads.

use std::path::Path;
use std::time::Duration;

use crate::common::{computing, computing_nodes, domain, main as main_proc, Domain};
use amlip_core::aml::{self, embedding, Model};
use amlip_core::dataset;
use amlip_core::kind::aml_train::{AmlTrain, AmlTrainJob, AmlTrainParams};
use amlip_core::kind::federated::FedUpdate;
use amlip_core::kind::mlp_train::{self, MlpHyper};
use amlip_core::kind::{job_bytes, read_solution, tutorial};
use amlip_core::mlp::Mlp;
use amlip_core::payload::DType;
use amlip_core::prelude::*;
use serde_json::Value;

fn mnist() -> dataset::MnistSplits {
    dataset::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets/mnist")).unwrap()
}

fn report(dir: &Path, name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join(name)).unwrap()).unwrap()
}

fn tmpdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("amlip-train-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn aml_digit_zero_and_mlp_over_three_computing_processes() {
    let d = domain();
    let _nodes = computing_nodes(&d, 3);
    let dir = tmpdir("e2e");
    let r = dir.join("aml.json").to_string_lossy().into_owned();
    let out = dir.join("model.json").to_string_lossy().into_owned();
    let mut main = main_proc(
        &d,
        &[
            "train",
            "--model",
            "aml",
            "--digit",
            "0",
            "--jobs",
            "3",
            "--wait-nodes",
            "3",
            "--report",
            &r,
            "--out",
            &out,
        ],
    );
    let status = main
        .wait_exit(Duration::from_secs(120))
        .expect("train finished");
    assert!(status.success(), "{}", main.output());
    let aml = report(&dir, "aml.json");
    let rows = aml["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "three shards and the aggregate");
    let servers: std::collections::HashSet<&str> = rows[..3]
        .iter()
        .map(|r| r["detail"].as_str().unwrap().split("by ").nth(1).unwrap())
        .collect();
    assert!(
        servers.len() >= 2,
        "jobs spread over the computing nodes: {servers:?}"
    );
    let bal = aml["aggregate"]["balanced_accuracy"].as_f64().unwrap();
    assert!(
        bal >= 0.97,
        "AML digit 0 over 3 shards: balanced accuracy {bal}"
    );
    // The written model is the AML-IP tutorial JSON form and classifies.
    let model = Model::from_json(
        &std::fs::read_to_string(&out).unwrap(),
        Some(embedding::N_CONSTANTS),
    )
    .unwrap();
    assert!(model.len() > 100);

    let r = dir.join("mlp.json").to_string_lossy().into_owned();
    let mut main = main_proc(
        &d,
        &[
            "train",
            "--model",
            "mlp",
            "--jobs",
            "3",
            "--rounds",
            "2",
            "--epochs",
            "1",
            "--wait-nodes",
            "3",
            "--report",
            &r,
        ],
    );
    let status = main
        .wait_exit(Duration::from_secs(120))
        .expect("train finished");
    assert!(status.success(), "{}", main.output());
    let acc = report(&dir, "mlp.json")["aggregate"]["accuracy"]
        .as_f64()
        .unwrap();
    assert!(acc >= 0.93, "MLP over 3 shards, 2 rounds: accuracy {acc}");
    std::fs::remove_dir_all(&dir).ok();
}

fn main_node(domain: &Domain) -> MainNode {
    MainNode::with_config(NodeConfig::new("TestMain").domain(domain.id()).localhost()).unwrap()
}

#[test]
fn a_tutorial_text_job_gets_a_json_atomization_that_classifies() {
    let d = domain();
    let _node = computing("C", &d, &["--tutorial-digit", "0"]);
    let data = mnist();
    // What the tutorial's Python main sends: a random half... here the first 6000 images.
    let idx: Vec<usize> = (0..6000).collect();
    let part = data.train.select(&idx);
    let text = tutorial::job(&part.images, &part.labels);
    let main = main_node(&d);
    let s = main
        .request_job_solution(text, Duration::from_secs(120))
        .unwrap();
    let json: Value = serde_json::from_slice(&s.data).expect("the solution is JSON");
    assert_eq!(json["vTerm"], serde_json::json!([1568]));
    let mut model = Model::from_json(
        std::str::from_utf8(&s.data).unwrap(),
        Some(embedding::N_CONSTANTS),
    )
    .unwrap();
    assert!(!model.is_empty());
    let (held, test) = (
        data.train.select(&(50_000..60_000).collect::<Vec<_>>()),
        &data.test,
    );
    let emb = aml::Embedding::mnist();
    aml::calibrate(&mut model, &emb, held.images.view(), held.labels.view(), 0);
    let m = aml::evaluate(&model, &emb, test.images.view(), test.labels.view(), 0);
    assert!(
        m.balanced_accuracy() > 0.9,
        "the atomization classifies digit 0: {}",
        m.balanced_accuracy()
    );
}

#[test]
fn malformed_ml_payloads_get_error_solutions_and_the_node_keeps_serving() {
    let d = domain();
    let mut node = computing("C", &d, &[]);
    let main = main_node(&d);
    let data = mnist();
    let small = data.train.select(&(0..300).collect::<Vec<_>>());
    let good_job = AmlTrainJob {
        params: AmlTrainParams {
            digit: 1,
            classes: 10,
            cuts: None,
            batches: 2,
            positives: 10,
            negatives: 50,
            seed: 1,
            shard: 0,
            shards: 1,
        },
        images: small.images.clone(),
        labels: small.labels.clone(),
    };
    let good = job_bytes::<AmlTrain>(&good_job).unwrap();
    let net = Mlp::mnist(1);
    let hyper = MlpHyper {
        epochs: 1,
        batch: 32,
        ..MlpHyper::default()
    };
    let mlp = |net: &Mlp| mlp_train::job(net, &small.images, &small.labels, &hyper, 1).unwrap();

    let mut bad_header = good.to_vec();
    bad_header[12] = b'}';
    let truncated = good.slice(..good.len() - 1000);
    let wrong_shape = good_job
        .to_payload("aml_train")
        .unwrap()
        .with_tensor(
            "images",
            Tensor::new(
                DType::U8,
                &[300, 783],
                small.images.as_slice().unwrap()[..300 * 783].to_vec(),
            )
            .unwrap(),
        )
        .encode()
        .unwrap();
    let mut small_net = net.clone();
    small_net.w2 = ndarray::Array2::zeros((64, 10));
    let mismatched_net = mlp(&small_net).encode().unwrap();
    let f64_weights = {
        let w1 = net.w1.mapv(|x| x as f64);
        let bytes: Vec<u8> = w1.iter().flat_map(|x| x.to_le_bytes()).collect();
        mlp(&net)
            .with_tensor("w1", Tensor::new(DType::F64, &[784, 128], bytes).unwrap())
            .encode()
            .unwrap()
    };
    let future = {
        let mut meta = std::collections::HashMap::new();
        meta.insert("amlip.kind".to_string(), "aml_train".to_string());
        meta.insert("amlip.version".to_string(), "9".to_string());
        let t = Tensor::new(DType::U8, &[1], vec![0u8]).unwrap();
        Bytes::from(safetensors::serialize([("x", &t)], Some(meta.into_iter().collect())).unwrap())
    };
    let unknown = Payload::new("svm_train").encode().unwrap();
    for (what, payload, reason) in [
        ("bad header", Bytes::from(bad_header), "invalid JSON"),
        ("truncated", truncated, "truncated"),
        ("wrong image shape", wrong_shape, "expected [any, 784]"),
        (
            "mismatched network",
            mismatched_net,
            "\"w2\" has shape [64, 10]",
        ),
        ("float64 weights", f64_weights, "expected F32 (np.float32)"),
        ("future version", future, "version \"9\" is not supported"),
        ("unknown kind", unknown, "not one this node serves"),
    ] {
        match main.request_job_solution(payload, Duration::from_secs(60)) {
            Err(Error::Job(JobError::Failed { message, .. })) => {
                assert!(message.contains(reason), "{what}: {message}")
            }
            other => panic!("{what}: expected an error solution, got {other:?}"),
        }
        // The node keeps serving valid jobs after each bad one.
        let s = main
            .request_job_solution(good.clone(), Duration::from_secs(60))
            .unwrap();
        assert_eq!(read_solution::<AmlTrain>(&s.data).unwrap().info.digit, 1);
    }
    let s = main
        .request_job_solution(mlp(&net).encode().unwrap(), Duration::from_secs(60))
        .unwrap();
    let update: FedUpdate = Payload::decode(&s.data).unwrap().params().unwrap();
    assert_eq!(update.samples, 300);
    assert!(
        node.wait_exit(Duration::from_millis(10)).is_none(),
        "the node is still up"
    );
}

#[test]
fn with_no_computing_node_train_says_so_and_stops_at_its_timeout() {
    let d = domain();
    let t = std::time::Instant::now();
    let mut main = main_proc(
        &d,
        &[
            "train",
            "--model",
            "aml",
            "--digit",
            "3",
            "--jobs",
            "2",
            "--limit",
            "2000",
            "--timeout",
            "4s",
        ],
    );
    let status = main
        .wait_exit(Duration::from_secs(30))
        .expect("train gave up");
    let out = main.output();
    assert!(!status.success(), "{out}");
    assert!(
        out.contains("time is up with 2 of 2 jobs unsolved"),
        "{out}"
    );
    assert!(
        out.contains("digit 3 shard 1/2"),
        "names the jobs that wait: {out}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "bounded by --timeout (4 s, with 5x headroom): {:?}",
        t.elapsed()
    );
}
