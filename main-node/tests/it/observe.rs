//! Seeing the cluster: `main-node status` lists exactly the nodes on a domain and sees a killed
//! one go; `/metrics` counts a batch of jobs and parses as Prometheus text; the status
//! dashboard, in headless Chromium, shows every main's jobs and every session's curves, and
//! its `/metrics` the whole domain.

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

/// The first line of `p`'s output that starts with `prefix`, without it.
fn line_after(p: &Proc, prefix: &str) -> String {
    let out = p.output();
    out.lines()
        .find_map(|l| l.strip_prefix(prefix).map(str::to_owned))
        .unwrap_or_else(|| panic!("no line starting {prefix:?} in:\n{out}"))
}

/// A main's id (`main node ID on domain ...`), its solved count (`jobs: N sent, M solved`),
/// and its table's aggregate row as `accuracy A, bal. acc B, FPR C, FNR D`.
fn printed(p: &Proc) -> (String, u64, String) {
    let id = line_after(p, "main node ");
    let id = id.split_whitespace().next().unwrap().to_owned();
    let jobs = line_after(p, "jobs: ");
    let solved = jobs.split(", ").nth(1).unwrap();
    let solved = solved.strip_suffix(" solved").unwrap().parse().unwrap();
    let out = p.output();
    let row = out.lines().find(|l| l.starts_with("aggregate (")).unwrap();
    let n: Vec<&str> = row.split_whitespace().skip(2).take(4).collect();
    let figures = format!(
        "accuracy {}, bal. acc {}, FPR {}, FNR {}",
        n[0], n[1], n[2], n[3]
    );
    (id, solved, figures)
}

/// The `/api/snapshot` of a dashboard: its nodes, by id.
fn snapshot(addr: SocketAddr) -> BTreeMap<String, Value> {
    let v: Value = serde_json::from_str(&http_get(addr, "/api/snapshot")).unwrap();
    v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap().to_owned(), n.clone()))
        .collect()
}

/// The cluster view, with real processes: three computing nodes, two mains in two
/// processes (an MLP FedAvg of 3 rounds, an AML 10-class run), `main-node status --serve` in
/// another. Chromium shows both mains with the solved counts each printed and both sessions'
/// final figures as their tables; `status --json` says the same; the status server's
/// `/metrics` holds the cluster gauges and its per-main counters equal the mains' own; a third
/// main killed mid-session is marked lost within 10 s while the others are untouched.
#[test]
fn the_cluster_view_shows_every_main_and_session_in_chromium() {
    let d = domain();
    let nodes: Vec<Proc> = (0..3)
        .map(|i| computing(&format!("C{i}"), &d, &[]))
        .collect();
    let ids: Vec<String> = nodes.iter().map(id_of).collect();
    let status = main_proc(&d, &["status", "--serve", "127.0.0.1:0", "--for", "10m"]);
    assert!(status.wait_for("dashboard at http://", Duration::from_secs(60)));
    let url = line_after(&status, "dashboard at ");
    let server: SocketAddr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let train = |name: &str, model: &[&str]| {
        let mut args = vec!["--name", name, "--metrics", "127.0.0.1:0", "train"];
        args.extend_from_slice(model);
        args.extend_from_slice(&[
            "--jobs",
            "3",
            "--limit",
            "3000",
            "--wait-nodes",
            "3",
            "--linger",
            "10m",
        ]);
        main_proc(&d, &args)
    };
    let mlp = train("Fed", &["--model", "mlp", "--rounds", "3"]);
    let aml = train("Aml", &["--model", "aml"]);
    for m in [&mlp, &aml] {
        assert!(
            m.wait_for("wall time", Duration::from_secs(300)),
            "{}",
            m.output()
        );
    }
    let (mains, want): (Vec<String>, Vec<(u64, String)>) = [&mlp, &aml]
        .iter()
        .map(|m| {
            let (id, solved, figures) = printed(m);
            (id, (solved, figures))
        })
        .unzip();

    // The page, in Chromium: both mains' rows with their counts, both sessions done with
    // their tables' figures, the MLP's curves with named axes and labels apart.
    let start = Instant::now();
    let mut dom = String::new();
    let drawn = wait_until(Duration::from_secs(120), || match chromium_dom(&url) {
        None => true,
        Some(page) => {
            dom = page;
            let rows = mains.iter().zip(&want).all(|(id, (solved, _))| {
                dom.contains(&format!(
                    "data-id=\"{id}\" data-state=\"running\" data-solved=\"{solved}\""
                ))
            });
            let sessions = mains.iter().zip(&want).all(|(id, (_, figures))| {
                dom.split("<div class=\"session\"").any(|card| {
                    card.starts_with(&format!(" data-main=\"{id}\""))
                        && card.contains("data-state=\"done\"")
                        && card.contains(figures.as_str())
                })
            });
            rows && sessions
                && ids
                    .iter()
                    .all(|id| dom.contains(&format!("data-id=\"{id}\"")))
                && dom.contains("data-series=\"aggregate\" data-points=\"3\"")
        }
    });
    if dom.is_empty() {
        eprintln!("chromium is not installed: the cluster view not checked in a browser");
    } else {
        assert!(drawn, "after {:?} the page shows:\n{dom}", start.elapsed());
        assert!(dom.contains(">round</text>"), "{dom}");
        assert!(dom.contains(">test accuracy</text>"), "{dom}");
        let rows = dom.matches("<tr class=\"node\"").count();
        assert!(rows >= ids.len() + 2, "{dom}");
        assert_eq!(dom.matches("class=\"spark\"").count(), rows, "{dom}");
        // The MLP's four curves (the aggregate and three shards, which may end close
        // together): their end labels at least 14 px apart (11 px text).
        let mut ys = end_label_ys(&dom);
        assert_eq!(ys.len(), 4, "{dom}");
        ys.sort_by(f64::total_cmp);
        assert!(
            ys.windows(2).all(|w| w[1] - w[0] >= 13.9),
            "end labels at y = {ys:?}"
        );
    }

    // `status --json`, from another process: the same counts and figures.
    let mut json = main_proc(&d, &["status", "--json", "--for", "4s"]);
    assert!(json.wait_exit(Duration::from_secs(60)).unwrap().success());
    let seen: Vec<Value> = serde_json::from_str(json.output().lines().last().unwrap()).unwrap();
    for (id, (solved, figures)) in mains.iter().zip(&want) {
        let n = seen.iter().find(|n| n["id"] == id.as_str()).unwrap();
        let m = &n["main"];
        assert_eq!(m["solved"], *solved, "{n}");
        assert_eq!(m["state"], "running", "{n}");
        let session = &m["sessions"][0];
        assert_eq!(session["state"], "done", "{n}");
        assert!(
            session["detail"]
                .as_str()
                .unwrap()
                .ends_with(figures.as_str()),
            "{n}"
        );
    }

    // One scrape for the domain: cluster gauges, and per-main counters equal to each main's
    // own `--metrics`.
    let cluster = scrape(server);
    assert_eq!(
        cluster["amlip_cluster_nodes{kind=computing,state=running}"], 3.0,
        "{cluster:?}"
    );
    for id in &ids {
        assert!(cluster.contains_key(&format!(
            "amlip_node_jobs_done_total{{kind=computing,node={id}}}"
        )));
    }
    for (m, id) in [&mlp, &aml].iter().zip(&mains) {
        let own: SocketAddr = line_after(m, "metrics at http://")
            .trim_end_matches("/metrics")
            .parse()
            .unwrap();
        let own = scrape(own);
        for c in ["sent", "solved", "failed", "resent", "duplicates_dropped"] {
            assert_eq!(
                cluster[&format!("amlip_main_jobs_{c}_total{{main={id}}}")],
                own[&format!("amlip_jobs_{c}_total{{}}")],
                "{c} of {id}"
            );
        }
        assert_eq!(
            cluster[&format!("amlip_main_up{{main={id},state=running}}")],
            1.0
        );
    }
    let accuracy = |id: &str, kind: &str, session: &str| {
        cluster[&format!(
            "amlip_session_accuracy{{kind={kind},main={id},session={session},state=done}}"
        )]
    };
    let figure = |f: &str| -> f64 { f.split(", ").next().unwrap()[9..].parse().unwrap() };
    assert_eq!(
        accuracy(&mains[0], "fedavg", "MLP 784-128-10 on 3 shard(s)"),
        figure(&want[0].1)
    );
    assert_eq!(
        accuracy(&mains[1], "aml", "AML 10-class on 3 shard(s)"),
        figure(&want[1].1)
    );

    // A third main killed mid-session: lost within 10 s (the bound; heartbeats stop
    // counting after 3 s), its session too; the other two untouched.
    let mut victim = main_proc(
        &d,
        &[
            "--name",
            "Doomed",
            "train",
            "--model",
            "mlp",
            "--rounds",
            "50",
            "--jobs",
            "3",
            "--limit",
            "3000",
            "--wait-nodes",
            "3",
        ],
    );
    assert!(
        victim.wait_for("round 2/50:", Duration::from_secs(300)),
        "{}",
        victim.output()
    );
    let doomed = line_after(&victim, "main node ");
    let doomed = doomed.split_whitespace().next().unwrap().to_owned();
    assert!(wait_until(Duration::from_secs(30), || {
        snapshot(server)
            .get(&doomed)
            .is_some_and(|n| n["main"]["sessions"][0]["state"] == "running")
    }));
    victim.kill_hard();
    let killed = Instant::now();
    let lost = wait_until(Duration::from_secs(60), || {
        snapshot(server).get(&doomed).is_some_and(|n| {
            n["main"]["state"] == "lost" && n["main"]["sessions"][0]["state"] == "lost"
        })
    });
    let took = killed.elapsed();
    assert!(
        lost && took <= Duration::from_secs(10),
        "marked lost after {took:?}"
    );
    let now = snapshot(server);
    for id in &mains {
        assert_eq!(now[id]["main"]["state"], "running", "{}", now[id]);
    }
    if let Some(page) = chromium_dom(&url) {
        assert!(
            page.contains(&format!("data-id=\"{doomed}\" data-state=\"lost\"")),
            "{page}"
        );
    }
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
