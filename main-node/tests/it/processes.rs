//! The real binaries as separate processes: every job solved, a SIGKILLed holder survived, a
//! stopped and continued (SIGSTOP/SIGCONT) node carrying on, a late node not confused by
//! history, Ctrl-C honoured within a second.

use std::time::{Duration, Instant};

use crate::common::{computing, domain, main as main_proc, Proc};

#[test]
fn three_computing_processes_solve_every_job() {
    let d = domain();
    let _nodes: Vec<Proc> = (0..3)
        .map(|i| computing(&format!("C{i}"), &d, &["--work-time", "20ms"]))
        .collect();
    let mut main = main_proc(
        &d,
        &[
            "jobs",
            "--count",
            "30",
            "--in-flight",
            "3",
            "--wait-nodes",
            "3",
            "--size",
            "2KB",
        ],
    );
    let status = main
        .wait_exit(Duration::from_secs(60))
        .expect("main finished");
    let out = main.output();
    assert!(status.success(), "main failed:\n{out}");
    assert!(out.contains("30 of 30 jobs solved, 0 failed"), "{out}");
    assert!(
        out.contains("re-sent: 0, duplicate solutions dropped: 0"),
        "{out}"
    );
    let nodes_used = ["C0.", "C1.", "C2."]
        .iter()
        .filter(|n| {
            out.lines()
                .any(|l| l.trim_start().starts_with(*n) && l.ends_with("jobs"))
        })
        .count();
    assert!(nodes_used >= 2, "jobs spread over several nodes:\n{out}");
}

#[test]
fn a_sigkilled_computing_node_has_its_job_finished_by_another() {
    let d = domain();
    let mut doomed = computing("Doomed", &d, &["--work-time", "120s"]);
    let mut main = main_proc(
        &d,
        &[
            "--liveness-timeout",
            "2s",
            "jobs",
            "--count",
            "1",
            "--wait-nodes",
            "1",
            "--timeout",
            "60s",
        ],
    );
    assert!(
        doomed.wait_for("working on job", Duration::from_secs(20)),
        "the first node never got the job:\n{}",
        doomed.output()
    );
    let _survivor = computing("Survivor", &d, &[]);
    assert!(
        main.wait_for("node=Survivor.", Duration::from_secs(30)),
        "the main never saw the survivor:\n{}",
        main.output()
    );
    let t = Instant::now();
    doomed.kill_hard();
    let status = main
        .wait_exit(Duration::from_secs(30))
        .expect("main finished");
    let out = main.output();
    assert!(status.success(), "main failed:\n{out}");
    assert!(out.contains("1 of 1 jobs solved"), "{out}");
    assert!(out.contains("solved by Survivor."), "{out}");
    assert!(out.contains("re-sent: 1"), "{out}");
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "noticed within the liveness timeout: {:?}",
        t.elapsed()
    );
}

#[test]
fn a_frozen_computing_node_is_replaced_and_serves_again_once_thawed() {
    let d = domain();
    let frozen = computing("Frozen", &d, &["--work-time", "3s"]);
    let mut main = main_proc(
        &d,
        &[
            "--liveness-timeout",
            "2s",
            "jobs",
            "--count",
            "1",
            "--batches",
            "2",
            "--pause",
            "3s",
            "--wait-nodes",
            "1",
            "--timeout",
            "60s",
        ],
    );
    assert!(
        frozen.wait_for("working on job", Duration::from_secs(20)),
        "the first node never got the job:\n{}",
        frozen.output()
    );
    let mut survivor = computing("Survivor", &d, &[]);
    assert!(
        main.wait_for("node=Survivor.", Duration::from_secs(30)),
        "the main never saw the survivor:\n{}",
        main.output()
    );
    // As `docker pause` or Ctrl-Z: the process stops without a word, then resumes.
    frozen.signal("STOP");
    let resent = main.wait_for("pausing", Duration::from_secs(20));
    survivor.kill_hard();
    frozen.signal("CONT");
    assert!(
        resent,
        "the frozen node's job was not re-sent:\n{}",
        main.output()
    );
    // The second batch has only the thawed node to go to.
    let status = main.wait_exit(Duration::from_secs(40));
    let out = main.output();
    let Some(status) = status else {
        panic!("main still running:\n{out}\nFrozen:\n{}", frozen.output());
    };
    assert!(
        status.success(),
        "main failed:\n{out}\nFrozen:\n{}",
        frozen.output()
    );
    assert!(out.contains("2 of 2 jobs solved, 0 failed"), "{out}");
    assert!(out.contains("re-sent: 1"), "{out}");
    assert!(out.contains("solved by Frozen."), "{out}");
}

#[test]
fn a_frozen_main_resumes_without_resending_or_losing_jobs() {
    let d = domain();
    let nodes: Vec<Proc> = ["C1", "C2"]
        .iter()
        .map(|n| computing(n, &d, &["--work-time", "2s"]))
        .collect();
    let mut main = main_proc(
        &d,
        &[
            "--liveness-timeout",
            "2s",
            "jobs",
            "--count",
            "4",
            "--in-flight",
            "2",
            "--wait-nodes",
            "2",
            "--timeout",
            "60s",
        ],
    );
    for n in &nodes {
        assert!(
            n.wait_for("working on job", Duration::from_secs(30)),
            "{} never got a job:\n{}",
            n.name,
            main.output()
        );
    }
    // Stopped for twice the liveness timeout (the stimulus, not a wait): on waking it must not
    // take the computing nodes' silence (it was not listening) for their death.
    main.signal("STOP");
    std::thread::sleep(Duration::from_secs(4));
    main.signal("CONT");
    let status = main.wait_exit(Duration::from_secs(40));
    let out = main.output();
    assert!(status.is_some_and(|s| s.success()), "main failed:\n{out}");
    assert!(out.contains("4 of 4 jobs solved, 0 failed"), "{out}");
    assert!(out.contains("re-sent: 0"), "{out}");
}

#[test]
fn a_late_computing_node_is_not_confused_by_replayed_history() {
    let d = domain();
    let mut first = computing("First", &d, &[]);
    // Without a direct path the main requests every job (an amlip main with one hands them to
    // idle amlip nodes, with no request history for a late node to be confused by).
    let mut main = main_proc(
        &d,
        &[
            "--no-direct",
            "jobs",
            "--count",
            "5",
            "--batches",
            "2",
            "--pause",
            "4s",
            "--wait-nodes",
            "1",
        ],
    );
    assert!(
        main.wait_for("batch 0 done", Duration::from_secs(30)),
        "{}",
        main.output()
    );
    first.interrupt();
    first
        .wait_exit(Duration::from_secs(5))
        .expect("first node stopped");
    // The late node logs every availability answer it sends (debug level).
    let late = Proc::spawn(
        "Late",
        crate::common::computing_node(),
        &[
            "--name",
            "Late",
            "--domain",
            &d.arg(),
            "--network",
            "localhost",
        ],
        &[("RUST_LOG", "info,amlip_fabric::protocol::server=debug")],
    );
    let status = main
        .wait_exit(Duration::from_secs(30))
        .expect("main finished");
    let out = main.output();
    assert!(status.success(), "main failed:\n{out}");
    assert!(out.contains("10 of 10 jobs solved"), "{out}");
    assert!(
        out.contains("re-sent: 0, duplicate solutions dropped: 0"),
        "{out}"
    );
    let second_batch: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("job "))
        .skip(5)
        .collect();
    assert!(
        second_batch.iter().all(|l| l.contains("solved by Late.")),
        "{out}"
    );
    let answered: Vec<u32> = late
        .output()
        .lines()
        .filter(|l| l.contains("answered availability"))
        .filter_map(|l| {
            l.split("task=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert!(
        !answered.is_empty(),
        "no answers logged:\n{}",
        late.output()
    );
    assert!(
        answered.iter().all(|t| *t >= 5),
        "the late node answered already-taken requests from history: {answered:?}"
    );
}

#[test]
fn ctrl_c_stops_both_binaries_promptly() {
    let d = domain();
    let mut node = computing("C", &d, &["--work-time", "50ms"]);
    let mut main = main_proc(
        &d,
        &["jobs", "--count", "1000", "--wait-nodes", "1", "--quiet"],
    );
    assert!(
        node.wait_for("working on job", Duration::from_secs(20)),
        "{}",
        node.output()
    );
    let t = Instant::now();
    main.interrupt();
    // The promise is under a second (the handler force-exits after 0.9 s); 5x headroom.
    let status = main
        .wait_exit(Duration::from_secs(30))
        .expect("main exited");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "main took {:?}",
        t.elapsed()
    );
    assert!(!status.success(), "an interrupted run reports failure");
    let t = Instant::now();
    node.interrupt();
    let status = node
        .wait_exit(Duration::from_secs(30))
        .expect("node exited");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "computing node took {:?}",
        t.elapsed()
    );
    assert!(status.success(), "{}", node.output());
    assert!(
        node.has_line("computing node stopped after"),
        "{}",
        node.output()
    );
}

#[test]
fn wrong_flags_are_clear_errors() {
    for (bin, args, needle) in [
        (
            crate::common::main_node(),
            vec!["--domain", "999", "jobs"],
            "999",
        ),
        (
            crate::common::main_node(),
            vec!["jobs", "--size", "ten"],
            "ten",
        ),
        (
            crate::common::main_node(),
            vec!["jobs", "--size", "1TB"],
            "1TB",
        ),
        (
            crate::common::main_node(),
            vec!["train", "--jobs", "100000"],
            "100000",
        ),
        (crate::common::main_node(), vec!["send"], "<PAYLOAD>"),
        (
            crate::common::main_node(),
            vec!["send", "--file", "/nonexistent/job.st"],
            "/nonexistent/job.st",
        ),
        (
            crate::common::main_node(),
            vec!["--network", "eth0", "jobs"],
            "eth0",
        ),
        (
            crate::common::computing_node(),
            vec!["--domain", "x"],
            "domain",
        ),
        (
            crate::common::computing_node(),
            vec!["--name", "bad/name"],
            "bad/name",
        ),
        (
            crate::common::computing_node(),
            vec!["--work-time", "soon"],
            "soon",
        ),
    ] {
        let mut p = Proc::spawn("cli", bin, &args, &[]);
        let status = p.wait_exit(Duration::from_secs(10)).expect("exits at once");
        assert!(!status.success(), "{args:?} should fail");
        let out = p.output();
        assert!(
            out.contains(needle),
            "{args:?}: error should name {needle:?}:\n{out}"
        );
        assert!(!out.contains("panicked"), "{args:?} panicked:\n{out}");
    }
}
