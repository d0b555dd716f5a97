//! The built-in job kinds, beside the fabric's kind machinery (re-exported here, so that
//! `kind::{JobKind, Registry, Json, ...}` and the kinds below sit under one path):
//! [`aml_train::AmlTrain`] (`aml_train`), [`mlp_train`] (`mlp_train`, a
//! [`federated::FedKind`]), AML-IP's MNIST [`tutorial`] jobs, and [`plain::Auto`], the plain
//! handler `computing-node` serves. [`BuiltinKinds`] puts them all in one registry.

pub mod aml_train;
pub mod federated;
pub mod mlp_train;
pub mod tutorial;

pub use amlip_fabric::kind::*;

/// Handlers for plain AML-IP payloads, which name no kind.
pub mod plain {
    pub use amlip_fabric::kind::plain::*;

    use bytes::Bytes;

    use crate::error::BoxError;
    use crate::job::{Job, JobContext};
    use crate::node::JobReplier;

    /// What the `computing-node` binary does with plain payloads: the text jobs of AML-IP's
    /// MNIST tutorial (`x: [...] y: [...]`) get the trained model's JSON atomization (so the
    /// tutorial's Python main works with amlip), anything else is upper-cased.
    #[derive(Debug, Clone, Copy, Default)]
    pub struct Auto {
        /// The digit a tutorial job trains a classifier for (the tutorial's `target_digit`).
        pub tutorial_digit: u8,
    }

    impl JobReplier for Auto {
        fn process_job(&self, job: &Job, ctx: &JobContext) -> Result<Bytes, BoxError> {
            if super::tutorial::is_tutorial_job(&job.data) {
                super::tutorial::run(&job.data, ctx, self.tutorial_digit)
            } else {
                uppercase(job, ctx)
            }
        }
    }
}

/// The registry of everything amlip computes out of the box. A trait so that the fabric's
/// [`Registry`] (which knows no model) gets the constructor where the models are: with it in
/// scope (it is in `amlip_core::prelude`), `Registry::builtin()` reads as before.
pub trait BuiltinKinds {
    /// What the `computing-node` binary serves: `aml_train`, `mlp_train`, `group_train`, the
    /// AI loop's `sim_cheap`, `sim_expensive` and `nn_fit`, and plain payloads as
    /// [`plain::Auto`] does (AML-IP's tutorial jobs, anything else upper-cased).
    fn builtin() -> Self;
}

impl BuiltinKinds for Registry {
    fn builtin() -> Self {
        Registry::new()
            .with(aml_train::AmlTrain)
            .with(mlp_train::kind())
            .with(crate::group::GroupTrain)
            .with(crate::ailoop::kinds::SimCheap)
            .with(crate::ailoop::kinds::SimExpensive)
            .with(crate::ailoop::kinds::NnFit)
            .plain(plain::Auto::default())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::dataset::mnist::PIXELS;
    use crate::job::{Job, JobContext};
    use crate::node::JobReplier;
    use crate::wire::AmlipId;
    use bytes::Bytes;
    use ndarray::{Array1, Array2};

    /// A shard of made-up 28x28 images, every digit present.
    pub(crate) fn toy(n: usize) -> (Array2<u8>, Array1<u8>) {
        let images =
            Array2::from_shape_fn((n, PIXELS), |(i, j)| if (i + j) % 7 < 3 { 200 } else { 0 });
        let labels = Array1::from_iter((0..n).map(|i| (i % 10) as u8));
        (images, labels)
    }

    fn job(data: Bytes) -> Job {
        Job {
            client_id: AmlipId::from_parts("Main", [1, 2, 3, 4]).unwrap(),
            task_id: 0,
            data,
        }
    }

    #[test]
    fn plain_payloads_go_to_the_plain_handler_and_look_alikes_do_not() {
        let r = Registry::builtin();
        let ctx = JobContext::default();
        let up = r
            .process_job(&job(Bytes::from_static(b"hello")), &ctx)
            .unwrap();
        assert_eq!(&up[..], b"HELLO");
        // A user's text that merely starts like the old container is plain text.
        let up = r
            .process_job(&job(Bytes::from_static(b"AMLJ rules")), &ctx)
            .unwrap();
        assert_eq!(&up[..], b"AMLJ RULES");
        assert!(r.kinds().contains(&"aml_train") && r.kinds().contains(&"mlp_train"));
    }
}
