// `main-node ai-loop` over three real computing nodes (one also an inference node), one of them
// killed mid-loop: the loop still ends with five successes, each within 0.05 of the Taylor
// value of its x.

use std::time::Duration;

use crate::common::{computing, domain, main as main_proc};

const RUN: Duration = Duration::from_secs(300);

/// sin's Taylor series to 12 terms, written out here independently of the library's.
fn taylor(x: f64) -> f64 {
    (0..12)
        .map(|k| {
            let n = 2 * k + 1;
            let fact: f64 = (1..=n).map(|i| i as f64).product();
            (-1f64).powi(k) * x.powi(n) / fact
        })
        .sum()
}

/// The number after `name = ` in `line`, the name starting a word.
fn field(line: &str, name: &str) -> f64 {
    let key = format!("{name} = ");
    let at = line
        .match_indices(&key)
        .map(|(i, _)| i)
        .find(|&i| i == 0 || !line.as_bytes()[i - 1].is_ascii_alphanumeric())
        .unwrap_or_else(|| panic!("{name} in {line}"));
    let rest = &line[at + key.len()..];
    let end = rest.find([',', ')', ' ']).unwrap_or(rest.len());
    rest[..end]
        .parse()
        .unwrap_or_else(|e| panic!("{name} in {line}: {e}"))
}

#[test]
fn the_loop_reaches_five_successes_with_a_computing_node_killed_mid_loop() {
    let d = domain();
    let _inference = computing("C0", &d, &["--serve-models"]);
    let _c1 = computing("C1", &d, &[]);
    let mut c2 = computing("C2", &d, &[]);
    // One epoch per round of samples makes the model need several rounds of sim-expensive
    // (24 jobs each), so the loop is still running when C2 is killed.
    let mut main = main_proc(
        &d,
        &[
            "ai-loop",
            "--wait-nodes",
            "3",
            "--epochs",
            "1",
            "--expensive-steps",
            "30000",
        ],
    );
    assert!(main.wait_for("training", RUN), "{}", main.output());
    c2.kill_hard();
    let killed_at = main.output().len();
    let status = main.wait_exit(RUN).expect("the loop ends");
    let out = main.output();
    assert!(status.success(), "{out}");
    let after = &out[killed_at..];
    assert!(
        after.contains("training"),
        "no training after the kill:\n{out}"
    );
    let successes: Vec<&str> = out.lines().filter(|l| l.starts_with("approx = ")).collect();
    assert_eq!(successes.len(), 5, "{out}");
    for line in successes {
        let (approx, exact, x) = (
            field(line, "approx"),
            field(line, "exact"),
            field(line, "x"),
        );
        let t = taylor(x);
        assert!((approx - t).abs() <= 0.05, "{line}: Taylor {t}");
        assert!(
            (exact - x.sin()).abs() < 1e-12 && (t - x.sin()).abs() < 1e-8,
            "{line}"
        );
    }
    assert!(out.contains("5 successes in "), "{out}");
    assert!(out.contains("inference: inference node"), "{out}");
    for phase in ["sim-expensive", "training (nn_fit job)", "total"] {
        assert!(out.contains(phase), "{phase}: {out}");
    }
}
