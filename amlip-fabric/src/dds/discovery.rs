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

use futures::{Stream, StreamExt};
use rustdds::{DomainParticipant, DomainParticipantStatusEvent, RTPSEntity, StatusEvented};

use super::ParticipantKey;

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
    futures::stream::unfold(dp.status_listener(), move |listener| async move {
        loop {
            let event = listener.as_async_status_stream().next().await?;
            let found = match event {
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
            return Some((found, listener));
        }
    })
}
