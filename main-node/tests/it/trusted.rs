//! Trusted domains with real processes: members exchange jobs over DDS Security and the direct
//! path's mutual TLS; strangers (no identity, another CA, expired, not permitted) get nothing
//! and are logged; nothing crosses loopback in clear; the Fast DDS peer joins with the same
//! files and is refused without them.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{computing_node, domain, main_node, Domain, Proc};

/// A trusted domain's folder for one test, removed on drop.
struct TrustDir(PathBuf);

impl TrustDir {
    /// `main-node trust init`, then `trust add` for each (name, role).
    fn new(d: &Domain, tag: &str, members: &[(&str, &str)]) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "amlip-trusted-{tag}-{}-{}",
            d.id(),
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let me = Self(dir);
        trust_cmd(&["init", me.0.to_str().unwrap()]);
        for (name, role) in members {
            me.add(name, role, &[]);
        }
        me
    }

    fn add(&self, name: &str, role: &str, extra: &[&str]) {
        let mut args = vec!["add", self.0.to_str().unwrap(), name, "--role", role];
        args.extend_from_slice(extra);
        trust_cmd(&args);
    }

    /// `DIR/NAME`, as `--trust` takes it.
    fn node(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }
}

impl Drop for TrustDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn trust_cmd(args: &[&str]) -> String {
    let out = Command::new(main_node())
        .arg("trust")
        .args(args)
        .output()
        .expect("main-node runs");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "main-node trust {args:?} failed:\n{text}"
    );
    text
}

/// A computing node of the trusted domain, serving.
fn member(name: &str, d: &Domain, trust: &str, extra: &[&str]) -> Proc {
    let dom = d.arg();
    let mut args = vec!["--trust", trust, "--domain", &dom, "--network", "localhost"];
    args.extend_from_slice(extra);
    let p = Proc::spawn(name, computing_node(), &args, &[]);
    assert!(
        p.wait_for("serving", Duration::from_secs(60)),
        "{name} did not start:\n{}",
        p.output()
    );
    p
}

/// `main-node [--trust T] ARGS` run to its end: (success, output).
fn run_main(d: &Domain, trust: Option<&str>, args: &[&str], limit: Duration) -> (bool, String) {
    let dom = d.arg();
    let mut all = vec!["--domain", &dom, "--network", "localhost"];
    if let Some(t) = trust {
        all.extend_from_slice(&["--trust", t]);
    }
    all.extend_from_slice(args);
    let mut m = Proc::spawn("main", main_node(), &all, &[]);
    let status = m
        .wait_exit(limit)
        .unwrap_or_else(|| panic!("main-node {args:?} still runs:\n{}", m.output()));
    (status.success(), m.output())
}

fn jobs(d: &Domain, trust: Option<&str>, count: usize, size: usize, nodes: usize) -> String {
    let (c, s, n) = (count.to_string(), size.to_string(), nodes.to_string());
    let args = [
        "jobs",
        "--count",
        &c,
        "--size",
        &s,
        "--wait-nodes",
        &n,
        "--timeout",
        "120s",
        "--quiet",
    ];
    let (ok, out) = run_main(d, trust, &args, Duration::from_secs(600));
    assert!(ok, "main-node jobs failed:\n{out}");
    assert!(
        out.contains(&format!("{count} of {count} jobs solved, 0 failed")),
        "{out}"
    );
    out
}

#[test]
fn members_exchange_jobs_over_dds_and_the_direct_path_from_1_kb_to_10_mb() {
    let d = domain();
    let t = TrustDir::new(&d, "members", &[("boss", "main"), ("worker", "computing")]);
    let nodes: Vec<Proc> = (0..2)
        .map(|i| member(&format!("W{i}"), &d, &t.node("worker"), &[]))
        .collect();
    let boss = t.node("boss");
    let out = jobs(&d, Some(&boss), 20, 1_000, 2);
    assert!(
        out.contains("main node boss."),
        "the main takes its certificate's name:\n{out}"
    );
    let out = jobs(&d, Some(&boss), 4, 10_000_000, 2);
    // 10 MB jobs and their solutions cross the direct path (TLS), both ways.
    let sent = out
        .split("over the direct path: ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(0);
    assert!(
        sent >= 4,
        "the 10 MB jobs did not take the direct path:\n{out}"
    );
    for n in &nodes {
        assert!(!n.has_line("refused"), "{}", n.output());
    }
}

#[test]
fn strangers_get_nothing_and_each_refusal_is_logged() {
    let d = domain();
    let t = TrustDir::new(
        &d,
        "strangers",
        &[
            ("worker", "computing"),
            ("watcher", "observer"),
            ("boss", "main"),
        ],
    );
    t.add("late", "main", &["--days", "0"]);
    let other = TrustDir::new(&d, "other", &[("boss", "main")]);
    let node = member("W", &d, &t.node("worker"), &[]);

    // No identity: discovers nobody, and the member says why it refused it.
    let short = [
        "jobs",
        "--count",
        "1",
        "--wait-nodes",
        "1",
        "--timeout",
        "4s",
    ];
    let (ok, out) = run_main(&d, None, &short, Duration::from_secs(120));
    assert!(
        !ok && out.contains("only 0 of 1 computing nodes appeared"),
        "{out}"
    );
    assert!(
        node.wait_for("it has no identity", Duration::from_secs(30)),
        "{}",
        node.output()
    );
    // A certificate of another domain's CA: the same, for another reason.
    let (ok, out) = run_main(
        &d,
        Some(&other.node("boss")),
        &short,
        Duration::from_secs(120),
    );
    assert!(
        !ok && out.contains("only 0 of 1 computing nodes appeared"),
        "{out}"
    );
    assert!(
        node.wait_for(
            "not signed by this domain's identity CA",
            Duration::from_secs(30)
        ),
        "{}",
        node.output()
    );
    // An expired certificate: refused at startup, the file named.
    let (ok, out) = run_main(&d, Some(&t.node("late")), &short, Duration::from_secs(60));
    assert!(
        !ok && out.contains("late/cert.pem") && out.contains("expired on"),
        "{out}"
    );
    // Permissions without the job topics: no main, no computing node, but a status view.
    let (ok, out) = run_main(
        &d,
        Some(&t.node("watcher")),
        &short,
        Duration::from_secs(60),
    );
    assert!(!ok && out.to_lowercase().contains("security"), "{out}");
    let (ok, out) = run_main(
        &d,
        Some(&t.node("watcher")),
        &["status", "--for", "8s"],
        Duration::from_secs(120),
    );
    assert!(
        ok && out.contains("worker."),
        "the observer sees the member:\n{out}"
    );
    // Nobody made the member work.
    assert!(!node.has_line("working on job"), "{}", node.output());
    // A member still serves members.
    jobs(&d, Some(&t.node("boss")), 3, 1_000, 1);
    assert!(node.has_line("working on job"), "{}", node.output());
}

/// The member's direct path port: a plain client and a TLS client with a foreign certificate
/// are closed before a payload byte is read; the member logs both.
#[test]
fn the_direct_port_closes_plain_and_foreign_tls_clients() {
    let d = domain();
    let t = TrustDir::new(&d, "port", &[("worker", "computing")]);
    let other = TrustDir::new(&d, "port-other", &[("worker", "computing")]);
    let port = free_port();
    let node = member(
        "W",
        &d,
        &t.node("worker"),
        &["--direct-port", &port.to_string()],
    );
    // A plain client writes a hello and a payload, then finds the connection closed.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let junk = vec![b'x'; 64 << 10];
    let _ = s.write_all(&junk);
    let mut buf = [0u8; 256];
    let n = s.read(&mut buf).unwrap_or(0);
    assert!(
        n == 0 || buf[..n].first() == Some(&0x15),
        "a plain client got {n} bytes of answer"
    );
    assert!(
        node.wait_for("refused a direct-path connection", Duration::from_secs(30)),
        "{}",
        node.output()
    );
    // A TLS client presenting another domain's certificate.
    let cert = other.0.join("worker/cert.pem");
    let key = other.0.join("worker/key.pem");
    let mut c = Command::new("openssl")
        .args(["s_client", "-tls1_3", "-quiet", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl s_client (apt-get install openssl)");
    let mut stdin = c.stdin.take().unwrap();
    let _ = stdin.write_all(&junk);
    drop(stdin);
    let start = Instant::now();
    let status = loop {
        if let Some(s) = c.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "s_client still connected"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    c.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(!status.success() || err.contains("alert"), "{err}");
    let refusals = || {
        node.output()
            .matches("refused a direct-path connection")
            .count()
    };
    assert!(
        amlip_testkit::wait_until(Duration::from_secs(30), || refusals() >= 1
            && node.has_line("certificate")),
        "{}",
        node.output()
    );
    assert!(!node.has_line("working on job"), "{}", node.output());
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// A packet capture on loopback while members exchange jobs carrying a marker, small (DDS) and
/// large (direct path): the marker is in no packet. The same run in an open domain finds it
/// (so the capture does see the traffic).
#[test]
fn nothing_crosses_loopback_in_clear() {
    let Some(tcpdump) = which("tcpdump") else {
        assert!(
            std::env::var_os("AMLIP_CAPTURE_REQUIRED").is_none(),
            "tcpdump is not installed"
        );
        eprintln!("skipped: tcpdump is not installed (apt-get install tcpdump)");
        return;
    };
    let marker = format!("amlipmarker{:x}", std::process::id() as u64 * 7919 + 13);
    let seen_in = |trusted: bool| -> bool {
        let d = domain();
        let t = TrustDir::new(&d, "clear", &[("boss", "main"), ("worker", "computing")]);
        let trust = trusted.then(|| t.node("boss"));
        let worker = t.node("worker");
        let dom = d.arg();
        let mut args = vec!["--domain", dom.as_str(), "--network", "localhost"];
        if trusted {
            args.extend_from_slice(&["--trust", &worker]);
        } else {
            args.extend_from_slice(&["--name", "W"]);
        }
        let node = Proc::spawn("W", computing_node(), &args, &[]);
        assert!(
            node.wait_for("serving", Duration::from_secs(60)),
            "{}",
            node.output()
        );
        let pcap = t.0.join("capture.pcap");
        let cap = Proc::spawn(
            "tcpdump",
            tcpdump.clone(),
            &[
                "-i",
                "lo",
                "-U",
                "-s",
                "0",
                "-w",
                pcap.to_str().unwrap(),
                "udp or tcp",
            ],
            &[],
        );
        assert!(
            cap.wait_for("listening on", Duration::from_secs(30)),
            "{}",
            cap.output()
        );
        let small = marker.repeat(4);
        let big_file = t.0.join("big.txt");
        std::fs::write(&big_file, marker.repeat(2_000_000 / marker.len())).unwrap();
        for job in [
            vec![small.as_str()],
            vec!["--file", big_file.to_str().unwrap()],
        ] {
            let mut a = vec!["send"];
            a.extend(job);
            a.extend(["--timeout", "60s", "--out", "/dev/null"]);
            let (ok, out) = run_main(&d, trust.as_deref(), &a, Duration::from_secs(300));
            assert!(ok, "{out}");
        }
        cap.interrupt();
        let mut cap = cap;
        cap.wait_exit(Duration::from_secs(30));
        let bytes = std::fs::read(&pcap).unwrap();
        // The 2 MB job crossed; on a loaded machine tcpdump may drop some of its packets.
        assert!(
            bytes.len() > 1_000_000,
            "the capture holds {} bytes",
            bytes.len()
        );
        let upper = marker.to_uppercase();
        contains(&bytes, marker.as_bytes()) || contains(&bytes, upper.as_bytes())
    };
    assert!(seen_in(false), "the capture missed an open domain's marker");
    assert!(
        !seen_in(true),
        "a trusted domain's marker crossed loopback in clear"
    );
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn which(name: &str) -> Option<PathBuf> {
    ["/usr/bin", "/usr/sbin", "/bin", "/sbin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
}

/// The Fast DDS peer with the domain's files exchanges jobs with amlip members both ways;
/// without them it is refused.
#[test]
fn the_fast_dds_peer_joins_with_the_domain_s_files_and_not_without() {
    let Some(bin) = amlip_testkit::fastdds_peer() else {
        assert!(
            std::env::var_os("AMLIP_INTEROP_REQUIRED").is_none(),
            "the Fast DDS peer is not built: run interop/fastdds-peer/build.sh"
        );
        eprintln!("skipped: the Fast DDS peer is not built");
        return;
    };
    let d = domain();
    let t = TrustDir::new(
        &d,
        "fast",
        &[("boss", "main"), ("worker", "computing"), ("fast", "any")],
    );
    let dom = d.arg();
    let fast = t.node("fast");
    // An AML-IP computing node (Fast DDS, secured) answers an amlip main.
    let peer = Proc::spawn(
        "peer-computing",
        bin.clone(),
        &[
            "computing",
            "--domain",
            &dom,
            "--name",
            "FastC",
            "--trust",
            &fast,
        ],
        &[],
    );
    assert!(
        peer.wait_for("ready ", Duration::from_secs(30)),
        "{}",
        peer.output()
    );
    let out = jobs(&d, Some(&t.node("boss")), 5, 100, 1);
    assert!(out.contains("FastC."), "{out}");
    drop(peer);
    // An AML-IP main (secured) gets its jobs from an amlip member.
    let node = member("W", &d, &t.node("worker"), &[]);
    let run_peer_main = |trust: Option<&str>, timeout: &str| {
        let mut args = vec!["main", "--domain", &dom, "--jobs", "3", "--size", "100"];
        args.extend_from_slice(&["--timeout", timeout]);
        if let Some(t) = trust {
            args.extend_from_slice(&["--trust", t]);
        }
        let mut m = Proc::spawn("peer-main", bin.clone(), &args, &[]);
        let status = m
            .wait_exit(Duration::from_secs(300))
            .expect("the peer main ends");
        (status.success(), m.output())
    };
    let (ok, out) = run_peer_main(Some(&fast), "120");
    assert!(ok && out.contains("summary jobs 3 ok 3 "), "{out}");
    // Without security: no job done, and the member logs the refusal.
    let (ok, out) = run_peer_main(None, "8");
    assert!(!ok || !out.contains("summary jobs 3 ok 3 "), "{out}");
    assert!(
        node.wait_for(
            "eProsima Fast DDS): it has no identity",
            Duration::from_secs(30)
        ),
        "{}",
        node.output()
    );
}

/// Sample streams in a trusted domain: two producer ranks stream over TLS to a member trainer,
/// which counts every sample; a trainer with no identity finds no producer.
#[test]
fn sample_streams_flow_to_members_only() {
    let d = domain();
    let t = TrustDir::new(&d, "streams", &[("sim", "any")]);
    let sim = t.node("sim");
    let dom = d.arg();
    let base = ["--domain", dom.as_str(), "--network", "localhost"];
    let producers: Vec<Proc> = (0..2)
        .map(|r| {
            let rank = r.to_string();
            let mut args = base.to_vec();
            args.extend_from_slice(&["--trust", &sim, "produce", "--stream", "s", "--rank"]);
            args.extend_from_slice(&[&rank, "--every", "50ms", "--batch", "16"]);
            args.extend_from_slice(&["--iterations", "10", "--readers", "1"]);
            Proc::spawn("producer", main_node(), &args, &[])
        })
        .collect();
    for p in &producers {
        assert!(
            p.wait_for("iteration 5:", Duration::from_secs(120)),
            "{}",
            p.output()
        );
    }
    let (ok, out) = run_main(
        &d,
        None,
        &["online", "--stream", "s", "--wait", "3s"],
        Duration::from_secs(120),
    );
    assert!(!ok && out.contains("no producer of stream \"s\""), "{out}");
    let (ok, out) = run_main(
        &d,
        Some(&sim),
        &["online", "--stream", "s", "--producers", "2"],
        Duration::from_secs(300),
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("samples: 320 produced, 320 received, 320 kept, 0 rejected"),
        "{out}"
    );
    for mut p in producers {
        let status = p
            .wait_exit(Duration::from_secs(120))
            .expect("a producer ends");
        let o = p.output();
        assert!(
            status.success() && o.contains("160 samples produced; read whole by 1 trainer(s)"),
            "{o}"
        );
        assert!(
            o.contains("it has no identity"),
            "the stranger was not logged:\n{o}"
        );
    }
}

/// All-reduce training in a trusted domain: the group's control channel and ring are sealed
/// with a key that reaches the workers inside their (secured) jobs; the group trains and every
/// step's parameters agree.
#[test]
fn all_reduce_trains_over_sealed_group_connections() {
    let d = domain();
    let t = TrustDir::new(
        &d,
        "allreduce",
        &[("boss", "main"), ("worker", "computing")],
    );
    let _nodes: Vec<Proc> = (0..2)
        .map(|i| member(&format!("W{i}"), &d, &t.node("worker"), &[]))
        .collect();
    let report = t.0.join("r.json");
    let (ok, out) = run_main(
        &d,
        Some(&t.node("boss")),
        &[
            "train",
            "--model",
            "dense",
            "--parallel",
            "2",
            "--epochs",
            "1",
            "--limit",
            "4000",
            "--report",
            report.to_str().unwrap(),
        ],
        Duration::from_secs(600),
    );
    assert!(ok, "{out}");
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert!(r["steps_checked"].as_u64().unwrap_or(0) > 0, "{out}");
    let acc = r["epochs"][0]["score"].as_f64().unwrap();
    assert!(
        acc >= 0.8,
        "dense network after one epoch of 4,000 images: {acc}\n{out}"
    );
}
