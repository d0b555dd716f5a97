//! Loading users' data sets: every format, IDX of any shape, gzip, class names, splits, and a
//! clear error for every defect, naming the file, the row or tensor, and the problem.

use std::io::Write;
use std::path::{Path, PathBuf};

use amlip_ml::dataset::{self, DatasetError, Features, LoadOptions, Task};
use amlip_wire::payload::{Payload, Tensor};
use ndarray::{Array1, Array2};

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("amlip-datasets-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn load(p: &Path) -> Result<dataset::Dataset, DatasetError> {
    dataset::load(p, &LoadOptions::default())
}

fn err(p: &Path, opts: &LoadOptions) -> String {
    dataset::load(p, opts).unwrap_err().to_string()
}

/// A `.npy` file of little-endian f32 values, written by hand (numpy's format 1.0).
fn npy_f32(shape: &[usize], values: &[f32]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({},), }}",
        dims.join(", ")
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut v = b"\x93NUMPY\x01\x00".to_vec();
    v.extend_from_slice(&(header.len() as u16).to_le_bytes());
    v.extend_from_slice(header.as_bytes());
    for x in values {
        v.extend_from_slice(&x.to_le_bytes());
    }
    v
}

fn safetensors(x: &Array2<f32>, y: &Array1<u8>) -> Vec<u8> {
    Payload::new("")
        .with_tensor("features", Tensor::from_f32(x.view()))
        .with_tensor("labels", Tensor::from_u8(y.view()))
        .encode()
        .unwrap()
        .to_vec()
}

#[test]
fn csv_with_names_gzip_and_string_classes() {
    let d = dir("csv");
    let text = "height,colour,weight\n1.5,red,3\n2.5,blue,4\n0.5,red,5\n";
    // The label named by header; string classes sorted and reported.
    let opts = LoadOptions {
        label: Some("colour".into()),
        ..LoadOptions::default()
    };
    let p = write(&d, "t.csv", text.as_bytes());
    let set = dataset::load(&p, &opts).unwrap();
    assert_eq!(set.class_names(), ["blue", "red"]);
    assert_eq!(set.labels().unwrap().to_vec(), vec![1, 0, 1]);
    assert_eq!(set.sample_shape, vec![2]);
    assert!(
        set.describe().contains("2 classes (blue: 1, red: 2)"),
        "{}",
        set.describe()
    );
    // gzip'd, same content; no header, label by index.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(b"1.5,3,0\n2.5,4,1\n0.5,5,0\n").unwrap();
    let p = write(&d, "t.csv.gz", &gz.finish().unwrap());
    let set = load(&p).unwrap();
    assert_eq!(set.len(), 3);
    assert_eq!(set.class_names(), ["0", "1"]);
    // Fractional labels: a regression.
    let p = write(&d, "r.csv", b"x,y\n1,0.5\n2,1.5\n");
    assert_eq!(load(&p).unwrap().task(), Task::Regress);
}

#[test]
fn csv_defects_name_the_line_column_and_problem() {
    let d = dir("csvbad");
    let o = LoadOptions::default();
    let cases: [(&str, &str, &str); 8] = [
        (
            "nanlabel.csv",
            "a,b,c\n1,2,0.5\n1,2,nan\n",
            "nanlabel.csv: line 3: column \"c\": the label is nan",
        ),
        (
            "ragged.csv",
            "a,b,c\n1,2,0\n1,2\n",
            "ragged.csv: line 3: 2 fields, but the header has 3",
        ),
        (
            "text.csv",
            "a,b,c\n1,2,0\n1,x2,1\n",
            "text.csv: line 3: column \"b\": \"x2\" is not a number",
        ),
        (
            "nan.csv",
            "a,b,c\n1,2,0\nNaN,2,1\n",
            "nan.csv: line 3: column \"a\": NaN (features must be finite numbers)",
        ),
        (
            "empty.csv",
            "a,b,c\n1,,0\n",
            "empty.csv: line 2: column \"b\": the cell is empty",
        ),
        (
            "nolabel.csv",
            "a,b,c\n1,2,\n3,4,1\n",
            "nolabel.csv: line 2: column \"c\": the label is empty",
        ),
        ("blank.csv", "", "blank.csv: the table has no rows"),
        ("one.csv", "1\n2\n", "one.csv: the table has one column"),
    ];
    for (name, text, want) in cases {
        let p = write(&d, name, text.as_bytes());
        let e = err(&p, &o);
        assert!(e.contains(want), "{name}: {e}");
    }
    let p = write(&d, "t.csv", b"a,b,c\n1,2,0\n3,4,1\n");
    let e = err(
        &p,
        &LoadOptions {
            label: Some("species".into()),
            ..LoadOptions::default()
        },
    );
    assert!(
        e.contains("t.csv: no label column \"species\": the columns are a, b, c"),
        "{e}"
    );
    let p = write(&d, "cls.csv", b"a,b\n1,x\n2,y\n");
    let e = err(
        &p,
        &LoadOptions {
            task: Some(Task::Regress),
            ..LoadOptions::default()
        },
    );
    assert!(
        e.contains("cls.csv: line 2: column \"b\": \"x\" is not a finite number"),
        "{e}"
    );
}

#[test]
fn too_large_for_memory_is_refused_before_reading() {
    let d = dir("large");
    let p = write(&d, "big.csv", "a,b\n1,0\n2,1\n".repeat(100).as_bytes());
    let opts = LoadOptions {
        max_bytes: 1000,
        ..LoadOptions::default()
    };
    let e = dataset::load(&p, &opts).unwrap_err();
    assert!(matches!(e, DatasetError::TooLarge { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("big.csv: the file needs 1200 bytes, more than the 1000"),
        "{e}"
    );
    // A gzip bomb stops at the limit too.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&vec![b'1'; 1 << 20]).unwrap();
    let p = write(&d, "bomb.csv.gz", &gz.finish().unwrap());
    let opts = LoadOptions {
        max_bytes: 4000,
        ..LoadOptions::default()
    };
    let e = err(&p, &opts);
    assert!(
        e.contains("bomb.csv.gz: the file once gunzipped needs"),
        "{e}"
    );
}

#[test]
fn npy_tables_and_their_defects() {
    let d = dir("npy");
    // 3 rows: two features and a label column.
    let p = write(
        &d,
        "t.npy",
        &npy_f32(&[3, 3], &[1.0, 2.0, 0.0, 3.0, 4.0, 1.0, 5.0, 6.0, 0.0]),
    );
    let set = load(&p).unwrap();
    assert_eq!((set.len(), set.width(), set.classes()), (3, 2, 2));
    let opts = LoadOptions {
        label: Some("0".into()),
        ..LoadOptions::default()
    };
    let by_first = dataset::load(&p, &opts).unwrap();
    assert_eq!(by_first.task(), Task::Classify);
    assert_eq!(by_first.class_names(), ["1", "3", "5"]);
    let p = write(&d, "nan.npy", &npy_f32(&[2, 2], &[1.0, 0.0, f32::NAN, 1.0]));
    let e = err(&p, &LoadOptions::default());
    assert!(
        e.contains("nan.npy: features (array without the label column): sample 1, feature 0: NaN"),
        "{e}"
    );
    let p = write(&d, "flat.npy", &npy_f32(&[4], &[1.0, 0.0, 2.0, 1.0]));
    assert!(err(&p, &LoadOptions::default()).contains("flat.npy: array: has shape [4]"));
    let p = write(&d, "junk.npy", b"not numpy at all");
    assert!(err(&p, &LoadOptions::default()).contains("junk.npy: array: not a valid .npy array"));
}

#[test]
fn safetensors_sets_and_their_defects() {
    let d = dir("st");
    let x = Array2::from_shape_fn((6, 2), |(i, j)| (i * 2 + j) as f32);
    let y = Array1::from(vec![0u8, 1, 0, 1, 0, 1]);
    let p = write(&d, "ok.safetensors", &safetensors(&x, &y));
    let set = load(&p).unwrap();
    assert_eq!(set.features, Features::Values(x.clone()));
    let p = write(
        &d,
        "short.safetensors",
        &safetensors(&x, &Array1::from(vec![0u8, 1, 0])),
    );
    let e = err(&p, &LoadOptions::default());
    assert!(
        e.contains("short.safetensors: labels: holds 3 labels but features holds 6 samples"),
        "{e}"
    );
    let mut bad = x.clone();
    bad[[4, 1]] = f32::INFINITY;
    let p = write(&d, "inf.safetensors", &safetensors(&bad, &y));
    let e = err(&p, &LoadOptions::default());
    assert!(
        e.contains("inf.safetensors: features: sample 4, feature 1: inf"),
        "{e}"
    );
    let only = Payload::new("")
        .with_tensor("x", Tensor::from_f32(x.view()))
        .encode()
        .unwrap();
    let p = write(&d, "nolabels.safetensors", &only);
    let e = err(&p, &LoadOptions::default());
    assert!(
        e.contains(
            "nolabels.safetensors: no labels: name the tensor with --label (it holds x [6, 2]"
        ),
        "{e}"
    );
    let p = write(&d, "cut.safetensors", &safetensors(&x, &y)[..40]);
    assert!(
        err(&p, &LoadOptions::default()).contains("cut.safetensors: not a valid safetensors file")
    );
}

#[test]
fn idx_directories_of_any_image_shape_with_their_test_set() {
    let d = dir("idx");
    let idx = |dims: &[u32], body: &[u8]| {
        let mut v = vec![0, 0, 0x08, dims.len() as u8];
        for x in dims {
            v.extend_from_slice(&x.to_be_bytes());
        }
        v.extend_from_slice(body);
        v
    };
    // 20 RGB images of 4x4, labels 0..3; a test set of 4.
    let pixels: Vec<u8> = (0..20 * 48).map(|i| (i * 7 % 256) as u8).collect();
    let labels: Vec<u8> = (0..20).map(|i| (i % 4) as u8).collect();
    write(&d, "train-images-idx4-ubyte", &idx(&[20, 3, 4, 4], &pixels));
    write(&d, "train-labels-idx1-ubyte", &idx(&[20], &labels));
    write(
        &d,
        "test-images-idx4-ubyte",
        &idx(&[4, 3, 4, 4], &pixels[..4 * 48]),
    );
    write(&d, "test-labels-idx1-ubyte", &idx(&[4], &[3, 2, 1, 0]));
    let s = dataset::load_splits(&d, None, 0.2, 1, &LoadOptions::default()).unwrap();
    assert_eq!(s.train.sample_shape, vec![3, 4, 4]);
    assert_eq!((s.train.len(), s.train.width(), s.test.len()), (20, 48, 4));
    assert!(s.train.pixels().is_some(), "bytes stay pixels");
    assert_eq!(s.test.labels().unwrap().to_vec(), vec![3, 2, 1, 0]);
    // Mismatched counts are named.
    write(&d, "test-labels-idx1-ubyte", &idx(&[3], &[3, 2, 1]));
    let e = dataset::load_splits(&d, None, 0.2, 1, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("holds 4 samples but") && e.contains("holds 3 labels"),
        "{e}"
    );
}

#[test]
fn a_split_is_stratified_and_a_test_file_uses_the_training_classes() {
    let d = dir("split");
    let mut text = String::from("x,c\n");
    for i in 0..100 {
        text.push_str(&format!(
            "{i},{}\n",
            if i % 4 == 0 { "rare" } else { "common" }
        ));
    }
    let p = write(&d, "all.csv", text.as_bytes());
    let s = dataset::load_splits(&p, None, 0.2, 1, &LoadOptions::default()).unwrap();
    assert_eq!((s.train.len(), s.test.len()), (80, 20));
    assert_eq!(s.test.class_counts(), vec![15, 5], "common 15, rare 5");
    // A test file whose classes are a subset, in another order, keeps the training numbering.
    let t = write(&d, "test.csv", b"x,c\n1,rare\n2,rare\n");
    let s = dataset::load_splits(&p, Some(&t), 0.2, 1, &LoadOptions::default()).unwrap();
    assert_eq!(s.test.labels().unwrap().to_vec(), vec![1, 1]);
    assert_eq!(s.test.class_names(), ["common", "rare"]);
    let t = write(&d, "other.csv", b"x,c\n1,unheard\n2,rare\n");
    let e = dataset::load_splits(&p, Some(&t), 0.2, 1, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("other.csv: the test set has class \"unheard\""),
        "{e}"
    );
    let one = write(&d, "one.csv", b"x,c\n1,a\n2,a\n");
    let e = dataset::load_splits(&one, None, 0.2, 1, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("one.csv: every sample has the label \"a\""),
        "{e}"
    );
    let u = write(&d, "data.parquet", b"PAR1");
    assert!(err(&u, &LoadOptions::default()).contains("cannot tell the format"));
}
