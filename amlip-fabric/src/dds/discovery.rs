//! What a node learns from rustdds's discovery: participants lost, and readers of other DDS
//! implementations. Writers towards an AML-IP node's per-node readers are best created as soon
//! as those readers are discovered: a Fast DDS reader drops a sample from a writer it has not
//! matched yet and asks for it again only after its initial ACKNACK delay (70 ms), so a writer
//! created when its first sample is due (e.g. on the AML-IP main's status, which arrives with
//! its first request) costs that main 70-150 ms on its first job.
//!
//! Tried and dropped: making rustdds announce our endpoints again to a new Fast DDS participant
//! by creating a probe endpoint (a new SEDP sample, with a heartbeat, while the peer has not
//! fetched the earlier ones yet). It does bring the peer's first request ~40 ms earlier, but
//! Fast DDS 2.9 was then seen to never match some of the endpoints announced before it: with a
//! probe writer, an AML-IP model receiver matched our statistics writer in 1 of 6 runs; with a
//! probe reader, an AML-IP edge node's requests reached an amlip inference node in 1 of 4 runs
//! (4 of 4 without). See `docs/fastdds-first-sample.md`.

use std::collections::HashMap;

use futures::{Stream, StreamExt};
use rustdds::{DomainParticipant, DomainParticipantStatusEvent, RTPSEntity, StatusEvented};

use super::ParticipantKey;
use crate::trust::RefusalLog;

/// What [`watch`] reports.
pub(crate) enum DiscoveryEvent {
    /// A remote participant is gone (lease expired or disposed).
    Lost(ParticipantKey),
    /// A reader of another DDS implementation was discovered (or updated) on `topic`.
    ForeignReader { topic: String },
}

/// Participants lost and readers of other DDS implementations found, as rustdds reports them.
pub(crate) fn watch(dp: &DomainParticipant) -> impl Stream<Item = DiscoveryEvent> + 'static {
    let vendor = {
        let prefix = dp.guid().prefix;
        let p = prefix.as_ref();
        [p[0], p[1]]
    };
    let state = (dp.status_listener(), Refusals::default());
    futures::stream::unfold(state, move |(listener, mut refusals)| async move {
        loop {
            let event = listener.as_async_status_stream().next().await?;
            let found = match event {
                DomainParticipantStatusEvent::ParticipantDiscovered { dpd } => {
                    refusals.seen(dpd.guid.prefix.as_ref(), dpd.supports_security);
                    continue;
                }
                // rustdds does not export the status's type; its Debug form names the variant.
                DomainParticipantStatusEvent::Authentication {
                    participant,
                    status,
                } if format!("{status:?}") == "Rejected" => {
                    refusals.refused(participant.as_ref());
                    continue;
                }
                DomainParticipantStatusEvent::ParticipantLost { id, .. } => {
                    DiscoveryEvent::Lost(ParticipantKey::from_prefix(id))
                }
                // The vendor id heads the GUID prefix (rustdds and Fast DDS both put it there).
                DomainParticipantStatusEvent::ReaderDetected { reader }
                    if reader.guid.prefix.as_ref()[..2] != vendor =>
                {
                    DiscoveryEvent::ForeignReader {
                        topic: reader.topic_name,
                    }
                }
                _ => continue,
            };
            return Some((found, (listener, refusals)));
        }
    })
}

/// Participants a trusted node refused, logged under a [`RefusalLog`].
#[derive(Default)]
struct Refusals {
    /// Whether each participant discovered announced DDS Security (bounded).
    secured: HashMap<[u8; 12], bool>,
    log: RefusalLog,
}

impl Refusals {
    fn seen(&mut self, prefix: &[u8], secured: bool) {
        if self.secured.len() >= 4096 {
            self.secured.clear();
        }
        if let Ok(p) = prefix.try_into() {
            self.secured.insert(p, secured);
        }
    }

    fn refused(&mut self, prefix: &[u8]) {
        let key: Option<[u8; 12]> = prefix.try_into().ok();
        let why = match key.and_then(|k| self.secured.get(&k)) {
            Some(false) => "it has no identity (a node of an open domain)",
            // rustdds rejects an authenticated participant for its permissions (a
            // certificate another CA signed fails the handshake and is retried instead).
            _ => "its permissions do not let it join this domain (or its identity announcement is incomplete)",
        };
        let Some(also) = self.log.admit() else {
            return;
        };
        let vendor = match prefix.get(..2) {
            Some([1, 15]) => "eProsima Fast DDS",
            Some([1, 18]) => "rustdds",
            _ => "another DDS",
        };
        let id: String = prefix.iter().map(|b| format!("{b:02x}")).collect();
        tracing::warn!("trusted domain: refused participant {id} ({vendor}): {why}{also}");
    }
}
