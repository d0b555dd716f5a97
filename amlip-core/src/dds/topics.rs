//! Topic names. AML-IP's are `amlip/` + name (per-node topics end in the node's printed id);
//! amlip's extension topics start with `amlipx/`, which AML-IP never opens.

use crate::wire::AmlipId;

/// Where mains ask for an idle computing node.
pub const JOB_REQUEST_AVAILABILITY: &str = "amlip/job_request_availability";
/// Where mains say which computing node takes a task.
pub const JOB_TASK_TARGET: &str = "amlip/job_task_target";
/// Every node's status.
pub const STATUS: &str = "amlip/status";
/// amlip's heartbeats (extension).
pub const NODE_INFO: &str = "amlipx/node_info";
/// Never written: a writer is created on it to check that a participant still works.
pub const PROBE: &str = "amlipx/probe";

/// Every fixed topic name, with its type name (for tools that probe them all).
pub const FIXED_TOPICS: [(&str, &str); 4] = [
    (JOB_REQUEST_AVAILABILITY, "amlip::ms_request"),
    (JOB_TASK_TARGET, "amlip::ms_reference"),
    (STATUS, "amlip::status"),
    (NODE_INFO, "amlipx::node_info"),
];

/// Where computing nodes answer a main's availability requests.
pub fn job_reply_available(main: &AmlipId) -> String {
    format!("amlip/job_reply_available_{main}")
}

/// Where a main sends a job to the chosen computing node.
pub fn job_task_data(computing: &AmlipId) -> String {
    format!("amlip/job_task_data_{computing}")
}

/// Where computing nodes send solutions to a main.
pub fn job_task_solution(main: &AmlipId) -> String {
    format!("amlip/job_task_solution_{main}")
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
    use crate::wire::{ModelStatistics, MsData, MsReference, MsRequest, Status, WireType};

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
        for (topic, ty) in FIXED_TOPICS {
            let pinned = spec.contains(&(topic, ty));
            assert!(
                pinned || topic.starts_with("amlipx/"),
                "{topic} {ty} is not the spec's"
            );
        }
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
