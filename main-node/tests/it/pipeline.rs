//! `main-node pipeline`: the seed pipeline (prepare -> train -> evaluate) and a program task
//! over real computing nodes, a node killed mid-task, programs refused outside the allowed
//! directory, and files that are not pipelines.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::{computing, domain, main as main_proc, Proc};

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("amlip-pipeline-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn datasets() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../datasets")
        .to_string_lossy()
        .into_owned()
}

/// A directory of programs nodes may run: `hello.sh` prints its arguments and what its
/// inputs said; `outside.sh` lies beside it, outside.
fn programs(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let allowed = dir.join("allowed");
    std::fs::create_dir_all(&allowed).unwrap();
    let hello = allowed.join("hello.sh");
    std::fs::write(&hello, "#!/bin/sh\necho \"hello $1 from $(hostname)\"\nif echo \"$AMLIP_TASK_INPUTS\" | grep -q sample_shape; then echo inputs-seen; fi\n").unwrap();
    std::fs::set_permissions(&hello, std::fs::Permissions::from_mode(0o755)).unwrap();
    let outside = dir.join("outside.sh");
    std::fs::write(&outside, "#!/bin/sh\necho should-not-run\n").unwrap();
    std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o755)).unwrap();
    allowed
}

/// The node holding a large job (an all-reduce worker's) it has not answered yet.
fn group_worker(nodes: &[Proc]) -> Option<usize> {
    nodes.iter().position(|n| {
        let out = n.output();
        let last_start = out.lines().rfind(|l| l.contains("working on job"));
        let solved_after = last_start
            .map(|s| out.split(s).nth(1).unwrap_or("").contains("job solved"))
            .unwrap_or(true);
        last_start.is_some_and(|l| {
            l.split("bytes=")
                .nth(1)
                .and_then(|b| b.split_whitespace().next())
                .and_then(|b| b.parse::<u64>().ok())
                .is_some_and(|b| b > 1_000_000)
        }) && !solved_after
    })
}

/// Every node's output, for a failure's message (a node that never joined says why here).
fn nodes_output(nodes: &[Proc]) -> String {
    nodes
        .iter()
        .enumerate()
        .map(|(i, n)| format!("--- node P{i} ---\n{}", n.output()))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_seed_pipeline_runs_and_a_killed_task_node_s_work_finishes_elsewhere() {
    let d = domain();
    let dir = tmpdir("seed");
    let allowed = programs(&dir);
    let data = datasets();
    let args = [
        "--data-dir",
        data.as_str(),
        "--allow-programs",
        allowed.to_str().unwrap(),
    ];
    let mut nodes: Vec<Proc> = (0..3)
        .map(|i| computing(&format!("P{i}"), &d, &args))
        .collect();
    let file = dir.join("seed.toml");
    std::fs::write(
        &file,
        r#"
name = "seed"
[[task]]
name = "prepare"
kind = "prepare"
data = "mnist"
limit = 6000
[[task]]
name = "train"
kind = "train"
after = ["prepare"]
model = "cnn"
workers = 2
epochs = 2
[[task]]
name = "hello"
kind = "program"
program = "hello.sh"
args = ["pipeline"]
after = ["prepare"]
[[task]]
name = "evaluate"
kind = "evaluate"
after = ["train"]
"#,
    )
    .unwrap();
    let mut main = main_proc(
        &d,
        &[
            "pipeline",
            file.to_str().unwrap(),
            "--wait-nodes",
            "3",
            "--step-timeout",
            "30s",
        ],
    );
    assert!(
        main.wait_for("stage 2  train", Duration::from_secs(30)),
        "the graph is printed first: {}",
        main.output()
    );
    assert!(
        main.wait_for("[train] step 20 ", Duration::from_secs(240)),
        "{}\n{}",
        main.output(),
        nodes_output(&nodes)
    );
    let victim =
        group_worker(&nodes).unwrap_or_else(|| panic!("no node holds a worker: {}", main.output()));
    nodes[victim].kill_hard();
    let Some(status) = main.wait_exit(Duration::from_secs(400)) else {
        panic!("the pipeline did not end: {}", main.output())
    };
    let out = main.output();
    assert!(status.success(), "{out}");
    assert!(
        out.contains("[train] re-forming the group with the 1 worker(s) left"),
        "{out}"
    );
    assert!(
        out.contains("[hello] done") && out.contains("hello.sh exited 0: hello pipeline"),
        "{out}"
    );
    let eval = out
        .lines()
        .find(|l| l.starts_with("[evaluate] done"))
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
    assert!(acc >= 0.9, "{eval}");
    // The evaluation on a computing node scores what the group measured after its last epoch.
    let train = out.lines().find(|l| l.starts_with("[train] done")).unwrap();
    let group: f64 = train
        .split("test score ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((acc - group).abs() < 1e-3, "{train}\n{eval}");
}

#[test]
fn programs_outside_the_allowed_directory_are_refused() {
    let d = domain();
    let dir = tmpdir("refuse");
    let allowed = programs(&dir);
    let _node = computing("R0", &d, &["--allow-programs", allowed.to_str().unwrap()]);
    let file = dir.join("escape.toml");
    std::fs::write(
        &file,
        "[[task]]\nname = \"ok\"\nkind = \"program\"\nprogram = \"hello.sh\"\nargs = [\"there\"]\n\
         [[task]]\nname = \"escape\"\nkind = \"program\"\nprogram = \"../outside.sh\"\nafter = [\"ok\"]\nretries = 0\n",
    )
    .unwrap();
    let mut main = main_proc(&d, &["pipeline", file.to_str().unwrap()]);
    let Some(status) = main.wait_exit(Duration::from_secs(120)) else {
        panic!("did not end: {}", main.output())
    };
    let out = main.output();
    assert!(!status.success(), "{out}");
    assert!(
        out.contains("hello.sh exited 0: hello there"),
        "the allowed one ran: {out}"
    );
    assert!(
        out.contains("task \"escape\" failed after 1 attempt(s)"),
        "{out}"
    );
    assert!(
        out.contains("outside the node's allowed program directory") && out.contains("refused"),
        "{out}"
    );
    assert!(!out.contains("should-not-run"), "{out}");
}

#[test]
fn files_that_are_not_pipelines_are_refused_before_anything_runs() {
    let d = domain();
    let dir = tmpdir("bad");
    let cycle = dir.join("cycle.toml");
    std::fs::write(
        &cycle,
        "[[task]]\nname = \"a\"\nkind = \"prepare\"\ndata = \"mnist\"\nafter = [\"b\"]\n\
         [[task]]\nname = \"b\"\nkind = \"evaluate\"\nafter = [\"a\"]\n",
    )
    .unwrap();
    let unknown = dir.join("unknown.toml");
    std::fs::write(&unknown, "[[task]]\nname = \"a\"\nkind = \"download\"\n").unwrap();
    for (file, why) in [
        (&cycle, "form a cycle"),
        (&unknown, "unknown kind \"download\""),
    ] {
        let mut main = main_proc(&d, &["pipeline", file.to_str().unwrap(), "--check"]);
        let status = main.wait_exit(Duration::from_secs(30)).expect("exits");
        assert!(!status.success(), "{}", main.output());
        assert!(main.output().contains(why), "{}", main.output());
    }
}
