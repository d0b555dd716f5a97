//! A training's progress as numbers, round by round: what plots, metrics and dashboards show
//! while a session runs (the table is for its end).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;

/// One model's figures after a round: a shard's, or the aggregate's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainPoint {
    /// The round (1-based; AML sessions have one).
    pub round: usize,
    /// Rounds in all.
    pub rounds: usize,
    /// The shard (0-based); `None` for the aggregate model.
    pub shard: Option<usize>,
    /// Training loss (mean over the shards for the aggregate).
    pub loss: Option<f64>,
    /// Test accuracy (classification).
    pub accuracy: Option<f64>,
    /// Test mean squared error (regression).
    pub mse: Option<f64>,
    /// Seconds since the session's progress began.
    pub seconds: f64,
}

/// Points shared between a session and whoever shows them (clones share).
#[derive(Debug, Clone)]
pub struct Progress {
    points: Arc<Mutex<Vec<TrainPoint>>>,
    start: Instant,
}

impl Default for Progress {
    fn default() -> Self {
        Self {
            points: Arc::default(),
            start: Instant::now(),
        }
    }
}

impl Progress {
    /// An empty record, its clock starting now.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a point (its `seconds` set from the clock).
    pub fn push(&self, mut point: TrainPoint) {
        point.seconds = self.start.elapsed().as_secs_f64();
        self.points.lock().expect("progress").push(point);
    }

    /// Every point so far.
    pub fn points(&self) -> Vec<TrainPoint> {
        self.points.lock().expect("progress").clone()
    }

    /// The last aggregate point.
    pub fn last(&self) -> Option<TrainPoint> {
        let points = self.points.lock().expect("progress");
        points.iter().rev().find(|p| p.shard.is_none()).cloned()
    }
}
