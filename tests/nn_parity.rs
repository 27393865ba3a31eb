//! Modules against PyTorch: with the same weights (state_dict names), the output, the input's
//! gradient, every parameter's gradient and the buffers after a step (batch norm's running
//! statistics) match `tests/pytorch/nn_fixtures.json`, written by `make_nn_fixtures.py`.

use serde_json::Value;
use tensile::nn::{
    Activation, AdaptiveAvgPool2d, AvgPool2d, BatchNorm1d, BatchNorm2d, Bilinear, Conv1d, Conv2d, ConvTranspose2d,
    Embedding, Flatten, GELU, GRU, GroupNorm, LSTM, LayerNorm, LeakyReLU, Linear, LogSoftmax, MaxPool2d,
    MultiHeadAttention, NoBias, Params, RMSNorm, ReLU, ResidualWith, SiLU, Sigmoid, Softmax, Tanh, TensorKind,
    Transformer, TransformerDecoderLayer, TransformerEncoderLayer, Visitor, VisitorMut,
};
use tensile::prelude::*;

type Taped<S, E> = Tensor<S, E, Cpu, OwnedTape<Cpu>>;
type Flat<E> = Taped<(usize,), E>;

/// A tensor's values as f64, for comparison.
fn values<S: Shape, E: Float, T>(t: &Tensor<S, E, Cpu, T>) -> Vec<f64> {
    t.to_vec().iter().map(|v| v.as_f64()).collect()
}

/// 1e-9 in f64; the core issue's tolerance (1e-4) in f32.
fn tolerance<E: Float>() -> f64 {
    if E::BYTES == 8 { 1e-9 } else { E::TOLERANCE }
}

fn numbers(v: &Value) -> Vec<f64> {
    v.as_array().expect("array").iter().map(|x| x.as_f64().expect("number")).collect()
}

fn dims(v: &Value) -> Vec<usize> {
    v.as_array().expect("shape").iter().map(|d| d.as_u64().expect("dim") as usize).collect()
}

/// Sets every tensor from the fixture's state, by name, checking the shapes.
struct Load<'a>(&'a Value);
impl VisitorMut<Cpu> for Load<'_> {
    fn visit_mut<S: Shape, E: Float>(&mut self, name: &str, _: TensorKind, t: &mut Tensor<S, E, Cpu>) {
        let entry = &self.0[name];
        assert!(!entry.is_null(), "the fixture has no `{name}`");
        assert_eq!(dims(&entry["shape"]), t.dims().to_vec(), "shape of `{name}`");
        let data = numbers(&entry["data"]).into_iter().map(E::cast_f64).collect();
        *t = Cpu::seeded(0).from_vec(data, *t.shape());
    }
}

/// Every tensor's values, by name.
struct Read(Vec<(String, Vec<f64>)>);
impl Visitor<Cpu> for Read {
    fn visit<S: Shape, E: Float>(&mut self, name: &str, _: TensorKind, t: &Tensor<S, E, Cpu>) {
        self.0.push((name.to_string(), t.to_vec().iter().map(|v| v.as_f64()).collect()));
    }
}

/// Every parameter's gradient, by name.
struct Grads<'a>(&'a Gradients<Cpu>, Vec<(String, Vec<f64>)>);
impl Visitor<Cpu> for Grads<'_> {
    fn visit<S: Shape, E: Float>(&mut self, name: &str, kind: TensorKind, t: &Tensor<S, E, Cpu>) {
        if kind == TensorKind::Parameter {
            self.1.push((name.to_string(), self.0.get(t).to_vec().iter().map(|v| v.as_f64()).collect()));
        }
    }
}

fn close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: {} values, PyTorch has {}", got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol * w.abs().max(1.0), "{what}[{i}]: tensile {g}, PyTorch {w}");
    }
}

fn input<E: Float, S: Shape>(case: &Value, tape: &OwnedTape<Cpu>) -> (Tensor<S, E, Cpu>, Taped<S, E>) {
    nth_input(case, 0, tape)
}

/// Input `i` of a case with several, and the same on the tape.
fn nth_input<E: Float, S: Shape>(case: &Value, i: usize, tape: &OwnedTape<Cpu>) -> (Tensor<S, E, Cpu>, Taped<S, E>) {
    let x = &case["inputs"][i];
    let shape = S::from_dims(&dims(&x["shape"])).expect("input shape");
    let x = Cpu::seeded(0).from_vec(numbers(&x["data"]).into_iter().map(E::cast_f64).collect(), shape);
    let t = x.trace_on(tape);
    (x, t)
}

/// The gradients of several inputs, in order.
fn grads_of<S: Shape, E: Float>(inputs: Vec<Tensor<S, E, Cpu>>) -> InputGrad {
    Box::new(move |g| inputs.iter().map(|x| values(&g.get(x))).collect())
}

/// Flattens a module's output for comparison.
fn flat<S: Shape, E: Float>(y: Taped<S, E>) -> Flat<E> {
    let n = y.numel();
    y.try_reshape_like(&(n,)).unwrap()
}

/// Reads the inputs' gradients from the gradients of a backward pass.
type InputGrad = Box<dyn Fn(&Gradients<Cpu>) -> Vec<Vec<f64>>>;

/// Loads the case's weights, runs `forward` (which builds the input and flattens the output),
/// weights the output, and compares everything with PyTorch.
fn check<E: Float, M: Params<Cpu>>(
    case: &Value,
    mut model: M,
    forward: impl FnOnce(&mut M, bool, &OwnedTape<Cpu>) -> (Flat<E>, Option<InputGrad>),
) {
    let tol = tolerance::<E>();
    let name = case["name"].as_str().expect("name");
    model.visit_params_mut("", &mut Load(&case["state"]));
    let tape = OwnedTape::new(Gradients::leaky());
    let (y, input_grad) = forward(&mut model, case["train"].as_bool().expect("train"), &tape);
    let name = format!("{name} ({})", E::NAME);
    close(&format!("{name} output"), &values(&y), &numbers(&case["output"]), tol);
    let w = Cpu::seeded(0).from_vec(numbers(&case["weights"]).into_iter().map(E::cast_f64).collect(), (y.numel(),));
    let g = (y * w).sum::<Rank0, _>().backward();
    if let Some(read) = input_grad {
        let want = case["input_grads"].as_array().expect("input_grads");
        let got = read(&g);
        assert_eq!(got.len(), want.len(), "{name}: inputs with a gradient");
        for (i, (got, want)) in got.iter().zip(want).enumerate() {
            close(&format!("{name} grad of input {i}"), got, &numbers(want), tol);
        }
    }
    let mut grads = Grads(&g, Vec::new());
    model.visit_params("", &mut grads);
    for (param, got) in grads.1 {
        close(&format!("{name} grad of {param}"), &got, &numbers(&case["grads"][&param]), tol);
    }
    let mut after = Read(Vec::new());
    model.visit_params("", &mut after);
    for (t, got) in after.0 {
        close(&format!("{name} {t} after the step"), &got, &numbers(&case["state_after"][&t]), tol);
    }
}

/// Runs a float-input case and also checks the input's gradient.
fn check_float<E: Float, S: Shape, M, Y: Shape>(case: &Value, model: M)
where
    M: Params<Cpu> + Module<Taped<S, E>, Output = Taped<Y, E>> + ModuleMut<Taped<S, E>, Output = Taped<Y, E>>,
{
    check(case, model, |m, train, tape| {
        let (x, xt) = input::<E, S>(case, tape);
        let y = if train { m.forward_mut(xt) } else { m.forward(xt) };
        (flat(y), Some(grads_of(vec![x])))
    });
}

/// Source and target as inputs, a causal target mask; training or inference mode.
fn transformer_case<E: Float, const NE: usize, const ND: usize>(
    case: &Value,
    m: &mut Transformer<8, 2, 16, NE, ND, E>,
    train: bool,
    tape: &OwnedTape<Cpu>,
) -> (Flat<E>, Option<InputGrad>) {
    let (s, st) = nth_input::<E, Seq8>(case, 0, tape);
    let (t, tt) = nth_input::<E, Seq8>(case, 1, tape);
    let y = if train { m.forward_mut((st, tt, AttnMask::Causal)) } else { m.forward((st, tt, AttnMask::Causal)) };
    (flat(y), Some(grads_of(vec![s, t])))
}

fn cases() -> Vec<Value> {
    let fixtures: Value = serde_json::from_str(include_str!("pytorch/nn_fixtures.json")).expect("nn_fixtures.json");
    fixtures["cases"].as_array().expect("cases").clone()
}

type B2 = (usize, usize);
type B3 = (usize, usize, usize);
type B4 = (usize, usize, usize, usize);
type Seq8 = (usize, usize, Const<8>);

#[test]
fn modules_match_pytorch_in_f64() {
    modules_match_pytorch::<f64>();
}

#[test]
fn modules_match_pytorch_in_f32() {
    modules_match_pytorch::<f32>();
}

fn modules_match_pytorch<E: Float>() {
    let dev = Cpu::seeded(0);
    let mut seen = 0;
    for case in cases() {
        match case["name"].as_str().expect("name") {
            "linear" => check_float::<E, (usize, Const<5>), _, _>(&case, Linear::<5, 3, E>::build(&dev)),
            "mlp" => check_float::<E, (usize, Const<4>), _, _>(
                &case,
                <(Linear<4, 6, E>, Tanh, Linear<6, 2, E>)>::build(&dev),
            ),
            "conv2d" => check_float::<E, B4, _, _>(&case, Conv2d::<4, 6, 3, 2, 1, 1, 2, E>::build(&dev)),
            "conv1d" => check_float::<E, B3, _, _>(&case, Conv1d::<3, 4, 3, 1, 1, 1, 1, E>::build(&dev)),
            "layer_norm" => check_float::<E, B3, _, _>(&case, LayerNorm::<6, E>::build(&dev)),
            "rms_norm" => check_float::<E, B2, _, _>(&case, RMSNorm::<6, E>::build(&dev)),
            "group_norm" => check_float::<E, B4, _, _>(&case, GroupNorm::<2, 4, E>::build(&dev)),
            "batch_norm2d_train" | "batch_norm2d_eval" => {
                check_float::<E, B4, _, _>(&case, BatchNorm2d::<3, E>::build(&dev))
            }
            "batch_norm1d_train" => check_float::<E, B2, _, _>(&case, BatchNorm1d::<5, E>::build(&dev)),
            "cnn" => check_float::<E, (usize, Const<1>, Const<8>, Const<8>), _, _>(
                &case,
                <(Conv2d<1, 4, 3, 1, 0, 1, 1, E>, ReLU, MaxPool2d<2>, Flatten, Linear<36, 3, E>)>::build(&dev),
            ),
            "embedding" => check::<E, _>(&case, Embedding::<7, 4, E>::build(&dev), |m, _, tape| {
                let shape = <B2 as Shape>::from_dims(&dims(&case["input"]["shape"])).unwrap();
                let idx: Vec<i64> = numbers(&case["input"]["data"]).into_iter().map(|v| v as i64).collect();
                let tokens = Cpu::seeded(0).from_vec(idx, shape).put_tape(tape.clone());
                (flat(m.forward(tokens)), None)
            }),
            "conv_transpose2d" => {
                check_float::<E, B4, _, _>(&case, ConvTranspose2d::<4, 6, 3, 2, 1, 1, 2, 1, E>::build(&dev))
            }
            "conv_no_bias_bn" => check_float::<E, B4, _, _>(
                &case,
                <(NoBias<Conv2d<3, 4, 3, 1, 1, 1, 1, E>>, BatchNorm2d<4, E>)>::build(&dev),
            ),
            "residual_with_downsample" => check_float::<E, B4, _, _>(
                &case,
                ResidualWith::<
                    (
                        NoBias<Conv2d<3, 4, 3, 2, 1, 1, 1, E>>,
                        BatchNorm2d<4, E>,
                        ReLU,
                        NoBias<Conv2d<4, 4, 3, 1, 1, 1, 1, E>>,
                        BatchNorm2d<4, E>,
                    ),
                    (NoBias<Conv2d<3, 4, 1, 2, 0, 1, 1, E>>, BatchNorm2d<4, E>),
                >::build(&dev),
            ),
            "activations_and_pools" => check_float::<E, B4, _, _>(
                &case,
                <(
                    Conv2d<2, 4, 3, 1, 1, 1, 1, E>,
                    LeakyReLU,
                    AvgPool2d<2>,
                    Conv2d<4, 4, 3, 1, 1, 1, 1, E>,
                    SiLU,
                    AdaptiveAvgPool2d<1, 1>,
                    Flatten,
                    Linear<4, 6, E>,
                    GELU,
                    Linear<6, 5, E>,
                    Sigmoid,
                )>::build(&dev),
            ),
            "softmax_heads" => check_float::<E, (usize, Const<4>), _, _>(
                &case,
                <(Linear<4, 3, E>, Softmax, Linear<3, 3, E>, LogSoftmax)>::build(&dev),
            ),
            "bilinear" => check::<E, _>(&case, Bilinear::<3, 4, 2, E>::build(&dev), |m, _, tape| {
                let (a, at) = nth_input::<E, (usize, Const<3>)>(&case, 0, tape);
                let (b, bt) = nth_input::<E, (usize, Const<4>)>(&case, 1, tape);
                let read: InputGrad = Box::new(move |g| vec![values(&g.get(&a)), values(&g.get(&b))]);
                (flat(m.forward_mut((at, bt))), Some(read))
            }),
            "mha_self_causal" => check::<E, _>(&case, MultiHeadAttention::<8, 2, E>::build(&dev), |m, _, tape| {
                let (x, xt) = nth_input::<E, Seq8>(&case, 0, tape);
                (flat(m.forward_mut((xt, AttnMask::Causal))), Some(grads_of(vec![x])))
            }),
            "mha_cross" => check::<E, _>(&case, MultiHeadAttention::<8, 2, E>::build(&dev), |m, _, tape| {
                let (q, qt) = nth_input::<E, Seq8>(&case, 0, tape);
                let (k, kt) = nth_input::<E, Seq8>(&case, 1, tape);
                let (v, vt) = nth_input::<E, Seq8>(&case, 2, tape);
                (flat(m.forward_mut((qt, kt, vt))), Some(grads_of(vec![q, k, v])))
            }),
            "encoder_layer" | "encoder_layer_eval" => {
                let layer = TransformerEncoderLayer::<8, 2, 16, E>::build(&dev).with_dropout(0.0);
                check_float::<E, Seq8, _, _>(&case, layer)
            }
            "encoder_layer_prenorm_gelu_causal" => {
                let mut layer = TransformerEncoderLayer::<8, 2, 16, E>::build(&dev).with_dropout(0.0);
                layer.norm_first = true;
                layer.activation = Activation::GELU;
                check::<E, _>(&case, layer, |m, _, tape| {
                    let (x, xt) = nth_input::<E, Seq8>(&case, 0, tape);
                    (flat(m.forward_mut((xt, AttnMask::Causal))), Some(grads_of(vec![x])))
                })
            }
            "decoder_layer_causal" => {
                let layer = TransformerDecoderLayer::<8, 2, 16, E>::build(&dev).with_dropout(0.0);
                check::<E, _>(&case, layer, |m, _, tape| {
                    let (t, tt) = nth_input::<E, Seq8>(&case, 0, tape);
                    let (mem, memt) = nth_input::<E, Seq8>(&case, 1, tape);
                    (flat(m.forward_mut((tt, memt, AttnMask::Causal))), Some(grads_of(vec![t, mem])))
                })
            }
            "transformer" => {
                let model = Transformer::<8, 2, 16, 2, 2, E>::build(&dev).with_dropout(0.0);
                check::<E, _>(&case, model, |m, train, tape| transformer_case(&case, m, train, tape))
            }
            "transformer_eval" => {
                let model = Transformer::<8, 2, 16, 1, 1, E>::build(&dev).with_dropout(0.0);
                check::<E, _>(&case, model, |m, train, tape| transformer_case(&case, m, train, tape))
            }
            "lstm2" => check::<E, _>(&case, LSTM::<3, 5, 2, E>::build(&dev), |m, _, tape| {
                let (x, xt) = nth_input::<E, (usize, usize, Const<3>)>(&case, 0, tape);
                let (h, ht) = nth_input::<E, (Const<2>, usize, Const<5>)>(&case, 1, tape);
                let (c, ct) = nth_input::<E, (Const<2>, usize, Const<5>)>(&case, 2, tape);
                let (out, (hn, cn)) = m.forward((xt, (ht, ct)));
                let y = flat(out).concat_along(flat(hn), Axis::<0>).concat_along(flat(cn), Axis::<0>);
                let read: InputGrad =
                    Box::new(move |g| vec![values(&g.get(&x)), values(&g.get(&h)), values(&g.get(&c))]);
                (y.try_realize().unwrap(), Some(read))
            }),
            "lstm_zero_state" => check::<E, _>(&case, LSTM::<4, 3, 1, E>::build(&dev), |m, _, tape| {
                let (x, xt) = nth_input::<E, (usize, usize, Const<4>)>(&case, 0, tape);
                let (out, (hn, cn)) = m.forward(xt);
                let y = flat(out).concat_along(flat(hn), Axis::<0>).concat_along(flat(cn), Axis::<0>);
                (y.try_realize().unwrap(), Some(grads_of(vec![x])))
            }),
            "gru2" => check::<E, _>(&case, GRU::<3, 5, 2, E>::build(&dev), |m, _, tape| {
                let (x, xt) = nth_input::<E, (usize, usize, Const<3>)>(&case, 0, tape);
                let (h, ht) = nth_input::<E, (Const<2>, usize, Const<5>)>(&case, 1, tape);
                let (out, hn) = m.forward((xt, ht));
                let y = flat(out).concat_along(flat(hn), Axis::<0>);
                let read: InputGrad = Box::new(move |g| vec![values(&g.get(&x)), values(&g.get(&h))]);
                (y.try_realize().unwrap(), Some(read))
            }),
            other => panic!("no tensile module for fixture case `{other}`"),
        }
        seen += 1;
    }
    assert_eq!(seen, 29);
}
