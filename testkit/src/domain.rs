//! DDS domains leased to one test at a time, across every process and checkout on the host.
//!
//! Nodes only see nodes on their domain, so a test that owns a domain cannot take another
//! test's jobs. Two guards: an exclusive lock on `<tmp>/amlip-domains/<id>.lock` (released by
//! the kernel when the holder exits, however it exits), which every checkout's tests take; and
//! a probe that no participant of any other program (a demo, an older checkout) is bound to the
//! domain's unicast discovery ports.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::UdpSocket;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Domains tests never use: 0 (the DDS default), 42 (the compose cluster and the README),
/// 166 (AML-IP's default, which users' nodes are on).
const RESERVED: [u16; 3] = [0, 42, 166];
/// Largest domain id whose RTPS ports fit in 16 bits.
const MAX_DOMAIN: u16 = 232;
/// Participants per host rustdds probes for on one domain (ports 7410 + 250 d + 2 i).
const PARTICIPANTS: u16 = 12;

/// A DDS domain id this test holds until it is dropped.
pub struct Domain {
    id: u16,
    _lock: File,
}

impl Domain {
    /// The domain id.
    pub fn id(&self) -> u16 {
        self.id
    }

    /// The domain id as a command-line argument.
    pub fn arg(&self) -> String {
        self.id.to_string()
    }
}

impl std::fmt::Display for Domain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.id)
    }
}

/// Leases a free domain; panics (failing the test) if none frees up within a minute.
pub fn domain() -> Domain {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join("amlip-domains");
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    let candidates: Vec<u16> = (1..=MAX_DOMAIN).filter(|d| !RESERVED.contains(d)).collect();
    // Start somewhere different in every process, so concurrent runs rarely contend.
    let start = std::process::id() as usize * 31 + NEXT.fetch_add(1, Ordering::Relaxed) * 7;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for k in 0..candidates.len() {
            let id = candidates[(start + k) % candidates.len()];
            if let Some(lease) = try_lease(&dir, id) {
                return lease;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no free DDS domain for a minute (locks in {})",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn try_lease(dir: &std::path::Path, id: u16) -> Option<Domain> {
    let path: PathBuf = dir.join(format!("{id}.lock"));
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .ok()?;
    file.try_lock().ok()?;
    if !quiet(id) {
        return None; // dropping the file releases the lock
    }
    let _ = file.set_len(0);
    let _ = writeln!(
        file,
        "pid {} {}",
        std::process::id(),
        std::thread::current().name().unwrap_or("")
    );
    Some(Domain { id, _lock: file })
}

/// Whether no participant on this host is bound to the domain's unicast discovery ports.
fn quiet(id: u16) -> bool {
    let base = 7410 + 250 * id;
    (0..PARTICIPANTS).all(|i| UdpSocket::bind(("0.0.0.0", base + 2 * i)).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_are_exclusive_and_released_on_drop() {
        let a = domain();
        let b = domain();
        assert_ne!(a.id(), b.id());
        let id = a.id();
        let dir = std::env::temp_dir().join("amlip-domains");
        assert!(
            try_lease(&dir, id).is_none(),
            "a held domain was leased again"
        );
        drop(a);
        assert!(
            try_lease(&dir, id).is_some(),
            "a dropped lease was not released"
        );
    }

    #[test]
    fn a_domain_with_a_bound_participant_port_is_not_quiet() {
        let d = domain();
        let id = d.id();
        drop(d);
        let _squatter = UdpSocket::bind(("0.0.0.0", 7410 + 250 * id + 2)).unwrap();
        assert!(!quiet(id));
        let dir = std::env::temp_dir().join("amlip-domains");
        assert!(try_lease(&dir, id).is_none());
    }
}
