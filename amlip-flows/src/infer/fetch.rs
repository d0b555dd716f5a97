//! Fetching a model file from whichever model sender announces it: amlip's (JSON requests)
//! or AML-IP's (its demos take the model's name as plain text and reply with the bytes).

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::wire::{self, Announcement};
use crate::error::Error;
use crate::node::ModelManagerReceiverNode;
use crate::wire::{AmlipId, ModelStatistics};

/// Why a model could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// No sender announced the model in time.
    #[error("no model {name:?} was announced{from} within {waited:?} (seen: {seen})")]
    NotAnnounced {
        /// The model asked for.
        name: String,
        /// ` by <sender>` when one was named.
        from: String,
        /// How long we listened.
        waited: Duration,
        /// The announcements seen, `name by sender`.
        seen: String,
    },
    /// The sender did not hand the model over.
    #[error(transparent)]
    Request(#[from] Error),
}

/// A model fetched: who announced it, and its bytes.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The announcement the model was fetched by.
    pub statistics: ModelStatistics,
    /// The model file's bytes, as the sender sent them.
    pub file: Bytes,
}

/// Whether `s` announces `name` from a sender matching `from` (its printed id, or its name).
fn wanted(s: &ModelStatistics, name: &str, from: Option<&str>) -> bool {
    s.name == name && from.is_none_or(|f| s.server_id.to_string() == f || s.server_id.name() == f)
}

/// Waits (at most `timeout` in all) for an announcement of the model `name` (from the sender
/// `from`, its id or name, if given), then asks that sender for it: with amlip's JSON request
/// if the announcement is amlip's, else with the name as plain text, as AML-IP's receivers do.
pub fn fetch(
    receiver: &ModelManagerReceiverNode,
    name: &str,
    from: Option<&str>,
    timeout: Duration,
) -> Result<Fetched, FetchError> {
    let start = Instant::now();
    let updates = receiver.watch();
    let statistics = loop {
        if let Some(s) = receiver
            .statistics()
            .into_iter()
            .find(|s| wanted(s, name, from))
        {
            break s;
        }
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() || updates.recv_timeout(left).is_err() {
            let seen: Vec<String> = receiver
                .statistics()
                .iter()
                .map(|s| format!("{:?} by {}", s.name, s.server_id))
                .collect();
            return Err(FetchError::NotAnnounced {
                name: name.to_owned(),
                from: from.map(|f| format!(" by {f}")).unwrap_or_default(),
                waited: timeout,
                seen: if seen.is_empty() {
                    "none".into()
                } else {
                    seen.join(", ")
                },
            });
        }
    };
    let request = if Announcement::parse(&statistics.data).is_ok() {
        wire::model_request(name)
    } else {
        Bytes::from(name.to_owned())
    };
    let sender: &AmlipId = &statistics.server_id;
    let left = timeout
        .saturating_sub(start.elapsed())
        .max(Duration::from_secs(1));
    let file = receiver.request_model(sender, request, left)?;
    Ok(Fetched { statistics, file })
}
