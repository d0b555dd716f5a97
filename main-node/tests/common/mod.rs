//! Running the real `main-node` and `computing-node` binaries from tests.
//!
//! Each test uses its own DDS domain and loopback only. main-node's tests use 150..=199:
//! processes.rs 150-153, train.rs 154-157, bench.rs 159.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn main_node() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_main-node"))
}

/// The computing-node binary, built beside main-node by `cargo test --workspace`.
pub fn computing_node() -> PathBuf {
    let p = main_node().with_file_name(format!("computing-node{}", std::env::consts::EXE_SUFFIX));
    assert!(
        p.exists(),
        "{} is missing: run the tests with `cargo test --workspace`",
        p.display()
    );
    p
}

/// A running process whose output lines are collected; killed when dropped.
pub struct Proc {
    pub name: String,
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    pub started: Instant,
}

impl Proc {
    pub fn spawn(name: &str, bin: PathBuf, args: &[&str], env: &[(&str, &str)]) -> Proc {
        let mut cmd = Command::new(&bin);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let lines = Arc::new(Mutex::new(Vec::new()));
        for out in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let lines = lines.clone();
            let tag = name.to_string();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if std::env::var_os("SHOW_CHILD_OUTPUT").is_some() {
                        eprintln!("[{tag}] {line}");
                    }
                    lines.lock().unwrap().push(line);
                }
            });
        }
        Proc {
            name: name.into(),
            child,
            lines,
            started,
        }
    }

    pub fn computing(name: &str, domain: u16, extra: &[&str]) -> Proc {
        let d = domain.to_string();
        let mut args = vec!["--name", name, "--domain", &d, "--network", "localhost"];
        args.extend_from_slice(extra);
        Proc::spawn(name, computing_node(), &args, &[])
    }

    pub fn main(domain: u16, args: &[&str]) -> Proc {
        let d = domain.to_string();
        let mut all = vec!["--domain", &d, "--network", "localhost"];
        all.extend_from_slice(args);
        Proc::spawn("main", main_node(), &all, &[])
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn output(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    pub fn has_line(&self, needle: &str) -> bool {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(needle))
    }

    /// Waits until a line containing `needle` appears.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.has_line(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.has_line(needle)
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Some(status) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(50)); // let the readers drain
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// SIGKILL: no chance to say goodbye.
    pub fn kill_hard(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGINT, as Ctrl-C in a terminal.
    pub fn interrupt(&self) {
        self.signal("INT");
    }

    /// Sends signal `name` (as `kill -<name>` spells it: INT, STOP, CONT).
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "cannot send SIG{name} to {}", self.name);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
