//! The container every amlip ML job and solution travels in.
//!
//! Layout: `AMLJ`, a little-endian u32 header length, the header (JSON), then the sections'
//! raw bytes back to back. The header says the container version, the job kind, kind-specific
//! parameters, and each section's name, element type and shape; sizes follow from them, so a
//! truncated or padded payload, an unknown version, or a shape that does not fit is an error
//! that names the problem. JSON keeps the header readable and extensible; the raw sections keep
//! 47 MB of images from becoming 150 MB of text.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The container's first four bytes.
pub const MAGIC: &[u8; 4] = b"AMLJ";
/// The container version this build writes and reads.
pub const VERSION: u32 = 1;
/// Largest header accepted.
const MAX_HEADER: usize = 1 << 20;

/// Element type of a section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    U8,
    F32,
}

impl DType {
    pub fn size(self) -> usize {
        match self {
            DType::U8 => 1,
            DType::F32 => 4,
        }
    }
}

/// One named array in the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Section {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
}

impl Section {
    fn bytes(&self) -> Option<usize> {
        self.shape
            .iter()
            .try_fold(self.dtype.size(), |acc, &d| acc.checked_mul(d))
    }
}

/// The container's header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub version: u32,
    pub kind: String,
    #[serde(default)]
    pub params: Value,
    #[serde(default)]
    pub sections: Vec<Section>,
}

/// Why a payload is not a valid container (or not the one expected).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("not an amlip job payload (no AMLJ magic)")]
    NotAContainer,
    #[error("payload truncated: {0}")]
    Truncated(String),
    #[error("payload header is not valid JSON: {0}")]
    Header(String),
    #[error("payload version {found} is not supported (this node reads version {VERSION})")]
    Version { found: u32 },
    #[error("{0}")]
    Invalid(String),
}

/// A decoded container: header plus zero-copy section slices.
#[derive(Debug, Clone)]
pub struct Payload {
    pub header: Header,
    sections: Vec<(Section, Bytes)>,
}

/// Builds a container.
pub struct PayloadBuilder {
    kind: String,
    params: Value,
    sections: Vec<(Section, Vec<u8>)>,
}

impl PayloadBuilder {
    pub fn new(kind: &str, params: Value) -> Self {
        Self {
            kind: kind.to_owned(),
            params,
            sections: Vec::new(),
        }
    }

    /// Adds bytes with a shape (their product must be the length).
    pub fn u8(mut self, name: &str, shape: &[usize], data: &[u8]) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        self.sections.push((
            Section {
                name: name.into(),
                dtype: DType::U8,
                shape: shape.to_vec(),
            },
            data.to_vec(),
        ));
        self
    }

    /// Adds f32s (little endian) with a shape.
    pub fn f32(mut self, name: &str, shape: &[usize], data: &[f32]) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        let bytes = data.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.sections.push((
            Section {
                name: name.into(),
                dtype: DType::F32,
                shape: shape.to_vec(),
            },
            bytes,
        ));
        self
    }

    pub fn build(self) -> Bytes {
        let header = Header {
            version: VERSION,
            kind: self.kind,
            params: self.params,
            sections: self.sections.iter().map(|(s, _)| s.clone()).collect(),
        };
        let json = serde_json::to_vec(&header).expect("header serialises");
        let body: usize = self.sections.iter().map(|(_, d)| d.len()).sum();
        let mut out = Vec::with_capacity(8 + json.len() + body);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(json.len() as u32).to_le_bytes());
        out.extend_from_slice(&json);
        for (_, d) in &self.sections {
            out.extend_from_slice(d);
        }
        Bytes::from(out)
    }
}

impl Payload {
    /// Whether `data` starts like a container.
    pub fn is_container(data: &[u8]) -> bool {
        data.starts_with(MAGIC)
    }

    /// Decodes and validates a container.
    pub fn decode(data: &Bytes) -> Result<Payload, PayloadError> {
        if !Self::is_container(data) {
            return Err(PayloadError::NotAContainer);
        }
        if data.len() < 8 {
            return Err(PayloadError::Truncated(format!(
                "{} bytes, shorter than the 8-byte preamble",
                data.len()
            )));
        }
        let hlen = u32::from_le_bytes(data[4..8].try_into().expect("4 bytes")) as usize;
        if hlen > MAX_HEADER {
            return Err(PayloadError::Invalid(format!(
                "header length {hlen} exceeds {MAX_HEADER}"
            )));
        }
        if data.len() < 8 + hlen {
            return Err(PayloadError::Truncated(format!(
                "header of {hlen} bytes but only {} follow",
                data.len() - 8
            )));
        }
        // Version first, so a newer peer's header gets the version error, not a parse error.
        let raw: Value = serde_json::from_slice(&data[8..8 + hlen])
            .map_err(|e| PayloadError::Header(e.to_string()))?;
        match raw.get("version").and_then(Value::as_u64) {
            Some(v) if v == VERSION as u64 => {}
            Some(v) => return Err(PayloadError::Version { found: v as u32 }),
            None => return Err(PayloadError::Header("no \"version\" field".into())),
        }
        let header: Header =
            serde_json::from_value(raw).map_err(|e| PayloadError::Header(e.to_string()))?;
        let mut at = 8 + hlen;
        let mut sections = Vec::with_capacity(header.sections.len());
        for s in &header.sections {
            let n = s.bytes().ok_or_else(|| {
                PayloadError::Invalid(format!(
                    "section {} has an absurd shape {:?}",
                    s.name, s.shape
                ))
            })?;
            if data.len() - at < n {
                return Err(PayloadError::Truncated(format!(
                    "section {} ({:?} {:?}) needs {n} bytes, {} left",
                    s.name,
                    s.dtype,
                    s.shape,
                    data.len() - at
                )));
            }
            sections.push((s.clone(), data.slice(at..at + n)));
            at += n;
        }
        if at != data.len() {
            return Err(PayloadError::Invalid(format!(
                "{} bytes after the last section",
                data.len() - at
            )));
        }
        Ok(Payload { header, sections })
    }

    pub fn kind(&self) -> &str {
        &self.header.kind
    }

    /// The parameters, deserialised into `T`.
    pub fn params<T: serde::de::DeserializeOwned>(&self) -> Result<T, PayloadError> {
        serde_json::from_value(self.header.params.clone())
            .map_err(|e| PayloadError::Invalid(format!("{} parameters: {e}", self.header.kind)))
    }

    fn section(&self, name: &str, dtype: DType) -> Result<&(Section, Bytes), PayloadError> {
        let s = self
            .sections
            .iter()
            .find(|(s, _)| s.name == name)
            .ok_or_else(|| {
                PayloadError::Invalid(format!("{} payload has no section {name:?}", self.kind()))
            })?;
        if s.0.dtype != dtype {
            return Err(PayloadError::Invalid(format!(
                "section {name} is {:?}, expected {dtype:?}",
                s.0.dtype
            )));
        }
        Ok(s)
    }

    /// A u8 section whose shape must be `expected` (`None` entries match any size); returns
    /// its actual shape and bytes.
    pub fn u8s(
        &self,
        name: &str,
        expected: &[Option<usize>],
    ) -> Result<(Vec<usize>, Bytes), PayloadError> {
        let (s, b) = self.section(name, DType::U8)?;
        check_shape(name, &s.shape, expected)?;
        Ok((s.shape.clone(), b.clone()))
    }

    /// An f32 section of exactly `shape`.
    pub fn f32s(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, PayloadError> {
        let (s, b) = self.section(name, DType::F32)?;
        let expected: Vec<Option<usize>> = shape.iter().map(|&d| Some(d)).collect();
        check_shape(name, &s.shape, &expected)?;
        let v: Vec<f32> = b
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect();
        if let Some(bad) = v.iter().position(|x| !x.is_finite()) {
            return Err(PayloadError::Invalid(format!(
                "section {name}: element {bad} is not a finite number"
            )));
        }
        Ok(v)
    }
}

fn check_shape(
    name: &str,
    shape: &[usize],
    expected: &[Option<usize>],
) -> Result<(), PayloadError> {
    let ok = shape.len() == expected.len()
        && shape
            .iter()
            .zip(expected)
            .all(|(s, e)| e.is_none_or(|e| *s == e));
    if ok {
        Ok(())
    } else {
        let want: Vec<String> = expected
            .iter()
            .map(|e| e.map_or("any".into(), |d| d.to_string()))
            .collect();
        Err(PayloadError::Invalid(format!(
            "section {name} has shape {shape:?}, expected [{}]",
            want.join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Bytes {
        PayloadBuilder::new("demo", json!({"k": 3}))
            .u8("img", &[2, 3], &[1, 2, 3, 4, 5, 6])
            .f32("w", &[2], &[0.5, -1.0])
            .build()
    }

    #[test]
    fn round_trip() {
        let p = Payload::decode(&sample()).unwrap();
        assert_eq!(p.kind(), "demo");
        assert_eq!(p.header.params["k"], 3);
        let (shape, img) = p.u8s("img", &[None, Some(3)]).unwrap();
        assert_eq!((shape, &img[..]), (vec![2, 3], &[1u8, 2, 3, 4, 5, 6][..]));
        assert_eq!(p.f32s("w", &[2]).unwrap(), vec![0.5, -1.0]);
    }

    #[test]
    fn every_defect_is_named() {
        let good = sample();
        let cut = good.slice(..good.len() - 3);
        assert!(
            matches!(Payload::decode(&cut), Err(PayloadError::Truncated(m)) if m.contains("section w"))
        );
        let mut long = good.to_vec();
        long.push(0);
        assert!(
            matches!(Payload::decode(&Bytes::from(long)), Err(PayloadError::Invalid(m)) if m.contains("after the last"))
        );
        assert_eq!(
            Payload::decode(&Bytes::from_static(b"hello")).unwrap_err(),
            PayloadError::NotAContainer
        );
        let mut garbled = good.to_vec();
        garbled[9] = b'#';
        assert!(matches!(
            Payload::decode(&Bytes::from(garbled)),
            Err(PayloadError::Header(_))
        ));
        let v2 = {
            let h = br#"{"version":2,"kind":"x"}"#;
            let mut v = MAGIC.to_vec();
            v.extend_from_slice(&(h.len() as u32).to_le_bytes());
            v.extend_from_slice(h);
            Bytes::from(v)
        };
        assert_eq!(
            Payload::decode(&v2).unwrap_err(),
            PayloadError::Version { found: 2 }
        );
        let p = Payload::decode(&good).unwrap();
        assert!(p
            .u8s("img", &[None, Some(784)])
            .unwrap_err()
            .to_string()
            .contains("[2, 3]"));
        assert!(p
            .f32s("img", &[6])
            .unwrap_err()
            .to_string()
            .contains("expected F32"));
        assert!(p
            .u8s("labels", &[None])
            .unwrap_err()
            .to_string()
            .contains("no section"));
    }

    #[test]
    fn non_finite_weights_are_refused() {
        let p = PayloadBuilder::new("w", Value::Null)
            .f32("w", &[1], &[f32::NAN])
            .build();
        assert!(Payload::decode(&p).unwrap().f32s("w", &[1]).is_err());
    }
}
