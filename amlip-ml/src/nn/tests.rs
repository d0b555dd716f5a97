//! Gradient checks (backward passes against finite differences) and small trainings.

use super::*;

fn lcg(seed: u64) -> impl FnMut() -> f32 {
    let mut s = seed;
    move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

/// Every parameter's analytic derivative against a central difference of the loss (same
/// dropout masks: same seed).
fn check(spec: Spec, batch: usize, targets: Targets<'_>) {
    let net = Network::new(spec).unwrap();
    let mut r = lcg(7);
    let params: Vec<f32> = net.init(3);
    let x: Vec<f32> = (0..batch * net.input_len()).map(|_| r()).collect();
    let mut grad = vec![0.0; net.len()];
    net.gradient(&params, &x, targets, 11, 1, &mut grad)
        .unwrap();
    let loss_at = |p: &[f32]| {
        let mut g = vec![0.0; net.len()];
        net.gradient(p, &x, targets, 11, 1, &mut g).unwrap() as f64
    };
    let mut worst = 0.0f64;
    let mut kinks = 0;
    let centre = loss_at(&params);
    for i in 0..net.len() {
        let eps = 5e-3f32;
        let mut p = params.clone();
        p[i] += eps;
        let up = loss_at(&p);
        p[i] -= 2.0 * eps;
        let down = loss_at(&p);
        // A ReLU or max-pool switching inside the step makes the one-sided slopes disagree:
        // no derivative to check there.
        let (right, left) = ((up - centre) / eps as f64, (centre - down) / eps as f64);
        if (right - left).abs() > 0.2 * right.abs().max(left.abs()).max(1e-2) {
            kinks += 1;
            continue;
        }
        let numeric = (up - down) / (2.0 * eps as f64);
        let err =
            (numeric - grad[i] as f64).abs() / (numeric.abs().max(grad[i].abs() as f64).max(1e-2));
        worst = worst.max(err);
    }
    assert!(
        kinks * 10 <= net.len(),
        "{kinks} of {} parameters at a kink",
        net.len()
    );
    assert!(
        worst < 0.05,
        "{:?}: worst relative error {worst}",
        net.spec().loss
    );
}

#[test]
fn conv_pool_dropout_dense_nll_gradients_match_finite_differences() {
    let spec = Spec {
        input: vec![2, 6, 6],
        layers: vec![
            Layer::conv("c1", 3, 3),
            Layer::Tanh,
            Layer::conv("c2", 2, 2),
            Layer::Relu,
            Layer::MaxPool { size: 2 },
            Layer::Dropout { p: 0.3 },
            Layer::Flatten,
            Layer::dense("d1", 4),
            Layer::LogSoftmax,
        ],
        loss: Loss::Nll,
    };
    check(spec, 3, Targets::Classes(&[0, 3, 1]));
}

#[test]
fn dense_cross_entropy_and_mse_gradients_match_finite_differences() {
    check(Spec::dense(5, 6, 3), 4, Targets::Classes(&[2, 0, 1, 1]));
    let t = [0.5f32, -0.2, 0.1, 0.9, -0.7, 0.3];
    check(Spec::regression(3, &[5, 4], 2), 3, Targets::Values(&t));
}

#[test]
fn sigmoid_and_softmax_gradients_match_finite_differences() {
    let spec = Spec {
        input: vec![4],
        layers: vec![
            Layer::dense("d1", 5),
            Layer::Sigmoid,
            Layer::dense("d2", 3),
            Layer::Softmax,
        ],
        loss: Loss::Mse,
    };
    let t = [0.2f32, 0.7, 0.1, 0.5, 0.25, 0.25, 0.0, 0.0, 1.0];
    check(spec, 3, Targets::Values(&t));
}

#[test]
fn a_served_network_answers_as_training_s_forward_pass_on_any_threads() {
    let net = Network::new(Spec::cnn()).unwrap();
    let p = net.init(3);
    let mut r = lcg(4);
    let x: Vec<f32> = (0..13 * 784).map(|_| r()).collect();
    let one = net.forward(&p, &x).unwrap();
    let served = net.clone().served(&p).unwrap();
    for threads in [1, 2, 3, 8] {
        let split = served.forward(&x, threads).unwrap();
        assert_eq!(split.len(), one.len());
        let worst = split
            .iter()
            .zip(&one)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-5, "{threads} threads: {worst}");
    }
}

#[test]
fn threads_split_the_batch_without_changing_the_gradient() {
    let net = Network::new(Spec::regression(4, &[8], 1)).unwrap();
    let p = net.init(1);
    let mut r = lcg(2);
    let x: Vec<f32> = (0..40 * 4).map(|_| r()).collect();
    let t: Vec<f32> = (0..40).map(|_| r()).collect();
    let (mut g1, mut g3) = (vec![0.0; net.len()], vec![0.0; net.len()]);
    let l1 = net
        .gradient(&p, &x, Targets::Values(&t), 0, 1, &mut g1)
        .unwrap();
    let l3 = net
        .gradient(&p, &x, Targets::Values(&t), 0, 3, &mut g3)
        .unwrap();
    assert!((l1 - l3).abs() < 1e-5);
    assert!(g1.iter().zip(&g3).all(|(a, b)| (a - b).abs() < 1e-5));
}

#[test]
fn adam_fits_sin_with_a_small_regression_network() {
    let net = Network::new(Spec::regression(1, &[32, 32], 1)).unwrap();
    let mut p = net.init(5);
    let opt = Optimizer::Adam { lr: 0.01 };
    let mut s = opt.state(net.len());
    let mut r = lcg(9);
    let pi = std::f32::consts::PI;
    for step in 0..1500 {
        let x: Vec<f32> = (0..32).map(|_| r() * pi).collect();
        let t: Vec<f32> = x.iter().map(|v| v.sin()).collect();
        let mut g = vec![0.0; net.len()];
        net.gradient(&p, &x, Targets::Values(&t), step, 1, &mut g)
            .unwrap();
        opt.step(&mut p, &g, &mut s);
    }
    let grid: Vec<f32> = (0..101)
        .map(|i| -pi + 2.0 * pi * i as f32 / 100.0)
        .collect();
    let exact: Vec<f32> = grid.iter().map(|v| v.sin()).collect();
    let mse = net.score(&p, &grid, Targets::Values(&exact)).unwrap();
    assert!(mse < 2e-3, "validation MSE {mse}");
}

#[test]
fn parameters_round_trip_as_named_tensors_and_bad_ones_are_named() {
    let net = Network::new(Spec::cnn()).unwrap();
    let p = net.init(1);
    let t = net.tensors(&p);
    assert_eq!(t["fc1.weight"].shape(), &[128, 9216]);
    let back = net.params_from(&t).unwrap();
    assert_eq!(hash(&back), hash(&p));
    let mut bad = t.clone();
    bad.remove("conv2.bias");
    assert!(net
        .params_from(&bad)
        .unwrap_err()
        .to_string()
        .contains("conv2.bias is missing"));
    let mut bad = t;
    let small = ndarray::Array2::<f32>::zeros((10, 100));
    bad.insert("fc2.weight".into(), Tensor::from_f32(small.view()));
    let e = net.params_from(&bad).unwrap_err().to_string();
    assert!(
        e.contains("fc2.weight is F32 [10, 100], the network needs F32 [10, 128]"),
        "{e}"
    );
    let e = net.forward(&p, &[0.0; 100]).unwrap_err().to_string();
    assert!(
        e.contains("100 input values are not whole samples of [1, 28, 28]"),
        "{e}"
    );
}

#[test]
fn max_pool_outside_training_takes_each_window_s_largest_value() {
    let net = Network::new(Spec {
        input: vec![2, 6, 4],
        layers: vec![Layer::MaxPool { size: 2 }, Layer::Flatten],
        loss: Loss::Mse,
    })
    .unwrap();
    let p = net.init(1);
    let mut r = lcg(9);
    // Three samples, negative values included (a window of negatives keeps its largest).
    let x: Vec<f32> = (0..3 * 48).map(|_| r() - 0.5).collect();
    let y = net.forward(&p, &x).unwrap();
    let mut want = Vec::new();
    for plane in x.chunks(24) {
        for oy in 0..3 {
            for ox in 0..2 {
                let at = |dy: usize, dx: usize| plane[(oy * 2 + dy) * 4 + ox * 2 + dx];
                want.push(at(0, 0).max(at(0, 1)).max(at(1, 0)).max(at(1, 1)));
            }
        }
    }
    assert_eq!(y, want);
}
