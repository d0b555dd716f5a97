//! Seeing the cluster: `main-node status` lists exactly the nodes on a domain and sees a killed
//! one go; `/metrics` counts a batch of jobs and parses as Prometheus text; the dashboard, in
//! headless Chromium, lists the nodes and draws the training curve.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{computing, domain, main as main_proc, Proc};
use amlip_cli::metrics::{self, Sources};
use amlip_cli::serve::HttpServer;
use amlip_core::kind::plain;
use amlip_core::prelude::*;
use amlip_testkit::wait_until;
use serde_json::Value;

/// The id a `computing-node` process prints when it starts.
fn id_of(p: &Proc) -> String {
    assert!(
        p.wait_for("serving", Duration::from_secs(60)),
        "{}",
        p.output()
    );
    let out = p.output();
    let line = out.lines().find(|l| l.contains("serving")).unwrap();
    line.split_whitespace().nth(2).unwrap().to_owned()
}

#[test]
fn status_lists_exactly_the_nodes_and_sees_a_killed_one_go() {
    let d = domain();
    let mut nodes: Vec<Proc> = (0..3)
        .map(|i| computing(&format!("C{i}"), &d, &[]))
        .collect();
    let ids: Vec<String> = nodes.iter().map(id_of).collect();
    // A status node of its own (a monitor that stays), besides the ones `status` starts.
    let watcher = main_proc(&d, &["status", "--watch", "--json", "--for", "10m"]);
    let mut status = main_proc(&d, &["status", "--json", "--for", "4s"]);
    assert!(status.wait_exit(Duration::from_secs(60)).unwrap().success());
    let out = status.output();
    let seen: Vec<Value> = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    let kinds: BTreeMap<String, String> = seen
        .iter()
        .map(|n| {
            (
                n["id"].as_str().unwrap().into(),
                n["kind"].as_str().unwrap().into(),
            )
        })
        .collect();
    let computing: Vec<&String> = kinds
        .iter()
        .filter(|(_, k)| *k == "computing")
        .map(|(id, _)| id)
        .collect();
    assert_eq!(computing, ids.iter().collect::<Vec<_>>(), "{out}");
    assert_eq!(
        kinds.len(),
        4,
        "three computing nodes and one status node: {out}"
    );
    assert_eq!(
        kinds.values().filter(|k| *k == "status").count(),
        1,
        "{out}"
    );
    assert!(seen
        .iter()
        .all(|n| n["state"] == "running" && n["last_heard_ms"].as_u64().is_some()));
    // Kill one without a goodbye: the watcher's next lines show it silent, then lost.
    let victim = ids[1].clone();
    nodes[1].kill_hard();
    let state_of = |line: &str| -> Option<String> {
        let v: Vec<Value> = serde_json::from_str(line).ok()?;
        v.iter()
            .find(|n| n["id"] == victim.as_str())
            .map(|n| n["state"].as_str().unwrap_or("").to_owned())
    };
    let changed = wait_until(Duration::from_secs(60), || {
        watcher
            .output()
            .lines()
            .last()
            .and_then(state_of)
            .is_some_and(|s| s == "silent" || s == "lost")
    });
    assert!(
        changed,
        "the killed node still shows as running:\n{}",
        watcher.output().lines().last().unwrap_or("")
    );
    let last = watcher.output();
    let others_running = ids.iter().filter(|id| **id != victim).all(|id| {
        last.lines().last().unwrap().contains(&format!(
            "\"id\":\"{id}\",\"kind\":\"computing\",\"state\":\"running\""
        ))
    });
    assert!(others_running, "{}", last.lines().last().unwrap());
}

/// The body of `GET path` on `addr`.
fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}

/// The samples of a scrape, by name (labels folded into the name), checking that the text
/// parses as the Prometheus exposition format.
fn scrape(addr: SocketAddr) -> BTreeMap<String, f64> {
    let body = http_get(addr, "/metrics");
    assert!(body.trim_end().ends_with("# EOF"), "{body}");
    let lines = body.lines().map(|l| Ok(l.to_owned()));
    let parsed = prometheus_parse::Scrape::parse(lines).expect("Prometheus text format");
    assert!(!parsed.samples.is_empty());
    parsed
        .samples
        .into_iter()
        .map(|s| {
            let mut labels: Vec<String> =
                s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            labels.sort();
            let value = match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            };
            (format!("{}{{{}}}", s.metric, labels.join(",")), value)
        })
        .collect()
}

#[test]
fn metrics_count_a_batch_of_jobs_while_it_runs() {
    let d = domain();
    let cfg = |name: &str| NodeConfig::new(name).domain(d.id()).localhost();
    let slow = |job: &Job, ctx: &JobContext| {
        std::thread::sleep(Duration::from_millis(40));
        plain::uppercase(job, ctx)
    };
    let _c: Vec<AsyncComputingNode> = (0..2)
        .map(|i| AsyncComputingNode::serve(cfg(&format!("C{i}")), slow).unwrap())
        .collect();
    let main = MainNode::with_config(cfg("Main")).unwrap();
    let sources = Sources::default();
    sources.main(main.probe());
    let server =
        HttpServer::start("127.0.0.1:0".parse().unwrap(), metrics::router(sources)).unwrap();
    let addr = server.addr();
    // A taken port is a clear error.
    let e = HttpServer::start(addr, metrics::router(Sources::default()))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains(&format!("cannot listen on {addr}")), "{e}");

    let n = 60;
    let mut batch = main.batch();
    for i in 0..n {
        batch.submit(i, format!("job {i}").into_bytes()).unwrap();
    }
    let mut during = None;
    let mut solved = 0;
    for o in batch {
        assert!(o.result.is_ok());
        solved += 1;
        if solved == n / 2 {
            during = Some(scrape(addr));
        }
    }
    let during = during.unwrap();
    assert_eq!(during["amlip_jobs_sent_total{}"], n as f64);
    let mid = during["amlip_jobs_solved_total{}"];
    assert!(
        (n as f64 / 2.0..n as f64).contains(&mid),
        "solved mid-batch: {mid}"
    );
    let after = scrape(addr);
    assert_eq!(after["amlip_jobs_sent_total{}"], n as f64);
    assert_eq!(after["amlip_jobs_solved_total{}"], n as f64);
    assert_eq!(after["amlip_jobs_failed_total{}"], 0.0);
    assert_eq!(after["amlip_peers_alive{kind=computing}"], 2.0);
    let bytes: usize = (0..n).map(|i| format!("job {i}").len()).sum();
    assert_eq!(after["amlip_sent_bytes_total{}"], bytes as f64);
    let body = http_get(addr, "/metrics");
    assert!(
        body.contains(&format!(
            "amlip_job_round_trip_seconds_count{{size=\"1KB\"}} {n}"
        )),
        "{body}"
    );
}

/// The DOM of `url` after its scripts ran, from headless Chromium; `None` if Chromium is not
/// installed (and not required).
/// The y of every curve-end label the page drew.
fn end_label_ys(dom: &str) -> Vec<f64> {
    dom.split("<text ")
        .filter(|t| {
            t.split('>')
                .next()
                .is_some_and(|a| a.contains("class=\"end-label\""))
        })
        .filter_map(|t| {
            let rest = t.split(" y=\"").nth(1)?;
            rest.split('"').next()?.parse().ok()
        })
        .collect()
}

fn chromium_dom(url: &str) -> Option<String> {
    let bin = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
    let Some(bin) = bin else {
        assert!(
            std::env::var_os("AMLIP_BROWSER_REQUIRED").is_none(),
            "AMLIP_BROWSER_REQUIRED is set but no chromium is installed (apt-get install chromium)"
        );
        return None;
    };
    let out = Command::new(bin)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=3000",
            "--dump-dom",
            url,
        ])
        .output()
        .expect("chromium runs");
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn the_dashboard_lists_the_nodes_and_draws_the_curve_in_chromium() {
    let d = domain();
    let nodes: Vec<Proc> = (0..3)
        .map(|i| computing(&format!("C{i}"), &d, &[]))
        .collect();
    let ids: Vec<String> = nodes.iter().map(id_of).collect();
    let mut main = main_proc(
        &d,
        &[
            "train",
            "--model",
            "mlp",
            "--rounds",
            "2",
            "--limit",
            "3000",
            "--jobs",
            "3",
            "--wait-nodes",
            "3",
            "--serve",
            "127.0.0.1:0",
            "--linger",
            "10m",
        ],
    );
    assert!(main.wait_for("dashboard at http://", Duration::from_secs(60)));
    let url = main
        .output()
        .lines()
        .find_map(|l| l.strip_prefix("dashboard at ").map(str::to_owned))
        .unwrap();
    assert!(
        main.wait_for("round 2/2:", Duration::from_secs(300)),
        "{}",
        main.output()
    );
    let start = Instant::now();
    let mut dom = String::new();
    let drawn = wait_until(Duration::from_secs(120), || match chromium_dom(&url) {
        None => true,
        Some(d) => {
            dom = d;
            ids.iter()
                .all(|id| dom.contains(&format!("data-id=\"{id}\"")))
                && dom.contains("data-series=\"aggregate\" data-points=\"2\"")
        }
    });
    if dom.is_empty() {
        eprintln!("chromium is not installed: dashboard not checked in a browser");
    } else {
        assert!(drawn, "after {:?} the page shows:\n{dom}", start.elapsed());
        assert!(dom.contains("class=\"curve\""));
        // Named axes, a throughput sparkline per node, and the labels of the four curves'
        // ends (the aggregate and three shards, which may end close together) at least 14 px
        // apart: 11 px text, drawn where each curve ends, overlapped.
        assert!(
            dom.contains(">round (epoch for all-reduce)</text>"),
            "{dom}"
        );
        assert!(dom.contains(">test accuracy</text>"), "{dom}");
        let rows = dom.matches("<tr class=\"node\"").count();
        assert!(rows >= ids.len(), "{dom}");
        assert_eq!(dom.matches("class=\"spark\"").count(), rows, "{dom}");
        let mut ys = end_label_ys(&dom);
        assert_eq!(ys.len(), 4, "{dom}");
        ys.sort_by(f64::total_cmp);
        assert!(
            ys.windows(2).all(|w| w[1] - w[0] >= 13.9),
            "end labels at y = {ys:?}"
        );
    }
    main.interrupt();
    assert!(main.wait_exit(Duration::from_secs(30)).is_some());
}

#[test]
fn json_logs_and_a_taken_metrics_port_through_the_binaries() {
    let d = domain();
    let node = computing("J", &d, &["--log-format", "json"]);
    assert!(node.wait_for("computing node started", Duration::from_secs(60)));
    let line = node
        .output()
        .lines()
        .find(|l| l.contains("computing node started"))
        .unwrap()
        .to_owned();
    let v: Value = serde_json::from_str(&line).expect("a JSON log line");
    assert_eq!(v["level"], "INFO", "{line}");
    assert_eq!(v["fields"]["message"], "computing node started");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let mut c = computing("K", &d, &["--metrics", &addr]);
    assert!(!c.wait_exit(Duration::from_secs(60)).unwrap().success());
    assert!(
        c.output()
            .contains(&format!("cannot serve --metrics: cannot listen on {addr}")),
        "{}",
        c.output()
    );
}
