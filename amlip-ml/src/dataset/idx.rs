//! IDX files of any shape and element type (the format of MNIST, also used for other image
//! sets): a magic of two zero bytes, a type byte and a dimension count, big-endian u32
//! dimensions, then the elements big-endian.

use std::path::Path;

use super::raw::{self, RawArray, Values};
use super::DatasetError;

/// Reads an IDX file (gzip'd or not) whose size stays within `limit` bytes.
pub(crate) fn read(path: &Path, limit: u64) -> Result<RawArray, DatasetError> {
    let b = raw::read_file(path, limit)?;
    let invalid = |what: String| DatasetError::Invalid {
        path: path.to_owned(),
        what,
    };
    if b.len() < 4 {
        return Err(DatasetError::Truncated {
            path: path.to_owned(),
            what: format!("{} bytes, shorter than an IDX magic number", b.len()),
        });
    }
    if b[0] != 0 || b[1] != 0 {
        return Err(invalid(format!(
            "not an IDX file (it starts with {:02x} {:02x}, not 00 00)",
            b[0], b[1]
        )));
    }
    let (type_byte, ndim) = (b[2], b[3] as usize);
    let size = match type_byte {
        0x08 | 0x09 => 1,
        0x0B => 2,
        0x0C | 0x0D => 4,
        0x0E => 8,
        t => {
            return Err(invalid(format!(
                "IDX element type 0x{t:02x} is not one of u8 (08), i8 (09), i16 (0b), i32 (0c), f32 (0d), f64 (0e)"
            )))
        }
    };
    if ndim == 0 {
        return Err(invalid("an IDX file with no dimensions".into()));
    }
    let body_at = 4 + 4 * ndim;
    if b.len() < body_at {
        return Err(DatasetError::Truncated {
            path: path.to_owned(),
            what: format!("header ends before its {ndim} dimensions"),
        });
    }
    let shape: Vec<usize> = (0..ndim)
        .map(|i| u32::from_be_bytes(b[4 + 4 * i..8 + 4 * i].try_into().expect("4 bytes")) as usize)
        .collect();
    let count = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| invalid(format!("dimensions {shape:?} are absurd")))?;
    raw::check_size(
        path,
        &format!("an array of shape {shape:?}"),
        count,
        size.max(4),
        limit,
    )?;
    let body = &b[body_at..];
    let need = count * size;
    if body.len() != need {
        let what = format!(
            "header says shape {shape:?} ({need} bytes) but {} bytes follow",
            body.len()
        );
        return Err(if body.len() < need {
            DatasetError::Truncated {
                path: path.to_owned(),
                what,
            }
        } else {
            invalid(what)
        });
    }
    let ints = |f: fn(&[u8]) -> i64| Values::Ints(body.chunks_exact(size).map(f).collect());
    let values = match type_byte {
        0x08 => Values::Bytes(body.to_vec()),
        0x09 => ints(|c| c[0] as i8 as i64),
        0x0B => ints(|c| i16::from_be_bytes([c[0], c[1]]) as i64),
        0x0C => ints(|c| i32::from_be_bytes(c.try_into().expect("4 bytes")) as i64),
        0x0D => Values::Floats(
            body.chunks_exact(4)
                .map(|c| f32::from_be_bytes(c.try_into().expect("4 bytes")) as f64)
                .collect(),
        ),
        _ => Values::Floats(
            body.chunks_exact(8)
                .map(|c| f64::from_be_bytes(c.try_into().expect("8 bytes")))
                .collect(),
        ),
    };
    let name = path
        .file_name()
        .map_or("array".into(), |n| n.to_string_lossy().into_owned());
    Ok(RawArray {
        name,
        shape,
        values,
    })
}

/// The bytes of an IDX file holding `shape` and `body` (big-endian elements of `type_byte`);
/// for tests and fixtures.
#[cfg(test)]
pub(crate) fn encode(type_byte: u8, shape: &[u32], body: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, type_byte, shape.len() as u8];
    for d in shape {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(body);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("amlip-idx-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn any_shape_and_type() {
        let p = write("rgb", &encode(0x08, &[2, 3, 4, 4], &[7; 96]));
        let a = read(&p, 1 << 20).unwrap();
        assert_eq!(a.shape, vec![2, 3, 4, 4]);
        assert_eq!(a.values, Values::Bytes(vec![7; 96]));
        let body: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|x| x.to_be_bytes())
            .collect();
        let p = write("floats", &encode(0x0D, &[2], &body));
        assert_eq!(
            read(&p, 1 << 20).unwrap().values,
            Values::Floats(vec![1.5, -2.0])
        );
    }

    #[test]
    fn defects_are_named() {
        let p = write("short", &encode(0x08, &[3, 2], &[1; 5]));
        let e = read(&p, 1 << 20).unwrap_err().to_string();
        assert!(
            e.contains("short") && e.contains("[3, 2] (6 bytes) but 5 bytes"),
            "{e}"
        );
        let p = write("type", &encode(0x0A, &[1], &[1]));
        assert!(read(&p, 1 << 20).unwrap_err().to_string().contains("0x0a"));
        let p = write("huge", &encode(0x08, &[100_000, 100_000], &[]));
        let e = read(&p, 1 << 20).unwrap_err();
        assert!(matches!(e, DatasetError::TooLarge { .. }), "{e}");
    }
}
