//! Networks as data: a [`Spec`] lists layers and a loss, travels in a job as JSON, and is
//! checked shape by shape before anything runs, so a wrong network is an error naming the
//! layer, never a panic mid-training.

use serde::{Deserialize, Serialize};

use super::NnError;

/// One layer. Layers with parameters carry a name: their tensors are `<name>.weight` and
/// `<name>.bias`, laid out as PyTorch lays them out (`[out, in, k, k]` and `[out, in]`), so a
/// PyTorch state dict saved as safetensors loads as it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "layer", rename_all = "snake_case", deny_unknown_fields)]
pub enum Layer {
    /// 2-D convolution, stride 1, no padding, over `[channels, height, width]`.
    Conv2d {
        /// Parameter prefix.
        name: String,
        /// Output channels.
        out: usize,
        /// Kernel side.
        kernel: usize,
    },
    /// Max-pooling over `size` x `size` windows, stride `size` (a remainder is dropped).
    MaxPool {
        /// Window side.
        size: usize,
    },
    /// Fully connected: `y = x W^T + b` over a flat input.
    Dense {
        /// Parameter prefix.
        name: String,
        /// Inputs expected, if stated (checked against what the previous layer gives).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        inputs: Option<usize>,
        /// Outputs.
        out: usize,
    },
    /// max(0, x).
    Relu,
    /// tanh(x).
    Tanh,
    /// Zeroes each value with probability `p` while training (scaling the rest by 1/(1-p)).
    Dropout {
        /// Drop probability, in [0, 1).
        p: f32,
    },
    /// Flattens `[c, h, w]` into `[c*h*w]`.
    Flatten,
    /// log(softmax(x)) over a flat input.
    LogSoftmax,
    /// softmax(x) over a flat input (ONNX graphs that end in probabilities).
    Softmax,
    /// 1 / (1 + exp(-x)).
    Sigmoid,
}

/// What training minimises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Loss {
    /// Negative log-likelihood of the label, over log-probabilities (after `log_softmax`).
    Nll,
    /// Softmax cross-entropy over logits.
    CrossEntropy,
    /// Mean squared error against value targets.
    Mse,
}

impl Loss {
    /// True when targets are class labels.
    pub fn classifies(self) -> bool {
        !matches!(self, Loss::Mse)
    }
}

/// A network: the shape of one input sample, the layers, the loss.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// One sample's shape: `[channels, height, width]` for convolutions, `[features]` else.
    pub input: Vec<usize>,
    /// In order.
    pub layers: Vec<Layer>,
    /// Minimised by training.
    pub loss: Loss,
}

/// A parameter tensor of a network: its name and shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamShape {
    /// `<layer>.weight` or `<layer>.bias`.
    pub name: String,
    /// PyTorch's layout.
    pub shape: Vec<usize>,
}

/// Most values a spec may ask for in one tensor, parameters or activations of one sample: a
/// job's spec is a peer's input, and this bounds what it can make a node allocate.
const MAX_VALUES: usize = 64 << 20;

impl Spec {
    /// SmartSim's and Twister2Flow's MNIST CNN (1.2 M parameters): conv 1->32 3x3, ReLU,
    /// conv 32->64 3x3, ReLU, max-pool 2, dropout 0.25, flatten, dense 9216->128, ReLU,
    /// dropout 0.5, dense 128->10, log-softmax; NLL loss.
    pub fn cnn() -> Spec {
        Self::cnn_spec()
    }

    /// [`cnn`](Self::cnn), for data whose samples have `sample_shape`: it takes 28x28 images.
    pub fn cnn_for(sample_shape: &[usize]) -> Result<Spec, NnError> {
        if sample_shape.iter().product::<usize>() != 784 {
            return Err(NnError::Shape(format!(
                "the CNN takes 28x28 images; the data's samples are {sample_shape:?}"
            )));
        }
        Ok(Self::cnn_spec())
    }

    fn cnn_spec() -> Spec {
        Spec {
            input: vec![1, 28, 28],
            layers: vec![
                Layer::conv("conv1", 32, 3),
                Layer::Relu,
                Layer::conv("conv2", 64, 3),
                Layer::Relu,
                Layer::MaxPool { size: 2 },
                Layer::Dropout { p: 0.25 },
                Layer::Flatten,
                Layer::dense("fc1", 128),
                Layer::Relu,
                Layer::Dropout { p: 0.5 },
                Layer::dense("fc2", 10),
                Layer::LogSoftmax,
            ],
            loss: Loss::Nll,
        }
    }

    /// The Keras-style dense network: `inputs` -> `hidden` (ReLU) -> `classes`, softmax
    /// cross-entropy (784-128-10 on MNIST).
    pub fn dense(inputs: usize, hidden: usize, classes: usize) -> Spec {
        Spec {
            input: vec![inputs],
            layers: vec![
                Layer::dense("fc1", hidden),
                Layer::Relu,
                Layer::dense("fc2", classes),
            ],
            loss: Loss::CrossEntropy,
        }
    }

    /// A small regression network: `inputs` -> each of `hidden` (tanh) -> `outputs`, MSE.
    /// `regression(1, &[32, 32], 1)` approximates a function of one variable (sin x).
    pub fn regression(inputs: usize, hidden: &[usize], outputs: usize) -> Spec {
        let mut layers = Vec::new();
        for (i, &h) in hidden.iter().enumerate() {
            layers.push(Layer::dense(&format!("fc{}", i + 1), h));
            layers.push(Layer::Tanh);
        }
        layers.push(Layer::dense(&format!("fc{}", hidden.len() + 1), outputs));
        Spec {
            input: vec![inputs],
            layers,
            loss: Loss::Mse,
        }
    }

    /// The shape after each layer (the first is the input's), or an error naming the first
    /// layer that does not fit what precedes it.
    pub fn shapes(&self) -> Result<Vec<Vec<usize>>, NnError> {
        let bad = |i: usize, l: &Layer, why: String| {
            NnError::Spec(format!("layer {} ({}): {why}", i + 1, l.describe()))
        };
        if self.input.is_empty() || self.input.contains(&0) || self.input.len() > 3 {
            return Err(NnError::Spec(format!(
                "input shape {:?}: need 1 to 3 non-zero dimensions ([features] or [channels, height, width])",
                self.input
            )));
        }
        if self.layers.is_empty() {
            return Err(NnError::Spec("the network has no layers".into()));
        }
        let mut shapes = vec![self.input.clone()];
        for (i, l) in self.layers.iter().enumerate() {
            let s = shapes.last().expect("starts with the input");
            let next = match l {
                Layer::Conv2d { out, kernel, .. } => {
                    let [c, h, w] = s[..] else {
                        return Err(bad(i, l, format!("needs a [channels, height, width] input, the previous layer gives {s:?}")));
                    };
                    if *out == 0 || *kernel == 0 || *kernel > h || *kernel > w {
                        return Err(bad(i, l, format!("a {kernel}x{kernel} kernel with {out} outputs does not fit a {h}x{w} input")));
                    }
                    check_size(c * kernel * kernel * out).map_err(|e| bad(i, l, e))?;
                    vec![*out, h - kernel + 1, w - kernel + 1]
                }
                Layer::MaxPool { size } => {
                    let [c, h, w] = s[..] else {
                        return Err(bad(i, l, format!("needs a [channels, height, width] input, the previous layer gives {s:?}")));
                    };
                    if *size == 0 || *size > h || *size > w {
                        return Err(bad(
                            i,
                            l,
                            format!("a {size}x{size} window does not fit a {h}x{w} input"),
                        ));
                    }
                    vec![c, h / size, w / size]
                }
                Layer::Dense { inputs, out, .. } => {
                    let [n] = s[..] else {
                        return Err(bad(i, l, format!("needs a flat input, the previous layer gives {s:?} (add a flatten layer)")));
                    };
                    if let Some(want) = inputs {
                        if *want != n {
                            return Err(bad(
                                i,
                                l,
                                format!("expects {want} inputs, the previous layer gives {n}"),
                            ));
                        }
                    }
                    if *out == 0 {
                        return Err(bad(i, l, "has no outputs".into()));
                    }
                    check_size(n * out).map_err(|e| bad(i, l, e))?;
                    vec![*out]
                }
                Layer::Dropout { p } if !(0.0..1.0).contains(p) => {
                    return Err(bad(i, l, format!("drop probability {p} is not in [0, 1)")));
                }
                Layer::Flatten => vec![s.iter().product()],
                Layer::LogSoftmax | Layer::Softmax if s.len() != 1 => {
                    return Err(bad(
                        i,
                        l,
                        format!("needs a flat input, the previous layer gives {s:?}"),
                    ));
                }
                Layer::Relu
                | Layer::Tanh
                | Layer::Sigmoid
                | Layer::Dropout { .. }
                | Layer::LogSoftmax
                | Layer::Softmax => s.clone(),
            };
            check_size(next.iter().product()).map_err(|e| bad(i, l, e))?;
            shapes.push(next);
        }
        let out = shapes.last().expect("one per layer");
        let ends_log_softmax = matches!(self.layers.last(), Some(Layer::LogSoftmax));
        match self.loss {
            _ if out.len() != 1 => {
                return Err(NnError::Spec(format!("the network ends with shape {out:?}: the loss needs a flat output (add a flatten or dense layer)")))
            }
            Loss::Nll if !ends_log_softmax => {
                return Err(NnError::Spec("loss nll reads log-probabilities: end the network with log_softmax (or use cross_entropy on logits)".into()))
            }
            _ => {}
        }
        let mut seen = std::collections::BTreeSet::new();
        for l in &self.layers {
            if let Layer::Conv2d { name, .. } | Layer::Dense { name, .. } = l {
                if name.is_empty() || !seen.insert(name) {
                    return Err(NnError::Spec(format!(
                        "layer name {name:?} is empty or used twice"
                    )));
                }
            }
        }
        Ok(shapes)
    }

    /// The parameter tensors, in layer order (weight then bias). Checks the spec first.
    pub fn params(&self) -> Result<Vec<ParamShape>, NnError> {
        let shapes = self.shapes()?;
        let mut out = Vec::new();
        for (l, s) in self.layers.iter().zip(&shapes) {
            match l {
                Layer::Conv2d {
                    name,
                    out: o,
                    kernel,
                } => {
                    out.push(ParamShape {
                        name: format!("{name}.weight"),
                        shape: vec![*o, s[0], *kernel, *kernel],
                    });
                    out.push(ParamShape {
                        name: format!("{name}.bias"),
                        shape: vec![*o],
                    });
                }
                Layer::Dense { name, out: o, .. } => {
                    out.push(ParamShape {
                        name: format!("{name}.weight"),
                        shape: vec![*o, s[0]],
                    });
                    out.push(ParamShape {
                        name: format!("{name}.bias"),
                        shape: vec![*o],
                    });
                }
                _ => {}
            }
        }
        let total: usize = out.iter().map(|p| p.shape.iter().product::<usize>()).sum();
        check_size(total).map_err(|e| NnError::Spec(format!("the network's parameters: {e}")))?;
        Ok(out)
    }

    /// Values per input sample.
    pub fn input_len(&self) -> usize {
        self.input.iter().product()
    }

    /// Values per output sample (after checking the spec).
    pub fn output_len(&self) -> Result<usize, NnError> {
        Ok(self
            .shapes()?
            .last()
            .map(|s| s.iter().product())
            .unwrap_or(0))
    }
}

fn check_size(n: usize) -> Result<(), String> {
    if n > MAX_VALUES {
        Err(format!(
            "{n} values is more than this node allows ({MAX_VALUES})"
        ))
    } else {
        Ok(())
    }
}

impl Layer {
    /// A convolution layer.
    pub fn conv(name: &str, out: usize, kernel: usize) -> Layer {
        Layer::Conv2d {
            name: name.into(),
            out,
            kernel,
        }
    }

    /// A dense layer.
    pub fn dense(name: &str, out: usize) -> Layer {
        Layer::Dense {
            name: name.into(),
            inputs: None,
            out,
        }
    }

    /// `conv2d conv1 (32 3x3)`, as errors and summaries name it.
    pub fn describe(&self) -> String {
        match self {
            Layer::Conv2d { name, out, kernel } => {
                format!("conv2d {name}: {out} {kernel}x{kernel}")
            }
            Layer::MaxPool { size } => format!("max_pool {size}x{size}"),
            Layer::Dense { name, out, .. } => format!("dense {name}: {out}"),
            Layer::Relu => "relu".into(),
            Layer::Tanh => "tanh".into(),
            Layer::Dropout { p } => format!("dropout {p}"),
            Layer::Flatten => "flatten".into(),
            Layer::LogSoftmax => "log_softmax".into(),
            Layer::Softmax => "softmax".into(),
            Layer::Sigmoid => "sigmoid".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_cnn_has_pytorch_s_parameters() {
        let p = Spec::cnn().params().unwrap();
        let total: usize = p.iter().map(|p| p.shape.iter().product::<usize>()).sum();
        assert_eq!(total, 1_199_882);
        assert_eq!(
            p[0],
            ParamShape {
                name: "conv1.weight".into(),
                shape: vec![32, 1, 3, 3]
            }
        );
        assert_eq!(p[4].shape, vec![128, 9216]);
        let json = serde_json::to_string(&Spec::cnn()).unwrap();
        assert_eq!(serde_json::from_str::<Spec>(&json).unwrap(), Spec::cnn());
    }

    #[test]
    fn mismatched_shapes_name_the_layer() {
        let mut s = Spec::cnn();
        s.layers[7] = Layer::Dense {
            name: "fc1".into(),
            inputs: Some(9000),
            out: 128,
        };
        let e = s.shapes().unwrap_err().to_string();
        assert!(
            e.contains(
                "layer 8 (dense fc1: 128): expects 9000 inputs, the previous layer gives 9216"
            ),
            "{e}"
        );
        s.layers.remove(6); // the flatten
        let e = s.shapes().unwrap_err().to_string();
        assert!(
            e.contains("needs a flat input, the previous layer gives [64, 12, 12]"),
            "{e}"
        );
        let mut s = Spec::dense(784, 128, 10);
        s.loss = Loss::Nll;
        assert!(s
            .shapes()
            .unwrap_err()
            .to_string()
            .contains("end the network with log_softmax"));
        let huge = Spec::dense(1 << 20, 1 << 20, 10);
        assert!(huge
            .params()
            .unwrap_err()
            .to_string()
            .contains("more than this node allows"));
        let e = serde_json::from_str::<Spec>(
            r#"{"input":[4],"layers":[{"layer":"lstm"}],"loss":"mse"}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("lstm"), "{e}");
    }
}
