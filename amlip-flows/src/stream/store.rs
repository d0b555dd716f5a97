//! The consumer's bounded sample store: every sample up to a cap, then a policy decides.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// What a full store does with a new sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Keep the newest samples: the oldest one held is dropped for each that arrives.
    #[default]
    Window,
    /// Keep a uniform random sample of everything seen (Vitter's algorithm R): the n-th
    /// sample replaces a random held one with probability cap / n, or is dropped.
    Reservoir,
}

impl std::str::FromStr for Policy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "window" => Ok(Policy::Window),
            "reservoir" => Ok(Policy::Reservoir),
            other => Err(format!("policy {other:?}: expected window or reservoir")),
        }
    }
}

/// Samples held, in slots; each slot remembers which producer its sample came from.
pub(crate) struct Store {
    input_len: usize,
    target_len: usize,
    cap: usize,
    policy: Policy,
    inputs: Vec<f32>,
    targets: Vec<f32>,
    owners: Vec<u32>,
    /// The slot the window overwrites next (the oldest).
    next: usize,
    /// Samples offered so far.
    seen: u64,
    rng: SmallRng,
}

impl Store {
    pub fn new(cap: usize, policy: Policy, seed: u64) -> Self {
        Self {
            input_len: 0,
            target_len: 0,
            cap: cap.max(1),
            policy,
            inputs: Vec::new(),
            targets: Vec::new(),
            owners: Vec::new(),
            next: 0,
            seen: 0,
            rng: SmallRng::seed_from_u64(seed),
        }
    }

    /// Fixes the sample shape; must precede the first insert.
    pub fn shape(&mut self, input_len: usize, target_len: usize) {
        self.input_len = input_len;
        self.target_len = target_len;
    }

    pub fn len(&self) -> usize {
        self.owners.len()
    }

    /// Offers one sample from `owner`. Returns the owner of the sample the policy dropped
    /// (the new one's own, for a reservoir that passes it over), if any.
    pub fn insert(&mut self, x: &[f32], y: &[f32], owner: u32) -> Option<u32> {
        debug_assert_eq!((x.len(), y.len()), (self.input_len, self.target_len));
        self.seen += 1;
        if self.owners.len() < self.cap {
            self.inputs.extend_from_slice(x);
            self.targets.extend_from_slice(y);
            self.owners.push(owner);
            return None;
        }
        let slot = match self.policy {
            Policy::Window => {
                let s = self.next;
                self.next = (self.next + 1) % self.cap;
                s
            }
            Policy::Reservoir => {
                let j = self.rng.random_range(0..self.seen);
                if j >= self.cap as u64 {
                    return Some(owner);
                }
                j as usize
            }
        };
        let dropped = std::mem::replace(&mut self.owners[slot], owner);
        self.inputs[slot * self.input_len..(slot + 1) * self.input_len].copy_from_slice(x);
        self.targets[slot * self.target_len..(slot + 1) * self.target_len].copy_from_slice(y);
        Some(dropped)
    }

    /// Samples held per owner.
    pub fn kept_by(&self, owners: usize) -> Vec<u64> {
        let mut out = vec![0u64; owners];
        for &o in &self.owners {
            if let Some(c) = out.get_mut(o as usize) {
                *c += 1;
            }
        }
        out
    }

    /// A copy of what is held: inputs, targets.
    pub fn copy(&self) -> (Vec<f32>, Vec<f32>) {
        (self.inputs.clone(), self.targets.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(policy: Policy) -> Store {
        let mut s = Store::new(10, policy, 1);
        s.shape(1, 1);
        let mut dropped = 0;
        for i in 0..100u32 {
            if s.insert(&[i as f32], &[0.0], i % 2).is_some() {
                dropped += 1;
            }
        }
        assert_eq!((s.len(), dropped), (10, 90));
        s
    }

    #[test]
    fn a_window_keeps_the_newest_samples() {
        let s = fill(Policy::Window);
        let mut held = s.copy().0;
        held.sort_by(f32::total_cmp);
        assert_eq!(held, (90..100).map(|i| i as f32).collect::<Vec<_>>());
        assert_eq!(s.kept_by(2), vec![5, 5]);
    }

    #[test]
    fn a_reservoir_keeps_samples_from_all_of_the_stream() {
        let s = fill(Policy::Reservoir);
        let held = s.copy().0;
        // Uniform over 100: with 10 held, the chance that none is older than 50 is ~0.1%
        // for this seed's draw it is not the case (the test is deterministic).
        assert!(held.iter().any(|&v| v < 50.0), "{held:?}");
        assert_eq!(s.kept_by(2).iter().sum::<u64>(), 10);
    }
}
