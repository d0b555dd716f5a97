//! Topic names. AML-IP's are `amlip/` + name (per-node topics end in the node's printed id);
//! amlip's extension topics start with `amlipx/`, which AML-IP never opens.

use crate::wire::{AmlipId, NodeKind};

/// Where mains ask for an idle computing node.
pub const JOB_REQUEST_AVAILABILITY: &str = "amlip/job_request_availability";
/// Where mains say which computing node takes a task.
pub const JOB_TASK_TARGET: &str = "amlip/job_task_target";
/// Every node's status.
pub const STATUS: &str = "amlip/status";
/// amlip's heartbeats (extension).
pub const NODE_INFO: &str = "amlipx/node_info";
/// What each main does (extension): jobs, sessions, curves.
pub const MAIN_SUMMARY: &str = "amlipx/main_summary";
/// Never written: a writer is created on it to check that a participant still works.
pub const PROBE: &str = "amlipx/probe";

/// Every fixed topic name, with its type name (for tools that probe them all).
pub const FIXED_TOPICS: [(&str, &str); 5] = [
    (JOB_REQUEST_AVAILABILITY, "amlip::ms_request"),
    (JOB_TASK_TARGET, "amlip::ms_reference"),
    (STATUS, "amlip::status"),
    (NODE_INFO, "amlipx::node_info"),
    (MAIN_SUMMARY, "amlipx::main_summary"),
];

/// Where computing nodes answer a main's availability requests.
pub fn job_reply_available(main: &AmlipId) -> String {
    Service::Job.reply_available(main)
}

/// Where a main sends a job to the chosen computing node.
pub fn job_task_data(computing: &AmlipId) -> String {
    Service::Job.task_data(computing)
}

/// Where computing nodes send solutions to a main.
pub fn job_task_solution(main: &AmlipId) -> String {
    Service::Job.task_solution(main)
}

/// Which of AML-IP's two client/server scenarios a node takes part in. They are one protocol
/// on different topics: `job` (main and computing nodes) and `inference` (edge and inference
/// nodes), the base word standing first in every topic name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// Mains send jobs to computing nodes.
    Job,
    /// Edge nodes send data to inference nodes.
    Inference,
}

impl Service {
    /// The scenario a node of `kind` takes part in (`None`: neither a client nor a server).
    pub fn of(kind: NodeKind) -> Option<Self> {
        match kind {
            NodeKind::Main | NodeKind::Computing => Some(Service::Job),
            NodeKind::Edge | NodeKind::Inference => Some(Service::Inference),
            _ => None,
        }
    }

    /// The base word of the topic names.
    pub fn base(self) -> &'static str {
        match self {
            Service::Job => "job",
            Service::Inference => "inference",
        }
    }

    /// The kind of the nodes that send work.
    pub fn client_kind(self) -> NodeKind {
        match self {
            Service::Job => NodeKind::Main,
            Service::Inference => NodeKind::Edge,
        }
    }

    /// The kind of the nodes that serve it.
    pub fn server_kind(self) -> NodeKind {
        match self {
            Service::Job => NodeKind::Computing,
            Service::Inference => NodeKind::Inference,
        }
    }

    /// Where clients ask for an idle server.
    pub fn request_availability(self) -> String {
        format!("amlip/{}_request_availability", self.base())
    }

    /// Where clients say which server takes a task.
    pub fn task_target(self) -> String {
        format!("amlip/{}_task_target", self.base())
    }

    /// Where servers answer a client's availability requests.
    pub fn reply_available(self, client: &AmlipId) -> String {
        format!("amlip/{}_reply_available_{client}", self.base())
    }

    /// Where a client sends work to the chosen server.
    pub fn task_data(self, server: &AmlipId) -> String {
        format!("amlip/{}_task_data_{server}", self.base())
    }

    /// Where servers send solutions to a client.
    pub fn task_solution(self, client: &AmlipId) -> String {
        format!("amlip/{}_task_solution_{client}", self.base())
    }

    /// The node a per-node topic of this scenario is named after, and that node's kind: a
    /// client for `reply_available` and `task_solution`, a server for `task_data`. `None` for
    /// any other topic, or a name that is not a node id.
    pub fn peer_of_topic(self, topic: &str) -> Option<(AmlipId, NodeKind)> {
        let rest = topic.strip_prefix("amlip/")?.strip_prefix(self.base())?;
        let (id, kind) = if let Some(id) = rest.strip_prefix("_reply_available_") {
            (id, self.client_kind())
        } else if let Some(id) = rest.strip_prefix("_task_solution_") {
            (id, self.client_kind())
        } else {
            (rest.strip_prefix("_task_data_")?, self.server_kind())
        };
        Some((id.parse().ok()?, kind))
    }
}

/// The node a model-manager RPC topic is named after: the receiver for
/// `rpc_reply_model_<id>`, the sender for `rpc_request_model_<id>`.
pub fn model_peer_of_topic(topic: &str) -> Option<(AmlipId, NodeKind)> {
    let (id, kind) = if let Some(id) = topic.strip_prefix("amlip/rpc_reply_model_") {
        (id, NodeKind::ModelReceiver)
    } else {
        (
            topic.strip_prefix("amlip/rpc_request_model_")?,
            NodeKind::ModelSender,
        )
    };
    Some((id.parse().ok()?, kind))
}

/// Where model managers and inference nodes announce the models they hold.
pub const MODEL_STATISTICS: &str = "amlip/model_statistics";

/// Where a model receiver asks the model sender `server` for a model.
pub fn rpc_request_model(server: &AmlipId) -> String {
    format!("amlip/rpc_request_model_{server}")
}

/// Where a model sender answers the model receiver `client`.
pub fn rpc_reply_model(client: &AmlipId) -> String {
    format!("amlip/rpc_reply_model_{client}")
}

/// Chunk stream into a node.
pub fn stream(receiver: &AmlipId) -> String {
    format!("amlipx/stream_{receiver}")
}

/// Credits back to a node that sends a stream.
pub fn credit(sender: &AmlipId) -> String {
    format!("amlipx/credit_{sender}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{
        ModelStatistics, MsData, MsReference, MsRequest, RpcReply, RpcRequest, Status, WireType,
    };

    /// Every AML-IP topic and type name amlip uses, as `docs/wire-protocol.md` lists them
    /// (measured against AML-IP v0.3): endpoints match on topic name + type name, so one
    /// character off and AML-IP nodes never see ours.
    #[test]
    fn aml_ip_names_are_the_spec_s() {
        let main = AmlipId::from_parts("Main", [0x11, 0x22, 0x33, 0x44]).unwrap();
        let comp = AmlipId::from_parts("Computing", [0xaa, 0xbb, 0xcc, 0xdd]).unwrap();
        let ours: Vec<(String, &str)> = vec![
            (JOB_REQUEST_AVAILABILITY.into(), MsRequest::TYPE_NAME),
            (job_reply_available(&main), MsReference::TYPE_NAME),
            (JOB_TASK_TARGET.into(), MsReference::TYPE_NAME),
            (job_task_data(&comp), MsData::TYPE_NAME),
            (job_task_solution(&main), MsData::TYPE_NAME),
            (STATUS.into(), Status::TYPE_NAME),
        ];
        let spec = [
            ("amlip/job_request_availability", "amlip::ms_request"),
            (
                "amlip/job_reply_available_Main.11.22.33.44",
                "amlip::ms_reference",
            ),
            ("amlip/job_task_target", "amlip::ms_reference"),
            (
                "amlip/job_task_data_Computing.aa.bb.cc.dd",
                "amlip::ms_data_GENERIC",
            ),
            (
                "amlip/job_task_solution_Main.11.22.33.44",
                "amlip::ms_data_GENERIC",
            ),
            ("amlip/status", "amlip::status"),
        ];
        for ((topic, ty), (want_topic, want_ty)) in ours.iter().zip(spec) {
            assert_eq!((topic.as_str(), *ty), (want_topic, want_ty));
        }
        assert_eq!(ModelStatistics::TYPE_NAME, "amlip::AMLIP-MODEL-STATISTICS");
        assert_eq!(MODEL_STATISTICS, "amlip/model_statistics");
        assert_eq!(RpcRequest::TYPE_NAME, "amlip::rpc_requestGENERIC");
        assert_eq!(RpcReply::TYPE_NAME, "amlip::rpc_replyGENERIC");
        assert_eq!(
            rpc_request_model(&comp),
            "amlip/rpc_request_model_Computing.aa.bb.cc.dd"
        );
        assert_eq!(
            rpc_reply_model(&main),
            "amlip/rpc_reply_model_Main.11.22.33.44"
        );
        // The inference scenario: the job protocol with `inference` for `job`.
        let edge = AmlipId::from_parts("Edge", [1, 2, 3, 4]).unwrap();
        let inf = AmlipId::from_parts("Inference", [5, 6, 7, 8]).unwrap();
        let s = Service::Inference;
        assert_eq!(
            s.request_availability(),
            "amlip/inference_request_availability"
        );
        assert_eq!(s.task_target(), "amlip/inference_task_target");
        assert_eq!(
            s.reply_available(&edge),
            "amlip/inference_reply_available_Edge.01.02.03.04"
        );
        assert_eq!(
            s.task_data(&inf),
            "amlip/inference_task_data_Inference.05.06.07.08"
        );
        assert_eq!(
            s.task_solution(&edge),
            "amlip/inference_task_solution_Edge.01.02.03.04"
        );
        assert_eq!(Service::of(NodeKind::Edge), Some(s));
        assert_eq!(Service::of(NodeKind::Inference), Some(s));
        assert_eq!(
            (s.client_kind(), s.server_kind()),
            (NodeKind::Edge, NodeKind::Inference)
        );
        for (topic, ty) in FIXED_TOPICS {
            let pinned = spec.contains(&(topic, ty));
            assert!(
                pinned || topic.starts_with("amlipx/"),
                "{topic} {ty} is not the spec's"
            );
        }
    }

    #[test]
    fn per_node_topics_name_their_node() {
        let main = AmlipId::from_parts("AML-MainNode", [1, 2, 3, 4]).unwrap();
        let comp = AmlipId::from_parts("AML-ComputingNode", [5, 6, 7, 8]).unwrap();
        let job = Service::Job;
        for (topic, want) in [
            (
                job.reply_available(&main),
                Some((main.clone(), NodeKind::Main)),
            ),
            (
                job.task_solution(&main),
                Some((main.clone(), NodeKind::Main)),
            ),
            (
                job.task_data(&comp),
                Some((comp.clone(), NodeKind::Computing)),
            ),
            (JOB_TASK_TARGET.to_string(), None),
            (Service::Inference.task_data(&comp), None),
            ("amlip/job_task_data_nonsense".to_string(), None),
        ] {
            assert_eq!(job.peer_of_topic(&topic), want, "{topic}");
        }
        assert_eq!(
            Service::Inference.peer_of_topic(&Service::Inference.task_solution(&main)),
            Some((main.clone(), NodeKind::Edge))
        );
        assert_eq!(
            model_peer_of_topic(&rpc_reply_model(&main)),
            Some((main.clone(), NodeKind::ModelReceiver))
        );
        assert_eq!(
            model_peer_of_topic(&rpc_request_model(&comp)),
            Some((comp, NodeKind::ModelSender))
        );
        assert_eq!(model_peer_of_topic(STATUS), None);
    }

    #[test]
    fn names_match_the_captures() {
        let main = AmlipId::from_parts("AmlipMainCpp", [0x83, 0x63, 0xf2, 0x1d]).unwrap();
        assert_eq!(
            job_reply_available(&main),
            "amlip/job_reply_available_AmlipMainCpp.83.63.f2.1d"
        );
        assert_eq!(
            job_task_solution(&main),
            "amlip/job_task_solution_AmlipMainCpp.83.63.f2.1d"
        );
    }
}
