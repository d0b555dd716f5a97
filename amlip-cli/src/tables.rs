//! The binaries' text reports: the status table, an all-reduce session's epochs and group
//! formations, an online trainer's counts per producer, the AI loop's phases, the models
//! announced on a domain. Each returns the
//! text; the binaries print it.

use std::fmt::Write;

use amlip_core::ailoop::AiLoopReport;
use amlip_core::infer::query::specs_text;
use amlip_core::infer::wire::{Announcement, Role};
use amlip_core::node::{ClientStats, MainView, NodeView};
use amlip_core::pipeline::TaskReport;
use amlip_core::session::AllReduceReport;
use amlip_core::stream::OnlineReport;
use amlip_core::wire::ModelStatistics;

/// `main-node status`: one line per node, and the count.
pub fn status(nodes: &[NodeView]) -> String {
    let mut out = format!(
        "{:<28} {:<12} {:<8} {:<15} {:>9} {:>7} {:>11}\n",
        "NODE", "KIND", "STATE", "HOST", "IN FLIGHT", "DONE", "LAST HEARD"
    );
    for n in nodes {
        let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "{:<28} {:<12} {:<8} {:<15} {:>9} {:>7} {:>10.1}s",
            n.id,
            n.kind,
            n.state,
            opt(n.host.clone()),
            opt(n.jobs_in_flight.map(|j| j.to_string())),
            opt(n.jobs_done.map(|j| j.to_string())),
            n.last_heard_ms as f64 / 1000.0
        );
    }
    let _ = write!(out, "{} node(s)", nodes.len());
    let mains: Vec<(&str, &MainView)> = (nodes.iter())
        .filter_map(|n| Some((n.id.as_str(), n.main.as_ref()?)))
        .collect();
    if mains.is_empty() {
        return out;
    }
    let _ = write!(
        out,
        "\n\n{:<28} {:<9} {:>7} {:>7} {:>7} {:>8} {:>9} {:>8}",
        "MAIN", "STATE", "SENT", "SOLVED", "FAILED", "RE-SENT", "IN FLIGHT", "SOLVED/S"
    );
    for (id, m) in &mains {
        let _ = write!(
            out,
            "\n{id:<28} {:<9} {:>7} {:>7} {:>7} {:>8} {:>9} {:>8.1}",
            m.state, m.sent, m.solved, m.failed, m.resent, m.in_flight, m.solved_per_s
        );
    }
    let sessions = mains
        .iter()
        .flat_map(|(id, m)| m.sessions.iter().map(move |s| (id, s)));
    let mut first = true;
    for (id, s) in sessions {
        if first {
            let _ = write!(
                out,
                "\n\n{:<28} {:<10} {:<8} {:<14} SESSION",
                "MAIN", "KIND", "STATE", "STEP"
            );
            first = false;
        }
        let step = match s.steps {
            0 => format!("{} {}", s.step_name, s.step),
            n => format!("{} {}/{n}", s.step_name, s.step),
        };
        let _ = write!(
            out,
            "\n{id:<28} {:<10} {:<8} {step:<14} {}",
            s.kind, s.state, s.name
        );
        if !s.detail.is_empty() {
            let _ = write!(out, "\n{:<28}   {}", "", s.detail);
        }
    }
    out
}

/// An all-reduce session: its epochs, the group's formations, the hash check, the jobs and the
/// time split (the seed's `Total Training Time` line).
pub fn allreduce(report: &AllReduceReport, jobs: &ClientStats) -> String {
    let metric = if report.network.spec().loss.classifies() {
        "test accuracy"
    } else {
        "test MSE"
    };
    let mut out = format!("\nepoch  {metric:>13}  train loss\n");
    for e in &report.epochs {
        let _ = writeln!(out, "{:>5}  {:>13.4}  {:>10.4}", e.epoch, e.score, e.loss);
    }
    out.push_str("\nworkers  steps        training s  communication s  testing s  ended\n");
    for g in &report.generations {
        let _ = writeln!(
            out,
            "{:>7}  {:>5}-{:<5}  {:>10.1}  {:>15.1}  {:>9.1}  {}",
            g.world,
            g.steps.0,
            g.steps.1,
            g.times.training,
            g.times.communication,
            g.times.testing,
            g.ended
        );
    }
    if report.generations.len() > 1 {
        let _ = writeln!(
            out,
            "re-formed the group {} time(s) after losing workers",
            report.generations.len() - 1
        );
    }
    let _ = writeln!(
        out,
        "parameters identical on every worker after each of {} steps (hash checked)",
        report.steps_checked
    );
    let _ = writeln!(
        out,
        "jobs: {} sent, {} solved, {} re-sent",
        jobs.submitted, jobs.solved, jobs.resent
    );
    let (training, testing) = report.total_times();
    let _ = write!(
        out,
        "Total Training Time {training:.1} s, Total Testing Time {testing:.1} s (rank 0)"
    );
    out
}

/// An online trainer's counts: a line per producer (with its problems), the totals, and the
/// final validation.
pub fn online(report: &OnlineReport) -> String {
    let mut out = format!(
        "\n{:<5} {:>9} {:>9} {:>8} {:>15} {:>17} {:>5}  state\n",
        "rank", "produced", "received", "kept", "rejected shp/nan", "dropped prod/cap", "dups"
    );
    for p in &report.producers {
        let _ = writeln!(
            out,
            "{:<5} {:>9} {:>9} {:>8} {:>15} {:>17} {:>5}  {}",
            p.rank,
            p.produced,
            p.received,
            p.kept,
            format!("{}/{}", p.rejected_shape, p.rejected_values),
            format!("{}/{}", p.dropped_by_producer, p.dropped_by_cap),
            p.duplicates,
            p.state
        );
        for problem in &p.problems {
            let _ = writeln!(out, "      rank {}: {problem}", p.rank);
        }
    }
    let t = report.totals();
    let _ = write!(
        out,
        "samples: {} produced, {} received, {} kept, {} rejected, {} dropped, {} unaccounted",
        t.produced, t.received, t.kept, t.rejected, t.dropped, t.missing
    );
    if let Some(v) = report.epochs.last().and_then(|e| e.validation) {
        let _ = write!(
            out,
            "\nvalidation MSE {v:.6} after {} epochs ({:.1} s); {}",
            report.epochs.len(),
            report.seconds,
            report.ended
        );
    }
    out
}

/// A pipeline's tasks: kind, attempts, seconds, where each ran and its result.
pub fn pipeline(reports: &[TaskReport]) -> String {
    let mut out = format!(
        "\n{:<16} {:<9} {:>8} {:>9}  {:<24} result",
        "task", "kind", "attempts", "seconds", "ran on"
    );
    for r in reports {
        let _ = write!(
            out,
            "\n{:<16} {:<9} {:>8} {:>9.1}  {:<24} {}",
            r.name, r.kind, r.attempts, r.seconds, r.nodes, r.summary
        );
    }
    out
}

/// The AI loop: successes, iterations and trainings, then seconds per phase.
pub fn ailoop(report: &AiLoopReport) -> String {
    let p = &report.phases;
    let mut out = format!(
        "\n{} successes in {} iterations; trained {} time(s); inference: {}; {} job(s) re-sent\n",
        report.successes.len(),
        report.iterations,
        report.times_trained,
        report.inference,
        report.resent
    );
    let _ = write!(out, "{:<34} {:>8}", "phase", "seconds");
    for (name, secs) in [
        ("inference + sim-cheap (at once)", p.check),
        ("  inference", p.inference),
        ("  sim-cheap (4 jobs)", p.sim_cheap),
        ("sim-expensive", p.sim_expensive),
        ("training (nn_fit job)", p.training),
        ("handing models to inference", p.serving),
        ("total", report.seconds),
    ] {
        let _ = write!(out, "\n{name:<34} {secs:>8.2}");
    }
    out
}

/// `main-node models`: one line per announcement (sorted by model, then node), as a table or as
/// JSON lines; an announcement that does not parse is shown with the reason.
pub fn models(stats: &mut [ModelStatistics], json: bool, domain: u16) -> String {
    stats.sort_by(|a, b| (&a.name, &a.server_id).cmp(&(&b.name, &b.server_id)));
    let mut out = String::new();
    if !json {
        let _ = writeln!(
            out,
            "{:<16} {:>14} {:<14} {:<7} {:<34} {:<8} INPUTS",
            "MODEL", "VERSION", "KIND", "ROLE", "NODE", "ENGINE"
        );
    }
    for s in stats.iter() {
        let node = s.server_id.to_string();
        let _ = match (Announcement::parse(&s.data), json) {
            (Ok(a), true) => writeln!(
                out,
                "{}",
                serde_json::json!({"model": s.name, "node": node, "role": a.role, "info": a.info})
            ),
            (Ok(a), false) => {
                let role = match a.role {
                    Role::Sender => "offers",
                    Role::Server => "serves",
                };
                let (version, kind) = (a.info.version, &a.info.kind);
                let inputs = specs_text(&a.info.inputs);
                // `tract: WHY` in full would push the inputs off the line: the why is in
                // `--json` and in the serving node's log.
                let engine = match a.info.engine.split(':').next() {
                    Some("") | None => "?",
                    Some(e) => e,
                };
                writeln!(
                    out,
                    "{:<16} {version:>14} {kind:<14} {role:<7} {node:<34} {engine:<8} {inputs}",
                    s.name
                )
            }
            (Err(why), true) => writeln!(
                out,
                "{}",
                serde_json::json!({"model": s.name, "node": node, "error": why})
            ),
            (Err(why), false) => writeln!(out, "{:<16} (from {node}) {why}", s.name),
        };
    }
    if stats.is_empty() && !json {
        let _ = writeln!(out, "(no model announced on domain {domain})");
    }
    out
}
