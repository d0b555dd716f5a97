//! A computing node's open availability requests, by main, and what it knows of each main.
//!
//! Anyone on the domain can publish `ms_request` samples, also in the name of a main that does
//! not exist. Answering one costs a target timeout (seconds) during which real jobs wait, so a
//! request is only considered once its main is *vouched for*: the DDS participant that wrote
//! the request has also published the main's status or heartbeat (every AML-IP and amlip
//! node publishes its status when it starts). Until then it waits aside, and is dropped after
//! the ghost timeout. A vouched main that lets an answered request go without a target is
//! suspect for a while (doubling up to a minute): its requests wait until then, and any
//! target it publishes clears it. Every list is bounded, so a flood costs bounded memory and
//! a bounded scan.
//!
//! Pure state; the engine feeds it and asks it which requests to consider.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::dds::{ParticipantKey, SourceTime};
use crate::wire::{AmlipId, TaskId};

/// (main, task).
pub(crate) type Key = (AmlipId, TaskId);

/// Open requests kept per main; older ones are dropped first (a main with that many open
/// requests is flooding: AML-IP mains have one, amlip mains at most 64).
const PER_MAIN: usize = 1024;
/// Requests kept per main while it is not vouched for.
const UNVOUCHED_PER_MAIN: usize = 256;
/// Mains remembered at once; past that, mains without open requests are forgotten first and
/// new unvouched mains are refused.
const MAX_MAINS: usize = 4096;
/// Longest suspicion after unanswered availability answers.
const MAX_SUSPICION: Duration = Duration::from_secs(60);

/// An open request.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub key: Key,
    /// When its main wrote it (source timestamp).
    pub written_at: Option<SourceTime>,
    /// Arrival order, across mains.
    pub seq: u64,
}

#[derive(Debug)]
struct Unvouched {
    pending: Pending,
    from: ParticipantKey,
    at: Instant,
}

#[derive(Debug)]
struct Main {
    first_heard: Instant,
    requests: BTreeMap<u64, Pending>,
    unvouched: VecDeque<Unvouched>,
    /// Answers of ours it left without a target, in a row.
    timeouts: u32,
    suspect_until: Option<Instant>,
}

impl Main {
    fn new(now: Instant) -> Self {
        Self {
            first_heard: now,
            requests: BTreeMap::new(),
            unvouched: VecDeque::new(),
            timeouts: 0,
            suspect_until: None,
        }
    }

    fn is_empty(&self) -> bool {
        self.requests.is_empty() && self.unvouched.is_empty()
    }
}

/// What the engine decides about a vouched request.
pub(crate) enum Verdict {
    Answer,
    /// Not yet (its main's history may still be arriving).
    Defer,
    Drop,
}

/// Counts of what was refused, for logs and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refused {
    /// Requests dropped because no participant vouched for their main in time.
    pub ghosts: u64,
    /// Requests dropped because their main had too many open.
    pub overflow: u64,
}

/// Every main's open requests.
#[derive(Debug, Default)]
pub(crate) struct OpenRequests {
    mains: HashMap<AmlipId, Main>,
    next_seq: u64,
    refused: Refused,
}

impl OpenRequests {
    /// Notes that `main` was heard of (status, heartbeat, request): its history arrives
    /// around then.
    pub fn heard(&mut self, main: &AmlipId, now: Instant) {
        if !self.mains.contains_key(main) {
            self.make_room();
            self.mains.insert(main.clone(), Main::new(now));
        }
    }

    /// A new request, written by participant `from`; `vouched` says whether that participant
    /// vouched for its main.
    pub fn add(
        &mut self,
        key: Key,
        written_at: Option<SourceTime>,
        from: ParticipantKey,
        vouched: bool,
        now: Instant,
    ) {
        if !self.mains.contains_key(&key.0) {
            if !vouched && self.mains.len() >= MAX_MAINS {
                self.make_room();
                if self.mains.len() >= MAX_MAINS {
                    self.refused.ghosts += 1;
                    return;
                }
            }
            self.heard(&key.0, now);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let pending = Pending {
            key,
            written_at,
            seq,
        };
        let m = self.mains.get_mut(&pending.key.0).expect("inserted above");
        if vouched {
            m.requests.insert(seq, pending);
            if m.requests.len() > PER_MAIN {
                m.requests.pop_first();
                self.refused.overflow += 1;
            }
        } else {
            m.unvouched.push_back(Unvouched {
                pending,
                from,
                at: now,
            });
            if m.unvouched.len() > UNVOUCHED_PER_MAIN {
                m.unvouched.pop_front();
                self.refused.overflow += 1;
            }
        }
    }

    /// Moves requests whose participant now vouches for their main among the considered
    /// ones, and drops those still unvouched after `ghost_timeout`.
    pub fn recheck(
        &mut self,
        now: Instant,
        ghost_timeout: Duration,
        vouched: impl Fn(&AmlipId, ParticipantKey) -> bool,
    ) {
        for (id, m) in &mut self.mains {
            if m.unvouched.is_empty() {
                continue;
            }
            let mut keep = VecDeque::with_capacity(m.unvouched.len());
            for u in m.unvouched.drain(..) {
                if vouched(id, u.from) {
                    m.requests.insert(u.pending.seq, u.pending);
                } else if now.duration_since(u.at) > ghost_timeout {
                    self.refused.ghosts += 1;
                } else {
                    keep.push_back(u);
                }
            }
            m.unvouched = keep;
        }
    }

    /// A target from `main` (naming anyone): it is alive and choosing.
    pub fn target_seen(&mut self, main: &AmlipId) {
        if let Some(m) = self.mains.get_mut(main) {
            m.timeouts = 0;
            m.suspect_until = None;
        }
    }

    /// An answer of ours to `main` got no target in time: suspect it for 1 s, then 2 s, 4 s...
    /// up to a minute.
    pub fn target_timeout(&mut self, main: &AmlipId, now: Instant) {
        if let Some(m) = self.mains.get_mut(main) {
            m.timeouts = m.timeouts.saturating_add(1);
            let backoff = Duration::from_secs(1 << (m.timeouts - 1).min(6)).min(MAX_SUSPICION);
            m.suspect_until = Some(now + backoff);
        }
    }

    /// Forgets `main` and its requests (it is gone).
    pub fn forget(&mut self, main: &AmlipId) {
        self.mains.remove(main);
    }

    /// Mains with open requests.
    pub fn mains(&self) -> Vec<AmlipId> {
        self.mains
            .iter()
            .filter(|(_, m)| !m.is_empty())
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// The oldest requests `verdict` says to answer, at most `max`, oldest first; requests it
    /// says to drop are dropped. `verdict` also gets when the request's main was first heard
    /// of. Suspect mains are skipped.
    pub fn answerable(
        &mut self,
        now: Instant,
        max: usize,
        mut verdict: impl FnMut(&Pending, Instant) -> Verdict,
    ) -> Vec<Pending> {
        let mut found: Vec<Pending> = Vec::new();
        for m in self.mains.values_mut() {
            if m.suspect_until.is_some_and(|t| now < t) {
                continue;
            }
            let mut drop = Vec::new();
            let mut taken = 0;
            for (seq, p) in &m.requests {
                match verdict(p, m.first_heard) {
                    Verdict::Drop => drop.push(*seq),
                    Verdict::Defer => {}
                    Verdict::Answer => {
                        found.push(p.clone());
                        taken += 1;
                        if taken == max {
                            break;
                        }
                    }
                }
            }
            for seq in drop {
                m.requests.remove(&seq);
            }
        }
        found.sort_by_key(|p| p.seq);
        found.truncate(max);
        found
    }

    /// Puts back a request [`remove`](Self::remove)d when it was answered (its answer got no
    /// target), in its place, if its main is still known.
    pub fn restore(&mut self, p: Pending) {
        if let Some(m) = self.mains.get_mut(&p.key.0) {
            m.requests.insert(p.seq, p);
        }
    }

    /// Removes one request (answered).
    pub fn remove(&mut self, p: &Pending) {
        if let Some(m) = self.mains.get_mut(&p.key.0) {
            m.requests.remove(&p.seq);
        }
    }

    /// What was refused so far.
    pub fn refused(&self) -> Refused {
        self.refused
    }

    /// Requests held, considered and waiting aside.
    #[cfg(test)]
    pub fn len(&self) -> (usize, usize) {
        self.mains.values().fold((0, 0), |(a, b), m| {
            (a + m.requests.len(), b + m.unvouched.len())
        })
    }

    /// At the limit: forget mains with nothing open, oldest first.
    fn make_room(&mut self) {
        if self.mains.len() < MAX_MAINS {
            return;
        }
        let mut idle: Vec<(Instant, AmlipId)> = self
            .mains
            .iter()
            .filter(|(_, m)| m.is_empty())
            .map(|(id, m)| (m.first_heard, id.clone()))
            .collect();
        idle.sort();
        for (_, id) in idle.into_iter().take(MAX_MAINS / 4) {
            self.mains.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn main(n: &str) -> AmlipId {
        AmlipId::from_parts(n, [1, 2, 3, 4]).unwrap()
    }

    fn who(n: u8) -> ParticipantKey {
        ParticipantKey::test(n)
    }

    #[test]
    fn unvouched_requests_wait_aside_then_join_or_go() {
        let mut r = OpenRequests::default();
        let t0 = Instant::now();
        r.add((main("Real"), 0), None, who(1), false, t0);
        r.add((main("Ghost"), 0), None, who(9), false, t0);
        assert_eq!(r.len(), (0, 2));
        assert!(r.answerable(t0, 8, |_, _| Verdict::Answer).is_empty());
        // The real main's status arrives from the participant that wrote its request.
        let vouched = |m: &AmlipId, p: ParticipantKey| *m == main("Real") && p == who(1);
        r.recheck(
            t0 + Duration::from_millis(100),
            Duration::from_secs(10),
            vouched,
        );
        assert_eq!(r.len(), (1, 1));
        let a = r.answerable(t0, 8, |_, _| Verdict::Answer);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].key.0, main("Real"));
        // Nobody ever vouches for the ghost: dropped after the ghost timeout.
        r.recheck(
            t0 + Duration::from_secs(11),
            Duration::from_secs(10),
            vouched,
        );
        assert_eq!(r.len(), (1, 0));
        assert_eq!(r.refused().ghosts, 1);
    }

    #[test]
    fn a_main_that_never_targets_is_suspect_for_longer_and_longer() {
        let mut r = OpenRequests::default();
        let t0 = Instant::now();
        let m = main("Silent");
        r.add((m.clone(), 0), None, who(1), true, t0);
        r.target_timeout(&m, t0);
        assert!(r.answerable(t0, 8, |_, _| Verdict::Answer).is_empty());
        assert_eq!(
            r.answerable(t0 + Duration::from_secs(2), 8, |_, _| Verdict::Answer)
                .len(),
            1
        );
        r.target_timeout(&m, t0);
        assert!(r
            .answerable(t0 + Duration::from_millis(1500), 8, |_, _| Verdict::Answer)
            .is_empty());
        r.target_seen(&m);
        assert_eq!(r.answerable(t0, 8, |_, _| Verdict::Answer).len(), 1);
    }

    #[test]
    fn an_answer_that_got_no_target_puts_its_request_back_in_its_place() {
        let mut r = OpenRequests::default();
        let t0 = Instant::now();
        let m = main("Lossy");
        r.add((m.clone(), 0), None, who(1), true, t0);
        r.add((m.clone(), 1), None, who(1), true, t0);
        let first = r.answerable(t0, 1, |_, _| Verdict::Answer).remove(0);
        r.remove(&first);
        assert_eq!(r.len(), (1, 0));
        r.target_timeout(&m, t0);
        r.restore(first);
        // After the back-off, the oldest is answered first again.
        let again = r.answerable(t0 + Duration::from_secs(2), 8, |_, _| Verdict::Answer);
        let tasks: Vec<u32> = again.iter().map(|p| p.key.1).collect();
        assert_eq!(tasks, [0, 1]);
        // A main forgotten meanwhile gets nothing back.
        r.forget(&m);
        r.restore(again[0].clone());
        assert_eq!(r.len(), (0, 0));
    }

    #[test]
    fn floods_are_bounded_and_the_oldest_requests_answered_first() {
        let mut r = OpenRequests::default();
        let t0 = Instant::now();
        for t in 0..(PER_MAIN as u32 + 10) {
            r.add((main("Flood"), t), None, who(1), true, t0);
        }
        for t in 0..(UNVOUCHED_PER_MAIN as u32 + 5) {
            r.add((main("Ghost"), t), None, who(2), false, t0);
        }
        assert_eq!(r.len(), (PER_MAIN, UNVOUCHED_PER_MAIN));
        assert_eq!(r.refused().overflow, 15);
        r.add((main("Other"), 7), None, who(3), true, t0);
        let a = r.answerable(t0, 3, |_, _| Verdict::Answer);
        assert_eq!(
            a.iter().map(|p| p.key.1).collect::<Vec<_>>(),
            vec![10, 11, 12],
            "the oldest kept requests first"
        );
        // Many ghost mains: memory stays bounded.
        for i in 0..(MAX_MAINS + 100) {
            r.add((main(&format!("G{i}")), 0), None, who(4), false, t0);
        }
        assert!(r.mains.len() <= MAX_MAINS);
    }

    #[test]
    fn dropped_requests_leave() {
        let mut r = OpenRequests::default();
        let t0 = Instant::now();
        r.add((main("M"), 1), None, who(1), true, t0);
        r.add((main("M"), 2), None, who(1), true, t0);
        let a = r.answerable(t0, 8, |p, _| {
            if p.key.1 == 1 {
                Verdict::Drop
            } else {
                Verdict::Answer
            }
        });
        assert_eq!(a.len(), 1);
        assert_eq!(r.len(), (1, 0));
        r.remove(&a[0]);
        assert_eq!(r.len(), (0, 0));
    }
}
