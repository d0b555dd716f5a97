//! A forged chunk stream against a real `computing-node` process whose address space is
//! limited (`ulimit -v`): chunks announcing gigabytes (or more than any node accepts) cost what
//! they carry, not what they announce; the node neither aborts nor stops serving.

use std::time::Duration;

use crate::common::{computing_node, domain, Proc};
use amlip_core::dds::{topics, Participant, Profile};
use amlip_core::prelude::*;
use amlip_core::wire::ext::{Chunk, ChunkKind};

/// The node's resident memory, from /proc.
fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .expect("VmRSS")
}

#[test]
fn forged_chunks_cost_what_they_carry_under_an_address_space_limit() {
    let d = domain();
    // 1 GiB of address space: the node itself needs ~350 MB; one 2 GiB reservation would abort.
    let script = format!(
        "ulimit -v 1048576 && exec {} --name Victim --domain {} --network localhost",
        computing_node().display(),
        d.id()
    );
    let mut victim = Proc::spawn("Victim", "/bin/sh".into(), &["-c", &script], &[]);
    assert!(
        victim.wait_for("serving", Duration::from_secs(30)),
        "{}",
        victim.output()
    );
    let id: AmlipId = victim
        .output()
        .lines()
        .find_map(|l| {
            l.strip_prefix("computing node ")?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .expect("the node prints its id");
    let before = rss_kb(victim.pid());

    let attacker = Participant::new(d.id(), &Network::Localhost).unwrap();
    let stream = attacker
        .writer::<Chunk>(&topics::stream(&id), Profile::Stream)
        .unwrap();
    let forger = AmlipId::from_parts("Forger", [6, 6, 6, 6]).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // 200 transfers announcing 2 GiB each (accepted: at most the node's limit) and a few
        // announcing more than any node accepts, each with one 60 KB chunk.
        let totals = (0..200).map(|_| 2u64 << 30).chain([1 << 40, u64::MAX / 2]);
        for (i, total) in totals.enumerate() {
            let chunk = Chunk {
                sender_id: forger.clone(),
                transfer_id: i as u64,
                total_len: total,
                offset: 0,
                kind: ChunkKind::Job,
                client_id: forger.clone(),
                task_id: i as u32,
                server_id: id.clone(),
                data: Bytes::from(vec![0x5a; 60_000]),
            };
            stream.write(&chunk).await.unwrap();
        }
        stream.flush(Duration::from_secs(30)).await;
    });
    assert!(
        victim.wait_for("exceed this node's limit", Duration::from_secs(30)),
        "the oversized transfers were not refused:\n{}",
        victim.output()
    );
    assert!(
        victim.wait_exit(Duration::ZERO).is_none(),
        "the node died:\n{}",
        victim.output()
    );
    let after = rss_kb(victim.pid());
    // 200 transfers x 1 MiB (the first growth step) at most, plus the samples themselves.
    assert!(
        after < before + 400 * 1024,
        "resident memory grew from {before} kB to {after} kB"
    );
    // And it still serves.
    let main = MainNode::with_config(NodeConfig::new("Main").domain(d.id()).localhost()).unwrap();
    let s = main
        .request_job_solution("still here", Duration::from_secs(60))
        .unwrap();
    assert_eq!(&s.data[..], b"STILL HERE");
    assert_eq!(&s.server_id, &id);
}
