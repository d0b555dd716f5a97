//! Fault scenarios across hosts: each node in its own container (its own network stack and
//! address) on a bridge network this test creates. The main trains AML on MNIST (6 shards, one
//! job each) while a computing node is killed, frozen, cut off, added, or the main itself is
//! restarted. Each scenario asserts every job solved exactly once and aggregated once, within a
//! time bound.
//!
//! Needs Docker and the image: `scripts/docker-image.sh`, then
//! `cargo test --release -p main-node --test it -- --ignored --nocapture docker::`
//! (`scripts/faults.sh` does both and prints the table). CI runs it from `.ci/run`.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

const IMAGE: &str = "amlip:latest";
const JOBS: usize = 6;

fn docker(args: &[&str]) -> (bool, String) {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("docker runs");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// A bridge network and the containers on it, all removed when dropped.
struct Cluster {
    name: String,
    net: String,
    subnet: u8,
    domain: u16,
    containers: Vec<String>,
    out: PathBuf,
}

impl Cluster {
    fn new(subnet: u8) -> Cluster {
        let prefix = format!("amlipft-{}-s{subnet}", std::process::id());
        let net = format!("{prefix}-net");
        let (ok, text) = docker(&[
            "network",
            "create",
            "--subnet",
            &format!("10.213.{subnet}.0/24"),
            &net,
        ]);
        assert!(ok, "cannot create network {net}: {text}");
        let out = std::env::temp_dir().join(&prefix);
        std::fs::create_dir_all(&out).unwrap();
        Cluster {
            name: prefix,
            net,
            subnet,
            domain: 40 + subnet as u16,
            containers: Vec::new(),
            out,
        }
    }

    fn container(&self, who: &str) -> String {
        format!("{}-{who}", self.name)
    }

    fn ip(&self, host: u8) -> String {
        format!("10.213.{}.{host}", self.subnet)
    }

    /// Starts computing node `who` (e.g. "C1") at address .host.
    fn computing(&mut self, who: &str, host: u8) {
        let name = self.container(who);
        let d = self.domain.to_string();
        let ip = self.ip(host);
        let (ok, text) = docker(&[
            "run",
            "-d",
            "--name",
            &name,
            "--network",
            &self.net,
            "--ip",
            &ip,
            IMAGE,
            "--name",
            who,
            "--domain",
            &d,
            "--liveness-timeout",
            "3s",
        ]);
        assert!(ok, "cannot start {name}: {text}");
        self.containers.push(name);
    }

    /// Starts a main node training AML digit 0 on JOBS shards.
    fn main(&mut self, who: &str, wait_nodes: usize, linger: &str) {
        let name = self.container(who);
        let d = self.domain.to_string();
        let volume = format!("{}:/out", self.out.display());
        let report = format!("/out/{who}.json");
        let wait = wait_nodes.to_string();
        let jobs = JOBS.to_string();
        let (ok, text) = docker(&[
            "run",
            "-d",
            "--name",
            &name,
            "--network",
            &self.net,
            "-v",
            &volume,
            "--entrypoint",
            "/usr/local/bin/main-node",
            IMAGE,
            "--domain",
            &d,
            "--liveness-timeout",
            "3s",
            "train",
            "--model",
            "aml",
            "--digit",
            "0",
            "--jobs",
            &jobs,
            "--batches",
            "40",
            "--wait-nodes",
            &wait,
            "--timeout",
            "150s",
            "--linger",
            linger,
            "--report",
            &report,
        ]);
        assert!(ok, "cannot start {name}: {text}");
        self.containers.push(name);
    }

    fn logs(&self, who: &str) -> String {
        docker(&["logs", &self.container(who)]).1
    }

    fn wait_log(&self, who: &str, needle: &str, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.logs(who).contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// Waits until computing node `who` works on a job.
    fn busy(&self, who: &str) -> Result<(), String> {
        if self.wait_log(who, "working on job", Duration::from_secs(60)) {
            Ok(())
        } else {
            Err(format!("{who} never got a job:\n{}", self.logs(who)))
        }
    }

    /// Waits for container `who` to exit; its exit code.
    fn wait_exit(&self, who: &str, timeout: Duration) -> Option<i64> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            let (_, state) = docker(&[
                "inspect",
                "-f",
                "{{.State.Running}} {{.State.ExitCode}}",
                &self.container(who),
            ]);
            let mut parts = state.split_whitespace();
            if parts.next() == Some("false") {
                return parts.next().and_then(|c| c.parse().ok());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        None
    }

    fn act(&self, verb: &[&str], who: &str) {
        let name = self.container(who);
        let mut args = verb.to_vec();
        args.push(&name);
        let (ok, text) = docker(&args);
        assert!(ok, "docker {verb:?} {name}: {text}");
    }

    fn report(&self, who: &str) -> Value {
        let path = self.out.join(format!("{who}.json"));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}; main's log:\n{}", path.display(), self.logs(who)));
        serde_json::from_str(&text).unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in &self.containers {
            docker(&["rm", "-f", c]);
        }
        docker(&["network", "rm", &self.net]);
        std::fs::remove_dir_all(&self.out).ok();
    }
}

/// One scenario's outcome, for the table.
struct Outcome {
    scenario: &'static str,
    report: Value,
    seconds: f64,
    failure: Option<String>,
}

/// Checks the counts every scenario must show: all jobs solved once, aggregated once.
fn check(report: &Value) -> Result<(), String> {
    let n = |k: &str| report[k].as_u64().unwrap_or(u64::MAX);
    if (n("jobs_sent"), n("solved"), n("aggregated")) != (JOBS as u64, JOBS as u64, JOBS as u64) {
        return Err(format!(
            "expected {JOBS} jobs sent, solved and aggregated once; report: sent {} solved {} aggregated {}",
            n("jobs_sent"),
            n("solved"),
            n("aggregated")
        ));
    }
    let bal = report["aggregate"]["balanced_accuracy"]
        .as_f64()
        .unwrap_or(0.0);
    if bal < 0.97 {
        return Err(format!("aggregate balanced accuracy {bal}"));
    }
    Ok(())
}

fn run(
    scenario: &'static str,
    subnet: u8,
    body: impl FnOnce(&mut Cluster) -> Result<Value, String>,
) -> Outcome {
    let start = Instant::now();
    let mut cluster = Cluster::new(subnet);
    let result = body(&mut cluster).and_then(|r| check(&r).map(|_| r));
    let seconds = start.elapsed().as_secs_f64();
    match result {
        Ok(report) => Outcome {
            scenario,
            report,
            seconds,
            failure: None,
        },
        Err(e) => Outcome {
            scenario,
            report: Value::Null,
            seconds,
            failure: Some(e),
        },
    }
}

fn finish(c: &Cluster, main: &str) -> Result<Value, String> {
    match c.wait_exit(main, Duration::from_secs(180)) {
        Some(0) => Ok(c.report(main)),
        Some(code) => Err(format!("main exited {code}:\n{}", c.logs(main))),
        None => Err(format!(
            "main still running after 180 s (a hang):\n{}",
            c.logs(main)
        )),
    }
}

fn three_nodes(c: &mut Cluster) {
    for (i, who) in ["C1", "C2", "C3"].iter().enumerate() {
        c.computing(who, 11 + i as u8);
    }
}

#[test]
#[ignore = "needs Docker and the amlip image (scripts/docker-image.sh)"]
fn fault_scenarios_across_containers() {
    let (ok, text) = docker(&["image", "inspect", IMAGE]);
    assert!(
        ok,
        "image {IMAGE} missing; build it with scripts/docker-image.sh: {text}"
    );
    let suite_start = Instant::now();
    let mut outcomes = Vec::new();

    outcomes.push(run("computing node killed mid-job", 1, |c| {
        three_nodes(c);
        c.main("M", 3, "0s");
        c.busy("C1")?;
        c.act(&["kill"], "C1");
        let r = finish(c, "M")?;
        if r["resent"].as_u64() < Some(1) {
            return Err("the killed node's job was not re-sent".into());
        }
        Ok(r)
    }));

    outcomes.push(run("computing node frozen mid-job", 2, |c| {
        three_nodes(c);
        c.main("M", 3, "15s");
        c.busy("C1")?;
        c.act(&["pause"], "C1");
        if !c.wait_log("M", "re-sending job", Duration::from_secs(30)) {
            c.act(&["unpause"], "C1");
            return Err(format!(
                "the frozen node's job was not re-sent:\n{}",
                c.logs("M")
            ));
        }
        // Thaw it only once another node has solved the re-sent job, so that its answer is
        // late (thawed earlier, it may legitimately win the race instead).
        let new_task = c
            .logs("M")
            .lines()
            .find(|l| l.contains("re-sending job"))
            .and_then(|l| l.split("new_task=").nth(1))
            .and_then(|t| t.split_whitespace().next())
            .map(|t| format!("task={t} "))
            .ok_or("no new task id in the re-sending line")?;
        let solved_elsewhere = || {
            ["C2", "C3"].iter().any(|who| {
                c.logs(who)
                    .lines()
                    .any(|l| l.contains("job solved") && l.contains(&new_task))
            })
        };
        let end = Instant::now() + Duration::from_secs(60);
        while !solved_elsewhere() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(100));
        }
        c.act(&["unpause"], "C1");
        let r = finish(c, "M")?;
        if r["duplicates_dropped"].as_u64() < Some(1) {
            return Err("the thawed node's late answer was not seen and dropped".into());
        }
        Ok(r)
    }));

    outcomes.push(run("computing node cut off, reconnected", 3, |c| {
        three_nodes(c);
        c.main("M", 3, "5s");
        c.busy("C1")?;
        let net = c.net.clone();
        c.act(&["network", "disconnect", &net], "C1");
        if !c.wait_log("M", "re-sending job", Duration::from_secs(30)) {
            return Err(format!(
                "the cut-off node's job was not re-sent:\n{}",
                c.logs("M")
            ));
        }
        let ip = c.ip(11);
        c.act(&["network", "connect", "--ip", &ip, &net], "C1");
        let r = finish(c, "M")?;
        if r["resent"].as_u64() < Some(1) {
            return Err("no job was re-sent".into());
        }
        Ok(r)
    }));

    outcomes.push(run("computing node joins mid-run", 4, |c| {
        c.computing("C1", 11);
        c.computing("C2", 12);
        c.main("M", 2, "0s");
        c.busy("C1")?;
        c.computing("C3", 13);
        let r = finish(c, "M")?;
        let took = r["rows"]
            .as_array()
            .map(|rows| {
                rows.iter()
                    .any(|row| row["detail"].as_str().unwrap_or("").contains("by C3."))
            })
            .unwrap_or(false);
        if !took {
            return Err("the node that joined took no job".into());
        }
        Ok(r)
    }));

    outcomes.push(run("main restarted", 5, |c| {
        three_nodes(c);
        c.main("M1", 3, "0s");
        c.busy("C1")?;
        c.act(&["kill"], "M1");
        c.main("M2", 3, "0s");
        let r = finish(c, "M2")?;
        let served_by = |who: &str| {
            r["rows"]
                .as_array()
                .map(|rows| {
                    rows.iter().any(|row| {
                        row["detail"]
                            .as_str()
                            .unwrap_or("")
                            .contains(&format!("by {who}."))
                    })
                })
                .unwrap_or(false)
        };
        if !served_by("C1") {
            return Err("the node busy with the dead main's job never served the new main".into());
        }
        Ok(r)
    }));

    println!(
        "\n{:<36} {:>9} {:>7} {:>8} {:>11} {:>11} {:>9}",
        "scenario", "jobs sent", "solved", "re-sent", "duplicates", "aggregated", "time (s)"
    );
    let mut failed = Vec::new();
    for o in &outcomes {
        let n = |k: &str| {
            o.report[k]
                .as_u64()
                .map_or("-".to_string(), |v| v.to_string())
        };
        println!(
            "{:<36} {:>9} {:>7} {:>8} {:>11} {:>11} {:>9.1}{}",
            o.scenario,
            n("jobs_sent"),
            n("solved"),
            n("resent"),
            n("duplicates_dropped"),
            n("aggregated"),
            o.seconds,
            if o.failure.is_some() { "  FAILED" } else { "" }
        );
        if let Some(f) = &o.failure {
            failed.push(format!("{}: {f}", o.scenario));
        }
    }
    println!("whole suite: {:.1} s", suite_start.elapsed().as_secs_f64());
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}
