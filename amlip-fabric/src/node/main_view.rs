//! What a monitor shows of a main: its last summary (`amlipx/main_summary`) as plain values
//! for tables, JSON and dashboards, with the main's state (running, finished, lost) and that
//! of the sessions it was running.

use std::time::Duration;

use serde::Serialize;

use crate::wire::summary::{MainSummary, SessionState};
use crate::wire::NodeState;

/// A main's jobs and sessions, from its last summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MainView {
    /// `running`; `finished` once it left (its figures are final); `lost` when it vanished
    /// without a word (killed, cut off).
    pub state: String,
    /// Jobs submitted.
    pub sent: u64,
    /// Jobs solved.
    pub solved: u64,
    /// Jobs ended without a solution.
    pub failed: u64,
    /// Jobs re-sent.
    pub resent: u64,
    /// Answers dropped because their job was already decided.
    pub duplicates_dropped: u64,
    /// Jobs waiting for or held by a computing node.
    pub in_flight: u32,
    /// Computing nodes it knows alive.
    pub computing_nodes: u32,
    /// Jobs solved per second, over its last 10 s.
    pub solved_per_s: f64,
    /// Bytes of jobs it sent.
    pub bytes_sent: u64,
    /// Bytes of solutions it accepted.
    pub bytes_received: u64,
    /// Seconds since it started.
    pub uptime_s: f64,
    /// Its sessions: running ones first, then the latest finished.
    pub sessions: Vec<SessionView>,
}

/// One session of a main.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionView {
    /// `fedavg`, `aml`, `allreduce`, `pipeline`, `ailoop`, ...
    pub kind: String,
    /// Its name.
    pub name: String,
    /// `running`, `done` or `failed`; `lost` if its main vanished while it ran.
    pub state: String,
    /// Its last line, final figures, or why it failed.
    pub detail: String,
    /// Steps done.
    pub step: u32,
    /// Steps in all (0: unknown).
    pub steps: u32,
    /// `round`, `epoch`, `task`, `iteration`.
    pub step_name: String,
    /// Its curve, oldest first.
    pub points: Vec<PointView>,
}

/// One point of a session's curve.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PointView {
    /// The round, epoch or iteration.
    pub step: u32,
    /// `None`: the aggregate model; `Some(k)`: shard (or worker) k, 0-based.
    pub shard: Option<u32>,
    /// Training loss.
    pub loss: Option<f64>,
    /// Test accuracy.
    pub accuracy: Option<f64>,
    /// Test mean squared error.
    pub mse: Option<f64>,
    /// Seconds since the session began.
    pub seconds: f64,
}

/// How long a main's last summary stays in view after it left or vanished.
pub const SUMMARY_MEMORY: Duration = Duration::from_secs(600);
/// Mains whose summaries a monitor keeps (memory a peer can make it use is bounded).
pub(super) const MAX_SUMMARIES: usize = 64;

/// A main's summary as shown: `finished` once it said it left (its participant going after
/// that is no loss), `running` while heard, else `lost`.
pub(super) fn main_view(s: &MainSummary, said: NodeState, node_state: &str) -> MainView {
    let state = match (said, node_state) {
        (NodeState::Dropped | NodeState::Stopped, _) => "finished",
        (_, "running") => "running",
        _ => "lost",
    };
    // An f32 widened as its shortest decimal (0.8976, not 0.897599995...): what the main
    // measured, as it printed it.
    let widen = |v: f32| v.to_string().parse::<f64>().unwrap_or(v as f64);
    let figure = |v: f32| (!v.is_nan()).then(|| widen(v));
    MainView {
        state: state.to_owned(),
        sent: s.jobs_sent,
        solved: s.jobs_solved,
        failed: s.jobs_failed,
        resent: s.jobs_resent,
        duplicates_dropped: s.duplicates_dropped,
        in_flight: s.jobs_in_flight,
        computing_nodes: s.computing_nodes,
        solved_per_s: if state == "running" {
            widen(s.solved_per_s)
        } else {
            0.0
        },
        bytes_sent: s.bytes_sent,
        bytes_received: s.bytes_received,
        uptime_s: s.uptime_ms as f64 / 1000.0,
        sessions: (s.sessions.iter())
            .map(|x| SessionView {
                kind: x.kind.clone(),
                name: x.name.clone(),
                state: match (x.state, state) {
                    (SessionState::Running, "running") => "running",
                    (SessionState::Running, _) => "lost",
                    (other, _) => other.name(),
                }
                .to_owned(),
                detail: x.detail.clone(),
                step: x.step,
                steps: x.steps,
                step_name: x.step_name.clone(),
                points: (x.points.iter())
                    .map(|p| PointView {
                        step: p.step,
                        shard: p.series.checked_sub(1),
                        loss: figure(p.loss),
                        accuracy: figure(p.accuracy),
                        mse: figure(p.mse),
                        seconds: widen(p.seconds),
                    })
                    .collect(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::summary::{CurvePoint, SessionSummary, SUMMARY_VERSION};
    use crate::wire::AmlipId;

    fn summary() -> MainSummary {
        let session = |state| SessionSummary {
            kind: "fedavg".into(),
            name: "mlp".into(),
            state,
            detail: String::new(),
            step: 1,
            steps: 3,
            step_name: "round".into(),
            points: vec![CurvePoint {
                step: 1,
                series: 2,
                loss: f32::NAN,
                accuracy: 0.8976,
                mse: f32::NAN,
                seconds: 1.5,
            }],
        };
        MainSummary {
            id: AmlipId::from_parts("Main", [1, 2, 3, 4]).unwrap(),
            version: SUMMARY_VERSION,
            jobs_sent: 3,
            jobs_solved: 2,
            jobs_failed: 0,
            jobs_resent: 0,
            duplicates_dropped: 0,
            bytes_sent: 0,
            bytes_received: 0,
            uptime_ms: 2500,
            jobs_in_flight: 1,
            computing_nodes: 3,
            solved_per_s: 0.5,
            sessions: vec![session(SessionState::Running), session(SessionState::Done)],
        }
    }

    #[test]
    fn a_main_that_left_is_finished_and_one_that_vanished_is_lost_with_its_running_sessions() {
        let s = summary();
        fn states(v: &MainView) -> (String, Vec<&str>, f64) {
            let sessions = v.sessions.iter().map(|s| s.state.as_str()).collect();
            (v.state.clone(), sessions, v.solved_per_s)
        }
        let running = main_view(&s, NodeState::Running, "running");
        assert_eq!(
            states(&running),
            ("running".into(), vec!["running", "done"], 0.5)
        );
        // Said goodbye: final, even once DDS sees its participant go.
        let left = main_view(&s, NodeState::Dropped, "lost");
        assert_eq!(
            states(&left),
            ("finished".into(), vec!["lost", "done"], 0.0)
        );
        // Heartbeats stopped without a word.
        let gone = main_view(&s, NodeState::Running, "silent");
        assert_eq!(states(&gone), ("lost".into(), vec!["lost", "done"], 0.0));
        let p = &running.sessions[0].points[0];
        assert_eq!((p.shard, p.accuracy, p.loss), (Some(1), Some(0.8976), None));
        assert_eq!((p.seconds, running.uptime_s), (1.5, 2.5));
    }
}
