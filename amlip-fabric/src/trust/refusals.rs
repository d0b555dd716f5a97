//! How refused peers are logged: each as it happens, but at most [`RefusalLog::PER_WINDOW`]
//! lines per [`RefusalLog::WINDOW`] (a stranger knocking in a loop must not flood the log); the
//! count of those left out goes with the next line. One limiter for every place that refuses
//! (DDS discovery, the direct path, the binaries' reading of rustdds's log).

use std::time::{Duration, Instant};

/// The rate limit of one kind of refusal line.
#[derive(Debug, Default)]
pub struct RefusalLog {
    window: Option<Instant>,
    logged: u32,
    unlogged: u64,
}

impl RefusalLog {
    /// The window lines are counted in.
    pub const WINDOW: Duration = Duration::from_secs(10);
    /// Lines per window.
    pub const PER_WINDOW: u32 = 20;

    /// Whether to log this refusal: `Some` with what to append to the line (the count of
    /// refusals left out before it, if any), or `None` to leave it out.
    pub fn admit(&mut self) -> Option<String> {
        if self.window.is_none_or(|t| t.elapsed() >= Self::WINDOW) {
            self.window = Some(Instant::now());
            self.logged = 0;
        }
        if self.logged >= Self::PER_WINDOW {
            self.unlogged += 1;
            return None;
        }
        self.logged += 1;
        Some(match std::mem::take(&mut self.unlogged) {
            0 => String::new(),
            n => format!(" ({n} more refused and not logged before this one)"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_logs_its_share_then_counts_the_rest() {
        let mut log = RefusalLog::default();
        for _ in 0..RefusalLog::PER_WINDOW {
            assert_eq!(log.admit().as_deref(), Some(""));
        }
        assert_eq!(log.admit(), None);
        assert_eq!(log.admit(), None);
        log.window = Some(Instant::now() - RefusalLog::WINDOW);
        assert_eq!(
            log.admit().as_deref(),
            Some(" (2 more refused and not logged before this one)")
        );
    }
}
