//! The job kinds computing nodes serve for pipelines. Each reads only what its node's
//! operator allowed: data under the node's data directory, programs under a directory given
//! with `--allow-programs`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::dataset::{self, Dataset, Features, LoadOptions, Target};
use crate::error::BoxError;
use crate::job::JobContext;
use crate::kind::JobKind;
use crate::nn::{Network, Spec, Targets};
use crate::payload::{Payload, PayloadError};

/// Most bytes of a program's stdout (and of its stderr) sent back.
const MAX_OUTPUT: u64 = 64 * 1024;

/// `prepare_data`: loads a data set under the node's data directory, checks it (the loaders
/// name every defect), and sends it back with its test set.
#[derive(Debug, Clone)]
pub struct PrepareData {
    dir: PathBuf,
}

impl PrepareData {
    /// Serves data under `dir` only.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }
}

/// A `prepare_data` job's parameters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PrepareJob {
    pub data: String,
    pub limit: Option<usize>,
    pub test_split: f64,
    pub seed: u64,
}

impl JobKind for PrepareData {
    const NAME: &'static str = "prepare_data";
    type Input = Payload;
    type Output = Payload;

    fn run(&self, job: Payload, _ctx: &JobContext) -> Result<Payload, BoxError> {
        let p: PrepareJob = job.params()?;
        let path = under(&self.dir, &p.data, "data directory")?;
        let splits =
            dataset::load_splits(&path, None, p.test_split, p.seed, &LoadOptions::default())?;
        let train = match p.limit {
            Some(n) => splits.train.head(n),
            None => splits.train,
        };
        let mut out = Payload::new(Self::NAME).with_params(&serde_json::json!({
            "sample_shape": train.sample_shape,
            "classes": train.class_names(),
            "train": train.describe(),
            "test": splits.test.describe(),
        }))?;
        put(&mut out, "", &train);
        put(&mut out, "test_", &splits.test);
        Ok(out)
    }
}

/// Adds a data set's tensors under `prefix` (`images`/`features`, `labels`/`targets`).
pub(crate) fn put(p: &mut Payload, prefix: &str, d: &Dataset) {
    let t = d.to_payload();
    for (name, tensor) in t.tensors() {
        p.insert(&format!("{prefix}{name}"), tensor.clone());
    }
}

/// The data set under `prefix` of a payload `prepare_data` made.
pub(crate) fn dataset_from(p: &Payload, prefix: &str) -> Result<Dataset, PayloadError> {
    let shape: Vec<usize> = serde_json::from_value(p.params_json()["sample_shape"].clone())
        .map_err(|e| PayloadError::Invalid(format!("sample_shape: {e}")))?;
    let width: usize = shape.iter().product();
    let features = if p.tensors().contains_key(&format!("{prefix}images")) {
        let (s, bytes) = p.u8s(&format!("{prefix}images"), &[None, Some(width)])?;
        Features::Pixels(
            ndarray::Array2::from_shape_vec((s[0], width), bytes.to_vec()).expect("shape checked"),
        )
    } else {
        let a = p.f32s(&format!("{prefix}features"), &[None, Some(width)])?;
        Features::Values(a.into_dimensionality().expect("two dimensions checked"))
    };
    let n = match &features {
        Features::Pixels(a) => a.nrows(),
        Features::Values(a) => a.nrows(),
    };
    let names: Vec<String> =
        serde_json::from_value(p.params_json()["classes"].clone()).unwrap_or_default();
    let target = if names.is_empty() {
        let t = p.f32s(&format!("{prefix}targets"), &[Some(n)])?;
        Target::Values(t.into_dimensionality().expect("one dimension checked"))
    } else {
        let labels = p.labels(&format!("{prefix}labels"), n, names.len())?;
        Target::Classes {
            labels: labels.into(),
            names,
        }
    };
    Ok(Dataset {
        features,
        sample_shape: shape,
        target,
    })
}

/// `evaluate`: a trained network's score on a test set.
#[derive(Debug, Clone, Copy, Default)]
pub struct Evaluate;

impl JobKind for Evaluate {
    const NAME: &'static str = "evaluate";
    type Input = Payload;
    type Output = Payload;

    fn run(&self, job: Payload, _ctx: &JobContext) -> Result<Payload, BoxError> {
        let spec: Spec = serde_json::from_value(job.params_json()["spec"].clone())
            .map_err(|e| format!("the model's spec: {e}"))?;
        let net = Network::new(spec)?;
        let params = crate::group::read_params(&job, &net)?;
        let test = dataset_from(&job, "test_")?;
        let (mean, std) = (
            job.params_json()["pixels"]["mean"].as_f64().unwrap_or(0.0) as f32,
            job.params_json()["pixels"]["std"].as_f64().unwrap_or(1.0) as f32,
        );
        let x: Vec<f32> = match &test.features {
            Features::Pixels(a) => a.iter().map(|&b| (b as f32 / 255.0 - mean) / std).collect(),
            Features::Values(a) => a.iter().copied().collect(),
        };
        let score = match &test.target {
            Target::Classes { labels, .. } => net.score(
                &params,
                &x,
                Targets::Classes(labels.as_slice().expect("contiguous")),
            )?,
            Target::Values(v) => net.score(
                &params,
                &x,
                Targets::Values(v.as_slice().expect("contiguous")),
            )?,
        };
        let metric = if net.spec().loss.classifies() {
            "accuracy"
        } else {
            "mse"
        };
        Ok(Payload::new(Self::NAME).with_params(
            &serde_json::json!({ "metric": metric, "score": score, "samples": test.len() }),
        )?)
    }
}

/// `program`: runs a program under the directory the node's operator allowed, with the
/// arguments the task gives, and sends back its exit status and output. Refused for any path
/// that resolves outside that directory, and on nodes that allowed none.
#[derive(Debug, Clone, Default)]
pub struct Program {
    dir: Option<PathBuf>,
}

impl Program {
    /// Runs programs under `dir` (`None`: refuses every program job).
    pub fn new(dir: Option<PathBuf>) -> Self {
        Self { dir }
    }
}

/// A `program` job's parameters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ProgramJob {
    pub program: String,
    pub args: Vec<String>,
    pub timeout_s: f64,
    /// What the task's inputs said (their parameters), for the program as AMLIP_TASK_INPUTS.
    pub inputs: serde_json::Value,
}

impl JobKind for Program {
    const NAME: &'static str = "program";
    type Input = Payload;
    type Output = Payload;

    fn run(&self, job: Payload, ctx: &JobContext) -> Result<Payload, BoxError> {
        let p: ProgramJob = job.params()?;
        let Some(dir) = &self.dir else {
            return Err("this node runs no programs (its operator can allow a directory with --allow-programs DIR)".into());
        };
        let path = under(dir, &p.program, "allowed program directory")?;
        if !(p.timeout_s.is_finite() && p.timeout_s > 0.0) {
            return Err(format!("timeout {} s is not a positive duration", p.timeout_s).into());
        }
        let start = Instant::now();
        let mut child = Command::new(&path)
            .args(&p.args)
            .current_dir(dir)
            .env("AMLIP_TASK_INPUTS", p.inputs.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", path.display()))?;
        let mut out = child.stdout.take().expect("piped");
        let mut err = child.stderr.take().expect("piped");
        let reader = std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = out.by_ref().take(MAX_OUTPUT).read_to_end(&mut s);
            let _ = std::io::copy(&mut out, &mut std::io::sink());
            s
        });
        let err_reader = std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = err.by_ref().take(MAX_OUTPUT).read_to_end(&mut s);
            let _ = std::io::copy(&mut err, &mut std::io::sink());
            s
        });
        let timeout = Duration::from_secs_f64(p.timeout_s);
        let status = loop {
            if let Some(s) = child.try_wait()? {
                break Some(s);
            }
            if ctx.is_cancelled() || start.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stdout = String::from_utf8_lossy(&reader.join().unwrap_or_default()).into_owned();
        let stderr = String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).into_owned();
        let Some(status) = status else {
            return Err(format!(
                "{} was stopped after {:.1} s (timeout {timeout:?} or cancelled)",
                p.program,
                start.elapsed().as_secs_f64()
            )
            .into());
        };
        if !status.success() {
            let tail: String = stderr
                .lines()
                .rev()
                .take(5)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join(" | ");
            return Err(format!("{} exited with {status}: {tail}", p.program).into());
        }
        Ok(Payload::new(Self::NAME).with_params(&serde_json::json!({
            "exit_code": status.code(),
            "stdout": stdout,
            "stderr": stderr,
            "seconds": start.elapsed().as_secs_f64(),
        }))?)
    }
}

/// `rel` resolved under `dir`, refused if it resolves anywhere else (`..`, absolute paths,
/// symbolic links out) or does not exist.
fn under(dir: &Path, rel: &str, what: &str) -> Result<PathBuf, BoxError> {
    let root = dir
        .canonicalize()
        .map_err(|e| format!("the node's {what} {} is unusable: {e}", dir.display()))?;
    let path = root.join(rel).canonicalize().map_err(|e| {
        format!(
            "{rel:?} is not under the node's {what} {}: {e}",
            root.display()
        )
    })?;
    if !path.starts_with(&root) {
        return Err(format!(
            "{rel:?} resolves to {}, outside the node's {what} {}: refused",
            path.display(),
            root.display()
        )
        .into());
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_outside_the_allowed_directory_are_refused() {
        let d = std::env::temp_dir().join(format!("amlip-under-{}", std::process::id()));
        std::fs::create_dir_all(d.join("ok")).unwrap();
        std::fs::write(d.join("ok/run.sh"), "").unwrap();
        let root = d.join("ok");
        assert!(under(&root, "run.sh", "dir").is_ok());
        let e = under(&root, "../ok/../../etc/passwd", "dir")
            .unwrap_err()
            .to_string();
        assert!(e.contains("outside") || e.contains("not under"), "{e}");
        let e = under(&root, "/etc/passwd", "dir").unwrap_err().to_string();
        assert!(e.contains("outside"), "{e}");
        let e = Program::new(None).run(Payload::new("program").with_params(&serde_json::json!({"program": "x", "args": [], "timeout_s": 1.0, "inputs": null})).unwrap(), &JobContext::default()).unwrap_err().to_string();
        assert!(e.contains("--allow-programs"), "{e}");
    }
}
