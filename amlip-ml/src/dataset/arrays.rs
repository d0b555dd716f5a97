//! Named arrays: numpy's `.npy` (one array: a table whose label column is chosen like a CSV's)
//! and `.npz` (several, read with `npyz` out of a `zip` archive), and safetensors files. The
//! features and labels are the arrays named by the options, else the ones with the usual
//! names, else the only two.

use std::io::Read;
use std::path::Path;

use npyz::{DType, NpyFile, TypeChar};
use safetensors::{Dtype, SafeTensors};

use super::raw::{self, RawArray, Values};
use super::{Dataset, DatasetError, LoadOptions};

/// Names tried for the labels, in order.
const LABEL_NAMES: [&str; 5] = ["labels", "label", "y", "targets", "target"];
/// Names tried for the features, in order.
const FEATURE_NAMES: [&str; 6] = ["features", "x", "X", "images", "data", "inputs"];

/// Reads a `.npy` table: `[n, columns]`, the label column chosen by index (the last by
/// default).
pub(crate) fn read_npy(path: &Path, opts: &LoadOptions) -> Result<Dataset, DatasetError> {
    let bytes = raw::read_file(path, opts.max_bytes)?;
    let a = npy_array(path, "array", &bytes[..], opts.max_bytes)?;
    let tensor = |what: String| DatasetError::Tensor {
        path: path.to_owned(),
        tensor: "array".into(),
        what,
    };
    let [n, width] = a.shape[..] else {
        return Err(tensor(format!(
            "has shape {:?}; a .npy data set is a table [samples, columns] with the label in one column (keep features and labels apart in a .npz or safetensors file)",
            a.shape
        )));
    };
    if width < 2 {
        return Err(tensor(format!(
            "has {width} column(s); it needs features and a label"
        )));
    }
    let label = match opts.label.as_deref() {
        None => width - 1,
        Some(l) => match l.parse::<usize>() {
            Ok(i) if i < width => i,
            _ => {
                return Err(tensor(format!(
                    "no label column {l:?}: a .npy table's columns are numbered 0..{width}"
                )))
            }
        },
    };
    let split = |pick: &dyn Fn(usize) -> bool| -> Vec<usize> {
        (0..n * width).filter(|i| pick(i % width)).collect()
    };
    let (fi, li) = (split(&|j| j != label), split(&|j| j == label));
    let take = |idx: &[usize]| match &a.values {
        Values::Bytes(v) => Values::Bytes(idx.iter().map(|&i| v[i]).collect()),
        Values::Ints(v) => Values::Ints(idx.iter().map(|&i| v[i]).collect()),
        Values::Floats(v) => Values::Floats(idx.iter().map(|&i| v[i]).collect()),
        Values::Strings(v) => Values::Strings(idx.iter().map(|&i| v[i].clone()).collect()),
    };
    raw::assemble(
        path,
        RawArray {
            name: "features (array without the label column)".into(),
            shape: vec![n, width - 1],
            values: take(&fi),
        },
        RawArray {
            name: format!("label column {label}"),
            shape: vec![n],
            values: take(&li),
        },
        opts.task,
    )
}

/// Reads a `.npz` archive of named arrays.
pub(crate) fn read_npz(path: &Path, opts: &LoadOptions) -> Result<Dataset, DatasetError> {
    let bytes = raw::read_file(path, opts.max_bytes)?;
    let format = |what: String| DatasetError::Format {
        path: path.to_owned(),
        what,
    };
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(&bytes[..]))
        .map_err(|e| format(format!("not a valid .npz (zip) archive: {e}")))?;
    let mut arrays = Vec::new();
    let mut budget = opts.max_bytes;
    for i in 0..zip.len() {
        let mut entry = zip
            .by_index(i)
            .map_err(|e| format(format!("entry {i} of the archive: {e}")))?;
        let name = entry
            .name()
            .map_err(|e| format(format!("entry {i} of the archive: {e}")))?
            .trim_end_matches(".npy")
            .to_owned();
        let mut data = Vec::new();
        (&mut entry)
            .take(budget + 1)
            .read_to_end(&mut data)
            .map_err(|e| format(format!("{name}: cannot decompress: {e}")))?;
        if data.len() as u64 > budget {
            return Err(DatasetError::TooLarge {
                path: path.to_owned(),
                what: "the archive's arrays".into(),
                needed: opts.max_bytes + 1,
                limit: opts.max_bytes,
            });
        }
        budget -= data.len() as u64;
        arrays.push(npy_array(path, &name, &data[..], opts.max_bytes)?);
    }
    pick(path, arrays, opts)
}

/// Reads a safetensors file of named tensors.
pub(crate) fn read_safetensors(path: &Path, opts: &LoadOptions) -> Result<Dataset, DatasetError> {
    let bytes = raw::read_file(path, opts.max_bytes)?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| DatasetError::Format {
        path: path.to_owned(),
        what: format!("not a valid safetensors file: {e}"),
    })?;
    let mut arrays = Vec::new();
    for (name, view) in st.tensors() {
        let d = view.data();
        let tensor = |what: String| DatasetError::Tensor {
            path: path.to_owned(),
            tensor: name.clone(),
            what,
        };
        let values = match view.dtype() {
            Dtype::U8 => Values::Bytes(d.to_vec()),
            Dtype::BOOL => Values::Ints(le(d, |[b]: [u8; 1]| b as i64)),
            Dtype::I8 => Values::Ints(le(d, |[b]: [u8; 1]| b as i8 as i64)),
            Dtype::I16 => Values::Ints(le(d, |b| i16::from_le_bytes(b) as i64)),
            Dtype::U16 => Values::Ints(le(d, |b| u16::from_le_bytes(b) as i64)),
            Dtype::I32 => Values::Ints(le(d, |b| i32::from_le_bytes(b) as i64)),
            Dtype::U32 => Values::Ints(le(d, |b| u32::from_le_bytes(b) as i64)),
            Dtype::I64 => Values::Ints(le(d, i64::from_le_bytes)),
            Dtype::F32 => Values::Floats(le(d, |b| f32::from_le_bytes(b) as f64)),
            Dtype::F64 => Values::Floats(le(d, f64::from_le_bytes)),
            other => {
                return Err(tensor(format!(
                    "dtype {other:?} is not read (use U8, integers, F32 or F64)"
                )))
            }
        };
        arrays.push(RawArray {
            name,
            shape: view.shape().to_vec(),
            values,
        });
    }
    pick(path, arrays, opts)
}

/// Little-endian elements of `N` bytes, converted by `f`.
fn le<const N: usize, T>(d: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
    d.chunks_exact(N)
        .map(|c| f(c.try_into().expect("N bytes")))
        .collect()
}

/// A numpy array's integers.
fn ints<T: npyz::Deserialize + Into<i64>>(npy: NpyFile<&[u8]>) -> std::io::Result<Values> {
    Ok(Values::Ints(
        npy.into_vec::<T>()?.into_iter().map(Into::into).collect(),
    ))
}

/// A numpy array's floats (f32 exact in f64).
fn floats<T: npyz::Deserialize + Into<f64>>(npy: NpyFile<&[u8]>) -> std::io::Result<Values> {
    Ok(Values::Floats(
        npy.into_vec::<T>()?.into_iter().map(Into::into).collect(),
    ))
}

/// Chooses the features and labels among named arrays.
fn pick(
    path: &Path,
    mut arrays: Vec<RawArray>,
    opts: &LoadOptions,
) -> Result<Dataset, DatasetError> {
    let listed = |arrays: &[RawArray]| {
        arrays
            .iter()
            .map(|a| format!("{} {:?}", a.name, a.shape))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let find = |wanted: Option<&str>, usual: &[&str], arrays: &[RawArray]| match wanted {
        Some(w) => arrays.iter().position(|a| a.name == w),
        None => usual
            .iter()
            .find_map(|u| arrays.iter().position(|a| a.name == *u)),
    };
    let Some(l) = find(opts.label.as_deref(), &LABEL_NAMES, &arrays) else {
        return Err(DatasetError::Format {
            path: path.to_owned(),
            what: match &opts.label {
                Some(l) => format!(
                    "no tensor {l:?} for the labels; it holds {}",
                    listed(&arrays)
                ),
                None => format!(
                    "no labels: name the tensor with --label (it holds {}; the names tried are {})",
                    listed(&arrays),
                    LABEL_NAMES.join(", ")
                ),
            },
        });
    };
    let labels = arrays.remove(l);
    let f = find(opts.features.as_deref(), &FEATURE_NAMES, &arrays)
        .or_else(|| (arrays.len() == 1 && opts.features.is_none()).then_some(0));
    let Some(f) = f else {
        return Err(DatasetError::Format {
            path: path.to_owned(),
            what: format!(
                "which tensor holds the features? name it with --features (besides the labels {:?} it holds {})",
                labels.name,
                listed(&arrays)
            ),
        });
    };
    let features = arrays.remove(f);
    raw::assemble(path, features, labels, opts.task)
}

/// One numpy array from its `.npy` bytes.
fn npy_array(path: &Path, name: &str, bytes: &[u8], limit: u64) -> Result<RawArray, DatasetError> {
    let tensor = |what: String| DatasetError::Tensor {
        path: path.to_owned(),
        tensor: name.to_owned(),
        what,
    };
    let npy = NpyFile::new(bytes).map_err(|e| tensor(format!("not a valid .npy array: {e}")))?;
    if npy.order() == npyz::Order::Fortran {
        return Err(tensor(
            "is in Fortran order; save it with np.ascontiguousarray(...) first".into(),
        ));
    }
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let DType::Plain(ts) = npy.dtype() else {
        return Err(tensor(
            "is a structured array; save plain numeric arrays".into(),
        ));
    };
    let each = ts.num_bytes().unwrap_or(8).max(4);
    raw::check_size(
        path,
        &format!("{name} {shape:?}"),
        npy.len() as usize,
        each,
        limit,
    )?;
    let size = ts.size_field();
    let read =
        |r: std::io::Result<Values>| r.map_err(|e| tensor(format!("cannot read its values: {e}")));
    let values = match (ts.type_char(), size) {
        (TypeChar::Uint, 1) => read(npy.into_vec::<u8>().map(Values::Bytes))?,
        (TypeChar::Bool, _) => read(ints::<bool>(npy))?,
        (TypeChar::Int, 1) => read(ints::<i8>(npy))?,
        (TypeChar::Int, 2) => read(ints::<i16>(npy))?,
        (TypeChar::Int, 4) => read(ints::<i32>(npy))?,
        (TypeChar::Int, 8) => read(ints::<i64>(npy))?,
        (TypeChar::Uint, 2) => read(ints::<u16>(npy))?,
        (TypeChar::Uint, 4) => read(ints::<u32>(npy))?,
        (TypeChar::Float, 4) => read(floats::<f32>(npy))?,
        (TypeChar::Float, 8) => read(floats::<f64>(npy))?,
        (TypeChar::UnicodeStr | TypeChar::ByteStr, _) => {
            read(npy.into_vec::<String>().map(Values::Strings))?
        }
        _ => {
            return Err(tensor(format!(
                "dtype {ts} is not read (use bytes, integers, float32/float64 or strings)"
            )))
        }
    };
    if values.len() != shape.iter().product::<usize>() {
        return Err(tensor(format!(
            "holds {} values for shape {shape:?}",
            values.len()
        )));
    }
    Ok(RawArray {
        name: name.to_owned(),
        shape,
        values,
    })
}
