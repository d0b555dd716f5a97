//! Topic names. AML-IP's are `amlip/` + name (per-node topics end in the node's printed id);
//! amlip's extension topics start with `amlipx/`, which AML-IP never opens.

use crate::wire::AmlipId;

pub const JOB_REQUEST_AVAILABILITY: &str = "amlip/job_request_availability";
pub const JOB_TASK_TARGET: &str = "amlip/job_task_target";
pub const STATUS: &str = "amlip/status";
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
