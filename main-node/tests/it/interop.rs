//! amlip against a Fast DDS peer that speaks AML-IP v0.3 on the wire (`interop/fastdds-peer`):
//! its main, computing node, edge node and status watcher with amlip's binaries, both ways,
//! every job checked. The peer is built by `interop/fastdds-peer/build.sh` (after `apt-get install
//! libfastrtps-dev libfastcdr-dev`); without it these tests say so and pass, unless
//! `AMLIP_INTEROP_REQUIRED` is set (`.ci/run` sets it, so CI never skips them).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::{computing, domain, main as main_proc, Domain, Proc};

/// A `computing-node` that has bound its ports: nodes of the two DDS implementations started at
/// the same instant on one host can pick clashing discovery ports (see the note in
/// interop/README.md), so every process here starts once the previous one is up.
fn ready_computing(name: &str, d: &Domain) -> Proc {
    let p = computing(name, d, &[]);
    assert!(
        p.wait_for("serving", Duration::from_secs(30)),
        "{name} did not start:\n{}",
        p.output()
    );
    p
}

/// The peer, or `None` (with the reason printed) when it is not built.
fn peer() -> Option<PathBuf> {
    match amlip_testkit::fastdds_peer() {
        Some(p) => Some(p),
        None if std::env::var_os("AMLIP_INTEROP_REQUIRED").is_some() => {
            panic!("the Fast DDS peer is not built: run interop/fastdds-peer/build.sh")
        }
        None => {
            eprintln!("skipped: the Fast DDS peer is not built (interop/fastdds-peer/build.sh)");
            None
        }
    }
}

/// A peer process in `role` on `domain`.
fn spawn_peer(bin: &Path, role: &str, name: &str, d: &Domain, extra: &[&str]) -> Proc {
    let dom = d.arg();
    let mut args = vec![role, "--domain", &dom, "--name", name];
    args.extend_from_slice(extra);
    let p = Proc::spawn(name, bin.to_path_buf(), &args, &[]);
    assert!(
        p.wait_for("ready ", Duration::from_secs(30)),
        "{name} did not start:\n{}",
        p.output()
    );
    p
}

/// Runs a peer main to the end; returns its output (every job checked by the peer itself).
fn peer_main(bin: &Path, d: &Domain, jobs: usize, size: usize, extra: &[&str]) -> String {
    let (j, s) = (jobs.to_string(), size.to_string());
    let mut args = vec![
        "--jobs",
        j.as_str(),
        "--size",
        s.as_str(),
        "--timeout",
        "300",
    ];
    args.extend_from_slice(extra);
    let mut m = spawn_peer(bin, "main", "FastMain", d, &args);
    let status = m
        .wait_exit(Duration::from_secs(900))
        .unwrap_or_else(|| panic!("the peer main is still running:\n{}", m.output()));
    let out = m.output();
    assert!(status.success(), "the peer main failed:\n{out}");
    assert!(
        out.contains(&format!("summary jobs {jobs} ok {jobs} ")),
        "not every job was solved right:\n{out}"
    );
    out
}

/// Runs `main-node jobs` to the end; returns its output (every solution checked).
fn amlip_main(d: &Domain, jobs: usize, size: usize, wait_nodes: usize) -> String {
    let (j, s, w) = (jobs.to_string(), size.to_string(), wait_nodes.to_string());
    let mut m = main_proc(
        d,
        &[
            "jobs",
            "--count",
            &j,
            "--size",
            &s,
            "--wait-nodes",
            &w,
            "--timeout",
            "120s",
        ],
    );
    let status = m
        .wait_exit(Duration::from_secs(900))
        .unwrap_or_else(|| panic!("main-node is still running:\n{}", m.output()));
    let out = m.output();
    assert!(status.success(), "main-node failed:\n{out}");
    assert!(
        out.contains(&format!("{jobs} of {jobs} jobs solved, 0 failed")),
        "{out}"
    );
    out
}

#[test]
fn a_peer_main_sends_jobs_to_an_amlip_computing_node() {
    let Some(bin) = peer() else { return };
    let d = domain();
    let node = ready_computing("C", &d);
    for (jobs, size) in [(20, 1), (20, 1_000)] {
        let out = peer_main(&bin, &d, jobs, size, &[]);
        assert_eq!(out.matches(" by C.").count(), jobs, "{out}");
    }
    assert!(node.has_line("working on job"));
}

/// AML-IP's edge nodes send text; an amlip inference node serving an MNIST model answers an
/// image (a JSON list of 784 pixels) with its digit, as the model predicts it.
#[test]
fn a_peer_edge_node_gets_digits_from_an_amlip_inference_node() {
    let Some(bin) = peer() else { return };
    let d = domain();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let model_file = root.join("datasets/fixtures/onnx/mlp-mnist.safetensors");
    let spec = format!("mnist={}", model_file.display());
    let node = computing("C", &d, &["--model", &spec]);
    assert!(
        node.wait_for("inference node ", Duration::from_secs(60)),
        "{}",
        node.output()
    );
    let data = amlip_core::dataset::load_splits(
        &root.join("datasets/mnist"),
        None,
        0.2,
        1,
        &Default::default(),
    )
    .unwrap()
    .test;
    let pixels = data.pixels().unwrap();
    let model = amlip_core::infer::Model::load(&model_file, None).unwrap();
    for i in 0..3 {
        let row: Vec<u8> = pixels.row(i).to_vec();
        let input = amlip_core::payload::Tensor::new(
            amlip_core::payload::DType::U8,
            &[1, 784],
            row.clone(),
        )
        .unwrap();
        let out = model.run(&[("input".to_string(), input)].into()).unwrap();
        let want = i64::from_le_bytes(out["label"].bytes()[..8].try_into().unwrap());
        let payload = serde_json::to_string(&row).unwrap();
        let mut edge = spawn_peer(
            &bin,
            "edge",
            "FastEdge",
            &d,
            &["--jobs", "1", "--payload", &payload, "--timeout", "120"],
        );
        let status = edge.wait_exit(Duration::from_secs(300)).expect("edge ends");
        let out = edge.output();
        assert!(status.success(), "{out}");
        assert!(
            out.contains(&format!("answer 0 {want}\n")),
            "image {i}: want {want}:\n{out}"
        );
    }
}

#[test]
fn an_async_peer_main_queues_twenty_jobs_for_an_amlip_computing_node() {
    let Some(bin) = peer() else { return };
    let d = domain();
    let _node = ready_computing("C", &d);
    peer_main(&bin, &d, 20, 1_000, &["--async"]);
}

#[test]
fn an_amlip_main_sends_jobs_to_a_peer_computing_node() {
    let Some(bin) = peer() else { return };
    let d = domain();
    let node = spawn_peer(&bin, "computing", "FastComputing", &d, &[]);
    for (jobs, size) in [(20, 1), (20, 1_000)] {
        let out = amlip_main(&d, jobs, size, 1);
        assert!(out.contains("FastComputing."), "{out}");
    }
    assert_eq!(node.output().matches("served ").count(), 40);
}

#[test]
fn a_peer_main_shares_its_jobs_among_amlip_and_peer_computing_nodes() {
    let Some(bin) = peer() else { return };
    let d = domain();
    let _ours = [ready_computing("C1", &d), ready_computing("C2", &d)];
    let theirs = spawn_peer(&bin, "computing", "FastComputing", &d, &[]);
    let out = peer_main(&bin, &d, 40, 1_000, &[]);
    let by_ours = out.matches(" by C1.").count() + out.matches(" by C2.").count();
    let by_theirs = out.matches(" by FastComputing.").count();
    assert_eq!(by_ours + by_theirs, 40, "{out}");
    assert_eq!(theirs.output().matches("served ").count(), by_theirs);
}

#[test]
fn an_amlip_main_shares_its_jobs_among_amlip_and_peer_computing_nodes() {
    let Some(bin) = peer() else { return };
    let d = domain();
    let _ours = [ready_computing("C1", &d), ready_computing("C2", &d)];
    let theirs = spawn_peer(&bin, "computing", "FastComputing", &d, &[]);
    let out = amlip_main(&d, 40, 1_000, 3);
    let served_by_peer = theirs.output().matches("served ").count();
    assert_eq!(
        out.matches("solved by FastComputing.").count(),
        served_by_peer,
        "{out}"
    );
}

#[test]
fn the_peer_status_watcher_sees_amlip_nodes_come_and_go() {
    let Some(bin) = peer() else { return };
    let d = domain();
    let watcher = spawn_peer(&bin, "status", "FastStatus", &d, &["--seconds", "120"]);
    let mut node = ready_computing("Watched", &d);
    let id = {
        node.output()
            .lines()
            .find_map(|l| {
                l.strip_prefix("computing node ")?
                    .split(' ')
                    .next()
                    .map(String::from)
            })
            .expect("the node prints its id")
    };
    // AML-IP's kinds and states: computing 4; running 1, dropped 3.
    let running = format!("status {id} kind 4 state 1");
    assert!(
        watcher.wait_for(&running, Duration::from_secs(60)),
        "{running} not seen:\n{}",
        watcher.output()
    );
    node.interrupt();
    node.wait_exit(Duration::from_secs(30)).expect("stopped");
    let dropped = format!("status {id} kind 4 state 3");
    assert!(
        watcher.wait_for(&dropped, Duration::from_secs(60)),
        "{dropped} not seen:\n{}",
        watcher.output()
    );
    let mut main = main_proc(&d, &["send", "hello", "--timeout", "2s"]);
    main.wait_exit(Duration::from_secs(60)).expect("main ended");
    assert!(
        watcher.wait_for(" kind 3 state 1", Duration::from_secs(60)),
        "the main's status was not seen:\n{}",
        watcher.output()
    );
}

#[test]
fn an_amlip_computing_node_started_after_a_peer_main_sent_its_requests_serves_them() {
    let Some(bin) = peer() else { return };
    let d = domain();
    let mut main = spawn_peer(
        &bin,
        "main",
        "FastMain",
        &d,
        &["--jobs", "5", "--size", "100", "--timeout", "300"],
    );
    // The first request is out (the peer writes it at once, and waits for an answer).
    let late = ready_computing("Late", &d);
    let status = main
        .wait_exit(Duration::from_secs(600))
        .unwrap_or_else(|| panic!("{}\n{}", main.output(), late.output()));
    assert!(status.success(), "{}", main.output());
    assert!(
        main.output().contains("summary jobs 5 ok 5 "),
        "{}",
        main.output()
    );
}

/// The median round trip `main-node jobs` printed (ms).
fn amlip_median_ms(out: &str) -> f64 {
    out.lines()
        .find_map(|l| {
            let rest = l.split("median ").nth(1)?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no median in:\n{out}"))
}

/// Payloads of 1 and 10 MB reach an AML-IP node both ways, every job right, and in seconds:
/// rustdds cuts them into 256-byte fragments that overrun a Fast DDS reader's default socket
/// buffer, and amlip's payload writers offer a 5 ms Deadline so that rustdds repairs every
/// millisecond (measured here: 1 MB ~0.5 s, 10 MB ~6.5 s a job; without it 1 MB took 1.5-4.5 s
/// and 10 MB 31-53 s or never). The bound is 5x the measured time.
#[test]
fn large_payloads_reach_aml_ip_nodes_both_ways_in_seconds() {
    let Some(bin) = peer() else { return };
    for (size, jobs, bound_ms) in [(1_000_000, 3, 5_000.0), (10_000_000, 1, 35_000.0)] {
        let d = domain();
        let node = ready_computing("C", &d);
        let out = peer_main(&bin, &d, jobs, size, &[]);
        let times = job_times(&out);
        assert_eq!(times.len(), jobs, "{out}");
        assert!(
            times.iter().all(|&t| t < bound_ms),
            "{size} B from an amlip computing node: {times:?} ms (bound {bound_ms})\n{}",
            node.output()
        );
        drop(node);
        let d = domain();
        let _peer = spawn_peer(&bin, "computing", "FastComputing", &d, &[]);
        let median = amlip_median_ms(&amlip_main(&d, jobs, size, 1));
        assert!(
            median < bound_ms,
            "{size} B to an AML-IP computing node: median {median} ms (bound {bound_ms})"
        );
    }
}

#[test]
#[ignore = "slow: a 50 MB payload to an AML-IP node takes about half a minute (rustdds repairs \
            at most 8 fragments of 256 bytes a round, see interop/README.md); run by hand"]
fn large_payloads_both_ways() {
    let Some(bin) = peer() else { return };
    for size in [1_000_000, 10_000_000, 50_000_000] {
        let d = domain();
        let node = ready_computing("C", &d);
        peer_main(&bin, &d, 3, size, &[]);
        drop(node);
        let d = domain();
        let _peer = spawn_peer(&bin, "computing", "FastComputing", &d, &[]);
        amlip_main(&d, 3, size, 1);
    }
}

// ---------------------------------------------------------------------------------------------
// AML-IP's own demo programs (the peer's `demo-*` and model-manager roles, with AML-IP's
// default names, timing and request forms) against amlip's binaries.

/// The times (ms) the peer printed for each job, in order.
fn job_times(out: &str) -> Vec<f64> {
    out.lines()
        .filter(|l| l.starts_with("job "))
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let i = w.iter().position(|x| *x == "ms")?;
            w.get(i + 1)?.parse().ok()
        })
        .collect()
}

/// AML-IP's workload demo main (async, `AML-MainNode`, three jobs 0.1 s apart) gets every job
/// done by an amlip computing node, and its first job does not wait for Fast DDS's 3 s
/// heartbeat: the median first job of five fresh mains stays under a second (measured: ~35 ms;
/// ~3 s before; `scripts/interop-bench.sh` has the figure beside Fast DDS to Fast DDS).
#[test]
fn aml_ip_s_demo_main_gets_its_jobs_from_an_amlip_computing_node_at_once() {
    let Some(bin) = peer() else { return };
    let d = domain();
    let node = ready_computing("C", &d);
    let mut firsts = Vec::new();
    for _ in 0..5 {
        let mut m = spawn_peer(&bin, "demo-main", "AML-MainNode", &d, &["--timeout", "60"]);
        let status = m
            .wait_exit(Duration::from_secs(300))
            .expect("the demo main ends");
        let out = m.output();
        assert!(status.success(), "{out}\n{}", node.output());
        assert!(out.contains("summary jobs 3 ok 3 "), "{out}");
        assert!(out.contains("ready AML-MainNode."), "{out}");
        assert_eq!(out.matches(" by C.").count(), 3, "{out}");
        firsts.push(job_times(&out)[0]);
    }
    firsts.sort_by(f64::total_cmp);
    assert!(
        firsts[2] < 1000.0,
        "first jobs took {firsts:?} ms (median over 1 s: the first sample waited for a heartbeat)"
    );
    assert!(
        !node.output().contains("dropping malformed"),
        "{}",
        node.output()
    );
}

/// `main-node jobs` gets its jobs done by AML-IP's demo computing node, `AML-ComputingNode`.
#[test]
fn an_amlip_main_gets_jobs_done_by_aml_ip_s_demo_computing_node() {
    let Some(bin) = peer() else { return };
    let d = domain();
    let node = spawn_peer(&bin, "demo-computing", "AML-ComputingNode", &d, &[]);
    let out = amlip_main(&d, 3, 100, 1);
    assert_eq!(
        out.matches("solved by AML-ComputingNode.").count(),
        3,
        "{out}"
    );
    assert_eq!(node.output().matches("served ").count(), 3);
}

/// Names hold what AML-IP lets them hold: Fast DDS and rustdds both take any printable ASCII
/// but `/` in the topic names built from them, both ways.
#[test]
fn nodes_with_any_printable_name_exchange_jobs() {
    let Some(bin) = peer() else { return };
    let d = domain();
    let theirs = spawn_peer(&bin, "computing", "AML Node #1 (x+y)~!", &d, &[]);
    let out = amlip_main(&d, 3, 100, 1);
    assert!(out.contains("AML Node #1 (x+y)~!."), "{out}");
    drop(theirs);
    let _ours = ready_computing("C", &d);
    let mut m = spawn_peer(
        &bin,
        "main",
        "A-B C%*?<>'\"\\",
        &d,
        &["--jobs", "3", "--size", "100", "--timeout", "120"],
    );
    let status = m
        .wait_exit(Duration::from_secs(300))
        .expect("the peer main ends");
    assert!(status.success(), "{}", m.output());
    assert!(
        m.output().contains("summary jobs 3 ok 3 "),
        "{}",
        m.output()
    );
}

/// The model file a computing node serves: what `--serve-models --model mnist=...` hands over.
fn model_fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets/fixtures/onnx/mlp-mnist.safetensors")
}

/// AML-IP's collaborative-learning receiver gets the model from `computing-node --serve-models`
/// on its first request (it waits ~2.5 s, then gives up), asking as its demo does (a name of its
/// own, `MobileNet V1`, as plain text: the node holds one model and hands that one) and by the
/// model's name; the bytes are the file's.
#[test]
fn aml_ip_s_model_receiver_gets_the_model_on_its_first_request() {
    let Some(bin) = peer() else { return };
    let d = domain();
    let file = model_fixture();
    let spec = format!("mnist={}", file.display());
    let node = computing("C", &d, &["--serve-models", "--model", &spec]);
    assert!(
        node.wait_for("inference node ", Duration::from_secs(60)),
        "{}",
        node.output()
    );
    let want = std::fs::read(&file).unwrap();
    let dir = std::env::temp_dir().join(format!("amlip-model-rx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (i, request) in ["MobileNet V1", "mnist"].into_iter().enumerate() {
        let out_file = dir.join(format!("model{i}.bin"));
        let out_arg = out_file.display().to_string();
        // Each receiver makes one request and waits AML-IP's ~2.5 s for it. On a loaded CI
        // machine the 400 KB reply's repair toward Fast DDS (256-byte fragments, issue 29)
        // was once seen to take longer: a second receiver process gets one more first
        // request, and the first one's miss is printed.
        let mut outputs = Vec::new();
        let got = (0..2).any(|_| {
            let mut rx = spawn_peer(
                &bin,
                "model-receiver",
                "AML-ModelReceiver",
                &d,
                &[
                    "--request",
                    request,
                    "--attempts",
                    "1",
                    "--out",
                    &out_arg,
                    "--timeout",
                    "60",
                ],
            );
            let status = rx
                .wait_exit(Duration::from_secs(120))
                .expect("the receiver ends");
            let out = rx.output();
            let ok = status.success() && out.contains("model attempt 1 bytes ");
            if !ok {
                eprintln!("request {request:?}: a receiver missed its first request:\n{out}");
            }
            outputs.push(out);
            ok
        });
        assert!(
            got,
            "request {request:?}: no model on the first request of two receivers:\n{}\n{}",
            outputs.join("\n"),
            node.output()
        );
        assert!(
            std::fs::read(&out_file).unwrap() == want,
            "request {request:?}: wrong bytes"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// amlip's receiver (`main-node models --fetch`) fetches a model from AML-IP's sender, whose
/// announcement is not amlip's and whose reply is the file's bytes.
#[test]
fn main_node_fetches_a_model_from_aml_ip_s_sender() {
    let Some(bin) = peer() else { return };
    let d = domain();
    let file = model_fixture();
    let file_arg = file.display().to_string();
    let sender = spawn_peer(
        &bin,
        "model-sender",
        "AML-ModelSender",
        &d,
        &[
            "--file",
            &file_arg,
            "--model",
            "MobileNet V1",
            "--seconds",
            "300",
        ],
    );
    let out_file = std::env::temp_dir().join(format!("amlip-fetched-{}.bin", std::process::id()));
    let out_arg = out_file.display().to_string();
    let mut m = main_proc(
        &d,
        &[
            "models",
            "--fetch",
            "MobileNet V1",
            "--from",
            "AML-ModelSender",
            "--out",
            &out_arg,
            "--for",
            "60s",
        ],
    );
    let status = m
        .wait_exit(Duration::from_secs(120))
        .expect("main-node ends");
    assert!(status.success(), "{}\n{}", m.output(), sender.output());
    assert!(
        m.output().contains("fetched \"MobileNet V1\""),
        "{}",
        m.output()
    );
    assert!(std::fs::read(&out_file).unwrap() == std::fs::read(&file).unwrap());
    assert!(
        sender.output().contains("request MobileNet V1 bytes"),
        "{}",
        sender.output()
    );
    let _ = std::fs::remove_file(&out_file);
}

/// AML-IP's "parallelize AML training" tutorial main sends MNIST shards as text
/// (`x: [...] y: [...]`) and merges the JSON dicts it gets back: an amlip computing node answers
/// such a job from a Fast DDS main with the atomization's JSON.
#[test]
fn aml_ip_s_tutorial_main_gets_a_json_atomization() {
    let Some(bin) = peer() else { return };
    let d = domain();
    let _node = ready_computing("C", &d);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let data = amlip_core::dataset::load_splits(
        &root.join("datasets/mnist"),
        None,
        0.2,
        1,
        &Default::default(),
    )
    .unwrap()
    .train;
    let (images, labels) = (data.pixels().unwrap(), data.labels().unwrap());
    let idx: Vec<usize> = (0..300).collect();
    let text = amlip_core::kind::tutorial::job(
        &images.select(ndarray::Axis(0), &idx),
        &labels.select(ndarray::Axis(0), &idx),
    );
    let job = std::env::temp_dir().join(format!("amlip-tutorial-job-{}.txt", std::process::id()));
    std::fs::write(&job, &text).unwrap();
    let job_arg = job.display().to_string();
    let mut m = spawn_peer(
        &bin,
        "main",
        "MainNode",
        &d,
        &[
            "--jobs",
            "1",
            "--payload-file",
            &job_arg,
            "--timeout",
            "120",
        ],
    );
    let status = m
        .wait_exit(Duration::from_secs(300))
        .expect("the peer main ends");
    let _ = std::fs::remove_file(&job);
    let out = m.output();
    assert!(status.success(), "{out}");
    let answer = out
        .lines()
        .find_map(|l| l.strip_prefix("answer 0 "))
        .unwrap_or_else(|| panic!("no answer:\n{out}"));
    let json: serde_json::Value = serde_json::from_str(answer)
        .unwrap_or_else(|e| panic!("the answer is not JSON ({e}): {answer:.200}"));
    assert!(
        json.as_object().is_some_and(|o| !o.is_empty()),
        "{answer:.200}"
    );
}
