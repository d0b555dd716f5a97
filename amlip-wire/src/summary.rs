//! `amlipx::main_summary`: what a main does, for status views anywhere on the domain (see
//! `idl/amlipx.idl`).
//!
//! Every amlip main publishes one on `amlipx/main_summary` (keep last 1, transient local) when
//! it changed, at most about once a second: its job counters and the sessions it runs, each
//! with a bounded curve. Every count and string is bounded on both sides, so a summary is at
//! most [`MAX_SUMMARY_BYTES`] and a hostile one cannot make a reader allocate more.

use bytes::Bytes;

use super::cdr::{ByteOrder, CdrReader, CdrWriter};
use super::{AmlipId, WireError, WireType};

/// Version of the summary layout. A reader refuses another.
pub const SUMMARY_VERSION: u32 = 1;
/// Sessions one summary lists (the running ones first, then the latest finished).
pub const MAX_SESSIONS: usize = 16;
/// Points one session's curve holds (a longer history is thinned by its publisher).
pub const MAX_POINTS: usize = 128;
/// Longest session kind, in bytes.
pub const MAX_KIND: usize = 32;
/// Longest session name, in bytes.
pub const MAX_NAME: usize = 128;
/// Longest session detail line, in bytes.
pub const MAX_DETAIL: usize = 256;
/// Longest step name ("round", "epoch", ...), in bytes.
pub const MAX_STEP_NAME: usize = 16;
/// The largest summary these bounds allow, in bytes (about 58 KB).
pub const MAX_SUMMARY_BYTES: usize = 256
    + MAX_SESSIONS
        * (4 * 8 + MAX_KIND + MAX_NAME + MAX_DETAIL + MAX_STEP_NAME + MAX_POINTS * POINT_BYTES);
const POINT_BYTES: usize = 24;

/// Where a session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// Still running.
    Running,
    /// Ended with its result.
    Done,
    /// Ended without one (an error, or interrupted).
    Failed,
}

impl SessionState {
    fn to_u32(self) -> u32 {
        match self {
            Self::Running => 0,
            Self::Done => 1,
            Self::Failed => 2,
        }
    }

    fn from_u32(n: u32) -> Result<Self, WireError> {
        Ok(match n {
            0 => Self::Running,
            1 => Self::Done,
            2 => Self::Failed,
            n => {
                return Err(WireError::Invalid {
                    field: "sessions.state",
                    reason: format!("unknown session state {n}"),
                })
            }
        })
    }

    /// `running`, `done` or `failed`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }
}

/// One point of a session's curve. `NaN` stands for a figure not measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CurvePoint {
    /// The round, epoch or iteration (1-based).
    pub step: u32,
    /// 0: the aggregate model; k: shard (or worker) k - 1.
    pub series: u32,
    /// Training loss.
    pub loss: f32,
    /// Test accuracy.
    pub accuracy: f32,
    /// Test mean squared error.
    pub mse: f32,
    /// Seconds since the session began.
    pub seconds: f32,
}

/// One session a main runs.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionSummary {
    /// What it is: `fedavg`, `aml`, `allreduce`, `pipeline`, `ailoop`, ...
    pub kind: String,
    /// Its name, as its main calls it.
    pub name: String,
    /// Where it stands.
    pub state: SessionState,
    /// What it says now: its last line, its final figures, or why it failed.
    pub detail: String,
    /// Steps done.
    pub step: u32,
    /// Steps in all (0: unknown).
    pub steps: u32,
    /// What a step is: `round`, `epoch`, `task`, `iteration`.
    pub step_name: String,
    /// Its curve, oldest first.
    pub points: Vec<CurvePoint>,
}

/// `amlipx::main_summary` on `amlipx/main_summary`.
#[derive(Debug, Clone, PartialEq)]
pub struct MainSummary {
    /// The main.
    pub id: AmlipId,
    /// [`SUMMARY_VERSION`].
    pub version: u32,
    /// Jobs submitted.
    pub jobs_sent: u64,
    /// Jobs solved.
    pub jobs_solved: u64,
    /// Jobs ended without a solution.
    pub jobs_failed: u64,
    /// Jobs re-sent (holder gone, deadline passed).
    pub jobs_resent: u64,
    /// Answers dropped because their job was already decided.
    pub duplicates_dropped: u64,
    /// Bytes of jobs submitted.
    pub bytes_sent: u64,
    /// Bytes of solutions accepted.
    pub bytes_received: u64,
    /// Milliseconds since the main started.
    pub uptime_ms: u64,
    /// Jobs waiting for or held by a computing node.
    pub jobs_in_flight: u32,
    /// Computing nodes the main knows alive.
    pub computing_nodes: u32,
    /// Jobs solved per second over the last 10 s.
    pub solved_per_s: f32,
    /// Its sessions, at most [`MAX_SESSIONS`].
    pub sessions: Vec<SessionSummary>,
}

fn bounded<'a>(
    r: &mut CdrReader<'a>,
    field: &'static str,
    max: usize,
) -> Result<&'a str, WireError> {
    let s = r.string(field)?;
    if s.len() > max {
        return Err(WireError::Invalid {
            field,
            reason: format!("{} bytes, at most {max}", s.len()),
        });
    }
    Ok(s)
}

fn count(
    r: &mut CdrReader<'_>,
    field: &'static str,
    max: usize,
    min_bytes: usize,
) -> Result<usize, WireError> {
    let n = r.u32(field)? as usize;
    if n > max || n.saturating_mul(min_bytes) > r.remaining() {
        return Err(WireError::Invalid {
            field,
            reason: format!("{n} entries (at most {max}, in {} bytes)", r.remaining()),
        });
    }
    Ok(n)
}

/// Cuts `s` to at most `max` bytes, at a character boundary.
pub fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl WireType for MainSummary {
    const TYPE_NAME: &'static str = "amlipx::main_summary";

    /// Writes the summary, clipping what exceeds the bounds (strings cut, the oldest points
    /// and the last sessions left out) so that every reader accepts it.
    fn encode(&self) -> Vec<u8> {
        let mut w = CdrWriter::new();
        self.id.write(&mut w);
        w.u32(self.version);
        for v in [
            self.jobs_sent,
            self.jobs_solved,
            self.jobs_failed,
            self.jobs_resent,
            self.duplicates_dropped,
            self.bytes_sent,
            self.bytes_received,
            self.uptime_ms,
        ] {
            w.u64(v);
        }
        w.u32(self.jobs_in_flight);
        w.u32(self.computing_nodes);
        w.u32(self.solved_per_s.to_bits());
        let sessions = &self.sessions[..self.sessions.len().min(MAX_SESSIONS)];
        w.u32(sessions.len() as u32);
        for s in sessions {
            w.string(clip(&s.kind, MAX_KIND));
            w.string(clip(&s.name, MAX_NAME));
            w.u32(s.state.to_u32());
            w.string(clip(&s.detail, MAX_DETAIL));
            w.u32(s.step);
            w.u32(s.steps);
            w.string(clip(&s.step_name, MAX_STEP_NAME));
            let points = &s.points[s.points.len().saturating_sub(MAX_POINTS)..];
            w.u32(points.len() as u32);
            for p in points {
                w.u32(p.step);
                w.u32(p.series);
                for v in [p.loss, p.accuracy, p.mse, p.seconds] {
                    w.u32(v.to_bits());
                }
            }
        }
        w.finish()
    }

    fn decode(body: &Bytes, order: ByteOrder) -> Result<Self, WireError> {
        let mut r = CdrReader::new(body, order);
        let id = AmlipId::read(&mut r, "id")?;
        let version = r.u32("version")?;
        if version != SUMMARY_VERSION {
            return Err(WireError::Invalid {
                field: "version",
                reason: format!("summary version {version}, this node reads {SUMMARY_VERSION}"),
            });
        }
        let mut u = [0u64; 8];
        for v in &mut u {
            *v = r.u64("counters")?;
        }
        let jobs_in_flight = r.u32("jobs_in_flight")?;
        let computing_nodes = r.u32("computing_nodes")?;
        let solved_per_s = f32::from_bits(r.u32("solved_per_s")?);
        // A session is at least 4 strings of 5 bytes and 4 numbers.
        let n = count(&mut r, "sessions.length", MAX_SESSIONS, 36)?;
        let mut sessions = Vec::with_capacity(n);
        for _ in 0..n {
            let kind = bounded(&mut r, "sessions.kind", MAX_KIND)?.to_owned();
            let name = bounded(&mut r, "sessions.name", MAX_NAME)?.to_owned();
            let state = SessionState::from_u32(r.u32("sessions.state")?)?;
            let detail = bounded(&mut r, "sessions.detail", MAX_DETAIL)?.to_owned();
            let step = r.u32("sessions.step")?;
            let steps = r.u32("sessions.steps")?;
            let step_name = bounded(&mut r, "sessions.step_name", MAX_STEP_NAME)?.to_owned();
            let m = count(&mut r, "sessions.points.length", MAX_POINTS, POINT_BYTES)?;
            let mut points = Vec::with_capacity(m);
            for _ in 0..m {
                let step = r.u32("points.step")?;
                let series = r.u32("points.series")?;
                let mut f = [0f32; 4];
                for v in &mut f {
                    *v = f32::from_bits(r.u32("points.figures")?);
                }
                points.push(CurvePoint {
                    step,
                    series,
                    loss: f[0],
                    accuracy: f[1],
                    mse: f[2],
                    seconds: f[3],
                });
            }
            sessions.push(SessionSummary {
                kind,
                name,
                state,
                detail,
                step,
                steps,
                step_name,
                points,
            });
        }
        r.end()?;
        Ok(Self {
            id,
            version,
            jobs_sent: u[0],
            jobs_solved: u[1],
            jobs_failed: u[2],
            jobs_resent: u[3],
            duplicates_dropped: u[4],
            bytes_sent: u[5],
            bytes_received: u[6],
            uptime_ms: u[7],
            jobs_in_flight,
            computing_nodes,
            solved_per_s,
            sessions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(points: usize) -> SessionSummary {
        SessionSummary {
            kind: "fedavg".into(),
            name: "mlp 784-128-10".into(),
            state: SessionState::Running,
            detail: "round 2/3: accuracy 0.9123".into(),
            step: 2,
            steps: 3,
            step_name: "round".into(),
            points: (0..points as u32)
                .map(|i| CurvePoint {
                    step: i + 1,
                    series: i % 4,
                    loss: 0.5 / (i + 1) as f32,
                    accuracy: f32::NAN,
                    mse: 0.25,
                    seconds: i as f32,
                })
                .collect(),
        }
    }

    fn summary(sessions: Vec<SessionSummary>) -> MainSummary {
        MainSummary {
            id: AmlipId::from_parts("Main", [1, 2, 3, 4]).unwrap(),
            version: SUMMARY_VERSION,
            jobs_sent: 12,
            jobs_solved: 9,
            jobs_failed: 1,
            jobs_resent: 2,
            duplicates_dropped: 3,
            bytes_sent: 1 << 40,
            bytes_received: 77,
            uptime_ms: 5_000,
            jobs_in_flight: 2,
            computing_nodes: 3,
            solved_per_s: 1.5,
            sessions,
        }
    }

    /// Equality that treats NaN figures as equal (they stand for "not measured").
    fn same(a: &MainSummary, b: &MainSummary) -> bool {
        format!("{a:?}") == format!("{b:?}")
    }

    #[test]
    fn a_summary_round_trips_with_its_figures_and_unmeasured_ones() {
        let s = summary(vec![session(5), session(0)]);
        let back = MainSummary::from_payload(&s.to_payload()).unwrap();
        assert!(same(&back, &s), "{back:?}");
        assert!(back.sessions[0].points[0].accuracy.is_nan());
    }

    #[test]
    fn what_exceeds_the_bounds_is_clipped_on_the_way_out() {
        let mut long = session(MAX_POINTS + 10);
        long.name = "é".repeat(MAX_NAME); // two bytes each: cut at a character boundary
        long.detail = "x".repeat(1000);
        let s = summary(vec![long; MAX_SESSIONS + 3]);
        let bytes = s.to_payload();
        assert!(bytes.len() <= MAX_SUMMARY_BYTES, "{} bytes", bytes.len());
        let back = MainSummary::from_payload(&bytes).unwrap();
        assert_eq!(back.sessions.len(), MAX_SESSIONS);
        let first = &back.sessions[0];
        assert_eq!(first.points.len(), MAX_POINTS);
        assert_eq!(first.points[0].step, 11, "the newest points are kept");
        assert_eq!(first.name.len(), MAX_NAME);
        assert_eq!(first.detail.len(), MAX_DETAIL);
    }

    #[test]
    fn hostile_counts_and_strings_are_refused_naming_the_field() {
        let good = summary(vec![session(1)]).to_payload();
        // The session count sits right after the fixed part: id (4 + 5 + 4 bytes, padded to
        // 16), version, 8 counters, 3 numbers.
        let at = 4 + 16 + 4 + 4 + 64 + 12;
        assert_eq!(&good[at..at + 4], &1u32.to_le_bytes());
        let mut p = good.clone();
        p[at..at + 4].copy_from_slice(&1_000_000u32.to_le_bytes());
        let e = MainSummary::from_payload(&p).unwrap_err().to_string();
        assert!(e.contains("sessions.length"), "{e}");
        // A kind longer than its bound.
        let mut p = good.clone();
        p[at + 4..at + 8].copy_from_slice(&200u32.to_le_bytes());
        let e = MainSummary::from_payload(&p).unwrap_err().to_string();
        assert!(e.contains("sessions.kind"), "{e}");
        // Another version.
        let mut p = good.clone();
        p[20..24].copy_from_slice(&9u32.to_le_bytes());
        let e = MainSummary::from_payload(&p).unwrap_err().to_string();
        assert!(e.contains("version 9"), "{e}");
        // Cut anywhere: an error, never a panic.
        for cut in 0..good.len() - 4 {
            assert!(
                MainSummary::from_payload(&good[..cut]).is_err(),
                "cut at {cut}"
            );
        }
    }
}
