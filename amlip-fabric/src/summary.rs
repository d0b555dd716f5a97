//! What a main says about itself on `amlipx/main_summary`, so that a status view anywhere on
//! the domain shows every main's jobs and sessions (`main-node status`, its dashboard and
//! `/metrics`), not only those of its own process.
//!
//! Sessions (FedAvg, AML shards, all-reduce groups, pipelines, AI loops) take a
//! [`SessionHandle`] from their main ([`MainNode::session`](crate::node::MainNode::session)) and
//! tell it their steps and figures; the main's engine reads the [`SessionBoard`] once a second
//! and publishes a [`MainSummary`] when something changed (unchanged, every 5 s), and a last
//! one as it leaves.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::protocol::client::ClientStats;
use crate::wire::summary::{
    clip, CurvePoint, MainSummary, SessionState, SessionSummary, MAX_DETAIL, MAX_POINTS,
    MAX_SESSIONS, SUMMARY_VERSION,
};
use crate::wire::{AmlipId, WireType};

/// How often the engine looks at the board (and so the most often it publishes).
pub(crate) const PERIOD: Duration = Duration::from_secs(1);
/// An unchanged summary is published again this often (a late reader gets the latest from
/// the writer's history anyway; this keeps a live main's `uptime` and rate fresh).
pub(crate) const REPEAT: Duration = Duration::from_secs(5);
/// The window of the solved-per-second rate.
const RATE_WINDOW: Duration = Duration::from_secs(10);
/// Sessions a board keeps (running ones always; the oldest finished ones go first).
const MAX_KEPT: usize = 64;

/// The sessions of one main, shared between the sessions and the main's engine.
#[derive(Debug, Default)]
pub struct SessionBoard {
    inner: Mutex<Board>,
}

#[derive(Debug, Default)]
struct Board {
    next_id: u64,
    slots: Vec<Slot>,
}

#[derive(Debug)]
struct Slot {
    id: u64,
    started: Instant,
    ended: Option<Instant>,
    summary: SessionSummary,
}

impl SessionBoard {
    /// Adds a running session; `steps` in all of `step_name` (0: unknown).
    pub(crate) fn start(
        self: &Arc<Self>,
        kind: &str,
        name: &str,
        step_name: &str,
        steps: u32,
    ) -> SessionHandle {
        let mut b = self.inner.lock().expect("session board");
        b.next_id += 1;
        let id = b.next_id;
        if b.slots.len() >= MAX_KEPT {
            if let Some(i) = (b.slots.iter())
                .enumerate()
                .filter(|(_, s)| s.ended.is_some())
                .min_by_key(|(_, s)| s.id)
                .map(|(i, _)| i)
            {
                b.slots.remove(i);
            }
        }
        if b.slots.len() < MAX_KEPT {
            b.slots.push(Slot {
                id,
                started: Instant::now(),
                ended: None,
                summary: SessionSummary {
                    kind: kind.to_owned(),
                    name: name.to_owned(),
                    state: SessionState::Running,
                    detail: String::new(),
                    step: 0,
                    steps,
                    step_name: step_name.to_owned(),
                    points: Vec::new(),
                },
            });
        }
        SessionHandle {
            board: self.clone(),
            id,
            ended: false,
        }
    }

    fn update(&self, id: u64, f: impl FnOnce(&mut Slot)) {
        let mut b = self.inner.lock().expect("session board");
        if let Some(s) = b.slots.iter_mut().find(|s| s.id == id) {
            f(s);
        }
    }

    /// What a summary lists: running sessions by start, then the latest finished, at most
    /// [`MAX_SESSIONS`].
    pub(crate) fn sessions(&self) -> Vec<SessionSummary> {
        let b = self.inner.lock().expect("session board");
        let mut slots: Vec<&Slot> = b.slots.iter().collect();
        // Ids grow with start: running ones oldest first, finished ones newest first.
        slots.sort_by_key(|s| match s.ended {
            None => (false, s.id as i128),
            Some(_) => (true, -(s.id as i128)),
        });
        (slots.into_iter().take(MAX_SESSIONS))
            .map(|s| s.summary.clone())
            .collect()
    }
}

/// A session's entry in its main's summary. Dropped without [`finish`](Self::finish), the
/// session shows as failed (it ended on an error or was interrupted).
#[derive(Debug)]
pub struct SessionHandle {
    board: Arc<SessionBoard>,
    id: u64,
    ended: bool,
}

/// One point of a session's curve; `None`: not measured.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Figures {
    /// Training loss.
    pub loss: Option<f64>,
    /// Test accuracy.
    pub accuracy: Option<f64>,
    /// Test mean squared error.
    pub mse: Option<f64>,
}

impl SessionHandle {
    /// `step` of the session's steps are done (and `steps` in all, if it learned that late).
    pub fn step(&self, step: u32, steps: u32) {
        self.board.update(self.id, |s| {
            s.summary.step = step;
            s.summary.steps = steps;
        });
    }

    /// What the session says now (its last line).
    pub fn say(&self, detail: &str) {
        self.board.update(self.id, |s| {
            s.summary.detail = clip(detail, MAX_DETAIL).to_owned();
        });
    }

    /// Adds a point to the curve: after `step`, model `series` (0: the aggregate; k: shard or
    /// worker k - 1). A curve that reaches [`MAX_POINTS`] keeps every other point, so it
    /// spans the whole session at a coarser grain.
    pub fn point(&self, step: u32, series: u32, f: Figures) {
        self.board.update(self.id, |s| {
            let nan = |v: Option<f64>| v.map_or(f32::NAN, |v| v as f32);
            let points = &mut s.summary.points;
            if points.len() >= MAX_POINTS {
                let mut i = 0;
                points.retain(|_| {
                    i += 1;
                    i % 2 == 1
                });
            }
            points.push(CurvePoint {
                step,
                series,
                loss: nan(f.loss),
                accuracy: nan(f.accuracy),
                mse: nan(f.mse),
                seconds: s.started.elapsed().as_secs_f32(),
            });
        });
    }

    /// The session ended with its result; `detail` its final figures.
    pub fn finish(mut self, detail: &str) {
        self.end(SessionState::Done, detail);
    }

    /// The session ended without its result, for `why`.
    pub fn fail(mut self, why: &str) {
        self.end(SessionState::Failed, why);
    }

    fn end(&mut self, state: SessionState, detail: &str) {
        self.ended = true;
        self.board.update(self.id, |s| {
            s.summary.state = state;
            s.summary.detail = clip(detail, MAX_DETAIL).to_owned();
            s.ended = Some(Instant::now());
        });
    }
}

impl Drop for SessionHandle {
    fn drop(&mut self) {
        if !self.ended {
            self.end(SessionState::Failed, "stopped before its end");
        }
    }
}

/// Builds a main's summaries and decides when one is worth publishing.
pub(crate) struct Summarizer {
    started: Instant,
    solved: VecDeque<(Instant, u64)>,
    /// The last published summary's bytes, uptime left out, and when it went.
    last: Option<(Vec<u8>, Instant)>,
}

impl Summarizer {
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            solved: VecDeque::new(),
            last: None,
        }
    }

    /// The summary to publish now, if it changed since the last one or [`REPEAT`] passed;
    /// with `always`, whatever it is (the last word as the main leaves).
    pub fn due(
        &mut self,
        id: &AmlipId,
        stats: &ClientStats,
        board: &SessionBoard,
        always: bool,
    ) -> Option<MainSummary> {
        let now = Instant::now();
        self.solved.push_back((now, stats.solved));
        while self
            .solved
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > RATE_WINDOW)
        {
            self.solved.pop_front();
        }
        let rate = match self.solved.front() {
            Some((t, n)) if now.duration_since(*t) >= PERIOD / 2 => {
                stats.solved.saturating_sub(*n) as f32 / now.duration_since(*t).as_secs_f32()
            }
            _ => 0.0,
        };
        let mut summary = MainSummary {
            id: id.clone(),
            version: SUMMARY_VERSION,
            jobs_sent: stats.submitted,
            jobs_solved: stats.solved,
            jobs_failed: stats.failed,
            jobs_resent: stats.resent,
            duplicates_dropped: stats.duplicates_dropped,
            bytes_sent: stats.bytes_sent,
            bytes_received: stats.bytes_received,
            uptime_ms: 0,
            jobs_in_flight: (stats.waiting + stats.running.len()) as u32,
            computing_nodes: stats.computing_nodes.len() as u32,
            solved_per_s: rate,
            sessions: board.sessions(),
        };
        let bytes = summary.encode();
        let fresh = match &self.last {
            Some((b, at)) => *b != bytes || now.duration_since(*at) >= REPEAT,
            None => true,
        };
        if !fresh && !always {
            return None;
        }
        self.last = Some((bytes, now));
        summary.uptime_ms = self.started.elapsed().as_millis() as u64;
        Some(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> AmlipId {
        AmlipId::from_parts("Main", [1, 2, 3, 4]).unwrap()
    }

    #[test]
    fn a_session_s_figures_and_end_reach_the_summary_and_an_unchanged_one_is_not_repeated() {
        let board = Arc::new(SessionBoard::default());
        let mut sum = Summarizer::new();
        let mut stats = ClientStats::default();
        assert!(sum.due(&id(), &stats, &board, false).is_some(), "the first");
        assert!(sum.due(&id(), &stats, &board, false).is_none(), "unchanged");
        let s = board.start("fedavg", "mlp", "round", 3);
        s.step(1, 3);
        s.point(
            1,
            0,
            Figures {
                accuracy: Some(0.9),
                ..Figures::default()
            },
        );
        stats.submitted = 3;
        stats.solved = 3;
        let got = sum.due(&id(), &stats, &board, false).expect("changed");
        assert_eq!((got.jobs_sent, got.jobs_solved), (3, 3));
        let session = &got.sessions[0];
        assert_eq!(
            (session.state, session.step, session.steps),
            (SessionState::Running, 1, 3)
        );
        assert_eq!(session.points[0].accuracy, 0.9);
        assert!(session.points[0].loss.is_nan());
        s.finish("accuracy 0.9");
        let got = sum.due(&id(), &stats, &board, false).expect("ended");
        assert_eq!(got.sessions[0].state, SessionState::Done);
        assert_eq!(got.sessions[0].detail, "accuracy 0.9");
        assert!(
            sum.due(&id(), &stats, &board, true).is_some(),
            "the last word"
        );
        // A session dropped before its end says so.
        drop(board.start("aml", "digits", "shard", 3));
        let got = sum.due(&id(), &stats, &board, false).unwrap();
        assert_eq!(got.sessions[0].state, SessionState::Failed, "{got:?}");
        assert_eq!(got.sessions[1].state, SessionState::Done);
    }

    #[test]
    fn a_long_curve_is_thinned_and_old_finished_sessions_make_room() {
        let board = Arc::new(SessionBoard::default());
        let s = board.start("online", "stream", "iteration", 0);
        for i in 1..=1000 {
            s.point(i, 0, Figures::default());
        }
        let points = &board.sessions()[0].points;
        assert!(points.len() <= MAX_POINTS);
        assert!(points.len() >= MAX_POINTS / 2);
        assert!(points[0].step <= 16, "still starts near the beginning");
        assert_eq!(points.last().unwrap().step, 1000);
        for i in 0..200 {
            board
                .start("aml", &format!("s{i}"), "shard", 1)
                .finish("ok");
        }
        let sessions = board.sessions();
        assert_eq!(sessions.len(), MAX_SESSIONS);
        assert_eq!(sessions[0].name, "stream", "running first");
        assert_eq!(sessions[1].name, "s199", "then the latest finished");
        assert!(board.inner.lock().unwrap().slots.len() <= MAX_KEPT);
    }
}
