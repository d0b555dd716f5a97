//! A checked [`Spec`] made runnable: forward passes, and gradients of the loss by backward
//! passes, over a flat parameter vector (one buffer, so an all-reduce or an optimizer step
//! touches it in one go).

use std::sync::{Arc, Mutex};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::ops::{col2im, gemm, im2col};
use super::spec::{Layer, Loss, ParamShape, Spec};
use super::{NnError, Targets};

/// A network ready to run: its spec, the shape after each layer, where each parameter tensor
/// lives in the flat vector.
#[derive(Debug, Clone)]
pub struct Network {
    spec: Spec,
    shapes: Vec<Vec<usize>>,
    params: Vec<(ParamShape, usize)>,
    /// Offset of each layer's weight in the flat vector (layers without parameters: 0).
    offsets: Vec<usize>,
    len: usize,
    /// Buffers of finished passes, reused: a training step allocates tens of MB of
    /// activations, and fresh pages (faulted in, zeroed, unmapped) cost a quarter of a step.
    floats: Arc<Pool<f32>>,
    indices: Arc<Pool<u32>>,
}

/// Free buffers.
#[derive(Debug, Default)]
struct Pool<T>(Mutex<Vec<Vec<T>>>);

/// Most buffers a pool keeps.
const POOL_MAX: usize = 64;

impl<T: Copy + Default> Pool<T> {
    /// `n` zeros in a reused buffer if one is large enough.
    fn zeros(&self, n: usize) -> Vec<T> {
        let mut v = self.take(n);
        v.clear();
        v.resize(n, T::default());
        v
    }

    /// `n` values of whatever a reused buffer held, for outputs written in full.
    fn scratch(&self, n: usize) -> Vec<T> {
        let mut v = self.take(n);
        if v.len() >= n {
            v.truncate(n);
        } else {
            v.resize(n, T::default());
        }
        v
    }

    /// The smallest free buffer of at least `n` values, or a new one.
    fn take(&self, n: usize) -> Vec<T> {
        let mut free = self.0.lock().expect("pool lock");
        let best = (0..free.len())
            .filter(|&i| free[i].capacity() >= n)
            .min_by_key(|&i| free[i].capacity());
        match best {
            Some(i) => free.swap_remove(i),
            None => Vec::with_capacity(n),
        }
    }

    fn give(&self, v: Vec<T>) {
        let mut free = self.0.lock().expect("pool lock");
        if free.len() < POOL_MAX && v.capacity() > 0 {
            free.push(v);
        }
    }
}

/// Bytes of one layer's activations a forward pass keeps per slice of samples (see
/// [`Network::forward_in`]).
const ACTIVATION_BUDGET: usize = 2_500_000;

/// Each `size` x `size` window's largest value, for every `[h, w]` plane of `x` into the
/// `[oh, ow]` planes of `y` (ignoring NaNs, as the argmax pass of training does).
fn max_pool(
    x: &[f32],
    y: &mut [f32],
    (h, w): (usize, usize),
    (oh, ow): (usize, usize),
    size: usize,
) {
    for (plane, out) in x.chunks_exact(h * w).zip(y.chunks_exact_mut(oh * ow)) {
        for (oy, orow) in out.chunks_exact_mut(ow).enumerate() {
            orow.fill(f32::NEG_INFINITY);
            for dy in 0..size {
                let r = (oy * size + dy) * w;
                let row = &plane[r..r + ow * size];
                for (o, win) in orow.iter_mut().zip(row.chunks_exact(size)) {
                    *o = win.iter().fold(*o, |m, &v| m.max(v));
                }
            }
        }
    }
}

/// How dense weights are stored in a parameter vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Layout {
    /// `[out, in]`, PyTorch's layout: what training, jobs and files use.
    Training,
    /// `[in, out]`: a batch's product with it runs 2-5x faster (the `gemm` crate reads a
    /// transposed right-hand side slowly when it is tall), so served networks keep it.
    Serving,
}

/// What the forward pass keeps for the backward pass, per layer.
enum Saved {
    None,
    /// Max-pool: the input index each output came from.
    Argmax(Vec<u32>),
    /// Dropout: the factor each value was multiplied by (0 or 1/(1-p)).
    Mask(Vec<f32>),
}

impl Network {
    /// Checks `spec` and lays its parameters out.
    pub fn new(spec: Spec) -> Result<Network, NnError> {
        let shapes = spec.shapes()?;
        let shapes_of = spec.params()?;
        let mut params = Vec::new();
        let mut len = 0;
        for p in shapes_of {
            let n: usize = p.shape.iter().product();
            params.push((p, len));
            len += n;
        }
        let mut offsets = Vec::new();
        let mut next = 0;
        for l in &spec.layers {
            match l {
                Layer::Conv2d { .. } | Layer::Dense { .. } => {
                    offsets.push(params[next].1);
                    next += 2;
                }
                _ => offsets.push(0),
            }
        }
        Ok(Network {
            spec,
            shapes,
            params,
            offsets,
            len,
            floats: Arc::default(),
            indices: Arc::default(),
        })
    }

    /// The spec it runs.
    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// Parameters in all.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for a network without parameters.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The parameter tensors and their offsets in the flat vector.
    pub fn param_shapes(&self) -> &[(ParamShape, usize)] {
        &self.params
    }

    /// Values per input sample.
    pub fn input_len(&self) -> usize {
        self.shapes[0].iter().product()
    }

    /// Values per output sample.
    pub fn output_len(&self) -> usize {
        self.shapes.last().map(|s| s.iter().product()).unwrap_or(0)
    }

    /// PyTorch's default initialisation, seeded: weights and biases uniform in
    /// +-1/sqrt(fan_in) (Kaiming uniform with a = sqrt(5)).
    pub fn init(&self, seed: u64) -> Vec<f32> {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut out = vec![0.0; self.len];
        let mut fan_in = 1;
        for (p, off) in &self.params {
            if p.name.ends_with(".weight") {
                fan_in = p.shape[1..].iter().product::<usize>().max(1);
            }
            let bound = 1.0 / (fan_in as f32).sqrt();
            let n: usize = p.shape.iter().product();
            for v in &mut out[*off..off + n] {
                *v = rng.random_range(-bound..bound);
            }
        }
        out
    }

    /// The outputs for `x` (`batch` samples of [`input_len`](Self::input_len) values), dropout
    /// off.
    pub fn forward(&self, params: &[f32], x: &[f32]) -> Result<Vec<f32>, NnError> {
        self.forward_in(params, x, Layout::Training)
    }

    /// [`forward`](Self::forward) over parameters laid out as `layout` says.
    pub(super) fn forward_in(
        &self,
        params: &[f32],
        x: &[f32],
        layout: Layout,
    ) -> Result<Vec<f32>, NnError> {
        let batch = self.batch_of(params, x)?;
        let mut out = Vec::with_capacity(batch * self.output_len());
        // In slices whose largest activation stays within a core's cache: each layer makes a
        // pass over the slice's activations, and passes over a batch of 64 images' 9.4 MB
        // of convolution output ran at memory's speed (measured on the SmartSim CNN, one
        // thread: 20.5 ms a batch of 64 whole, 17.2 in slices of 16).
        let widest = self
            .shapes
            .iter()
            .map(|s| s.iter().product::<usize>())
            .max();
        let per = (ACTIVATION_BUDGET / (4 * widest.unwrap_or(1).max(1))).clamp(1, 256);
        for chunk in x.chunks(per * self.input_len().max(1)) {
            let (mut acts, saved) = self.run(params, chunk, None, layout);
            out.extend_from_slice(acts.last_mut().expect("one per layer"));
            self.recycle(acts, saved);
        }
        Ok(out)
    }

    /// Adds the gradient of the mean loss over the batch to `grad` and returns the mean loss.
    /// The batch is cut into `threads` slices computed in parallel; dropout masks are drawn
    /// from `seed` (and the slice), so a gradient is reproducible.
    pub fn gradient(
        &self,
        params: &[f32],
        x: &[f32],
        targets: Targets<'_>,
        seed: u64,
        threads: usize,
        grad: &mut [f32],
    ) -> Result<f32, NnError> {
        let batch = self.batch_of(params, x)?;
        if grad.len() != self.len {
            return Err(NnError::Shape(format!(
                "{} gradient values for {} parameters",
                grad.len(),
                self.len
            )));
        }
        let outs = self.output_len();
        match targets {
            Targets::Classes(y) if self.spec.loss.classifies() => {
                if y.len() != batch {
                    return Err(NnError::Shape(format!(
                        "{} labels for {batch} samples",
                        y.len()
                    )));
                }
                if let Some(bad) = y.iter().find(|&&l| l as usize >= outs) {
                    return Err(NnError::Shape(format!(
                        "label {bad} for a network of {outs} classes"
                    )));
                }
            }
            Targets::Values(t) if !self.spec.loss.classifies() => {
                if t.len() != batch * outs {
                    return Err(NnError::Shape(format!(
                        "{} targets for {batch} samples of {outs} outputs",
                        t.len()
                    )));
                }
            }
            _ => {
                return Err(NnError::Shape(format!(
                    "loss {:?} needs {}",
                    self.spec.loss,
                    if self.spec.loss.classifies() {
                        "class labels"
                    } else {
                        "value targets"
                    }
                )))
            }
        }
        let threads = threads.clamp(1, batch.max(1));
        if threads == 1 {
            let mut rng = SmallRng::seed_from_u64(seed);
            return Ok(self.backprop(params, x, targets, batch, &mut rng, grad));
        }
        let per = batch.div_ceil(threads);
        let inl = self.input_len();
        let results: Vec<(f32, Vec<f32>)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .filter(|t| t * per < batch)
                .map(|t| {
                    let (lo, hi) = (t * per, ((t + 1) * per).min(batch));
                    let xs = &x[lo * inl..hi * inl];
                    let ts = targets.slice(lo, hi, outs);
                    s.spawn(move || {
                        let mut g = self.floats.zeros(self.len);
                        let mut rng = SmallRng::seed_from_u64(
                            seed ^ (t as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                        );
                        let loss = self.backprop(params, xs, ts, batch, &mut rng, &mut g);
                        (loss, g)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a gradient thread panicked"))
                .collect()
        });
        let mut loss = 0.0;
        for (l, g) in results {
            loss += l;
            for (a, b) in grad.iter_mut().zip(&g) {
                *a += b;
            }
            self.floats.give(g);
        }
        Ok(loss)
    }

    fn batch_of(&self, params: &[f32], x: &[f32]) -> Result<usize, NnError> {
        if params.len() != self.len {
            return Err(NnError::Shape(format!(
                "{} parameter values for a network of {}",
                params.len(),
                self.len
            )));
        }
        let inl = self.input_len();
        if x.is_empty() || !x.len().is_multiple_of(inl) {
            return Err(NnError::Shape(format!(
                "{} input values are not whole samples of {:?} ({inl} values)",
                x.len(),
                self.shapes[0]
            )));
        }
        Ok(x.len() / inl)
    }

    /// Forward pass over one slice; with `rng` (training) it draws dropout masks and keeps
    /// what backward needs.
    fn run(
        &self,
        params: &[f32],
        x: &[f32],
        mut rng: Option<&mut SmallRng>,
        layout: Layout,
    ) -> (Vec<Vec<f32>>, Vec<Saved>) {
        let training = rng.is_some();
        let batch = x.len() / self.input_len();
        let mut first = self.floats.scratch(x.len());
        first.copy_from_slice(x);
        let mut acts = vec![first];
        let mut saved = Vec::with_capacity(self.spec.layers.len());
        for (i, l) in self.spec.layers.iter().enumerate() {
            let (ins, outs) = (&self.shapes[i], &self.shapes[i + 1]);
            let inp = acts.last().expect("the input at least");
            let (inl, outl) = (
                ins.iter().product::<usize>(),
                outs.iter().product::<usize>(),
            );
            let mut y = self.floats.scratch(batch * outl);
            let mut keep = Saved::None;
            match l {
                Layer::Conv2d { out, kernel, .. } => {
                    let (c, h, w) = (ins[0], ins[1], ins[2]);
                    let (w_, b_) = self.wb(params, i, out * c * kernel * kernel, *out);
                    let ckk = c * kernel * kernel;
                    let p = outs[1] * outs[2];
                    let mut col = self.floats.scratch(ckk * p);
                    for (xi, yi) in inp.chunks(inl).zip(y.chunks_mut(outl)) {
                        im2col(xi, (c, h, w), *kernel, &mut col);
                        for (o, row) in yi.chunks_mut(p).enumerate() {
                            row.fill(b_[o]);
                        }
                        gemm(*out, ckk, p, w_, false, &col, false, yi, 1.0);
                    }
                    self.floats.give(col);
                }
                Layer::Dense { out, .. } => {
                    let (w_, b_) = self.wb(params, i, out * inl, *out);
                    for row in y.chunks_mut(*out) {
                        row.copy_from_slice(b_);
                    }
                    let stored_out_in = layout == Layout::Training;
                    gemm(batch, inl, *out, inp, false, w_, stored_out_in, &mut y, 1.0);
                }
                Layer::MaxPool { size } => {
                    let (c, h, w) = (ins[0], ins[1], ins[2]);
                    let (oh, ow) = (outs[1], outs[2]);
                    let mut arg = self.indices.zeros(if training { y.len() } else { 0 });
                    if training {
                        for b in 0..batch {
                            for ch in 0..c {
                                let base = (b * c + ch) * h * w;
                                for oy in 0..oh {
                                    for ox in 0..ow {
                                        let mut best = (f32::NEG_INFINITY, 0);
                                        for dy in 0..*size {
                                            let r = base + (oy * size + dy) * w + ox * size;
                                            for (dx, &v) in inp[r..r + size].iter().enumerate() {
                                                if v > best.0 {
                                                    best = (v, r + dx);
                                                }
                                            }
                                        }
                                        let o = ((b * c + ch) * oh + oy) * ow + ox;
                                        y[o] = best.0;
                                        arg[o] = (best.1 - b * inl) as u32;
                                    }
                                }
                            }
                        }
                    } else {
                        // No argmax to keep: a branch-free maximum, which vectorises (the
                        // loop above took 4 of the CNN's 20 ms a batch of 64 when serving).
                        max_pool(inp, &mut y, (h, w), (oh, ow), *size);
                    }
                    keep = Saved::Argmax(arg);
                }
                Layer::Relu => y.iter_mut().zip(inp).for_each(|(y, &v)| *y = v.max(0.0)),
                Layer::Tanh => y.iter_mut().zip(inp).for_each(|(y, &v)| *y = v.tanh()),
                Layer::Sigmoid => y
                    .iter_mut()
                    .zip(inp)
                    .for_each(|(y, &v)| *y = 1.0 / (1.0 + (-v).exp())),
                Layer::Dropout { p } => match rng.as_deref_mut() {
                    Some(rng) if *p > 0.0 => {
                        let scale = 1.0 / (1.0 - p);
                        let mut mask = self.floats.scratch(y.len());
                        for m in mask.iter_mut() {
                            *m = if rng.random::<f32>() < *p { 0.0 } else { scale };
                        }
                        y.iter_mut()
                            .zip(inp)
                            .zip(&mask)
                            .for_each(|((y, v), m)| *y = v * m);
                        keep = Saved::Mask(mask);
                    }
                    _ => y.copy_from_slice(inp),
                },
                Layer::Flatten => y.copy_from_slice(inp),
                Layer::LogSoftmax => {
                    for (yr, xr) in y.chunks_mut(outl).zip(inp.chunks(inl)) {
                        log_softmax(xr, yr);
                    }
                }
                Layer::Softmax => {
                    for (yr, xr) in y.chunks_mut(outl).zip(inp.chunks(inl)) {
                        log_softmax(xr, yr);
                        yr.iter_mut().for_each(|v| *v = v.exp());
                    }
                }
            }
            acts.push(y);
            saved.push(keep);
        }
        (acts, saved)
    }

    /// Forward and backward over one slice of a batch of `total`; returns its share of the
    /// mean loss and adds its share of the gradient to `grad`.
    fn backprop(
        &self,
        params: &[f32],
        x: &[f32],
        targets: Targets<'_>,
        total: usize,
        rng: &mut SmallRng,
        grad: &mut [f32],
    ) -> f32 {
        let (acts, saved) = self.run(params, x, Some(rng), Layout::Training);
        let batch = x.len() / self.input_len();
        let out = acts.last().expect("one per layer");
        let outl = self.output_len();
        let mut dy = self.floats.zeros(out.len());
        let n = total as f32;
        let mut loss = 0.0f64;
        match (self.spec.loss, targets) {
            (Loss::Nll, Targets::Classes(y)) => {
                for (b, &l) in y.iter().enumerate() {
                    loss -= out[b * outl + l as usize] as f64;
                    dy[b * outl + l as usize] = -1.0 / n;
                }
            }
            (Loss::CrossEntropy, Targets::Classes(y)) => {
                let mut lp = vec![0.0; outl];
                for (b, &l) in y.iter().enumerate() {
                    log_softmax(&out[b * outl..(b + 1) * outl], &mut lp);
                    loss -= lp[l as usize] as f64;
                    for (k, d) in dy[b * outl..(b + 1) * outl].iter_mut().enumerate() {
                        *d = (lp[k].exp() - if k == l as usize { 1.0 } else { 0.0 }) / n;
                    }
                }
            }
            (_, Targets::Values(t)) => {
                let m = n * outl as f32;
                for ((d, &o), &t) in dy.iter_mut().zip(out).zip(t) {
                    loss += ((o - t) as f64).powi(2);
                    *d = 2.0 * (o - t) / m;
                }
                loss /= outl as f64;
            }
            _ => unreachable!("targets were checked against the loss"),
        }
        for (i, l) in self.spec.layers.iter().enumerate().rev() {
            let (ins, outs) = (&self.shapes[i], &self.shapes[i + 1]);
            let (inl, outl) = (
                ins.iter().product::<usize>(),
                outs.iter().product::<usize>(),
            );
            let inp = &acts[i];
            let need_dx = i > 0;
            let mut dx = if need_dx {
                self.floats.zeros(batch * inl)
            } else {
                Vec::new()
            };
            match l {
                Layer::Conv2d { out, kernel, .. } => {
                    let (c, h, w) = (ins[0], ins[1], ins[2]);
                    let ckk = c * kernel * kernel;
                    let p = outs[1] * outs[2];
                    let off = self.offsets[i];
                    let w_ = &params[off..off + out * ckk];
                    let (gw, gb) = grad[off..off + out * ckk + out].split_at_mut(out * ckk);
                    let mut col = self.floats.scratch(ckk * p);
                    let mut dcol = self.floats.scratch(if need_dx { ckk * p } else { 0 });
                    for (b, dyi) in dy.chunks(outl).enumerate() {
                        im2col(&inp[b * inl..(b + 1) * inl], (c, h, w), *kernel, &mut col);
                        gemm(*out, p, ckk, dyi, false, &col, true, gw, 1.0);
                        for (o, row) in dyi.chunks(p).enumerate() {
                            gb[o] += row.iter().sum::<f32>();
                        }
                        if need_dx {
                            gemm(ckk, *out, p, w_, true, dyi, false, &mut dcol, 0.0);
                            col2im(&dcol, (c, h, w), *kernel, &mut dx[b * inl..(b + 1) * inl]);
                        }
                    }
                    self.floats.give(col);
                    self.floats.give(dcol);
                }
                Layer::Dense { out, .. } => {
                    let off = self.offsets[i];
                    let (gw, gb) = grad[off..off + out * inl + out].split_at_mut(out * inl);
                    gemm(*out, batch, inl, &dy, true, inp, false, gw, 1.0);
                    for row in dy.chunks(*out) {
                        gb.iter_mut().zip(row).for_each(|(g, d)| *g += d);
                    }
                    if need_dx {
                        gemm(
                            batch,
                            *out,
                            inl,
                            &dy,
                            false,
                            &params[off..off + out * inl],
                            false,
                            &mut dx,
                            0.0,
                        );
                    }
                }
                Layer::MaxPool { .. } => {
                    if let (true, Saved::Argmax(arg)) = (need_dx, &saved[i]) {
                        for (b, (dyi, ai)) in dy.chunks(outl).zip(arg.chunks(outl)).enumerate() {
                            let dxi = &mut dx[b * inl..(b + 1) * inl];
                            for (d, &a) in dyi.iter().zip(ai) {
                                dxi[a as usize] += d;
                            }
                        }
                    }
                }
                Layer::Relu => dx
                    .iter_mut()
                    .zip(&dy)
                    .zip(&acts[i + 1])
                    .for_each(|((dx, d), &y)| *dx = if y > 0.0 { *d } else { 0.0 }),
                Layer::Tanh => dx
                    .iter_mut()
                    .zip(&dy)
                    .zip(&acts[i + 1])
                    .for_each(|((dx, d), &y)| *dx = d * (1.0 - y * y)),
                Layer::Sigmoid => dx
                    .iter_mut()
                    .zip(&dy)
                    .zip(&acts[i + 1])
                    .for_each(|((dx, d), &y)| *dx = d * y * (1.0 - y)),
                Layer::Dropout { .. } => match &saved[i] {
                    Saved::Mask(m) => dx
                        .iter_mut()
                        .zip(&dy)
                        .zip(m)
                        .for_each(|((dx, d), m)| *dx = d * m),
                    _ => dx.iter_mut().zip(&dy).for_each(|(dx, d)| *dx = *d),
                },
                Layer::Flatten => dx.iter_mut().zip(&dy).for_each(|(dx, d)| *dx = *d),
                Layer::LogSoftmax => {
                    for ((dxr, dyr), yr) in dx
                        .chunks_mut(inl)
                        .zip(dy.chunks(outl))
                        .zip(acts[i + 1].chunks(outl))
                    {
                        let s: f32 = dyr.iter().sum();
                        for ((dx, d), y) in dxr.iter_mut().zip(dyr).zip(yr) {
                            *dx = d - y.exp() * s;
                        }
                    }
                }
                Layer::Softmax => {
                    for ((dxr, dyr), yr) in dx
                        .chunks_mut(inl)
                        .zip(dy.chunks(outl))
                        .zip(acts[i + 1].chunks(outl))
                    {
                        let s: f32 = dyr.iter().zip(yr).map(|(d, y)| d * y).sum();
                        for ((dx, d), y) in dxr.iter_mut().zip(dyr).zip(yr) {
                            *dx = y * (d - s);
                        }
                    }
                }
            }
            if !need_dx {
                break;
            }
            self.floats.give(std::mem::replace(&mut dy, dx));
        }
        self.floats.give(dy);
        self.recycle(acts, saved);
        (loss / total as f64) as f32
    }

    /// Returns a pass's buffers to the pools.
    fn recycle(&self, acts: Vec<Vec<f32>>, saved: Vec<Saved>) {
        for a in acts {
            self.floats.give(a);
        }
        for s in saved {
            match s {
                Saved::Mask(m) => self.floats.give(m),
                Saved::Argmax(a) => self.indices.give(a),
                Saved::None => {}
            }
        }
    }

    fn wb<'p>(
        &self,
        params: &'p [f32],
        layer: usize,
        weights: usize,
        biases: usize,
    ) -> (&'p [f32], &'p [f32]) {
        let off = self.offsets[layer];
        params[off..off + weights + biases].split_at(weights)
    }
}

fn log_softmax(x: &[f32], y: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let lse = max + x.iter().map(|v| (v - max).exp()).sum::<f32>().ln();
    y.iter_mut().zip(x).for_each(|(y, v)| *y = v - lse);
}
