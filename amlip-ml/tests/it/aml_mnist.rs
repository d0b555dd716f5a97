//! The AML engine on real MNIST: digit 0 from 10 batches of 100+900 reaches the tutorial's
//! accuracy on the official 10k test set; the trained model survives its JSON and binary forms;
//! a damaged data file is a clear error.

use std::path::{Path, PathBuf};

use amlip_ml::aml::{self, embedding, DigitParams, Embedding, Model};
use amlip_ml::dataset::{self, Dataset, DatasetError};

fn mnist_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(dataset::MNIST_DIR)
}

#[test]
fn digit_zero_from_ten_batches_reaches_097_balanced_accuracy() {
    let data = dataset::load_dir(&mnist_dir()).expect("MNIST in datasets/mnist");
    assert_eq!((data.train.len(), data.test.len()), (60_000, 10_000));
    let emb = Embedding::mnist();
    let (train, held) = dataset::hold_out(&Dataset::from(data.train), 0.1, 1);
    let (held_x, held_y) = (held.pixels().unwrap(), held.labels().unwrap());
    let params = DigitParams::default(); // digit 0, 10 batches of 100 + 900
    let mut batches = 0;
    let (x, y) = (train.pixels().unwrap(), train.labels().unwrap());
    let mut model = aml::train_digit(x, y, &params, |r| {
        batches += 1;
        assert_eq!((r.positives, r.negatives), (100, 900));
        std::ops::ControlFlow::Continue(())
    });
    assert_eq!(batches, 10);
    aml::calibrate(&mut model, &emb, held_x, held_y, 0);
    let m = aml::evaluate(
        &model,
        &emb,
        data.test.images.view(),
        data.test.labels.view(),
        0,
    );
    eprintln!(
        "digit 0, 10 batches: {} atoms, cutoff {:?}, balanced accuracy {:.4}, FPR {:.4}, FNR {:.4}",
        model.len(),
        model.cutoff,
        m.balanced_accuracy(),
        m.fpr(),
        m.fnr()
    );
    assert_eq!(m.total(), 10_000);
    assert!(
        m.balanced_accuracy() >= 0.97,
        "balanced accuracy {:.4}",
        m.balanced_accuracy()
    );

    // The JSON form (AML-IP tutorial) and the binary form give back the same classifier.
    let terms = emb.terms(data.test.images.view());
    let misses = model.misses_many(&terms);
    let json = Model::from_json(&model.to_json(), Some(embedding::N_CONSTANTS)).unwrap();
    assert_eq!(json.misses_many(&terms), misses);
    let bin = Model::from_bytes(&model.to_bytes()).unwrap();
    assert_eq!(bin, model);
}

#[test]
fn damaged_data_files_are_clear_errors() {
    let dir = std::env::temp_dir().join(format!("amlip-damaged-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = mnist_dir();
    // Truncated: the real label file cut short (after gunzip), gzip'd again is not needed:
    // a plain file works too.
    let labels = dataset::mnist::read_labels(&src.join("t10k-labels.idx1-ubyte.gz")).unwrap();
    let mut raw = vec![0, 0, 8, 1, 0, 0, 0x27, 0x10];
    raw.extend(labels.iter().take(5000));
    let cut = dir.join("t10k-labels.idx1-ubyte");
    std::fs::write(&cut, &raw).unwrap();
    let e = dataset::mnist::read_labels(&cut).unwrap_err();
    assert!(matches!(e, DatasetError::Truncated { .. }), "{e}");
    assert!(
        e.to_string().contains("t10k-labels") && e.to_string().contains("10000"),
        "{e}"
    );

    // A truncated gzip stream.
    let gz = std::fs::read(src.join("t10k-images.idx3-ubyte.gz")).unwrap();
    let bad = dir.join("t10k-images.idx3-ubyte.gz");
    std::fs::write(&bad, &gz[..gz.len() / 2]).unwrap();
    let e = dataset::mnist::read_images(&bad).unwrap_err();
    assert!(e.to_string().contains("t10k-images"), "{e}");

    // Labels where images should be: wrong magic.
    std::fs::copy(src.join("t10k-labels.idx1-ubyte.gz"), dir.join("x-images")).unwrap();
    let e = dataset::mnist::read_images(&dir.join("x-images")).unwrap_err();
    assert!(matches!(e, DatasetError::Magic { found: 2049, .. }), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}
