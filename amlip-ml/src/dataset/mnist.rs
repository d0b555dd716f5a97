//! MNIST in its IDX format (gzip'd or not), validated field by field.
//!
//! IDX: a big-endian u32 magic (2051 for images, 2049 for labels), big-endian u32 dimensions,
//! then the bytes. A corrupt, truncated or mismatched file is an error that names the file and
//! what is wrong, never a panic.

use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2};

pub use super::error::DatasetError;

/// Side of an MNIST image.
pub const SIDE: usize = 28;
/// Pixels per image.
pub const PIXELS: usize = SIDE * SIDE;

const IMAGES_MAGIC: u32 = 2051;
const LABELS_MAGIC: u32 = 2049;

/// Images (one row of 784 pixels each) and their labels.
#[derive(Debug, Clone)]
pub struct Mnist {
    /// One row of 784 pixels (0-255) per image.
    pub images: Array2<u8>,
    /// One digit per image.
    pub labels: Array1<u8>,
}

impl Mnist {
    /// Images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The set as a payload's tensors: `images` U8 `[n, 784]` and `labels` U8 `[n]` (e.g. a
    /// shard for `FedAvg::shard` (`amlip-flows`)).
    pub fn to_payload(&self) -> crate::payload::Payload {
        use crate::payload::{Payload, Tensor};
        Payload::new("")
            .with_tensor("images", Tensor::from_u8(self.images.view()))
            .with_tensor("labels", Tensor::from_u8(self.labels.view()))
    }

    /// The rows at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Mnist {
        Mnist {
            images: self.images.select(ndarray::Axis(0), indices),
            labels: self.labels.select(ndarray::Axis(0), indices),
        }
    }

    /// How many images of each digit.
    pub fn label_counts(&self) -> [usize; 10] {
        let mut c = [0; 10];
        for &l in &self.labels {
            c[(l as usize).min(9)] += 1;
        }
        c
    }
}

/// The training and test sets.
#[derive(Debug, Clone)]
pub struct MnistSplits {
    /// The 60,000 training images.
    pub train: Mnist,
    /// The 10,000 test images.
    pub test: Mnist,
}

/// Loads `train` and `t10k` from `dir` (accepts `train-images.idx3-ubyte[.gz]` and the original
/// `train-images-idx3-ubyte[.gz]` names).
pub fn load_dir(dir: &Path) -> Result<MnistSplits, DatasetError> {
    Ok(MnistSplits {
        train: load_set(dir, "train")?,
        test: load_set(dir, "t10k")?,
    })
}

/// Loads one set (`train` or `t10k`) from `dir`.
pub fn load_set(dir: &Path, prefix: &str) -> Result<Mnist, DatasetError> {
    let images = find(dir, prefix, "images", "idx3")?;
    let labels = find(dir, prefix, "labels", "idx1")?;
    load_files(&images, &labels)
}

/// Loads an image file and a label file and checks they agree.
pub fn load_files(images: &Path, labels: &Path) -> Result<Mnist, DatasetError> {
    let imgs = read_images(images)?;
    let labs = read_labels(labels)?;
    if imgs.nrows() != labs.len() {
        return Err(DatasetError::CountMismatch {
            images: images.to_owned(),
            n_images: imgs.nrows(),
            labels: labels.to_owned(),
            n_labels: labs.len(),
        });
    }
    Ok(Mnist {
        images: imgs,
        labels: labs,
    })
}

fn find(dir: &Path, prefix: &str, what: &str, idx: &str) -> Result<PathBuf, DatasetError> {
    let names: Vec<String> = ["-", "."]
        .iter()
        .flat_map(|sep| {
            let base = format!("{prefix}-{what}{sep}{idx}-ubyte");
            [format!("{base}.gz"), base]
        })
        .collect();
    for n in &names {
        let p = dir.join(n);
        if p.exists() {
            return Ok(p);
        }
    }
    Err(DatasetError::Missing {
        dir: dir.to_owned(),
        which: format!("{prefix} {what}"),
        tried: names.join(", "),
    })
}

/// The file's bytes, gunzipped if it starts with the gzip magic.
fn read_bytes(path: &Path) -> Result<Vec<u8>, DatasetError> {
    super::raw::read_file(path, super::raw::default_memory_limit())
}

fn be_u32(bytes: &[u8], at: usize, path: &Path, field: &str) -> Result<u32, DatasetError> {
    bytes
        .get(at..at + 4)
        .map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")))
        .ok_or_else(|| DatasetError::Truncated {
            path: path.to_owned(),
            what: format!("header ends before the {field} ({} bytes)", bytes.len()),
        })
}

/// Reads an IDX3 image file into an (n, 784) array.
pub fn read_images(path: &Path) -> Result<Array2<u8>, DatasetError> {
    let b = read_bytes(path)?;
    let magic = be_u32(&b, 0, path, "magic number")?;
    if magic != IMAGES_MAGIC {
        return Err(DatasetError::Magic {
            path: path.to_owned(),
            found: magic,
            expected: IMAGES_MAGIC,
            what: "IDX3 images",
        });
    }
    let n = be_u32(&b, 4, path, "image count")? as usize;
    let rows = be_u32(&b, 8, path, "row count")? as usize;
    let cols = be_u32(&b, 12, path, "column count")? as usize;
    if rows != SIDE || cols != SIDE {
        return Err(DatasetError::Invalid {
            path: path.to_owned(),
            what: format!("images are {rows}x{cols}, expected {SIDE}x{SIDE}"),
        });
    }
    let need = n.checked_mul(PIXELS).ok_or_else(|| DatasetError::Invalid {
        path: path.to_owned(),
        what: format!("image count {n} is absurd"),
    })?;
    let body = &b[16..];
    if body.len() < need {
        return Err(DatasetError::Truncated {
            path: path.to_owned(),
            what: format!(
                "header says {n} images ({need} bytes) but {} bytes follow",
                body.len()
            ),
        });
    }
    if body.len() > need {
        return Err(DatasetError::Invalid {
            path: path.to_owned(),
            what: format!(
                "{} bytes after the {n} images the header announces",
                body.len() - need
            ),
        });
    }
    Ok(Array2::from_shape_vec((n, PIXELS), body.to_vec()).expect("size checked"))
}

/// Reads an IDX1 label file; every label must be a digit.
pub fn read_labels(path: &Path) -> Result<Array1<u8>, DatasetError> {
    let b = read_bytes(path)?;
    let magic = be_u32(&b, 0, path, "magic number")?;
    if magic != LABELS_MAGIC {
        return Err(DatasetError::Magic {
            path: path.to_owned(),
            found: magic,
            expected: LABELS_MAGIC,
            what: "IDX1 labels",
        });
    }
    let n = be_u32(&b, 4, path, "label count")? as usize;
    let body = &b[8..];
    if body.len() != n {
        let what = format!("header says {n} labels but {} bytes follow", body.len());
        return Err(if body.len() < n {
            DatasetError::Truncated {
                path: path.to_owned(),
                what,
            }
        } else {
            DatasetError::Invalid {
                path: path.to_owned(),
                what,
            }
        });
    }
    if let Some((i, l)) = body.iter().enumerate().find(|(_, l)| **l > 9) {
        return Err(DatasetError::Invalid {
            path: path.to_owned(),
            what: format!("label {i} is {l}, not a digit"),
        });
    }
    Ok(Array1::from(body.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn images_file(n: u32, rows: u32, pixels: usize) -> Vec<u8> {
        let mut v = Vec::new();
        for x in [IMAGES_MAGIC, n, rows, 28] {
            v.extend_from_slice(&x.to_be_bytes());
        }
        v.resize(16 + pixels, 7);
        v
    }

    fn labels_file(labels: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&LABELS_MAGIC.to_be_bytes());
        v.extend_from_slice(&(labels.len() as u32).to_be_bytes());
        v.extend_from_slice(labels);
        v
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("amlip-mnist-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn reads_a_small_valid_pair_plain_and_gzipped() {
        let d = tmp("ok");
        let imgs = write(&d, "x-images", &images_file(2, 28, 2 * PIXELS));
        let labs = write(&d, "x-labels", &labels_file(&[3, 9]));
        let m = load_files(&imgs, &labs).unwrap();
        assert_eq!(m.images.dim(), (2, PIXELS));
        assert_eq!(m.labels.to_vec(), vec![3, 9]);

        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &labels_file(&[1])).unwrap();
        let gzl = write(&d, "y-labels.gz", &gz.finish().unwrap());
        assert_eq!(read_labels(&gzl).unwrap().to_vec(), vec![1]);
    }

    #[test]
    fn wrong_magic_names_the_file_and_numbers() {
        let d = tmp("magic");
        let p = write(&d, "labels-as-images", &labels_file(&[1, 2]));
        let e = read_images(&p).unwrap_err().to_string();
        assert!(
            e.contains("labels-as-images") && e.contains("2049") && e.contains("2051"),
            "{e}"
        );
    }

    #[test]
    fn truncated_files_say_so() {
        let d = tmp("trunc");
        let mut bytes = images_file(3, 28, 3 * PIXELS);
        bytes.truncate(16 + 2 * PIXELS + 5);
        let p = write(&d, "short-images", &bytes);
        let e = read_images(&p).unwrap_err();
        assert!(matches!(e, DatasetError::Truncated { .. }), "{e}");
        assert!(e.to_string().contains("3 images"), "{e}");
        let p = write(&d, "tiny", &[0, 0, 8]);
        assert!(matches!(
            read_labels(&p),
            Err(DatasetError::Truncated { .. })
        ));
    }

    #[test]
    fn corrupt_gzip_and_bad_contents_are_errors() {
        let d = tmp("corrupt");
        let p = write(&d, "bad.gz", &[0x1f, 0x8b, 8, 0, 1, 2, 3]);
        assert!(matches!(read_images(&p), Err(DatasetError::Gzip { .. })));
        let p = write(&d, "wrongsize", &images_file(1, 14, 196));
        assert!(read_images(&p).unwrap_err().to_string().contains("14x28"));
        let p = write(&d, "badlabel", &labels_file(&[1, 42]));
        assert!(read_labels(&p).unwrap_err().to_string().contains("42"));
        let imgs = write(&d, "i", &images_file(2, 28, 2 * PIXELS));
        let labs = write(&d, "l", &labels_file(&[1]));
        assert!(matches!(
            load_files(&imgs, &labs),
            Err(DatasetError::CountMismatch { .. })
        ));
        let e = load_dir(&d.join("nowhere")).unwrap_err().to_string();
        assert!(e.contains("train images"), "{e}");
    }
}
