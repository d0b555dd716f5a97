//! The QoS of every endpoint, set explicitly (rustdds defaults are a trap: a reader keeps only 64
//! samples and silently drops the rest).
//!
//! What must match AML-IP is RELIABLE + TRANSIENT_LOCAL (both are request/offer policies: a
//! volatile writer would not match AML-IP's transient-local readers). History is not a
//! request/offer policy, so our writers use KEEP_LAST with a depth chosen per topic instead of
//! KEEP_ALL: a rustdds writer only evicts samples every reader has acknowledged, so no reliable
//! delivery is lost, and a main that sends a thousand 10 MB jobs does not keep all of them in
//! memory forever.
//!
//! Reader limits matter twice in rustdds: `max_samples` is how many unread samples a reader can
//! hold before it silently drops, and also how many (read or not) its topic cache keeps. So the
//! topics that may carry big single samples get small limits, and the chunk stream (bounded
//! 60 KB chunks) gets a large one.

use rustdds::policy::{Deadline, Durability, History, Reliability, ResourceLimits};
use rustdds::{QosPolicies, QosPolicyBuilder};

/// What a topic carries, which decides its QoS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// `job_request_availability`, `job_reply_available_*`, `job_task_target`: small and many.
    /// The history a late-joining computing node replays comes from here.
    JobControl,
    /// `job_task_data_*`, `job_task_solution_*`: one GENERIC sample per job, possibly 50 MB.
    JobPayload,
    /// `amlip/status`: KEEP_LAST 1 on the writer, as AML-IP.
    Status,
    /// `amlipx/node_info`: heartbeats; late joiners get each node's latest at once.
    NodeInfo,
    /// `amlipx/main_summary`: each main's latest summary (up to ~58 KB); late joiners get it
    /// at once.
    Summary,
    /// `amlipx/stream_*`: bounded chunks under a credit window.
    Stream,
    /// `amlipx/credit_*`: flow-control acknowledgments.
    Credit,
    /// `amlip/rpc_request_model_*`, `amlip/rpc_reply_model_*`: one model (up to a few MB) per
    /// sample; a writer keeps only its latest, so forged requests cannot pile models up.
    ModelRpc,
}

/// How long a write may wait for room in a reliable writer's window before it fails.
pub const MAX_BLOCKING_TIME: std::time::Duration = std::time::Duration::from_secs(5);

impl Profile {
    fn writer_depth(self) -> i32 {
        match self {
            Profile::JobControl => 4096,
            Profile::JobPayload => 4,
            Profile::Status | Profile::NodeInfo | Profile::Summary => 1,
            Profile::Stream => 1024,
            Profile::Credit => 64,
            Profile::ModelRpc => 1,
        }
    }

    fn reader_max_samples(self) -> i32 {
        match self {
            Profile::JobControl => 8192,
            // A 50 MB GENERIC sample stays in the topic cache until pushed out; keep few.
            Profile::JobPayload => 32,
            Profile::Status | Profile::NodeInfo => 2048,
            // At most ~15 MB of summaries cached, whatever peers send.
            Profile::Summary => 256,
            // 60 KB chunks: at most ~30 MB retained; a sender has at most a 2 MB window (~35
            // chunks) unacknowledged, and we take samples as they come.
            Profile::Stream => 512,
            Profile::Credit => 1024,
            Profile::ModelRpc => 8,
        }
    }

    fn base() -> QosPolicyBuilder {
        QosPolicyBuilder::new()
            .reliability(Reliability::Reliable {
                max_blocking_time: rustdds::Duration::from_std(MAX_BLOCKING_TIME),
            })
            .durability(Durability::TransientLocal)
    }

    /// QoS for a writer of this profile.
    pub fn writer_qos(self) -> QosPolicies {
        let depth = self.writer_depth();
        let qos = Self::base()
            .history(History::KeepLast { depth })
            .resource_limits(ResourceLimits {
                max_samples: depth.max(self.reader_max_samples()),
                max_instances: 1,
                max_samples_per_instance: depth.max(self.reader_max_samples()),
            });
        match self {
            // A model (hundreds of KB) goes out as rustdds's 256-byte fragments in one burst;
            // a Fast DDS reader's default socket buffer drops much of it, and rustdds repairs
            // at most 8 KB per round, a round every fifth of the writer's Deadline (10 ms
            // without one). A 5 ms Deadline makes rounds 1 ms apart: a 400 KB model reaches
            // an AML-IP receiver well within its 2.5 s wait. Readers request no deadline, so
            // any offered one matches (Fast DDS's and ours); rustdds does not police it.
            Profile::ModelRpc => qos.deadline(Deadline(rustdds::Duration::from_millis(5))),
            // The same for jobs and solutions (1 MB to an AML-IP node: 1.5-4.1 s -> 0.3-0.5 s;
            // 10 MB: 31-53 s -> 6-7 s). It sets only the repair interval: nothing while idle.
            Profile::JobPayload => qos.deadline(Deadline(rustdds::Duration::from_millis(5))),
            _ => qos,
        }
        .build()
    }

    /// QoS for a reader of this profile (and for the topic, whose cache the reader uses).
    pub fn reader_qos(self) -> QosPolicies {
        let max = self.reader_max_samples();
        Self::base()
            .history(History::KeepAll)
            .resource_limits(ResourceLimits {
                max_samples: max,
                max_instances: 1,
                max_samples_per_instance: max,
            })
            .build()
    }
}
