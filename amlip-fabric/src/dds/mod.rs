//! DDS plumbing on rustdds: one participant per node, NO_KEY topics carrying raw bodies, the QoS
//! of [`qos::Profile`], and typed readers/writers that encode and decode with [`crate::wire`].

mod catch_up;
mod discovery;
pub(crate) use discovery::DiscoveryEvent;
pub mod qos;
pub(crate) mod raw;
pub mod topics;

use std::collections::{BTreeMap, HashMap};
use std::marker::PhantomData;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use rustdds::no_key::{DataReader, DataWriter};
use rustdds::{
    DomainParticipant, DomainParticipantBuilder, Publisher, RTPSEntity, Subscriber, Topic,
    TopicKind,
};

pub use qos::Profile;
use raw::{RawAdapter, RawSample};

use crate::trust::Trust;
use crate::wire::{WireError, WireType};

/// The default AML-IP domain.
pub const DEFAULT_DOMAIN: u16 = 166;

/// Largest domain id whose RTPS ports (7400 + 250 * domain + offsets) fit in 16 bits.
pub const MAX_DOMAIN: u16 = 232;

/// Which network interfaces a participant uses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Network {
    /// Every interface: nodes on other hosts can join (multicast discovery).
    #[default]
    All,
    /// Loopback only: every node is on this host. rustdds sizes datagrams by the smallest MTU
    /// among a peer's advertised addresses, so advertising only loopback (MTU 64 KiB) instead of
    /// a 1500-byte Ethernet address moves large payloads about 5x faster.
    Localhost,
    /// These interface addresses only.
    Only(Vec<IpAddr>),
}

impl Network {
    /// The IPv4 addresses a node on these interfaces announces to peers (for connections it
    /// accepts): non-loopback interfaces first.
    pub fn local_addrs(&self) -> Vec<std::net::Ipv4Addr> {
        crate::direct::local_addrs(self)
    }
}

impl std::str::FromStr for Network {
    type Err = String;

    /// `all`, `localhost` (or `lo`), or a comma-separated list of interface IP addresses.
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "" | "all" => Ok(Network::All),
            "localhost" | "lo" | "loopback" => Ok(Network::Localhost),
            list => list
                .split(',')
                .map(|a| {
                    a.trim().parse::<IpAddr>().map_err(|_| {
                        format!("{a:?} is not an IP address (expected all, localhost, or IPs)")
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Network::Only),
        }
    }
}

/// A DDS operation that failed, naming what it was doing.
#[derive(Debug, thiserror::Error)]
pub enum DdsError {
    /// The domain id's ports would not fit.
    #[error("domain {0} is out of range (0..={MAX_DOMAIN})")]
    Domain(u16),
    /// A participant, topic, reader or writer could not be created.
    #[error("cannot create DDS {what}: {reason}")]
    Create {
        /// What.
        what: String,
        /// Why, as rustdds says.
        reason: String,
    },
    /// A write failed.
    #[error("cannot write to {topic}: {reason}")]
    Write {
        /// The topic.
        topic: String,
        /// Why.
        reason: String,
    },
}

/// When a sample was written, by its writer's clock (DDS source timestamp). Comparable between
/// samples of the same participant.
pub type SourceTime = rustdds::Timestamp;

/// Identity of a remote DDS participant (its GUID prefix), to tie DDS events to nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ParticipantKey([u8; 12]);

impl ParticipantKey {
    fn from_prefix(prefix: impl AsRef<[u8]>) -> Self {
        let mut k = [0u8; 12];
        let src = prefix.as_ref();
        let n = src.len().min(12);
        k[..n].copy_from_slice(&src[..n]);
        Self(k)
    }

    pub fn of_writer(guid: rustdds::GUID) -> Self {
        Self::from_prefix(guid.prefix)
    }

    /// A made-up key, for tests.
    #[cfg(test)]
    pub fn test(n: u8) -> Self {
        Self([n; 12])
    }
}

/// Samples a node's readers dropped on one topic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DroppedSamples {
    /// Samples that did not decode as the topic's type.
    pub malformed: u64,
    /// Samples from writers registered under another type name. DDS matches endpoints on
    /// topic and type name (Fast DDS, and so AML-IP, never delivers these); rustdds matches
    /// on the topic name only, so our readers drop them themselves.
    pub foreign_type: u64,
}

/// Dropped samples by topic, shared by a node's readers and its handle.
#[derive(Debug, Default)]
pub(crate) struct DropCounters {
    by_topic: Mutex<BTreeMap<String, DroppedSamples>>,
}

impl DropCounters {
    fn count(&self, topic: &str, f: impl FnOnce(&mut DroppedSamples)) {
        let mut m = self.by_topic.lock().unwrap_or_else(|e| e.into_inner());
        f(m.entry(topic.to_owned()).or_default());
    }

    pub(crate) fn malformed(&self, topic: &str) {
        self.count(topic, |d| d.malformed += 1);
    }

    /// Every topic's counts.
    pub fn snapshot(&self) -> BTreeMap<String, DroppedSamples> {
        self.by_topic
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// One DDS participant with a publisher and subscriber, creating typed endpoints on demand.
pub struct Participant {
    dp: DomainParticipant,
    publisher: Publisher,
    subscriber: Subscriber,
    /// Topics by name, with the type name each was registered under.
    topics: Mutex<HashMap<String, (Topic, String)>>,
    dropped: Arc<DropCounters>,
}

impl Participant {
    /// A participant on `domain` using `network`'s interfaces.
    pub fn new(domain: u16, network: &Network) -> Result<Self, DdsError> {
        Self::with_counters(domain, network, None, Arc::default())
    }

    /// A participant of a trusted domain (DDS Security with `trust`'s files), or of an open
    /// one with `None`.
    pub fn with_trust(
        domain: u16,
        network: &Network,
        trust: Option<&Trust>,
    ) -> Result<Self, DdsError> {
        Self::with_counters(domain, network, trust, Arc::default())
    }

    /// A participant whose readers count what they drop in `dropped`.
    pub(crate) fn with_counters(
        domain: u16,
        network: &Network,
        trust: Option<&Trust>,
        dropped: Arc<DropCounters>,
    ) -> Result<Self, DdsError> {
        if domain > MAX_DOMAIN {
            return Err(DdsError::Domain(domain));
        }
        let builder = DomainParticipantBuilder::new(domain);
        let builder = match network {
            Network::All => builder,
            Network::Localhost => builder.with_only_networks([IpAddr::V4(Ipv4Addr::LOCALHOST)]),
            Network::Only(addrs) => builder.with_only_networks(addrs.clone()),
        };
        let builder = match trust {
            Some(t) => builder.builtin_security(t.dds_files()),
            None => builder,
        };
        let create = |what: &str, e: &dyn std::fmt::Display| DdsError::Create {
            what: what.into(),
            reason: e.to_string(),
        };
        let secured = if trust.is_some() { "trusted " } else { "" };
        let dp = builder
            .build()
            .map_err(|e| create(&format!("{secured}participant on domain {domain}"), &e))?;
        if let Some(warning) = loopback_reach(network, domain, dp.participant_id()) {
            tracing::warn!("{warning}");
        }
        let qos = Profile::JobControl.writer_qos();
        let publisher = dp
            .create_publisher(&qos)
            .map_err(|e| create("publisher", &e))?;
        let subscriber = dp
            .create_subscriber(&Profile::JobControl.reader_qos())
            .map_err(|e| create("subscriber", &e))?;
        Ok(Self {
            dp,
            publisher,
            subscriber,
            topics: Mutex::new(HashMap::new()),
            dropped,
        })
    }

    /// The domain id.
    pub fn domain(&self) -> u16 {
        self.dp.domain_id()
    }

    fn topic(&self, name: &str, type_name: &str, profile: Profile) -> Result<Topic, DdsError> {
        let mut topics = self.topics.lock().expect("topic map lock");
        if let Some((t, registered)) = topics.get(name) {
            if registered != type_name {
                return Err(DdsError::Create {
                    what: format!("topic {name} as type {type_name}"),
                    reason: format!("this participant has it as type {registered}"),
                });
            }
            return Ok(t.clone());
        }
        let t = self
            .dp
            .create_topic(
                name.to_owned(),
                type_name.to_owned(),
                &profile.reader_qos(),
                TopicKind::NoKey,
            )
            .map_err(|e| DdsError::Create {
                what: format!("topic {name}"),
                reason: e.to_string(),
            })?;
        topics.insert(name.to_owned(), (t.clone(), type_name.to_owned()));
        Ok(t)
    }

    /// A writer of `T` on `topic`.
    pub fn writer<T: WireType>(
        &self,
        topic: &str,
        profile: Profile,
    ) -> Result<Writer<T>, DdsError> {
        let raw = self.raw_writer(topic, T::TYPE_NAME, profile)?;
        Ok(Writer {
            raw,
            _type: PhantomData,
        })
    }

    /// A writer of arbitrary bodies under any type name (tests use it to send garbage).
    pub fn raw_writer(
        &self,
        topic: &str,
        type_name: &str,
        profile: Profile,
    ) -> Result<RawWriter, DdsError> {
        let t = self.topic(topic, type_name, profile)?;
        let inner = self
            .publisher
            .create_datawriter_no_key::<RawSample, RawAdapter>(&t, Some(profile.writer_qos()))
            .map_err(|e| DdsError::Create {
                what: format!("writer on {topic}"),
                reason: e.to_string(),
            })?;
        Ok(RawWriter {
            inner,
            topic: topic.to_owned(),
        })
    }

    /// A reader of `T` on `topic`.
    pub fn reader<T: WireType>(
        &self,
        topic: &str,
        profile: Profile,
    ) -> Result<Reader<T>, DdsError> {
        self.make_reader(topic, profile, false)
    }

    /// A reader of `T` on a topic named after this node, which other nodes' writers may write
    /// on at once after creating them: a first sample that rustdds drops from a writer of
    /// another DDS implementation (AML-IP's) is fetched again at once (`dds/catch_up.rs`).
    pub fn reader_catching_up<T: WireType>(
        &self,
        topic: &str,
        profile: Profile,
    ) -> Result<Reader<T>, DdsError> {
        self.make_reader(topic, profile, true)
    }

    fn make_reader<T: WireType>(
        &self,
        topic: &str,
        profile: Profile,
        catch_up: bool,
    ) -> Result<Reader<T>, DdsError> {
        let t = self.topic(topic, T::TYPE_NAME, profile)?;
        let catch_up = catch_up.then(|| {
            let prefix = self.dp.guid().prefix;
            let p = prefix.as_ref();
            catch_up::HelperFactory {
                subscriber: self.subscriber.clone(),
                topic: t.clone(),
                qos: profile.reader_qos(),
                vendor: [p[0], p[1]],
            }
        });
        let inner = self
            .subscriber
            .create_datareader_no_key::<RawSample, RawAdapter>(&t, Some(profile.reader_qos()))
            .map_err(|e| DdsError::Create {
                what: format!("reader on {topic}"),
                reason: e.to_string(),
            })?;
        Ok(Reader {
            inner,
            topic: topic.to_owned(),
            dp: self.dp.clone(),
            dropped: self.dropped.clone(),
            catch_up,
            _type: PhantomData,
        })
    }

    /// Whether rustdds's two threads for this participant still run.
    ///
    /// rustdds ends its discovery thread and its event loop when their `epoll_wait` is
    /// interrupted, which Linux does to every sleeping thread after the process is stopped and
    /// continued (SIGSTOP/SIGCONT, `docker pause`, Ctrl-Z then `fg`). The participant then
    /// neither sends nor receives, and no call reports an error. Each thread is asked through
    /// its command channel, which is disconnected once the thread has ended. Creating the
    /// probe writer announces it to peers, so call this only on suspicion.
    pub(crate) fn alive(&self) -> bool {
        if self.dp.assert_liveliness().is_err() {
            return false;
        }
        self.raw_writer(topics::PROBE, "amlipx::probe", Profile::Status)
            .is_ok()
    }

    /// Remote participants as they are lost (lease expired or disposed), and readers of other
    /// DDS implementations as they are found (see [`discovery`]).
    pub(crate) fn discovery(&self) -> impl Stream<Item = DiscoveryEvent> + 'static {
        discovery::watch(&self.dp)
    }
}

/// Participants on one host that find each other over loopback alone: rustdds announces a
/// participant to the discovery ports of participants 0..12 of its domain on this host
/// (`SPDP_LOCALHOST_PEER_COUNT`).
pub const LOOPBACK_PEERS: u16 = 12;

/// Why a loopback-only participant may not find its peers: it is the 13th or later on its
/// domain on this host, and earlier participants never announce themselves to it.
fn loopback_reach(network: &Network, domain: u16, participant_id: u16) -> Option<String> {
    (*network == Network::Localhost && participant_id >= LOOPBACK_PEERS).then(|| {
        format!(
            "this node is participant {} of domain {domain} on this host, but on loopback only \
             rustdds nodes announce themselves to the first {LOOPBACK_PEERS}: nodes may not find \
             this one, nor it them. Use --network all (multicast discovery), or spread the \
             nodes over more domains or hosts",
            participant_id + 1
        )
    })
}

/// How much longer than rustdds's own limit a write may take before it is abandoned.
const WRITE_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// Writes raw bodies on one topic.
pub struct RawWriter {
    inner: DataWriter<RawSample, RawAdapter>,
    topic: String,
}

impl RawWriter {
    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Waits (at most `timeout`) until every matched reader acknowledged what was written.
    /// Returns whether they all did.
    pub async fn flush(&self, timeout: std::time::Duration) -> bool {
        matches!(
            tokio::time::timeout(timeout, self.inner.async_wait_for_acknowledgments()).await,
            Ok(Ok(true))
        )
    }

    /// Writes one sample whose body is already encoded (little endian).
    pub async fn write_body(&self, body: Bytes) -> Result<(), DdsError> {
        let sample = RawSample {
            body,
            order: crate::wire::ByteOrder::Little,
        };
        // Always stamp samples: readers order our heartbeats against our requests by it.
        let write = self.inner.async_write(sample, Some(SourceTime::now()));
        // rustdds checks its own blocking limit only when woken by an acknowledgment, which
        // never comes once its event loop has stopped (see `Participant::alive`).
        match tokio::time::timeout(qos::MAX_BLOCKING_TIME + WRITE_GRACE, write).await {
            Ok(written) => written.map(|_| ()).map_err(|e| DdsError::Write {
                topic: self.topic.clone(),
                reason: format!("{e:?}"),
            }),
            Err(_) => Err(DdsError::Write {
                topic: self.topic.clone(),
                reason: format!(
                    "no room in the reliable window for {:?}",
                    qos::MAX_BLOCKING_TIME + WRITE_GRACE
                ),
            }),
        }
    }
}

/// Writes `T` on one topic.
pub struct Writer<T> {
    raw: RawWriter,
    _type: PhantomData<fn(T)>,
}

impl<T: WireType> Writer<T> {
    /// The topic.
    pub fn topic(&self) -> &str {
        self.raw.topic()
    }

    /// Writes one sample.
    pub async fn write(&self, msg: &T) -> Result<(), DdsError> {
        self.raw.write_body(Bytes::from(msg.encode())).await
    }

    /// See [`RawWriter::flush`].
    pub async fn flush(&self, timeout: std::time::Duration) -> bool {
        self.raw.flush(timeout).await
    }

    /// Writes a body that is already an encoded `T` (see `Chunk::encode_parts`).
    pub async fn write_encoded(&self, body: Bytes) -> Result<(), DdsError> {
        self.raw.write_body(body).await
    }
}

/// A decoded sample, or why it could not be decoded, with the participant that wrote it.
pub struct Received<T> {
    pub(crate) from: ParticipantKey,
    /// When its writer wrote it.
    pub written_at: Option<SourceTime>,
    /// The sample, or why it did not decode.
    pub value: Result<T, WireError>,
}

/// Reads `T` from one topic.
pub struct Reader<T> {
    inner: DataReader<RawSample, RawAdapter>,
    topic: String,
    dp: DomainParticipant,
    dropped: Arc<DropCounters>,
    catch_up: Option<catch_up::HelperFactory>,
    _type: PhantomData<fn() -> T>,
}

impl<T: WireType + 'static> Reader<T> {
    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Where this reader counts what it drops.
    pub(crate) fn dropped(&self) -> Arc<DropCounters> {
        self.dropped.clone()
    }

    /// Every sample as it arrives, decoded. Samples from writers registered under another
    /// type name are dropped and counted. Ends when the participant goes away.
    pub fn into_stream(self) -> futures::stream::LocalBoxStream<'static, Received<T>> {
        let Reader {
            inner,
            topic,
            dp,
            dropped,
            catch_up,
            ..
        } = self;
        // Writer -> whether its type name is ours, learnt once per writer.
        let mut verdicts: HashMap<rustdds::GUID, bool> = HashMap::new();
        let samples = inner.async_sample_stream();
        let samples = match catch_up {
            Some(factory) => {
                catch_up::CatchUpStream::new(samples, factory, topic.clone()).boxed_local()
            }
            None => samples.boxed_local(),
        };
        samples
            .filter_map(|r| futures::future::ready(r.ok()))
            .filter_map(move |sample| {
                let writer = sample.sample_info().writer_guid();
                let ours = *verdicts
                    .entry(writer)
                    .or_insert_with(|| writer_type_matches(&dp, writer, T::TYPE_NAME, &topic));
                let out = if ours {
                    let from = ParticipantKey::of_writer(writer);
                    let written_at = sample.sample_info().source_timestamp();
                    let raw = sample.into_value();
                    Some(Received {
                        from,
                        written_at,
                        value: T::decode(&raw.body, raw.order),
                    })
                } else {
                    dropped.count(&topic, |d| d.foreign_type += 1);
                    None
                };
                futures::future::ready(out)
            })
            .boxed_local()
    }
}

/// Whether the remote writer `guid` was registered under `type_name`. A writer discovery has
/// not described (not expected: DDS discovers a writer before matching it) is given the
/// benefit of the doubt.
fn writer_type_matches(
    dp: &DomainParticipant,
    guid: rustdds::GUID,
    type_name: &str,
    topic: &str,
) -> bool {
    let found = dp
        .discovered_writers()
        .into_iter()
        .find(|w| w.publication_topic_data.key == guid)
        .map(|w| w.publication_topic_data.type_name);
    match found {
        Some(t) if t != type_name => {
            tracing::warn!(
                topic,
                "ignoring a writer registered as type {t:?}, not {type_name:?} (DDS would not match it)"
            );
            false
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_thirteenth_loopback_participant_is_warned() {
        assert!(loopback_reach(&Network::Localhost, 7, 11).is_none());
        let w = loopback_reach(&Network::Localhost, 7, 12).unwrap();
        assert!(
            w.contains("participant 13 of domain 7") && w.contains("--network all"),
            "{w}"
        );
        assert!(loopback_reach(&Network::All, 7, 40).is_none());
    }
}
