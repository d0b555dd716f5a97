//! Payload sizes from 1 KB to 50 MB, round trip (job and equal-size solution), 20 times each.
//! Between amlip nodes large payloads travel as a chunk stream; with a plain AML-IP peer as one
//! GENERIC sample.

use std::time::{Duration, Instant};

use crate::common::{cfg, domain, uppercase_node};
use amlip_core::prelude::*;

fn round_trips(size: usize, times: usize, plain_computing: bool) {
    let d = domain();
    let _node = if plain_computing {
        let mut n =
            AsyncComputingNode::with_config(cfg("Plain", &d).aml_ip_compatible_only()).unwrap();
        n.run(amlip_core::kind::plain::uppercase).unwrap();
        n
    } else {
        uppercase_node("Computing", &d, Duration::ZERO)
    };
    let main = MainNode::with_config(cfg("Main", &d)).unwrap();
    // Distinct content per round so a stale or mixed-up buffer cannot pass.
    for round in 0..times {
        let letter = b'a' + (round % 26) as u8;
        let mut job = vec![letter; size];
        job[size / 2] = b'#';
        let t = Instant::now();
        let s = main
            .request_job_solution(job, Duration::from_secs(120))
            .unwrap_or_else(|e| panic!("{size} bytes, round {round}: {e}"));
        assert_eq!(s.data.len(), size, "round {round}");
        assert_eq!(s.data[size / 2], b'#');
        let upper = letter.to_ascii_uppercase();
        assert!(
            s.data
                .iter()
                .enumerate()
                .all(|(i, b)| i == size / 2 || *b == upper),
            "{size} bytes, round {round}: wrong content"
        );
        eprintln!("{size} bytes round {round}: {:?}", t.elapsed());
    }
    eprintln!("{size} bytes: {} job(s) re-sent", main.stats().resent);
}

#[test]
fn one_kilobyte_twenty_times() {
    round_trips(1_000, 20, false);
}

#[test]
fn one_megabyte_twenty_times() {
    round_trips(1_000_000, 20, false);
}

#[test]
fn one_megabyte_as_single_samples_with_a_plain_aml_ip_node() {
    round_trips(1_000_000, 5, true);
}

#[test]
#[ignore = "moves 400 MB; run with --ignored (CI runs it)"]
fn ten_megabytes_twenty_times() {
    round_trips(10_000_000, 20, false);
}

#[test]
#[ignore = "moves 2 GB; run with --ignored (CI runs it)"]
fn fifty_megabytes_twenty_times() {
    round_trips(50_000_000, 20, false);
}
