//! Real binaries as child processes, their output collected line by line, killed on drop.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A binary of this workspace, built into the same profile directory as the running test
/// (`cargo test --workspace` builds every binary).
pub fn binary(name: &str) -> PathBuf {
    let p = profile_dir().join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        p.exists(),
        "{} is missing: run the tests with `cargo test --workspace`",
        p.display()
    );
    p
}

/// An example program of this workspace (`cargo test --workspace` builds every example).
pub fn example(name: &str) -> PathBuf {
    let p = profile_dir()
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        p.exists(),
        "{} is missing: build it with `cargo build --examples` (cargo test builds it)",
        p.display()
    );
    p
}

/// The Fast DDS test peer (`interop/fastdds-peer/build.sh` puts it in `target/fastdds-peer`),
/// if it was built.
pub fn fastdds_peer() -> Option<PathBuf> {
    let target = profile_dir().parent()?.to_path_buf();
    let p = target.join("fastdds-peer").join("peer");
    p.exists().then_some(p)
}

/// `target/<profile>`: test executables run from its `deps` directory.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let deps = exe.parent().expect("deps directory");
    deps.parent().expect("profile directory").to_path_buf()
}

/// How long [`Proc::wait_exit`] waits for the output readers once the process has exited.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A running process whose stdout and stderr lines are collected; killed when dropped.
pub struct Proc {
    /// A name for messages.
    pub name: String,
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    /// Receives one message per output reader when it reaches end of file.
    drained: mpsc::Receiver<()>,
    readers: usize,
    /// When the process was started.
    pub started: Instant,
}

impl Proc {
    /// Starts `bin` with `args` and extra environment variables.
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
        let (done, drained) = mpsc::channel();
        let outputs: [Box<dyn Read + Send>; 2] = [
            Box::new(child.stdout.take().expect("piped stdout")),
            Box::new(child.stderr.take().expect("piped stderr")),
        ];
        for out in outputs {
            let lines = lines.clone();
            let done = done.clone();
            let tag = name.to_string();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if std::env::var_os("SHOW_CHILD_OUTPUT").is_some() {
                        eprintln!("[{tag}] {line}");
                    }
                    lines.lock().expect("lines").push(line);
                }
                let _ = done.send(());
            });
        }
        Proc {
            name: name.into(),
            child,
            lines,
            drained,
            readers: 2,
            started,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every line printed so far, stdout and stderr interleaved as they were read.
    pub fn output(&self) -> String {
        self.lines.lock().expect("lines").join("\n")
    }

    /// Whether a line containing `needle` was printed.
    pub fn has_line(&self, needle: &str) -> bool {
        self.lines
            .lock()
            .expect("lines")
            .iter()
            .any(|l| l.contains(needle))
    }

    /// Waits until a line containing `needle` appears; returns whether it did in time.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> bool {
        crate::wait_until(timeout, || self.has_line(needle))
    }

    /// Waits for the process to exit and for its output to be read to the end.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() > end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        while self.readers > 0 {
            if self.drained.recv_timeout(DRAIN_TIMEOUT).is_err() {
                break; // a grandchild holds the pipe; what was read is all we get
            }
            self.readers -= 1;
        }
        Some(status)
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
