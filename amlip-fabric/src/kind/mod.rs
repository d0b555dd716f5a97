//! Job kinds: what a computing node can compute, typed end to end.
//!
//! A [`JobKind`] has a name (carried in every payload it reads, see [`crate::payload`]), an
//! input and an output that know how to become [`Payload`]s ([`Message`]), and the code that
//! computes one from the other. A [`Registry`] of kinds is what a computing node serves:
//! it decodes each job, hands it to the kind the payload names, and answers an unknown kind
//! with an error listing the kinds it serves. Payloads from plain AML-IP mains, which cannot
//! name a kind, go to the registry's plain handler ([`plain`]).
//!
//! ```no_run
//! use amlip_fabric::config::NodeConfig;
//! use amlip_fabric::error::BoxError;
//! use amlip_fabric::job::JobContext;
//! use amlip_fabric::kind::{JobKind, Json, Registry};
//! use amlip_fabric::node::AsyncComputingNode;
//!
//! /// Counts the words of a text.
//! struct WordCount;
//!
//! impl JobKind for WordCount {
//!     const NAME: &'static str = "word_count";
//!     type Input = Json<String>;
//!     type Output = Json<usize>;
//!
//!     fn run(&self, text: Json<String>, _ctx: &JobContext) -> Result<Json<usize>, BoxError> {
//!         Ok(Json(text.0.split_whitespace().count()))
//!     }
//! }
//!
//! let cfg = NodeConfig::new("Computing").domain(7).localhost();
//! let mut computing = AsyncComputingNode::with_config(cfg)?;
//! computing.run(Registry::new().with(WordCount))?;
//! # Ok::<(), amlip_fabric::Error>(())
//! ```
//!
//! Built-in kinds: the plain handler of [`plain`] here; `aml_train`, `mlp_train`, the federated
//! kinds and AML-IP's tutorial jobs in `amlip-flows` (`Registry::builtin()`).

pub mod plain;
mod registry;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use registry::Registry;

use crate::error::BoxError;
use crate::job::JobContext;
use crate::payload::{Payload, PayloadError};

/// A kind of job a computing node can compute.
pub trait JobKind: Send + Sync + 'static {
    /// The name payloads of this kind carry (`amlip.kind`); unique on a domain.
    const NAME: &'static str;
    /// What a job of this kind carries.
    type Input: Message;
    /// What its solution carries.
    type Output: Message;

    /// Computes the solution. An `Err` (or a panic) is sent back as an error solution.
    fn run(&self, input: Self::Input, ctx: &JobContext) -> Result<Self::Output, BoxError>;
}

/// A value that travels as a [`Payload`].
pub trait Message: Sized {
    /// The payload carrying this value, of kind `kind`.
    fn to_payload(&self, kind: &str) -> Result<Payload, PayloadError>;
    /// Reads the value back; every defect is an error naming it.
    fn from_payload(payload: Payload) -> Result<Self, PayloadError>;
}

impl Message for Payload {
    fn to_payload(&self, kind: &str) -> Result<Payload, PayloadError> {
        let mut p = Payload::new(kind).with_params(self.params_json())?;
        for (name, t) in self.tensors() {
            p.insert(name, t.clone());
        }
        Ok(p)
    }

    fn from_payload(payload: Payload) -> Result<Self, PayloadError> {
        Ok(payload)
    }
}

/// Any serde value, carried as the payload's parameters (JSON); no tensors.
#[derive(Debug, Clone, PartialEq)]
pub struct Json<T>(pub T);

impl<T: Serialize + DeserializeOwned> Message for Json<T> {
    fn to_payload(&self, kind: &str) -> Result<Payload, PayloadError> {
        Payload::new(kind).with_params(&self.0)
    }

    fn from_payload(payload: Payload) -> Result<Self, PayloadError> {
        payload.params().map(Json)
    }
}

/// The bytes of a job of kind `K`.
pub fn job_bytes<K: JobKind>(input: &K::Input) -> Result<Bytes, PayloadError> {
    message_bytes(input, K::NAME)
}

/// Reads the solution of a job of kind `K`.
pub fn read_solution<K: JobKind>(data: &Bytes) -> Result<K::Output, PayloadError> {
    let p = Payload::decode(data)?;
    p.expect_kind(K::NAME)?;
    K::Output::from_payload(p)
}

/// Runs a job of kind `K` on payload bytes, as a computing node would (for tests and tools).
pub fn run_bytes<K: JobKind>(kind: &K, data: &Bytes, ctx: &JobContext) -> Result<Bytes, BoxError> {
    let p = Payload::decode(data)?;
    p.expect_kind(K::NAME)?;
    let out = kind.run(K::Input::from_payload(p)?, ctx)?;
    Ok(message_bytes(&out, K::NAME)?)
}

/// The bytes of `m` as a payload of `kind`.
fn message_bytes(m: &impl Message, kind: &str) -> Result<Bytes, PayloadError> {
    m.to_payload(kind)?.encode()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Double;

    impl JobKind for Double {
        const NAME: &'static str = "double";
        type Input = Json<Vec<i32>>;
        type Output = Json<Vec<i32>>;

        fn run(&self, v: Json<Vec<i32>>, _ctx: &JobContext) -> Result<Json<Vec<i32>>, BoxError> {
            Ok(Json(v.0.iter().map(|x| x * 2).collect()))
        }
    }

    #[test]
    fn a_kind_round_trips_through_bytes() {
        let job = job_bytes::<Double>(&Json(vec![1, 2, 3])).unwrap();
        let solution = run_bytes(&Double, &job, &JobContext::default()).unwrap();
        assert_eq!(
            read_solution::<Double>(&solution).unwrap(),
            Json(vec![2, 4, 6])
        );
    }

    #[test]
    fn a_solution_of_another_kind_is_refused() {
        let other = Payload::new("triple").encode().unwrap();
        let e = read_solution::<Double>(&other).unwrap_err();
        assert!(
            e.to_string()
                .contains("expected a double payload, got triple"),
            "{e}"
        );
    }
}
