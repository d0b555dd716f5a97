//! A trained binary classifier: the atoms that contain the class constant `v`, and the misses
//! cutoff. With its JSON form (the AML-IP tutorial's) and a compact binary form.
//!
//! An atom containing `v` is an OR-clause over pixel literals; the class is their AND. An
//! image's *misses* are the atoms it fails (atoms whose upper segment does not meet the image);
//! the model answers "is the digit" when misses < cutoff.

use rayon::prelude::*;
use std::collections::HashMap;

use integer_encoding::VarInt;
use serde_json::{json, Value};

use super::bits::Bits;

/// One atom: its upper constant segment and bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Atom {
    /// Upper constant segment: the constants the atom is below.
    pub ucs: Bits,
    /// Crossing operations done when the atom was made.
    pub epoch: u64,
    /// Batch in which it was made.
    pub gen: u32,
}

/// Why a model could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error("model JSON: {0}")]
    /// The JSON form is wrong.
    Json(String),
    #[error("binary model: {0}")]
    /// The binary form is wrong.
    Binary(String),
}

/// A binary classifier ("is it digit d?").
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// Constants of the embedding.
    pub n_constants: usize,
    /// The class constant.
    pub v: usize,
    /// The atoms; a term is positive when it misses fewer than the cutoff.
    pub atoms: Vec<Atom>,
    /// Predict positive iff misses < cutoff. `None` until calibrated.
    pub cutoff: Option<u32>,
}

const BINARY_MAGIC: &[u8; 4] = b"AMLM";
const BINARY_VERSION: u16 = 1;

impl Model {
    /// A model with no atoms.
    pub fn empty(n_constants: usize, v: usize) -> Self {
        Model {
            n_constants,
            v,
            atoms: Vec::new(),
            cutoff: None,
        }
    }

    /// Atoms.
    pub fn len(&self) -> usize {
        self.atoms.len()
    }

    /// Whether it has no atoms.
    pub fn is_empty(&self) -> bool {
        self.atoms.is_empty()
    }

    /// How many atoms `term` fails.
    pub fn misses(&self, term: &Bits) -> u32 {
        self.atoms
            .iter()
            .filter(|a| a.ucs.is_disjoint(term))
            .count() as u32
    }

    /// Misses of many terms, on all cores.
    pub fn misses_many(&self, terms: &[Bits]) -> Vec<u32> {
        terms.par_iter().map(|t| self.misses(t)).collect()
    }

    /// The prediction for `term` (cutoff 1 if not calibrated: no atom may be missed).
    pub fn predict(&self, term: &Bits) -> bool {
        self.misses(term) < self.cutoff.unwrap_or(1)
    }

    /// Union of several models' atoms, keyed by upper segment (minimum epoch, maximum gen).
    /// Every negative any model learnt stays learnt; the cutoff must be chosen again.
    pub fn merge<'a>(models: impl IntoIterator<Item = &'a Model>) -> Model {
        let mut it = models.into_iter().peekable();
        let (n, v) = it.peek().map_or((0, 0), |m| (m.n_constants, m.v));
        let mut index: HashMap<Bits, usize> = HashMap::new();
        let mut atoms: Vec<Atom> = Vec::new();
        for m in it {
            for a in &m.atoms {
                match index.get(&a.ucs) {
                    Some(&i) => {
                        atoms[i].epoch = atoms[i].epoch.min(a.epoch);
                        atoms[i].gen = atoms[i].gen.max(a.gen);
                    }
                    None => {
                        index.insert(a.ucs.clone(), atoms.len());
                        atoms.push(a.clone());
                    }
                }
            }
        }
        Model {
            n_constants: n,
            v,
            atoms,
            cutoff: None,
        }
    }

    /// Drops atoms that some positive example fails (such an atom breaks that positive).
    /// Returns how many were dropped.
    pub fn drop_atoms_failing(&mut self, positives: &[Bits]) -> usize {
        let before = self.atoms.len();
        self.atoms
            .retain(|a| positives.iter().all(|p| a.ucs.intersects(p)));
        before - self.atoms.len()
    }

    /// The JSON form of the AML-IP tutorial:
    /// `{"vTerm": [v], "<v>": [{"atom_epoch": e, "atom_gen": g, "atom_ucs": [...]}, ...]}`.
    pub fn to_json(&self) -> String {
        let atoms: Vec<Value> = self
            .atoms
            .iter()
            .map(|a| {
                json!({
                    "atom_epoch": a.epoch,
                    "atom_gen": a.gen,
                    "atom_ucs": a.ucs.iter_ones().collect::<Vec<_>>(),
                })
            })
            .collect();
        let mut obj = serde_json::Map::new();
        obj.insert("vTerm".into(), json!([self.v]));
        obj.insert(self.v.to_string(), Value::Array(atoms));
        Value::Object(obj).to_string()
    }

    /// Reads the JSON form. `n_constants` is taken as one more than the largest constant seen
    /// (the class constant included), unless a larger `n_constants` is given.
    pub fn from_json(text: &str, n_constants: Option<usize>) -> Result<Model, ModelError> {
        let err = |m: String| ModelError::Json(m);
        let root: Value = serde_json::from_str(text).map_err(|e| err(e.to_string()))?;
        let v = root
            .get("vTerm")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(Value::as_u64)
            .ok_or_else(|| err("no \"vTerm\": [v] entry".into()))? as usize;
        let list = root
            .get(v.to_string())
            .and_then(Value::as_array)
            .ok_or_else(|| err(format!("no atom list under \"{v}\"")))?;
        let mut raw = Vec::with_capacity(list.len());
        let mut max_c = v;
        for (i, a) in list.iter().enumerate() {
            let ucs: Vec<usize> = a
                .get("atom_ucs")
                .and_then(Value::as_array)
                .ok_or_else(|| err(format!("atom {i} has no \"atom_ucs\" list")))?
                .iter()
                .map(|c| c.as_u64().map(|c| c as usize))
                .collect::<Option<_>>()
                .ok_or_else(|| err(format!("atom {i}: constants must be non-negative integers")))?;
            if !ucs.contains(&v) {
                return Err(err(format!(
                    "atom {i} does not contain the class constant {v}"
                )));
            }
            max_c = max_c.max(ucs.iter().copied().max().unwrap_or(v));
            let epoch = a.get("atom_epoch").and_then(Value::as_u64).unwrap_or(0);
            let gen = a.get("atom_gen").and_then(Value::as_u64).unwrap_or(0) as u32;
            raw.push((ucs, epoch, gen));
        }
        let n = n_constants.unwrap_or(0).max(max_c + 1);
        if n > 1 << 24 {
            return Err(err(format!("constant {max_c} is implausibly large")));
        }
        let atoms = raw
            .into_iter()
            .map(|(ucs, epoch, gen)| Atom {
                ucs: Bits::from_ones(n, ucs),
                epoch,
                gen,
            })
            .collect();
        Ok(Model {
            n_constants: n,
            v,
            atoms,
            cutoff: None,
        })
    }

    /// Compact binary form: `AMLM`, version u16, 2 reserved bytes, n_constants u32, v u32,
    /// atom count u32, cutoff u32 (u32::MAX: none), all little endian; then per atom, as
    /// LEB128 varints: epoch, gen, the number of constants besides v, and those constants in
    /// increasing order as deltas (the first from 0). Atoms are sparse (tens of constants out of
    /// 1569), so this is several times smaller than the JSON form and faster to read.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(24 + self.atoms.len() * 32);
        out.extend_from_slice(BINARY_MAGIC);
        out.extend_from_slice(&BINARY_VERSION.to_le_bytes());
        out.extend_from_slice(&[0, 0]);
        for x in [
            self.n_constants as u32,
            self.v as u32,
            self.atoms.len() as u32,
            self.cutoff.unwrap_or(u32::MAX),
        ] {
            out.extend_from_slice(&x.to_le_bytes());
        }
        let mut buf = [0u8; 10];
        let mut put = |out: &mut Vec<u8>, x: u64| {
            let n = x.encode_var(&mut buf);
            out.extend_from_slice(&buf[..n]);
        };
        for a in &self.atoms {
            put(&mut out, a.epoch);
            put(&mut out, a.gen as u64);
            put(&mut out, a.ucs.count().saturating_sub(1) as u64);
            let mut prev = 0;
            for c in a.ucs.iter_ones().filter(|&c| c != self.v) {
                put(&mut out, (c - prev) as u64);
                prev = c;
            }
        }
        out
    }

    /// Reads the compact binary form, checking every field.
    pub fn from_bytes(b: &[u8]) -> Result<Model, ModelError> {
        let err = |m: String| ModelError::Binary(m);
        if b.len() < 24 {
            return Err(err(format!(
                "{} bytes, shorter than the 24-byte header",
                b.len()
            )));
        }
        if &b[0..4] != BINARY_MAGIC {
            return Err(err(format!("magic {:02x?}, expected \"AMLM\"", &b[0..4])));
        }
        let version = u16::from_le_bytes([b[4], b[5]]);
        if version != BINARY_VERSION {
            return Err(err(format!(
                "version {version}, this build reads {BINARY_VERSION}"
            )));
        }
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        let (n, v, count, cutoff) = (
            u32_at(8) as usize,
            u32_at(12) as usize,
            u32_at(16) as usize,
            u32_at(20),
        );
        if v >= n || n > 1 << 24 {
            return Err(err(format!("class constant {v} with {n} constants")));
        }
        // Every atom takes at least 3 bytes: refuse counts the data cannot hold.
        if count > (b.len() - 24) / 3 {
            return Err(err(format!(
                "{count} atoms cannot fit in {} bytes",
                b.len() - 24
            )));
        }
        let mut at = 24;
        let mut next = |what: &str, i: usize| -> Result<u64, ModelError> {
            let (x, used) = u64::decode_var(&b[at..])
                .ok_or_else(|| err(format!("atom {i}: truncated {what}")))?;
            at += used;
            Ok(x)
        };
        let mut atoms = Vec::with_capacity(count);
        for i in 0..count {
            let epoch = next("epoch", i)?;
            let gen = u32::try_from(next("gen", i)?)
                .map_err(|_| err(format!("atom {i}: gen out of range")))?;
            let k = next("constant count", i)? as usize;
            if k >= n {
                return Err(err(format!("atom {i}: {k} constants out of {n}")));
            }
            let mut ucs = Bits::new(n);
            ucs.set(v);
            let mut c = 0usize;
            for j in 0..k {
                let d = next("constant", i)? as usize;
                if j > 0 && d == 0 {
                    return Err(err(format!("atom {i}: constants not increasing")));
                }
                c = c
                    .checked_add(d)
                    .filter(|c| *c < n && *c != v)
                    .ok_or_else(|| {
                        err(format!(
                            "atom {i}: constant out of range (n = {n}, v = {v})"
                        ))
                    })?;
                ucs.set(c);
            }
            atoms.push(Atom { ucs, epoch, gen });
        }
        if at != b.len() {
            return Err(err(format!("{} bytes after the last atom", b.len() - at)));
        }
        Ok(Model {
            n_constants: n,
            v,
            atoms,
            cutoff: (cutoff != u32::MAX).then_some(cutoff),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> Model {
        Model {
            n_constants: 10,
            v: 9,
            atoms: vec![
                Atom {
                    ucs: Bits::from_ones(10, [0, 9]),
                    epoch: 3,
                    gen: 1,
                },
                Atom {
                    ucs: Bits::from_ones(10, [1, 2, 9]),
                    epoch: 5,
                    gen: 2,
                },
            ],
            cutoff: Some(1),
        }
    }

    #[test]
    fn misses_count_atoms_the_term_fails() {
        let m = model();
        assert_eq!(m.misses(&Bits::from_ones(10, [0, 1])), 0);
        assert_eq!(m.misses(&Bits::from_ones(10, [2])), 1);
        assert_eq!(m.misses(&Bits::from_ones(10, [3])), 2);
        assert!(m.predict(&Bits::from_ones(10, [0, 2])));
        assert!(!m.predict(&Bits::from_ones(10, [2])));
        assert_eq!(
            m.misses_many(&vec![Bits::from_ones(10, [3]); 5]),
            vec![2; 5]
        );
    }

    #[test]
    fn json_round_trip_in_the_tutorial_form() {
        let m = model();
        let text = m.to_json();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["vTerm"], json!([9]));
        assert_eq!(v["9"][1]["atom_ucs"], json!([1, 2, 9]));
        assert_eq!(v["9"][0]["atom_epoch"], json!(3));
        let back = Model::from_json(&text, None).unwrap();
        assert_eq!(back.atoms, m.atoms);
        assert_eq!(back.n_constants, 10);
        assert!(
            Model::from_json("{\"vTerm\":[9],\"9\":[{\"atom_ucs\":[1]}]}", None)
                .unwrap_err()
                .to_string()
                .contains("does not contain the class constant")
        );
        assert!(Model::from_json("[1,2]", None).is_err());
    }

    #[test]
    fn binary_round_trip_and_validation() {
        let m = model();
        let b = m.to_bytes();
        assert_eq!(Model::from_bytes(&b).unwrap(), m);
        assert!(Model::from_bytes(&b[..b.len() - 1]).is_err());
        let mut bad = b.clone();
        bad[0] = b'X';
        assert!(Model::from_bytes(&bad)
            .unwrap_err()
            .to_string()
            .contains("magic"));
        let mut bad = b.clone();
        bad[24 + 3] = 12; // the first atom's constant: 12, past n_constants = 10
        assert!(Model::from_bytes(&bad)
            .unwrap_err()
            .to_string()
            .contains("out of range"));
        let mut long = b.clone();
        long.push(0);
        assert!(Model::from_bytes(&long)
            .unwrap_err()
            .to_string()
            .contains("after the last"));
    }

    #[test]
    fn merge_keeps_every_atom_once_with_min_epoch_max_gen() {
        let a = model();
        let mut b = model();
        b.atoms[0].epoch = 1;
        b.atoms[0].gen = 7;
        b.atoms.push(Atom {
            ucs: Bits::from_ones(10, [5, 9]),
            epoch: 9,
            gen: 3,
        });
        let m = Model::merge([&a, &b]);
        assert_eq!(m.len(), 3);
        assert_eq!((m.atoms[0].epoch, m.atoms[0].gen), (1, 7));
        assert_eq!(m.cutoff, None);
    }

    #[test]
    fn filtering_by_positives_drops_atoms_that_break_them() {
        let mut m = model();
        assert_eq!(m.drop_atoms_failing(&[Bits::from_ones(10, [0, 3])]), 1);
        assert_eq!(m.len(), 1);
    }
}
