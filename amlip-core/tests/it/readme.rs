//! The README's library example, verbatim but for the domain, which the test leases (keep
//! them in sync).

use std::time::Duration;

use amlip_core::prelude::*;

#[test]
fn readme_example() -> Result<(), Error> {
    let domain = amlip_testkit::domain();
    // A computing node serving upper-cased payloads, and a main sending it a job.
    let cfg = |name: &str| NodeConfig::new(name).domain(domain.id()).localhost();
    let mut computing = AsyncComputingNode::with_config(cfg("Computing"))?;
    computing.run(|job: &Job, _ctx: &JobContext| Ok(Bytes::from(job.data.to_ascii_uppercase())))?;

    let main = MainNode::with_config(cfg("Main"))?;
    let solution = main.request_job_solution("hello", Duration::from_secs(10))?;
    assert_eq!(&solution.data[..], b"HELLO");
    assert_eq!(&solution.server_id, computing.id());
    Ok(())
}
