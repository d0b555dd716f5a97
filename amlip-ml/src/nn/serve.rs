//! A network made ready to answer requests: its dense weights transposed once (see
//! [`Layout::Serving`]) and a batch cut across rayon's threads (already running: spawning
//! threads per request cost more than a dense network's whole pass).

use rayon::prelude::*;

use super::net::Layout;
use super::{Layer, Network, NnError};

/// A network and its parameters, laid out for inference. Made by [`Network::served`].
#[derive(Debug, Clone)]
pub struct Served {
    net: Network,
    params: Vec<f32>,
    /// Multiply-adds per sample, to size the slices.
    work: usize,
}

/// Fewer multiply-adds per slice than this cost more in hand-over than they save (~0.1 ms).
const MIN_WORK_PER_SLICE: usize = 5_000_000;

impl Network {
    /// This network with `params` (in the training layout), ready to serve.
    pub fn served(self, params: &[f32]) -> Result<Served, NnError> {
        if params.len() != self.len() {
            return Err(NnError::Shape(format!(
                "{} parameter values for a network of {}",
                params.len(),
                self.len()
            )));
        }
        let mut out = params.to_vec();
        let mut next = 0;
        let mut work = 0;
        let all = self.spec().shapes()?;
        for (i, layer) in self.spec().layers.iter().enumerate() {
            let (shapes, after) = (&all[i], all[i + 1].iter().product::<usize>());
            work += match layer {
                Layer::Conv2d { kernel, .. } => after * shapes[0] * kernel * kernel,
                Layer::Dense { .. } => after * shapes[0],
                _ => 0,
            };
            if matches!(layer, Layer::Conv2d { .. } | Layer::Dense { .. }) {
                let (w, off) = &self.param_shapes()[next];
                if let (Layer::Dense { out: o, .. }, [inl]) = (layer, &shapes[..]) {
                    let (o, inl) = (*o, *inl);
                    debug_assert_eq!(w.shape, [o, inl]);
                    let src = &params[*off..off + o * inl];
                    let dst = &mut out[*off..off + o * inl];
                    for r in 0..o {
                        for c in 0..inl {
                            dst[c * o + r] = src[r * inl + c];
                        }
                    }
                }
                next += 2;
            }
        }
        Ok(Served {
            net: self,
            params: out,
            work,
        })
    }
}

impl Served {
    /// The network.
    pub fn network(&self) -> &Network {
        &self.net
    }

    /// The outputs for `x` (whole samples), the batch cut into up to `threads` slices run in
    /// parallel. A sample's outputs may differ from an unsplit pass's in the last bits: the
    /// matrix products block their sums by the batch's size.
    pub fn forward(&self, x: &[f32], threads: usize) -> Result<Vec<f32>, NnError> {
        let inl = self.net.input_len().max(1);
        let batch = x.len() / inl;
        let worth = (batch * self.work).div_ceil(MIN_WORK_PER_SLICE);
        let threads = threads.clamp(1, worth.clamp(1, batch.max(1)));
        if threads == 1 {
            return self.net.forward_in(&self.params, x, Layout::Serving);
        }
        if !x.len().is_multiple_of(inl) {
            // Let the one-slice path name the error.
            return self.net.forward_in(&self.params, x, Layout::Serving);
        }
        let per = batch.div_ceil(threads) * inl;
        let parts: Vec<Result<Vec<f32>, NnError>> = x
            .par_chunks(per)
            .map(|xs| self.net.forward_in(&self.params, xs, Layout::Serving))
            .collect();
        let mut out = Vec::with_capacity(batch * self.net.output_len());
        for p in parts {
            out.extend_from_slice(&p?);
        }
        Ok(out)
    }
}
