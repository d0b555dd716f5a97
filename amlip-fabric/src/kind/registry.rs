//! The kinds a computing node serves, and the handler for payloads that name none.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::{message_bytes, JobKind, Message};
use crate::error::BoxError;
use crate::job::{Job, JobContext};
use crate::node::JobReplier;
use crate::payload::{Detected, Payload};

/// One kind, with its types erased, so a registry can hold many.
trait ErasedKind: Send + Sync {
    fn run(&self, payload: Payload, ctx: &JobContext) -> Result<Bytes, BoxError>;
}

impl<K: JobKind> ErasedKind for K {
    fn run(&self, payload: Payload, ctx: &JobContext) -> Result<Bytes, BoxError> {
        let input = K::Input::from_payload(payload)?;
        let output = JobKind::run(self, input, ctx)?;
        Ok(message_bytes(&output, K::NAME)?)
    }
}

/// A kind whose name is known only when the program runs (one written in Python, say).
struct NamedKind<F> {
    name: String,
    run: F,
}

impl<F> ErasedKind for NamedKind<F>
where
    F: Fn(Payload, &JobContext) -> Result<Payload, BoxError> + Send + Sync,
{
    fn run(&self, payload: Payload, ctx: &JobContext) -> Result<Bytes, BoxError> {
        let output = (self.run)(payload, ctx)?;
        Ok(message_bytes(&output, &self.name)?)
    }
}

/// What a computing node serves: job kinds by name, and a handler for plain payloads (from
/// AML-IP mains, which cannot name a kind). It is a [`JobReplier`]:
/// `computing.run(Registry::new().with(MyKind))`, or with the built-in kinds,
/// `Registry::builtin().with(MyKind)` (`amlip-flows`' `BuiltinKinds`).
#[derive(Default)]
pub struct Registry {
    kinds: BTreeMap<String, Box<dyn ErasedKind>>,
    plain: Option<Box<dyn JobReplier>>,
}

impl Registry {
    /// No kinds; plain payloads are refused.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves `kind` too (replacing a kind of the same name).
    pub fn with<K: JobKind>(mut self, kind: K) -> Self {
        self.kinds.insert(K::NAME.to_owned(), Box::new(kind));
        self
    }

    /// Serves payloads of kind `name` with `run`, which gets the job's payload and returns the
    /// solution's (sent as a payload of the same kind); for kinds defined at run time, where
    /// [`JobKind`]'s name constant cannot be. Replaces a kind of the same name.
    pub fn with_named<F>(mut self, name: &str, run: F) -> Self
    where
        F: Fn(Payload, &JobContext) -> Result<Payload, BoxError> + Send + Sync + 'static,
    {
        let kind = NamedKind {
            name: name.to_owned(),
            run,
        };
        self.kinds.insert(name.to_owned(), Box::new(kind));
        self
    }

    /// Answers payloads that name no kind with `handler` (instead of an error).
    pub fn plain(mut self, handler: impl JobReplier) -> Self {
        self.plain = Some(Box::new(handler));
        self
    }

    /// The kinds served, by name.
    pub fn kinds(&self) -> Vec<&str> {
        self.kinds.keys().map(String::as_str).collect()
    }

    fn served(&self) -> String {
        let mut names: Vec<&str> = self.kinds();
        if self.plain.is_some() {
            names.push("plain AML-IP payloads");
        }
        if names.is_empty() {
            "nothing".into()
        } else {
            names.join(", ")
        }
    }
}

impl JobReplier for Registry {
    fn process_job(&self, job: &Job, ctx: &JobContext) -> Result<Bytes, BoxError> {
        match Payload::detect(&job.data) {
            Detected::Amlip(Ok(p)) => match self.kinds.get(p.kind()) {
                Some(kind) => kind.run(p, ctx),
                None => Err(format!(
                    "job kind {:?} is not one this node serves (it serves: {})",
                    p.kind(),
                    self.served()
                )
                .into()),
            },
            Detected::Amlip(Err(e)) => Err(e.into()),
            Detected::Plain => match &self.plain {
                Some(handler) => handler.process_job(job, ctx),
                None => Err(format!(
                    "the job is not an amlip payload naming its kind; this node serves: {}",
                    self.served()
                )
                .into()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kind::Json;
    use crate::wire::AmlipId;

    struct Echo;

    impl JobKind for Echo {
        const NAME: &'static str = "echo";
        type Input = Json<String>;
        type Output = Json<String>;

        fn run(&self, s: Json<String>, _ctx: &JobContext) -> Result<Json<String>, BoxError> {
            Ok(s)
        }
    }

    fn job(data: Bytes) -> Job {
        Job {
            data,
            task_id: 0,
            client_id: AmlipId::from_parts("M", [1, 2, 3, 4]).unwrap(),
        }
    }

    #[test]
    fn dispatches_by_kind_and_names_what_it_serves() {
        let r = Registry::new().with(Echo);
        let ctx = JobContext::default();
        let ok = r
            .process_job(
                &job(crate::kind::job_bytes::<Echo>(&Json("hi".into())).unwrap()),
                &ctx,
            )
            .unwrap();
        assert_eq!(crate::kind::read_solution::<Echo>(&ok).unwrap().0, "hi");
        let other = Payload::new("resize").encode().unwrap();
        let e = r.process_job(&job(other), &ctx).unwrap_err().to_string();
        assert!(
            e.contains("\"resize\"") && e.contains("serves: echo"),
            "{e}"
        );
        let e = r
            .process_job(&job(Bytes::from_static(b"hello")), &ctx)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not an amlip payload"), "{e}");
    }

    #[test]
    fn a_kind_named_at_run_time_is_served_beside_the_others() {
        let name = String::from("count_") + "tensors";
        let r = Registry::new()
            .with(Echo)
            .with_named(&name, |p: Payload, _: &JobContext| {
                Payload::new("ignored")
                    .with_params(&p.tensors().len())
                    .map_err(Into::into)
            });
        assert_eq!(r.kinds(), ["count_tensors", "echo"]);
        let data = Payload::new("count_tensors")
            .with_tensor(
                "a",
                crate::payload::Tensor::from_u8(ndarray::arr1(&[1u8]).view()),
            )
            .encode()
            .unwrap();
        let out = r.process_job(&job(data), &JobContext::default()).unwrap();
        let p = Payload::decode(&out).unwrap();
        assert_eq!(
            (p.kind(), p.params::<usize>().unwrap()),
            ("count_tensors", 1)
        );
    }
}
