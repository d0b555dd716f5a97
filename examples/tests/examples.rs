//! Runs every example against real nodes, as a user would: the ones that start their own
//! computing nodes on a domain of their own, the others against `computing-node` processes.

use std::time::Duration;

use amlip_testkit::{binary, domain, example, Domain, Proc};

/// Runs example `name` on `domain` and returns its output; fails if it fails.
fn run(name: &str, domain: &Domain) -> String {
    let d = domain.arg();
    let mut p = Proc::spawn(name, example(name), &["--domain", &d], &[]);
    let status = p
        .wait_exit(Duration::from_secs(600))
        .unwrap_or_else(|| panic!("{name} still running after 10 minutes:\n{}", p.output()));
    let out = p.output();
    assert!(status.success(), "{name} failed:\n{out}");
    out
}

#[test]
fn custom_kind() {
    let out = run("custom_kind", &domain());
    assert!(out.contains("9 words in"), "{out}");
}

#[test]
fn federated_model() {
    let out = run("federated_model", &domain());
    let rounds: Vec<f64> = out
        .lines()
        .filter_map(|l| l.split("test accuracy ").nth(1)?.trim().parse().ok())
        .collect();
    assert_eq!(rounds.len(), 3, "{out}");
    assert!(rounds[2] > 0.88, "{out}");
}

#[test]
fn own_data() {
    let out = run("own_data", &domain());
    assert!(out.contains("3 classes (alpha: "), "{out}");
    let accuracies: Vec<f64> = out
        .lines()
        .filter(|l| l.starts_with("aggregate"))
        .filter_map(|l| l.split_whitespace().nth(2)?.parse().ok())
        .collect();
    assert_eq!(accuracies.len(), 2, "{out}");
    // Logistic regression reaches 0.66 on this set (datasets/fixtures/baselines.json).
    assert!(accuracies.iter().all(|&a| a > 0.7), "{out}");
}

#[test]
fn examples_against_computing_node_processes() {
    let d = domain();
    let _nodes: Vec<Proc> = (0..2)
        .map(|i| {
            let name = format!("C{i}");
            let args = [
                "--name",
                &name,
                "--domain",
                &d.arg(),
                "--network",
                "localhost",
            ];
            Proc::spawn(&name, binary("computing-node"), &args, &[])
        })
        .collect();
    let out = run("status_watcher", &d);
    assert!(out.contains("a computing node is on the domain"), "{out}");
    let out = run("sync_main", &d);
    assert!(out.contains("hello -> HELLO"), "{out}");
    let out = run("async_main", &d);
    assert_eq!(out.matches(" -> ").count(), 4, "{out}");
    let out = run("batch_progress", &d);
    assert_eq!(out.matches(" atoms in ").count(), 6, "{out}");
}

/// The README shows the Python example verbatim (CI runs the file with scripts/python-job.sh).
#[test]
fn the_readme_shows_the_python_example_as_it_is() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let python = std::fs::read_to_string(root.join("examples/python/mlp_job.py")).unwrap();
    assert!(
        readme.contains(&format!("```python\n{python}```")),
        "README.md must show examples/python/mlp_job.py as it is"
    );
}

#[test]
fn inference_session() {
    let out = run("inference_session", &domain());
    assert!(out.contains("cnn: output [1, 10]"), "{out}");
    assert!(out.contains("kmeans: clusters Some([10])"), "{out}");
    assert!(out.contains("forest: prediction"), "{out}");
}

#[test]
fn allreduce_pipeline() {
    let out = run("allreduce_pipeline", &domain());
    assert!(
        out.contains("stage 2  train"),
        "the graph is printed: {out}"
    );
    let eval = out
        .lines()
        .find(|l| l.starts_with("evaluate: evaluate"))
        .unwrap_or_else(|| panic!("{out}"));
    let acc: f64 = eval
        .split("accuracy ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // A status view on the domain saw the pipeline (3 tasks) and its all-reduce training.
    for want in [
        "status view: pipeline done task 3/3: 3 task(s) done in ",
        "status view: allreduce done epoch 4/4: epoch 4: test accuracy ",
    ] {
        assert!(out.lines().any(|l| l.starts_with(want)), "{want}\n{out}");
    }
    assert!(
        acc > 0.9,
        "dense network, 4 epochs of 6,000 images over 2 workers: {eval}"
    );
    assert!(out.contains("hash-checked at"), "{out}");
}

#[test]
fn online_training() {
    let out = run("online_training", &domain());
    for rank in 0..2 {
        assert!(
            out.contains(&format!(
                "rank {rank}: produced 320, received 320, kept 320, dropped 0, rejected 0"
            )),
            "{out}"
        );
    }
    let mse: f64 = out
        .split("validation MSE ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(mse < 0.01, "R^2 >= 0.98 on the grid: {out}");
}

#[test]
fn ai_in_the_loop() {
    let out = run("ai_in_the_loop", &domain());
    assert_eq!(
        out.lines().filter(|l| l.starts_with("approx = ")).count(),
        5,
        "{out}"
    );
    assert!(out.contains("training"), "{out}");
    assert!(out.contains("5 successes in "), "{out}");
    // A status view on the domain saw the loop end, with its figures.
    assert!(
        out.lines()
            .any(|l| l.starts_with("status view: ailoop done success 5/5: 5 successes in ")),
        "{out}"
    );
}
