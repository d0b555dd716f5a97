//! Arrays as files hold them, before they become a [`Dataset`]: bytes, integers, floats or
//! strings with a shape; reading files within a memory limit; and turning a features array and
//! a labels array into a checked data set (counts, NaN, classes).

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;

use ndarray::{Array1, Array2};

use super::{Dataset, DatasetError, Features, Target, Task};

/// The most classes a classification set may have (labels travel as bytes).
pub const MAX_CLASSES: usize = 256;

/// The values of an array, in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Values {
    /// Unsigned bytes (images).
    Bytes(Vec<u8>),
    /// Integers.
    Ints(Vec<i64>),
    /// Floating point (f32 values are exact in f64).
    Floats(Vec<f64>),
    /// Text (CSV cells, numpy string arrays).
    Strings(Vec<String>),
}

impl Values {
    pub(crate) fn len(&self) -> usize {
        match self {
            Values::Bytes(v) => v.len(),
            Values::Ints(v) => v.len(),
            Values::Floats(v) => v.len(),
            Values::Strings(v) => v.len(),
        }
    }
}

/// An array read from a file, with its name there.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RawArray {
    /// The tensor's or column's name, for errors.
    pub name: String,
    pub shape: Vec<usize>,
    pub values: Values,
}

/// How much memory loading may take by default: half of what the system has available
/// (`MemAvailable` of `/proc/meminfo`), or 8 GiB where that cannot be read.
pub fn default_memory_limit() -> u64 {
    let available = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines()
            .find(|l| l.starts_with("MemAvailable:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
    });
    available.map_or(8 << 30, |kb| kb * 1024 / 2)
}

/// A file's bytes, gunzipped if they start with the gzip magic, refused beyond `limit` bytes.
pub(crate) fn read_file(path: &Path, limit: u64) -> Result<Vec<u8>, DatasetError> {
    let io = |source| DatasetError::Io {
        path: path.to_owned(),
        source,
    };
    let size = std::fs::metadata(path).map_err(io)?.len();
    let too_large = |needed| DatasetError::TooLarge {
        path: path.to_owned(),
        what: "the file".into(),
        needed,
        limit,
    };
    if size > limit {
        return Err(too_large(size));
    }
    let raw = std::fs::read(path).map_err(io)?;
    if !raw.starts_with(&[0x1f, 0x8b]) {
        return Ok(raw);
    }
    let mut out = Vec::with_capacity(raw.len().saturating_mul(4).min(limit as usize));
    flate2::read::GzDecoder::new(&raw[..])
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|source| DatasetError::Gzip {
            path: path.to_owned(),
            source,
        })?;
    if out.len() as u64 > limit {
        return Err(DatasetError::TooLarge {
            path: path.to_owned(),
            what: "the file once gunzipped".into(),
            needed: limit + 1,
            limit,
        });
    }
    Ok(out)
}

/// Refuses an array of `count` elements of `bytes_each` beyond `limit`.
pub(crate) fn check_size(
    path: &Path,
    what: &str,
    count: usize,
    bytes_each: usize,
    limit: u64,
) -> Result<(), DatasetError> {
    let needed = (count as u64).saturating_mul(bytes_each as u64);
    if needed > limit {
        return Err(DatasetError::TooLarge {
            path: path.to_owned(),
            what: what.to_owned(),
            needed,
            limit,
        });
    }
    Ok(())
}

/// Builds a data set from a features array (`[n, ...]`) and a labels array (`[n]`), as
/// `task` says (or as the labels suggest: text or whole numbers are classes, fractions are
/// values to regress).
pub(crate) fn assemble(
    path: &Path,
    features: RawArray,
    labels: RawArray,
    task: Option<Task>,
) -> Result<Dataset, DatasetError> {
    let tensor = |name: &str, what: String| DatasetError::Tensor {
        path: path.to_owned(),
        tensor: name.to_owned(),
        what,
    };
    let Some(&n) = features.shape.first() else {
        return Err(tensor(
            &features.name,
            "is a scalar; features need one row per sample".into(),
        ));
    };
    if n == 0 {
        return Err(tensor(&features.name, "holds no samples".into()));
    }
    let sample_shape: Vec<usize> = if features.shape.len() == 1 {
        vec![1]
    } else {
        features.shape[1..].to_vec()
    };
    let width: usize = sample_shape.iter().product();
    if width == 0 {
        return Err(tensor(&features.name, "has no features".into()));
    }
    let n_labels = labels.shape.iter().product::<usize>();
    if labels.shape.len() > 2 || (labels.shape.len() == 2 && labels.shape[1] != 1) {
        return Err(tensor(
            &labels.name,
            format!(
                "has shape {:?}; labels need one value per sample",
                labels.shape
            ),
        ));
    }
    if n_labels != n {
        return Err(DatasetError::Tensor {
            path: path.to_owned(),
            tensor: labels.name.clone(),
            what: format!(
                "holds {n_labels} labels but {} holds {n} samples",
                features.name
            ),
        });
    }
    let features = match features.values {
        Values::Bytes(b) => Features::Pixels(
            Array2::from_shape_vec((n, width), b)
                .map_err(|e| tensor(&features.name, format!("does not match its shape: {e}")))?,
        ),
        Values::Strings(s) => {
            let (i, cell) = s
                .iter()
                .enumerate()
                .find(|(_, c)| c.trim().parse::<f64>().is_err())
                .map(|(i, c)| (i, c.clone()))
                .unwrap_or((0, String::new()));
            return Err(tensor(
                &features.name,
                format!(
                    "sample {}: {cell:?} is not a number (features must be numeric)",
                    i / width
                ),
            ));
        }
        other => {
            let floats = to_f32(&other);
            if let Some(i) = floats.iter().position(|x| !x.is_finite()) {
                return Err(tensor(
                    &features.name,
                    format!(
                        "sample {}, feature {}: {} (features must be finite numbers)",
                        i / width,
                        i % width,
                        floats[i]
                    ),
                ));
            }
            Features::Values(
                Array2::from_shape_vec((n, width), floats).map_err(|e| {
                    tensor(&features.name, format!("does not match its shape: {e}"))
                })?,
            )
        }
    };
    let target = make_target(&labels, task).map_err(|what| tensor(&labels.name, what))?;
    Ok(Dataset {
        features,
        sample_shape,
        target,
    })
}

fn to_f32(v: &Values) -> Vec<f32> {
    match v {
        Values::Bytes(b) => b.iter().map(|&x| x as f32).collect(),
        Values::Ints(i) => i.iter().map(|&x| x as f32).collect(),
        Values::Floats(f) => f.iter().map(|&x| x as f32).collect(),
        Values::Strings(_) => Vec::new(),
    }
}

/// Classes (sorted by name; numerically when the names are numbers) or values.
fn make_target(labels: &RawArray, task: Option<Task>) -> Result<Target, String> {
    let whole = |x: f64| x.fract() == 0.0 && x.abs() < 1e15;
    let task = task.unwrap_or(match &labels.values {
        Values::Floats(f) if !f.iter().all(|&x| whole(x)) => Task::Regress,
        _ => Task::Classify,
    });
    if task == Task::Regress {
        let values = match &labels.values {
            Values::Strings(s) => {
                let mut out = Vec::with_capacity(s.len());
                for (i, c) in s.iter().enumerate() {
                    out.push(c.trim().parse::<f32>().map_err(|_| {
                        format!("sample {i}: {c:?} is not a number (a regression target must be)")
                    })?);
                }
                out
            }
            other => to_f32(other),
        };
        if let Some(i) = values.iter().position(|x| !x.is_finite()) {
            return Err(format!(
                "sample {i}: {} (targets must be finite numbers)",
                values[i]
            ));
        }
        return Ok(Target::Values(Array1::from(values)));
    }
    // Classes: each label as a name; numbers sort numerically.
    let (names, numeric): (Vec<String>, bool) = match &labels.values {
        Values::Strings(s) => {
            let numeric = s.iter().all(|c| c.trim().parse::<f64>().is_ok());
            (s.iter().map(|c| c.trim().to_owned()).collect(), numeric)
        }
        Values::Bytes(b) => (b.iter().map(|x| x.to_string()).collect(), true),
        Values::Ints(i) => (i.iter().map(|x| x.to_string()).collect(), true),
        Values::Floats(f) => {
            if let Some(i) = f.iter().position(|&x| !whole(x)) {
                return Err(format!(
                    "sample {i}: {} is not a class (pass --task regress to predict numbers)",
                    f[i]
                ));
            }
            (f.iter().map(|&x| (x as i64).to_string()).collect(), true)
        }
    };
    if let Some(i) = names
        .iter()
        .position(|n| n.is_empty() || n == "nan" || n == "NaN")
    {
        return Err(format!("sample {i}: the label is missing ({:?})", names[i]));
    }
    let mut distinct: Vec<&String> = names.iter().collect::<BTreeSet<_>>().into_iter().collect();
    if numeric {
        distinct.sort_by(|a, b| {
            let (x, y) = (
                a.parse::<f64>().unwrap_or(0.0),
                b.parse::<f64>().unwrap_or(0.0),
            );
            x.total_cmp(&y)
        });
    }
    if distinct.len() > MAX_CLASSES {
        return Err(format!(
            "{} distinct labels: classification takes at most {MAX_CLASSES} classes (pass --task regress to predict numbers)",
            distinct.len()
        ));
    }
    let index: std::collections::HashMap<&String, u8> = distinct
        .iter()
        .enumerate()
        .map(|(i, n)| (*n, i as u8))
        .collect();
    let labels = names.iter().map(|n| index[n]).collect();
    Ok(Target::Classes {
        labels,
        names: distinct.into_iter().cloned().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arr(name: &str, shape: Vec<usize>, values: Values) -> RawArray {
        RawArray {
            name: name.into(),
            shape,
            values,
        }
    }

    #[test]
    fn classes_are_sorted_names_numbers_numerically() {
        let x = arr("x", vec![4, 1], Values::Floats(vec![0.0, 1.0, 2.0, 3.0]));
        let y = arr("y", vec![4], Values::Ints(vec![10, 2, 2, 10]));
        let d = assemble(Path::new("f"), x.clone(), y, None).unwrap();
        assert_eq!(d.class_names(), ["2", "10"]);
        assert_eq!(d.labels().unwrap().to_vec(), vec![1, 0, 0, 1]);
        let s = |v: &[&str]| Values::Strings(v.iter().map(|s| s.to_string()).collect());
        let y = arr("y", vec![4], s(&["b", "a", "c", "a"]));
        let d = assemble(Path::new("f"), x.clone(), y, None).unwrap();
        assert_eq!(d.class_names(), ["a", "b", "c"]);
        assert_eq!(d.class_counts(), vec![2, 1, 1]);
        let y = arr("y", vec![4], Values::Floats(vec![0.5, 1.0, 2.0, 3.0]));
        let d = assemble(Path::new("f"), x, y, None).unwrap();
        assert_eq!(d.task(), Task::Regress);
    }

    #[test]
    fn defects_name_the_tensor_and_sample() {
        let p = Path::new("data.npz");
        let x = arr(
            "x",
            vec![2, 2],
            Values::Floats(vec![0.0, 1.0, f64::NAN, 3.0]),
        );
        let y = arr("y", vec![2], Values::Ints(vec![0, 1]));
        let e = assemble(p, x, y.clone(), None).unwrap_err().to_string();
        assert!(e.contains("data.npz: x: sample 1, feature 0: NaN"), "{e}");
        let x = arr("x", vec![3, 1], Values::Floats(vec![0.0, 1.0, 2.0]));
        let e = assemble(p, x.clone(), y, None).unwrap_err().to_string();
        assert!(e.contains("y: holds 2 labels but x holds 3 samples"), "{e}");
        let y = arr("y", vec![3], Values::Floats(vec![0.5, 0.0, f64::INFINITY]));
        let e = assemble(p, x, y, Some(Task::Regress))
            .unwrap_err()
            .to_string();
        assert!(e.contains("sample 2: inf"), "{e}");
    }
}
