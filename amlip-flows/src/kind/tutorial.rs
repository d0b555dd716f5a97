//! The job form of eProsima's "Parallelize AML training with AML-IP" tutorial, so that its
//! Python main node gets an AML model back from an amlip computing node.
//!
//! The job is UTF-8 text: `x: <JSON list of images> y: <JSON list of labels>`, each image a list
//! of 784 pixel values (0-255). The solution is the model's JSON atomization:
//! `{"vTerm": [1568], "1568": [{"atom_epoch": .., "atom_gen": .., "atom_ucs": [..]}, ..]}`.

use std::fmt;

use bytes::Bytes;
use ndarray::{Array1, Array2};
use serde::de::{self, DeserializeSeed, Deserializer, SeqAccess, Visitor};

use crate::aml::{self, DigitParams};
use crate::dataset::mnist::PIXELS;
use crate::error::BoxError;
use crate::job::JobContext;

const X: &str = "x: ";
const Y: &str = " y: ";

/// Whether `data` looks like a tutorial job.
pub fn is_tutorial_job(data: &[u8]) -> bool {
    data.starts_with(X.as_bytes())
}

/// Builds a tutorial job (what the tutorial's Python main sends).
pub fn job(images: &Array2<u8>, labels: &Array1<u8>) -> String {
    let rows: Vec<Vec<u8>> = images.rows().into_iter().map(|r| r.to_vec()).collect();
    format!(
        "{X}{}{Y}{}",
        serde_json::to_string(&rows).expect("json"),
        serde_json::to_string(&labels.to_vec()).expect("json")
    )
}

/// Parses a tutorial job into images and labels.
pub fn parse(data: &[u8]) -> Result<(Array2<u8>, Array1<u8>), String> {
    let text =
        std::str::from_utf8(data).map_err(|_| "tutorial job is not UTF-8 text".to_string())?;
    let body = text
        .strip_prefix(X)
        .ok_or_else(|| format!("tutorial job must start with {X:?}"))?;
    let split = body
        .find(Y)
        .ok_or_else(|| format!("tutorial job has no {Y:?} part"))?;
    let mut de = serde_json::Deserializer::from_str(&body[..split]);
    let images = de
        .deserialize_seq(ImagesVisitor)
        .and_then(|i| de.end().map(|_| i))
        .map_err(|e| format!("x: {e}"))?;
    let labels: Vec<u8> =
        serde_json::from_str(&body[split + Y.len()..]).map_err(|e| format!("y: {e}"))?;
    if labels.len() != images.rows {
        return Err(format!(
            "{} images but {} labels",
            images.rows,
            labels.len()
        ));
    }
    if let Some(l) = labels.iter().find(|l| **l > 9) {
        return Err(format!("label {l} is not a digit"));
    }
    if images.rows == 0 {
        return Err("no images".into());
    }
    Ok((
        Array2::from_shape_vec((images.rows, PIXELS), images.data).expect("row length checked"),
        Array1::from(labels),
    ))
}

/// Serves a tutorial job: trains "is it `digit`?" and answers the JSON atomization.
pub fn run(data: &[u8], ctx: &JobContext, digit: u8) -> Result<Bytes, BoxError> {
    let (images, labels) = parse(data)?;
    tracing::info!(
        images = images.nrows(),
        digit,
        "training AML for an AML-IP tutorial job"
    );
    let params = DigitParams {
        digit,
        ..DigitParams::default()
    };
    let model = aml::train_digit(images.view(), labels.view(), &params, |r| {
        ctx.report_progress(r.batch, params.batches as u32);
        ctx.keep_going()
    });
    Ok(Bytes::from(model.to_json()))
}

/// Images decoded straight into one flat buffer (no Vec per row, no f64 per pixel).
struct Images {
    data: Vec<u8>,
    rows: usize,
}

struct ImagesVisitor;

impl<'de> Visitor<'de> for ImagesVisitor {
    type Value = Images;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of images, each a list of 784 pixel values")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Images, A::Error> {
        let mut data = Vec::new();
        let mut rows = 0;
        while seq.next_element_seed(Row(&mut data, rows))?.is_some() {
            rows += 1;
        }
        Ok(Images { data, rows })
    }
}

struct Row<'a>(&'a mut Vec<u8>, usize);

impl<'de> DeserializeSeed<'de> for Row<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Row<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "image {} as a list of 784 pixel values", self.1)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut n = 0;
        while let Some(p) = seq.next_element::<f64>()? {
            if !(0.0..=255.0).contains(&p) {
                return Err(de::Error::custom(format!(
                    "image {}: pixel {n} is {p}, not 0-255",
                    self.1
                )));
            }
            self.0.push(p.round() as u8);
            n += 1;
        }
        if n != PIXELS {
            return Err(de::Error::custom(format!(
                "image {} has {n} pixels, not {PIXELS}",
                self.1
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_the_tutorial_sends() {
        let images = Array2::from_shape_fn((3, PIXELS), |(i, j)| ((i * 31 + j) % 256) as u8);
        let labels = Array1::from(vec![0u8, 7, 0]);
        let text = job(&images, &labels);
        assert!(text.starts_with("x: [[0,1,2,"));
        let (i, l) = parse(text.as_bytes()).unwrap();
        assert_eq!((i, l), (images, labels));
    }

    #[test]
    fn bad_tutorial_jobs_say_what_is_wrong() {
        let row = vec![0u8; PIXELS];
        let short = format!("x: [{:?}] y: [0]", &row[..783]).replace(' ', "");
        assert!(
            parse(short.replace("x:", "x: ").replace("y:", " y: ").as_bytes())
                .unwrap_err()
                .contains("783 pixels")
        );
        let two = format!("x: [{}] y: [0, 1]", serde_json::to_string(&row).unwrap());
        assert!(parse(two.as_bytes())
            .unwrap_err()
            .contains("1 images but 2 labels"));
        assert!(parse(b"x: [[1,2]]").unwrap_err().contains("no"));
        let neg = format!(
            "x: [{}] y: [0]",
            serde_json::to_string(&row).unwrap().replacen("0", "-4", 1)
        );
        assert!(parse(neg.as_bytes()).unwrap_err().contains("not 0-255"));
    }
}
