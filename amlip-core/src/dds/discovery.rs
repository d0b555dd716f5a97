//! What a node learns from rustdds's discovery: participants lost, readers of other DDS
//! implementations (so that writers towards them exist before their first use: a Fast DDS
//! reader drops a sample from a writer it has not matched yet, and asks again only after its
//! initial ACKNACK delay of 70 ms), and participants of another DDS implementation that must
//! be told our readers at once.
//!
//! rustdds announces its endpoints (SEDP) to a new participant with heartbeats it sends as soon
//! as it sees that participant, often before that participant has seen ours; a Fast DDS peer
//! drops those, and asks for our endpoints only after its initial ACKNACK delay (70 ms), so an
//! AML-IP node that has just started waits that long before it can match our readers and
//! deliver its first request. Creating a local reader makes rustdds write a new sample on its
//! subscriptions SEDP writer, with a heartbeat, to every participant it knows; once the peer
//! has described its own endpoints to us it surely knows us, so that write makes it fetch all
//! our readers at once (an AML-IP main's first job: ~100-180 ms to ~30 ms). The probe is a
//! reader on `amlipx/probe`, which nothing writes.
//!
//! Only a reader: the same trick with a writer (a new sample on the publications SEDP writer
//! while the peer is still fetching the earlier ones) was measured to keep Fast DDS 2.9 from
//! ever matching some of our earlier-announced writers (an AML-IP receiver saw the model
//! statistics writer in 1 of 6 runs, against 20 of 20 with a reader probe). The last few
//! probes are kept rather than dropped at once, so their disposal (which Fast DDS logs as
//! "key-only data" it cannot read) comes long after discovery.

use std::collections::{HashSet, VecDeque};

use futures::{Stream, StreamExt};
use rustdds::{
    DomainParticipant, DomainParticipantStatusEvent, QosPolicies, RTPSEntity, StatusEvented,
    Subscriber, Topic,
};

use super::raw::{RawAdapter, RawSample};
use super::ParticipantKey;

/// Participants remembered as already nudged; beyond this the set restarts (a nudge costs one
/// SEDP write, so forgetting is harmless).
const MAX_NUDGED: usize = 4096;

/// Creates a reader to make rustdds publish its readers again.
pub(crate) struct Nudger {
    pub subscriber: Subscriber,
    pub topic: Topic,
    pub qos: QosPolicies,
    /// The latest probes.
    pub kept: VecDeque<rustdds::no_key::DataReader<RawSample, RawAdapter>>,
}

/// Probe readers kept at once.
const KEPT_PROBES: usize = 4;

impl Nudger {
    fn nudge(&mut self) {
        match self
            .subscriber
            .create_datareader_no_key::<RawSample, RawAdapter>(&self.topic, Some(self.qos.clone()))
        {
            Ok(r) => {
                if self.kept.len() >= KEPT_PROBES {
                    self.kept.pop_front();
                }
                self.kept.push_back(r);
            }
            Err(e) => tracing::debug!("cannot nudge discovery: {e}"),
        }
    }
}

/// What [`watch`] reports.
pub(crate) enum DiscoveryEvent {
    /// A remote participant is gone (lease expired or disposed).
    Lost(ParticipantKey),
    /// A reader of another DDS implementation was discovered (or updated) on `topic`.
    ForeignReader { topic: String },
}

/// Participants lost and foreign readers found; on the way, nudges rustdds to announce our
/// readers to each participant of another vendor when its first endpoint is discovered.
pub(crate) fn watch(
    dp: &DomainParticipant,
    nudger: Nudger,
) -> impl Stream<Item = DiscoveryEvent> + 'static {
    let vendor = {
        let prefix = dp.guid().prefix;
        let p = prefix.as_ref();
        [p[0], p[1]]
    };
    let state = (dp.status_listener(), nudger, HashSet::<[u8; 12]>::new());
    futures::stream::unfold(
        state,
        move |(listener, mut nudger, mut nudged)| async move {
            loop {
                let event = listener.as_async_status_stream().next().await?;
                let (endpoint, reader_topic) = match event {
                    DomainParticipantStatusEvent::ParticipantLost { id, .. } => {
                        let lost = DiscoveryEvent::Lost(ParticipantKey::from_prefix(id));
                        return Some((lost, (listener, nudger, nudged)));
                    }
                    DomainParticipantStatusEvent::ReaderDetected { reader } => {
                        (reader.guid, Some(reader.topic_name))
                    }
                    DomainParticipantStatusEvent::WriterDetected { writer } => (writer.guid, None),
                    _ => continue,
                };
                let key = ParticipantKey::of_writer(endpoint).0;
                if key[..2] == vendor {
                    continue;
                }
                if !nudged.contains(&key) {
                    if nudged.len() >= MAX_NUDGED {
                        nudged.clear();
                    }
                    nudged.insert(key);
                    nudger.nudge();
                }
                if let Some(topic) = reader_topic {
                    let found = DiscoveryEvent::ForeignReader { topic };
                    return Some((found, (listener, nudger, nudged)));
                }
            }
        },
    )
}
