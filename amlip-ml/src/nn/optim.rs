//! Optimizers over a flat parameter vector, as PyTorch defines them (so a run here and a run
//! there with the same settings follow the same curve). Their state is flat vectors too: it
//! travels with the parameters when a training group re-forms.

use serde::{Deserialize, Serialize};

use super::NnError;

/// An optimizer and its settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "optimizer", rename_all = "snake_case", deny_unknown_fields)]
pub enum Optimizer {
    /// SGD with (heavy-ball) momentum: `v = momentum v + g; p -= lr v`.
    Sgd {
        /// Learning rate.
        lr: f32,
        /// Momentum in [0, 1).
        momentum: f32,
    },
    /// Adam (Kingma and Ba) with bias correction, betas 0.9 and 0.999, eps 1e-8.
    Adam {
        /// Learning rate.
        lr: f32,
    },
}

impl Optimizer {
    /// The optimizer a command line asks for: SGD (learning rate `lr`, default 0.01; `momentum`,
    /// default 0.5), or Adam (`lr`, default 0.001), whose moments are its own: a momentum given
    /// with Adam is an error.
    pub fn choose(sgd: bool, lr: Option<f32>, momentum: Option<f32>) -> Result<Self, NnError> {
        match (sgd, momentum) {
            (true, m) => Ok(Optimizer::Sgd {
                lr: lr.unwrap_or(0.01),
                momentum: m.unwrap_or(0.5),
            }),
            (false, Some(_)) => Err(NnError::Settings(
                "a momentum is SGD's; Adam keeps its own moments".into(),
            )),
            (false, None) => Ok(Optimizer::Adam {
                lr: lr.unwrap_or(0.001),
            }),
        }
    }
}

impl std::fmt::Display for Optimizer {
    /// `Adam lr 0.001`, `SGD lr 0.01 momentum 0.5`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Optimizer::Adam { lr } => write!(f, "Adam lr {lr}"),
            Optimizer::Sgd { lr, momentum } => write!(f, "SGD lr {lr} momentum {momentum}"),
        }
    }
}

/// What an optimizer carries from step to step.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OptimState {
    /// Steps taken.
    pub steps: u64,
    /// SGD's velocity, Adam's first moment.
    pub first: Vec<f32>,
    /// Adam's second moment (empty for SGD).
    pub second: Vec<f32>,
}

impl Optimizer {
    /// Refuses settings that cannot train.
    pub fn check(&self) -> Result<(), NnError> {
        let (lr, ok_momentum) = match *self {
            Optimizer::Sgd { lr, momentum } => (lr, (0.0..1.0).contains(&momentum)),
            Optimizer::Adam { lr } => (lr, true),
        };
        if !(lr.is_finite() && lr > 0.0 && ok_momentum) {
            return Err(NnError::Spec(format!(
                "{self:?}: need a positive learning rate and momentum in [0, 1)"
            )));
        }
        Ok(())
    }

    /// Fresh state for `n` parameters.
    pub fn state(&self, n: usize) -> OptimState {
        OptimState {
            steps: 0,
            first: vec![0.0; n],
            second: match self {
                Optimizer::Adam { .. } => vec![0.0; n],
                Optimizer::Sgd { .. } => Vec::new(),
            },
        }
    }

    /// One step along `grad`.
    pub fn step(&self, params: &mut [f32], grad: &[f32], state: &mut OptimState) {
        state.steps += 1;
        match *self {
            Optimizer::Sgd { lr, momentum } => {
                for ((p, g), v) in params.iter_mut().zip(grad).zip(&mut state.first) {
                    *v = momentum * *v + g;
                    *p -= lr * *v;
                }
            }
            Optimizer::Adam { lr } => {
                let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
                let t = state.steps as i32;
                let c1 = 1.0 - b1.powi(t);
                let c2 = (1.0 - b2.powi(t)).sqrt();
                let step = lr / c1;
                for (((p, g), m), v) in params
                    .iter_mut()
                    .zip(grad)
                    .zip(&mut state.first)
                    .zip(&mut state.second)
                {
                    *m = b1 * *m + (1.0 - b1) * g;
                    *v = b2 * *v + (1.0 - b2) * g * g;
                    *p -= step * *m / (v.sqrt() / c2 + eps);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_minimise_a_quadratic() {
        for opt in [
            Optimizer::Sgd {
                lr: 0.1,
                momentum: 0.5,
            },
            Optimizer::Adam { lr: 0.1 },
        ] {
            let mut p = vec![3.0f32, -2.0];
            let mut s = opt.state(2);
            for _ in 0..300 {
                let g: Vec<f32> = p.iter().map(|x| 2.0 * x).collect();
                opt.step(&mut p, &g, &mut s);
            }
            assert!(p.iter().all(|x| x.abs() < 1e-2), "{opt:?}: {p:?}");
        }
        assert!(Optimizer::Sgd {
            lr: 0.1,
            momentum: 1.0
        }
        .check()
        .is_err());
        assert!(Optimizer::Adam { lr: f32::NAN }.check().is_err());
    }

    #[test]
    fn adam_s_first_step_is_lr_times_the_sign() {
        let opt = Optimizer::Adam { lr: 0.01 };
        let mut p = vec![1.0f32, 1.0];
        let mut s = opt.state(2);
        opt.step(&mut p, &[4.0, -0.5], &mut s);
        assert!(
            (p[0] - 0.99).abs() < 1e-6 && (p[1] - 1.01).abs() < 1e-6,
            "{p:?}"
        );
    }
}
