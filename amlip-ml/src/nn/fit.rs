//! One epoch of mini-batch training on values (regression), shared by the online trainer and
//! the `nn_fit` job kind.

use rand::rngs::SmallRng;
use rand::seq::SliceRandom;

use super::{NnError, OptimState, Optimizer, Targets};
use crate::nn::Network;

/// Rows `inputs` / `targets` (as many rows of the network's input and output widths), the
/// optimizer moving `params` through `state`.
pub struct Fit<'a> {
    /// The network.
    pub net: &'a Network,
    /// How parameters move.
    pub optimizer: &'a Optimizer,
    /// Samples per step.
    pub batch: usize,
}

impl Fit<'_> {
    /// Trains one epoch over the rows in an order drawn from `rng`; returns the mean loss.
    /// Dropout masks (if any) are drawn from the optimizer's step count.
    pub fn epoch(
        &self,
        params: &mut [f32],
        state: &mut OptimState,
        inputs: &[f32],
        targets: &[f32],
        rng: &mut SmallRng,
    ) -> Result<f64, NnError> {
        let (ins, outs) = (self.net.input_len(), self.net.output_len());
        let n = inputs.len() / ins.max(1);
        if n == 0 || targets.len() != n * outs {
            return Err(NnError::Shape(format!(
                "{} input and {} target values for a network of {ins} inputs and {outs} outputs",
                inputs.len(),
                targets.len()
            )));
        }
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(rng);
        let mut grad = vec![0.0f32; self.net.len()];
        let (mut xb, mut yb) = (Vec::new(), Vec::new());
        let mut sum = 0.0f64;
        for chunk in order.chunks(self.batch.max(1)) {
            xb.clear();
            yb.clear();
            for &i in chunk {
                xb.extend_from_slice(&inputs[i * ins..(i + 1) * ins]);
                yb.extend_from_slice(&targets[i * outs..(i + 1) * outs]);
            }
            grad.iter_mut().for_each(|g| *g = 0.0);
            let l =
                self.net
                    .gradient(params, &xb, Targets::Values(&yb), state.steps, 1, &mut grad)?;
            self.optimizer.step(params, &grad, state);
            sum += l as f64 * chunk.len() as f64;
        }
        Ok(sum / n as f64)
    }
}
