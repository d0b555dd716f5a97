//! Catching up with a writer of another DDS implementation whose first sample rustdds dropped.
//!
//! AML-IP (Fast DDS) creates the writer of a per-node topic (`job_task_data_<node>`,
//! `rpc_request_model_<node>`, ...) right before its first write. That sample reaches our reader
//! before rustdds has matched the new writer, and rustdds drops it; rustdds then asks for it with
//! an ACKNACK of base 1, which Fast DDS does not answer, so the sample waits for Fast DDS's next
//! periodic heartbeat, 3 s later (`docs/fastdds-first-sample.md` has the capture). rustdds's
//! public API cannot make its reader ask again. What Fast DDS does answer at once is a *new*
//! reader: a RELIABLE / TRANSIENT_LOCAL writer sends its history to every reader it matches.
//!
//! So when a writer of another vendor matches a per-node reader and no sample from it follows
//! within [`DELAY`], a short-lived second reader (a *helper*) is created on the topic. Samples
//! of that writer reach the node from whichever reader gets them first; the other copy is
//! dropped by (writer, sequence number). A helper lives until the main reader has delivered a
//! sample of each writer it serves, or [`LIFETIME`] (past Fast DDS's 3 s heartbeat, after which
//! the main reader has the sample anyway).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{FutureExt, Stream, StreamExt};
use rustdds::no_key::{DataReaderEventStream, DataReaderStream, DataSample};
use rustdds::{DataReaderStatus, QosPolicies, Subscriber, Topic, GUID};
use tokio::time::{Instant, Sleep};

use super::raw::{RawAdapter, RawSample};

/// How long a new writer may stay silent before a helper reader is created for it. Its first
/// sample, when rustdds kept it, is delivered within a millisecond of the match.
pub(crate) const DELAY: Duration = Duration::from_millis(3);

/// How long a helper reader lives at most.
pub(crate) const LIFETIME: Duration = Duration::from_secs(4);

/// Writers whose sequence numbers are remembered, and numbers remembered per writer above its
/// contiguous floor: what a peer can make a reader hold is bounded.
const MAX_TRACKED_WRITERS: usize = 256;
const MAX_OUT_OF_ORDER: usize = 1024;

type Samples = DataReaderStream<RawSample, RawAdapter>;
type Events = DataReaderEventStream<RawSample, RawAdapter>;
type Item = rustdds::dds::result::ReadResult<DataSample<RawSample>>;

/// What a reader needs to create helpers on its topic.
pub(crate) struct HelperFactory {
    pub subscriber: Subscriber,
    pub topic: Topic,
    pub qos: QosPolicies,
    /// The first two bytes of our participant's GUID prefix: the vendor id, by the convention
    /// rustdds and Fast DDS follow. Writers with the same are rustdds's and need no help.
    pub vendor: [u8; 2],
}

/// The sequence numbers delivered from one writer.
#[derive(Default)]
struct Delivered {
    /// Every number up to this one was delivered.
    floor: i64,
    above: BTreeSet<i64>,
}

impl Delivered {
    /// Records `seq`; false if it was delivered before.
    fn first_time(&mut self, seq: i64) -> bool {
        if seq <= self.floor || !self.above.insert(seq) {
            return false;
        }
        while self.above.first() == Some(&(self.floor + 1)) {
            self.above.pop_first();
            self.floor += 1;
        }
        if self.above.len() > MAX_OUT_OF_ORDER {
            // A writer whose numbers leave gaps (lost or filtered samples): give up the oldest.
            if let Some(lowest) = self.above.pop_first() {
                self.floor = lowest;
            }
        }
        true
    }
}

struct Helper {
    samples: Samples,
    /// The writers it was created for, and whether the main reader has caught up with each.
    writers: HashMap<GUID, bool>,
    until: Instant,
}

/// The main reader's samples merged with those of its helpers, each sample once.
pub(crate) struct CatchUpStream {
    main: Samples,
    events: Events,
    factory: HelperFactory,
    topic_name: String,
    /// New writers not heard from yet, and when each may have a helper.
    silent: HashMap<GUID, Instant>,
    /// Writers the main reader has delivered from (a match event can come after a sample).
    heard: HashSet<GUID>,
    timer: Option<Pin<Box<Sleep>>>,
    helpers: Vec<Helper>,
    /// Writers that have (or had) a helper, for deduplication.
    delivered: HashMap<GUID, Delivered>,
}

impl CatchUpStream {
    pub(crate) fn new(main: Samples, factory: HelperFactory, topic_name: String) -> Self {
        let events = main.async_event_stream();
        Self {
            main,
            events,
            factory,
            topic_name,
            silent: HashMap::new(),
            heard: HashSet::new(),
            timer: None,
            helpers: Vec::new(),
            delivered: HashMap::new(),
        }
    }

    /// Whether `writer` is another implementation's. In a trusted domain no one can tell:
    /// DDS Security derives a participant's GUID prefix from its certificate (first bit set),
    /// so it carries no vendor id. There every writer counts as ours: a helper is then a new
    /// secure endpoint whose crypto tokens must be exchanged first, and helpers for every
    /// amlip peer delayed jobs by seconds (a trusted `send` took 1.5-5.4 s and was re-sent once;
    /// without helpers 1.7-2.1 s, none re-sent).
    fn foreign(&self, writer: GUID) -> bool {
        let secure = self.factory.vendor[0] & 0x80 != 0;
        !secure && writer.prefix.as_ref()[..2] != self.factory.vendor
    }

    fn on_event(&mut self, ev: DataReaderStatus) {
        if let DataReaderStatus::SubscriptionMatched {
            current, writer, ..
        } = ev
        {
            if current.count_change() > 0 {
                if self.foreign(writer)
                    && !self.heard.contains(&writer)
                    && !self.delivered.contains_key(&writer)
                {
                    self.silent.insert(writer, Instant::now() + DELAY);
                }
            } else {
                self.silent.remove(&writer);
                self.heard.remove(&writer);
                self.delivered.remove(&writer);
            }
        }
    }

    /// Creates one helper for every silent writer whose delay has passed.
    fn spawn_helpers(&mut self, now: Instant) {
        let due: Vec<GUID> = self
            .silent
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(w, _)| *w)
            .collect();
        if due.is_empty() {
            return;
        }
        for w in &due {
            self.silent.remove(w);
        }
        let reader = self
            .factory
            .subscriber
            .create_datareader_no_key::<RawSample, RawAdapter>(
                &self.factory.topic,
                Some(self.factory.qos.clone()),
            );
        match reader {
            Ok(r) => {
                tracing::debug!(
                    topic = %self.topic_name,
                    writers = due.len(),
                    "a new writer of another DDS implementation is silent; reading its history \
                     through a second reader"
                );
                if self.delivered.len() + due.len() > MAX_TRACKED_WRITERS {
                    self.delivered.clear();
                }
                for w in &due {
                    self.delivered.entry(*w).or_default();
                }
                self.helpers.push(Helper {
                    samples: r.async_sample_stream(),
                    writers: due.into_iter().map(|w| (w, false)).collect(),
                    until: now + LIFETIME,
                });
            }
            Err(e) => {
                tracing::warn!(topic = %self.topic_name, "cannot create a helper reader: {e}")
            }
        }
    }

    /// Whether `sample` is to be passed on (not delivered before by the other reader).
    fn first_copy(&mut self, sample: &DataSample<RawSample>) -> bool {
        let id = sample.sample_info().sample_identity();
        match self.delivered.get_mut(&id.writer_guid) {
            Some(d) => d.first_time(i64::from(id.sequence_number)),
            None => true,
        }
    }

    fn rearm_timer(&mut self) {
        let next = self
            .silent
            .values()
            .copied()
            .chain(self.helpers.iter().map(|h| h.until))
            .min();
        self.timer = next.map(|at| Box::pin(tokio::time::sleep_until(at)));
    }
}

impl Stream for CatchUpStream {
    type Item = Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Item>> {
        let this = self.get_mut();
        while let Poll::Ready(Some(ev)) = this.events.poll_next_unpin(cx) {
            this.on_event(ev);
        }
        let now = Instant::now();
        this.spawn_helpers(now);
        // The main reader first: what it delivers also tells which helpers are done.
        loop {
            match this.main.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(sample))) => {
                    let writer = sample.sample_info().writer_guid();
                    this.silent.remove(&writer);
                    if this.heard.len() >= MAX_TRACKED_WRITERS * 16 {
                        this.heard.clear();
                    }
                    this.heard.insert(writer);
                    for h in &mut this.helpers {
                        if let Some(caught_up) = h.writers.get_mut(&writer) {
                            *caught_up = true;
                        }
                    }
                    if this.first_copy(&sample) {
                        return Poll::Ready(Some(Ok(sample)));
                    }
                }
                Poll::Ready(other) => return Poll::Ready(other),
                Poll::Pending => break,
            }
        }
        this.helpers
            .retain(|h| h.until > now && h.writers.values().any(|caught_up| !caught_up));
        let mut found = None;
        'helpers: for i in 0..this.helpers.len() {
            // A helper's error or end stops its polling; it is dropped at its deadline.
            while let Poll::Ready(Some(Ok(sample))) = this.helpers[i].samples.poll_next_unpin(cx) {
                let writer = sample.sample_info().writer_guid();
                // Other writers' samples reach the main reader as usual.
                if this.helpers[i].writers.contains_key(&writer) && this.first_copy(&sample) {
                    found = Some(sample);
                    break 'helpers;
                }
            }
        }
        if let Some(sample) = found {
            return Poll::Ready(Some(Ok(sample)));
        }
        this.rearm_timer();
        if let Some(timer) = this.timer.as_mut() {
            if timer.poll_unpin(cx).is_ready() {
                // A deadline passed while polling: go round again at once.
                cx.waker().wake_by_ref();
            }
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::Delivered;

    #[test]
    fn each_sequence_number_passes_once_in_any_order() {
        let mut d = Delivered::default();
        assert!(d.first_time(2));
        assert!(d.first_time(1));
        assert!(!d.first_time(2));
        assert!(!d.first_time(1));
        assert_eq!((d.floor, d.above.len()), (2, 0));
        assert!(d.first_time(5));
        assert!(!d.first_time(5));
        assert!(d.first_time(3));
        assert_eq!((d.floor, d.above.len()), (3, 1));
    }

    #[test]
    fn a_writer_with_gaps_holds_bounded_memory() {
        let mut d = Delivered::default();
        for s in (10..10_000).step_by(2) {
            assert!(d.first_time(s));
        }
        assert!(d.above.len() <= super::MAX_OUT_OF_ORDER);
        assert!(!d.first_time(10), "an old number is not passed twice");
    }
}
