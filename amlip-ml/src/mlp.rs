//! A multi-layer perceptron (784-128-10 for MNIST, sized from the data otherwise), trained
//! with mini-batch SGD with momentum on softmax cross entropy (classes) or mean squared error
//! (a value to regress: one linear output), and averaged across shards by FedAvg. Knows
//! nothing of DDS.
//!
//! MNIST images are ~80% zero pixels, so the first layer (which holds ~95% of the work) runs on
//! each image's non-zero pixels only: `X·W1` and `Xᵀ·dH` become row sums over those pixels.
//! Dense numeric features take the same path (every value is a non-zero). The second layer
//! uses `ndarray`'s dense products.

use multiversion::multiversion;
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};

/// The index of the largest of `values` (the last of equals; 0 when empty): a class from
/// its scores.
pub fn argmax<'a>(values: impl IntoIterator<Item = &'a f32>) -> usize {
    values
        .into_iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i)
}

/// Weights and biases of a one-hidden-layer network.
#[derive(Debug, Clone, PartialEq)]
pub struct Mlp {
    /// (inputs, hidden)
    pub w1: Array2<f32>,
    /// Hidden biases.
    pub b1: Array1<f32>,
    /// (hidden, classes)
    pub w2: Array2<f32>,
    /// Output biases.
    pub b2: Array1<f32>,
}

/// How to train.
#[derive(Debug, Clone)]
pub struct SgdParams {
    /// Passes over the data.
    pub epochs: usize,
    /// Mini-batch size.
    pub batch: usize,
    /// Step size.
    pub learning_rate: f32,
    /// Momentum, in [0, 1).
    pub momentum: f32,
    /// Seed of the shuffling.
    pub seed: u64,
}

impl Default for SgdParams {
    fn default() -> Self {
        Self {
            epochs: 1,
            batch: 64,
            learning_rate: 0.05,
            momentum: 0.9,
            seed: 1,
        }
    }
}

/// What a network is trained to predict, one per sample.
#[derive(Debug, Clone, Copy)]
pub enum Targets<'a> {
    /// Class indices: softmax cross entropy.
    Classes(ArrayView1<'a, u8>),
    /// Values: mean squared error of the first output.
    Values(ArrayView1<'a, f32>),
}

impl<'a> From<ArrayView1<'a, u8>> for Targets<'a> {
    fn from(y: ArrayView1<'a, u8>) -> Self {
        Targets::Classes(y)
    }
}

impl<'a> From<ArrayView1<'a, f32>> for Targets<'a> {
    fn from(y: ArrayView1<'a, f32>) -> Self {
        Targets::Values(y)
    }
}

/// Rows of features as sparse rows (feature index, value), built once per data set.
pub struct SparseImages {
    /// Row `i` is `idx[ptr[i]..ptr[i+1]]` with values `val[..]`.
    ptr: Vec<usize>,
    idx: Vec<u16>,
    val: Vec<f32>,
}

impl SparseImages {
    /// From rows of bytes; each pixel is scaled to 0..1.
    pub fn from_bytes(images: ArrayView2<'_, u8>) -> Self {
        Self::from_rows(images, |p| p as f32 / 255.0)
    }

    /// From rows of numbers, taken as they are. At most 65,536 features.
    pub fn from_f32(x: ArrayView2<'_, f32>) -> Self {
        Self::from_rows(x, |v| v)
    }

    /// The non-zero `value`s of each row.
    fn from_rows<T: Copy>(x: ArrayView2<'_, T>, value: impl Fn(T) -> f32) -> Self {
        assert!(x.ncols() <= 1 << 16, "at most 65,536 features");
        let mut ptr = Vec::with_capacity(x.nrows() + 1);
        let mut idx = Vec::new();
        let mut val = Vec::new();
        ptr.push(0);
        for row in x.rows() {
            for (j, &v) in row.iter().enumerate() {
                let v = value(v);
                if v != 0.0 {
                    idx.push(j as u16);
                    val.push(v);
                }
            }
            ptr.push(idx.len());
        }
        Self { ptr, idx, val }
    }

    /// Rows.
    pub fn len(&self) -> usize {
        self.ptr.len() - 1
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn row(&self, i: usize) -> (&[u16], &[f32]) {
        let (a, b) = (self.ptr[i], self.ptr[i + 1]);
        (&self.idx[a..b], &self.val[a..b])
    }
}

/// Gradients of one mini-batch, except the first layer's weights (see `Mlp::gradients`).
struct Grads {
    b1: Array1<f32>,
    w2: Array2<f32>,
    b2: Array1<f32>,
}

impl Mlp {
    /// He-initialised weights, zero biases.
    pub fn new(inputs: usize, hidden: usize, classes: usize, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let he = |fan_in: usize| {
            Normal::new(0.0, (2.0 / fan_in.max(1) as f32).sqrt()).expect("a finite deviation")
        };
        let (n1, n2) = (he(inputs), he(hidden));
        let w1 = Array2::from_shape_simple_fn((inputs, hidden), || n1.sample(&mut rng));
        let w2 = Array2::from_shape_simple_fn((hidden, classes), || n2.sample(&mut rng));
        Self {
            w1,
            b1: Array1::zeros(hidden),
            w2,
            b2: Array1::zeros(classes),
        }
    }

    /// The default MNIST network: 784-128-10.
    pub fn mnist(seed: u64) -> Self {
        Self::new(784, 128, 10, seed)
    }

    /// Input features.
    pub fn inputs(&self) -> usize {
        self.w1.nrows()
    }

    /// Hidden units.
    pub fn hidden(&self) -> usize {
        self.w1.ncols()
    }

    /// Output classes.
    pub fn classes(&self) -> usize {
        self.w2.ncols()
    }

    /// Hidden activations (after ReLU) of `rows` of `x`, one row each.
    fn hidden_layer(&self, x: &SparseImages, rows: &[usize]) -> Array2<f32> {
        let mut h = Array2::zeros((rows.len(), self.hidden()));
        let w1 = self.w1.as_slice().expect("standard layout");
        let b1 = self.b1.as_slice().expect("contiguous");
        for (r, &i) in rows.iter().enumerate() {
            let mut hr = h.row_mut(r);
            let (idx, val) = x.row(i);
            sparse_rows_relu(hr.as_slice_mut().expect("contiguous"), b1, w1, idx, val);
        }
        h
    }

    /// Outputs (logits, or regressed values) from hidden activations.
    fn logits(&self, h: &Array2<f32>) -> Array2<f32> {
        h.dot(&self.w2) + &self.b2
    }

    /// Class probabilities (softmax) from hidden activations.
    fn output_layer(&self, h: &Array2<f32>) -> Array2<f32> {
        let mut z = self.logits(h);
        for mut row in z.rows_mut() {
            let max = row.fold(f32::MIN, |m, &x| m.max(x));
            row.mapv_inplace(|x| (x - max).exp());
            let sum = row.sum();
            row.mapv_inplace(|x| x / sum);
        }
        z
    }

    /// Mean loss (cross entropy, or squared error) and gradients of the batch `rows`. The
    /// first layer's weight
    /// gradient (the big one) is *added* to `gw1` instead of returned, touching only the rows
    /// of pixels the batch uses: the trainer accumulates it straight into its velocity.
    fn gradients(
        &self,
        x: &SparseImages,
        y: Targets<'_>,
        rows: &[usize],
        gw1: &mut Array2<f32>,
    ) -> (f32, Grads) {
        let n = rows.len() as f32;
        let h = self.hidden_layer(x, rows);
        let mut loss = 0.0;
        let mut p = match y {
            Targets::Classes(y) => {
                let mut p = self.output_layer(&h);
                for (r, &i) in rows.iter().enumerate() {
                    let c = y[i] as usize;
                    loss -= p[[r, c]].max(1e-12).ln();
                    p[[r, c]] -= 1.0; // d loss / d logits = p - onehot
                }
                p
            }
            Targets::Values(y) => {
                // Only the first output is regressed; any others get no gradient.
                let mut z = self.logits(&h);
                z.slice_mut(ndarray::s![.., 1..]).fill(0.0);
                for (r, &i) in rows.iter().enumerate() {
                    let e = z[[r, 0]] - y[i];
                    loss += e * e;
                    z[[r, 0]] = 2.0 * e; // d (e^2) / d z
                }
                z
            }
        };
        p /= n;
        let gw2 = h.t().dot(&p);
        let gb2 = p.sum_axis(Axis(0));
        let mut dh = p.dot(&self.w2.t());
        if !dh.is_standard_layout() {
            // ndarray may answer a product with one output column in column-major order.
            dh = dh.as_standard_layout().into_owned();
        }
        dh.zip_mut_with(&h, |d, &a| {
            if a <= 0.0 {
                *d = 0.0;
            }
        });
        let gb1 = dh.sum_axis(Axis(0));
        let g = gw1.as_slice_mut().expect("standard layout");
        for (r, &i) in rows.iter().enumerate() {
            let (idx, val) = x.row(i);
            scatter_outer(g, dh.row(r).as_slice().expect("contiguous"), idx, val);
        }
        (
            loss / n,
            Grads {
                b1: gb1,
                w2: gw2,
                b2: gb2,
            },
        )
    }

    /// Trains on `(x, y)` for `params.epochs` epochs; calls `progress(epoch, mean loss)` after
    /// each, and stops early if it returns `ControlFlow::Break`. Returns the mean loss of the
    /// last epoch trained.
    pub fn train<'y>(
        &mut self,
        x: &SparseImages,
        y: impl Into<Targets<'y>>,
        params: &SgdParams,
        mut progress: impl FnMut(usize, f32) -> std::ops::ControlFlow<()>,
    ) -> f32 {
        let y = y.into();
        let mut rng = StdRng::seed_from_u64(params.seed);
        let mut order: Vec<usize> = (0..x.len()).collect();
        // Momentum: v = mu v + g; w -= lr v. For the first layer, `v1` holds mu * v between
        // batches, so the batch's gradient is added into it directly (sparse rows) and one pass
        // then does w1 -= lr v1; v1 *= mu.
        let mut v1 = Array2::<f32>::zeros(self.w1.raw_dim());
        let mut vb1 = Array1::<f32>::zeros(self.b1.raw_dim());
        let mut v2 = Array2::<f32>::zeros(self.w2.raw_dim());
        let mut vb2 = Array1::<f32>::zeros(self.b2.raw_dim());
        let (lr, mu) = (params.learning_rate, params.momentum);
        let mut last = f32::NAN;
        for epoch in 0..params.epochs {
            order.shuffle(&mut rng);
            let (mut sum, mut batches) = (0.0, 0);
            for rows in order.chunks(params.batch.max(1)) {
                let (loss, g) = self.gradients(x, y, rows, &mut v1);
                sum += loss;
                batches += 1;
                momentum_step(
                    self.w1.as_slice_mut().expect("standard layout"),
                    v1.as_slice_mut().expect("standard layout"),
                    lr,
                    mu,
                );
                v2.zip_mut_with(&g.w2, |v, &g| *v = mu * *v + g);
                self.w2.scaled_add(-lr, &v2);
                for (v, g, w) in [
                    (&mut vb1, &g.b1, &mut self.b1),
                    (&mut vb2, &g.b2, &mut self.b2),
                ] {
                    v.zip_mut_with(g, |v, &g| *v = mu * *v + g);
                    w.scaled_add(-lr, v);
                }
            }
            last = sum / batches.max(1) as f32;
            if progress(epoch + 1, last).is_break() {
                break;
            }
        }
        last
    }

    /// Predicted class of each image.
    pub fn predict(&self, x: &SparseImages) -> Vec<u8> {
        let rows: Vec<usize> = (0..x.len()).collect();
        rows.chunks(1024)
            .flat_map(|chunk| {
                let p = self.output_layer(&self.hidden_layer(x, chunk));
                p.rows()
                    .into_iter()
                    .map(|r| argmax(r) as u8)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// The first output of each row: the value a regression network predicts.
    pub fn predict_values(&self, x: &SparseImages) -> Vec<f32> {
        let rows: Vec<usize> = (0..x.len()).collect();
        rows.chunks(1024)
            .flat_map(|chunk| {
                let z = self.logits(&self.hidden_layer(x, chunk));
                z.column(0).to_vec()
            })
            .collect()
    }

    /// Class probabilities (softmax) of every sample, one row each.
    pub fn probabilities(&self, x: &SparseImages) -> Array2<f32> {
        let rows: Vec<usize> = (0..x.len()).collect();
        let mut out = Array2::zeros((x.len(), self.classes()));
        for (i, chunk) in rows.chunks(1024).enumerate() {
            let p = self.output_layer(&self.hidden_layer(x, chunk));
            out.slice_mut(ndarray::s![i * 1024..i * 1024 + chunk.len(), ..])
                .assign(&p);
        }
        out
    }

    /// Fraction of images classified correctly.
    pub fn accuracy(&self, x: &SparseImages, y: ArrayView1<'_, u8>) -> f64 {
        let p = self.predict(x);
        p.iter().zip(y).filter(|(a, b)| *a == *b).count() as f64 / y.len().max(1) as f64
    }

    /// FedAvg: the average of `models` weighted by how many samples each was trained on.
    /// Returns `None` if the shapes differ or there is no weight.
    pub fn federated_average(models: &[(Mlp, usize)]) -> Option<Mlp> {
        let (first, _) = models.first()?;
        let total: usize = models.iter().map(|(_, n)| n).sum();
        if total == 0 {
            return None;
        }
        let same = |m: &Mlp| {
            m.w1.dim() == first.w1.dim()
                && m.w2.dim() == first.w2.dim()
                && m.b1.dim() == first.b1.dim()
                && m.b2.dim() == first.b2.dim()
        };
        if !models.iter().all(|(m, _)| same(m)) {
            return None;
        }
        let mut avg = Mlp {
            w1: Array2::zeros(first.w1.raw_dim()),
            b1: Array1::zeros(first.b1.raw_dim()),
            w2: Array2::zeros(first.w2.raw_dim()),
            b2: Array1::zeros(first.b2.raw_dim()),
        };
        for (m, n) in models {
            let a = *n as f32 / total as f32;
            avg.w1.scaled_add(a, &m.w1);
            avg.b1.scaled_add(a, &m.b1);
            avg.w2.scaled_add(a, &m.w2);
            avg.b2.scaled_add(a, &m.b2);
        }
        Some(avg)
    }
}

// The hot loops, compiled for several instruction sets (SSE2, AVX, AVX2+FMA, AVX-512) and
// chosen at run time, so one binary is fast everywhere. Measured on MNIST: 0.33 s per epoch with
// SSE2 only, 0.22 s with AVX2+FMA.

/// `out = relu(bias + sum_k val[k] * w[idx[k], ..])`, `w` row-major with `out.len()` columns.
#[multiversion(targets = "simd")]
fn sparse_rows_relu(out: &mut [f32], bias: &[f32], w: &[f32], idx: &[u16], val: &[f32]) {
    let h = out.len();
    out.copy_from_slice(bias);
    for (&j, &v) in idx.iter().zip(val) {
        let row = &w[j as usize * h..(j as usize + 1) * h];
        for (o, &wj) in out.iter_mut().zip(row) {
            *o += v * wj;
        }
    }
    for o in out.iter_mut() {
        *o = o.max(0.0);
    }
}

/// `g[idx[k], ..] += val[k] * d` for every k, `g` row-major with `d.len()` columns.
#[multiversion(targets = "simd")]
fn scatter_outer(g: &mut [f32], d: &[f32], idx: &[u16], val: &[f32]) {
    let h = d.len();
    for (&j, &v) in idx.iter().zip(val) {
        let row = &mut g[j as usize * h..(j as usize + 1) * h];
        for (gj, &dj) in row.iter_mut().zip(d) {
            *gj += v * dj;
        }
    }
}

/// `w -= lr * v; v *= mu`, element-wise.
#[multiversion(targets = "simd")]
fn momentum_step(w: &mut [f32], v: &mut [f32], lr: f32, mu: f32) {
    for (w, v) in w.iter_mut().zip(v.iter_mut()) {
        *w -= lr * *v;
        *v *= mu;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn tiny() -> (Mlp, SparseImages, Array1<u8>) {
        let m = Mlp::new(6, 5, 3, 4);
        let x = Array2::from_shape_fn((4, 6), |(i, j)| ((i * 7 + j * 13) % 5 * 60) as u8);
        (m, SparseImages::from_bytes(x.view()), array![0u8, 2, 1, 2])
    }

    fn loss(m: &Mlp, x: &SparseImages, y: Targets<'_>) -> f64 {
        let mut gw1 = Array2::zeros(m.w1.raw_dim());
        m.gradients(x, y, &[0, 1, 2, 3], &mut gw1).0 as f64
    }

    /// Analytic gradients match central finite differences on every parameter, for both
    /// losses.
    #[test]
    fn gradient_check() {
        let (m, x, y) = tiny();
        gradient_check_on(&m, &x, Targets::Classes(y.view()));
        let values = array![0.5f32, -1.0, 2.0, 0.25];
        let reg = Mlp::new(6, 5, 1, 4);
        gradient_check_on(&reg, &x, Targets::Values(values.view()));
    }

    fn gradient_check_on(m: &Mlp, x: &SparseImages, y: Targets<'_>) {
        let m = m.clone();
        let mut gw1 = Array2::zeros(m.w1.raw_dim());
        let (_, g) = m.gradients(x, y, &[0, 1, 2, 3], &mut gw1);
        let eps = 1e-2f32;
        let mut worst = 0.0f64;
        let mut check = |analytic: f32, plus: Mlp, minus: Mlp| {
            let numeric = (loss(&plus, x, y) - loss(&minus, x, y)) / (2.0 * eps as f64);
            let err =
                (numeric - analytic as f64).abs() / (numeric.abs() + analytic.abs() as f64 + 1e-3);
            worst = worst.max(err);
        };
        for ((i, j), &a) in gw1.indexed_iter() {
            let (mut p, mut q) = (m.clone(), m.clone());
            p.w1[[i, j]] += eps;
            q.w1[[i, j]] -= eps;
            check(a, p, q);
        }
        for ((i, j), &a) in g.w2.indexed_iter() {
            let (mut p, mut q) = (m.clone(), m.clone());
            p.w2[[i, j]] += eps;
            q.w2[[i, j]] -= eps;
            check(a, p, q);
        }
        for (i, &a) in g.b1.indexed_iter() {
            let (mut p, mut q) = (m.clone(), m.clone());
            p.b1[i] += eps;
            q.b1[i] -= eps;
            check(a, p, q);
        }
        for (i, &a) in g.b2.indexed_iter() {
            let (mut p, mut q) = (m.clone(), m.clone());
            p.b2[i] += eps;
            q.b2[i] -= eps;
            check(a, p, q);
        }
        assert!(worst < 2e-2, "worst relative gradient error {worst}");
    }

    #[test]
    fn training_lowers_the_loss_and_fits_a_tiny_set() {
        let (mut m, x, y) = tiny();
        let before = loss(&m, &x, Targets::Classes(y.view()));
        let params = SgdParams {
            epochs: 300,
            batch: 4,
            learning_rate: 0.1,
            ..SgdParams::default()
        };
        m.train(&x, y.view(), &params, |_, _| {
            std::ops::ControlFlow::Continue(())
        });
        assert!(loss(&m, &x, Targets::Classes(y.view())) < before / 10.0);
        assert_eq!(m.accuracy(&x, y.view()), 1.0);
    }

    #[test]
    fn regression_fits_a_line() {
        let xs =
            Array2::from_shape_fn((64, 2), |(i, j)| (i as f32 / 32.0 - 1.0) * (j as f32 + 1.0));
        let y: Array1<f32> = xs
            .rows()
            .into_iter()
            .map(|r| 0.5 * r[0] - r[1] + 0.3)
            .collect();
        let x = SparseImages::from_f32(xs.view());
        let mut m = Mlp::new(2, 16, 1, 2);
        let params = SgdParams {
            epochs: 200,
            batch: 8,
            learning_rate: 0.01,
            ..SgdParams::default()
        };
        m.train(&x, y.view(), &params, |_, _| {
            std::ops::ControlFlow::Continue(())
        });
        let mse = m
            .predict_values(&x)
            .iter()
            .zip(&y)
            .map(|(p, t)| (p - t) * (p - t))
            .sum::<f32>()
            / 64.0;
        assert!(mse < 1e-3, "mse {mse}");
    }

    #[test]
    fn federated_average_weighs_by_samples() {
        let a = Mlp::new(2, 2, 2, 1);
        let mut b = a.clone();
        b.w1.fill(3.0);
        let mut c = a.clone();
        c.w1.fill(0.0);
        let avg = Mlp::federated_average(&[(b, 1), (c, 2)]).unwrap();
        assert!(avg.w1.iter().all(|w| (w - 1.0).abs() < 1e-6));
        assert!(Mlp::federated_average(&[(a, 1), (Mlp::new(3, 2, 2, 1), 1)]).is_none());
        assert!(Mlp::federated_average(&[]).is_none());
    }
}
