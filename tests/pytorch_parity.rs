//! Forward values and gradients against PyTorch, from fixtures written by
//! `tests/pytorch/make_fixtures.py` (committed, so no Python is needed here).
//!
//! Each case is reduced with fixed weights, `Σ w·y`, as in the script. Tolerances: 1e-6 (f64),
//! 1e-4 (f32), 1e-2 (f16), 4e-2 (bf16), relative with an absolute floor of the same size.

use half::{bf16, f16};
use serde_json::Value;
use std::cell::RefCell;
use tensile::autograd::UniqueId;
use tensile::nn::loss;
use tensile::prelude::*;

type Taped<S, E, D> = Tensor<S, E, D, OwnedTape<D>>;

struct Case<E: Float, D: Device> {
    dev: D,
    tape: OwnedTape<D>,
    inputs: Vec<(Vec<usize>, Vec<f64>)>,
    indices: Vec<(Vec<usize>, Vec<f64>)>,
    ids: RefCell<Vec<UniqueId>>,
    _e: core::marker::PhantomData<E>,
}

impl<E: Float, D: Device> Case<E, D> {
    /// Index tensor `i` of the case (int64, no gradient).
    fn index<S: Shape>(&self, i: usize) -> Tensor<S, i64, D> {
        let (shape, data) = &self.indices[i];
        let shape = S::from_dims(shape).expect("fixture shape fits the test's shape type");
        self.dev.from_vec(data.iter().map(|&v| v as i64).collect(), shape)
    }

    fn input<S: Shape>(&self, i: usize) -> Taped<S, E, D> {
        let (shape, data) = &self.inputs[i];
        let shape = S::from_dims(shape).expect("fixture shape fits the test's shape type");
        let t = self.dev.from_vec(data.iter().map(|&v| E::cast_f64(v)).collect(), shape);
        self.ids.borrow_mut().push(t.id());
        t.put_tape(self.tape.clone())
    }
}

type M = (usize, usize);
type B3 = (usize, usize, usize);
type B4 = (usize, usize, usize, usize);

/// Flattens the output so that one weighting works for every shape.
fn flat<S: Shape, E: Float, D: Device>(y: Taped<S, E, D>) -> Taped<(usize,), E, D> {
    let n = y.numel();
    y.try_reshape_like(&(n,)).expect("same element count")
}

fn forward<E: Float, D: Device>(name: &str, c: &Case<E, D>) -> Taped<(usize,), E, D> {
    let x2 = || c.input::<M>(0);
    let y2 = || c.input::<M>(1);
    match name {
        "neg" => flat(x2().neg()),
        "abs" => flat(x2().abs()),
        "exp" => flat(x2().exp()),
        "ln" => flat(x2().ln()),
        "sqrt" => flat(x2().sqrt()),
        "square" => flat(x2().square()),
        "powi" => flat(x2().powi(3)),
        "powf" => flat(x2().powf(1.7)),
        "recip" => flat(x2().recip()),
        "sin" => flat(x2().sin()),
        "cos" => flat(x2().cos()),
        "tanh" => flat(x2().tanh()),
        "sigmoid" => flat(x2().sigmoid()),
        "relu" => flat(x2().relu()),
        "leaky_relu" => flat(x2().leaky_relu(0.1)),
        "gelu" => flat(x2().gelu()),
        "gelu_tanh" => flat(x2().gelu_tanh()),
        "silu" => flat(x2().silu()),
        "softplus" => flat(x2().softplus()),
        "erf" => flat(x2().erf()),
        "clamp" => flat(x2().clamp(-0.5, 0.7)),
        "add_scalar" => flat(x2().add_scalar(1.5)),
        "sub_scalar" => flat(x2().sub_scalar(1.5)),
        "mul_scalar" => flat(x2().mul_scalar(1.5)),
        "div_scalar" => flat(x2().div_scalar(1.5)),
        "rsub_scalar" => flat(x2().rsub_scalar(2.0)),
        "add" => flat(x2() + y2()),
        "sub" => flat(x2() - y2()),
        "mul" => flat(x2() * y2()),
        "div" => flat(x2() / y2()),
        "maximum" => flat(x2().maximum(y2())),
        "minimum" => flat(x2().minimum(y2())),
        "pow" => flat(x2().pow(y2())),
        "where" => {
            let (a, b) = (x2(), y2());
            flat(a.gt(&b).choose(a, b))
        }
        "compare" => {
            let (a, b) = (x2(), y2());
            let pick = |m: Tensor<M, bool, D>| m.choose(a.clone(), b.clone() * E::cast_f64(2.0));
            let masks = [a.eq(&b), a.ne(&b), a.lt(&b), a.le(&b), a.gt(&b), a.ge(&b)];
            flat(Tensor::stack(masks.map(pick)))
        }
        "sum_axis1" => flat(x2().sum::<(usize,), Axis<1>>()),
        "sum_all" => flat(x2().sum::<Rank0, _>()),
        "sum_axes02" => flat(c.input::<B3>(0).sum::<(usize,), Axes2<0, 2>>()),
        "mean_axis0" => flat(x2().mean::<(usize,), Axis<0>>()),
        "max_axis1" => flat(x2().max::<(usize,), Axis<1>>()),
        "min_axis0" => flat(x2().min::<(usize,), Axis<0>>()),
        "var_axis1" => flat(x2().var::<(usize,), Axis<1>>()),
        "std_axis1" => flat(x2().std::<(usize,), Axis<1>>()),
        "logsumexp_axis1" => flat(x2().logsumexp::<(usize,), Axis<1>>()),
        "softmax_axis1" => flat(x2().softmax::<Axis<1>>()),
        "softmax_axis0" => flat(x2().softmax::<Axis<0>>()),
        "log_softmax_axis1" => flat(x2().log_softmax::<Axis<1>>()),
        "matmul_mm" => flat(x2().matmul(y2())),
        "matmul_vm" => flat(c.input::<(usize,)>(0).matmul(y2())),
        "matmul_mv" => flat(x2().matmul(c.input::<(usize,)>(1))),
        "matmul_bmm" => flat(c.input::<B3>(0).matmul(c.input::<B3>(1))),
        "matmul_broadcast" => flat(c.input::<B3>(0).matmul(y2())),
        "matmul_4d" => flat(c.input::<B4>(0).matmul(c.input::<B4>(1))),
        "reshape" => flat(x2().try_reshape_like(&(2usize, 6usize)).unwrap().sin()),
        "permute" => flat(c.input::<B3>(0).permute::<_, Axes3<2, 0, 1>>().exp()),
        "transpose" => flat(x2().t() * E::cast_f64(2.0)),
        "broadcast" => flat(c.input::<(usize,)>(0).broadcast_like::<M, Axis<0>>(&(3, 4)).square()),
        "concat_axis0" => flat(x2().concat_along(y2().exp(), Axis::<0>)),
        "concat_axis1" => flat(x2().concat_along(y2().exp(), Axis::<1>)),
        "stack" => flat(Tensor::stack([x2().sin(), y2().square()])),
        "flatten" => flat(c.input::<B3>(0).permute::<_, Axes3<0, 2, 1>>().flatten().sin()),
        "narrow" => flat(x2().narrow(Axis::<1>, 1, 2usize).square()),
        "select" => flat(x2().select(Axis::<0>, 1).exp()),
        "to_dtype" => {
            let x = x2();
            flat(x.clone().to_dtype::<half::f16>().to_dtype::<E>() * x)
        }
        "conv2d" => flat(c.input::<B4>(0).conv2d(c.input::<B4>(1), ConvOpts::<1>)),
        "conv2d_s2p1d2g2" => flat(c.input::<B4>(0).conv2d(c.input::<B4>(1), ConvOpts::<2, 1, 2, 2>)),
        "conv2d_pointwise" => flat(c.input::<B4>(0).conv2d(c.input::<B4>(1), ConvOpts::<1>)),
        "conv1d_s2p1" => flat(c.input::<B3>(0).conv1d(c.input::<B3>(1), ConvOpts::<2, 1>)),
        "conv_transpose2d_s2p1op1" => {
            flat(c.input::<B4>(0).conv_transpose2d(c.input::<B4>(1), ConvTransposeOpts::<2, 1, 1, 1, 1>))
        }
        "conv_transpose1d_s3d2g2" => {
            flat(c.input::<B3>(0).conv_transpose1d(c.input::<B3>(1), ConvTransposeOpts::<3, 0, 2, 2>))
        }
        "max_pool2d_k3s2p1" => flat(c.input::<B4>(0).max_pool2d(PoolOpts::<3, 2, 1>)),
        "max_pool1d_k2s1d2" => flat(c.input::<B3>(0).max_pool1d(PoolOpts::<2, 1, 0, 2>)),
        "avg_pool2d_k3s2p1" => flat(c.input::<B4>(0).avg_pool2d(PoolOpts::<3, 2, 1>)),
        "avg_pool2d_k3s2p1_exclude_pad" => flat(c.input::<B4>(0).try_avg_pool2d(PoolOpts::<3, 2, 1>, false).unwrap()),
        "avg_pool1d_k2s2p1" => flat(c.input::<B3>(0).avg_pool1d(PoolOpts::<2, 2, 1>)),
        "adaptive_avg_pool2d_3x2" => flat(c.input::<B4>(0).adaptive_avg_pool2d::<3, 2>()),
        "global_avg_pool2d" => flat(c.input::<B4>(0).global_avg_pool2d()),
        "global_max_pool2d" => flat(c.input::<B4>(0).global_max_pool2d()),
        "gather_axis1" => flat(x2().gather(Axis::<1>, &c.index::<M>(0))),
        "index_select_axis0" => flat(x2().index_select(Axis::<0>, &c.index::<(usize,)>(0))),
        "embedding" => flat(x2().embedding(&c.index::<M>(0))),
        "scatter_add_axis1" => flat(x2().scatter_add(Axis::<1>, &c.index::<M>(0), y2().square())),
        "masked_fill" => {
            let x = x2();
            let mask = x.gt_scalar(E::cast_f64(0.5));
            flat(x.masked_fill(&mask, 2.0).exp())
        }
        "flip_roll" => flat(x2().flip(Axis::<1>).roll(Axis::<0>, 1).sin()),
        "split_at" => {
            let (a, b) = x2().split_at(Axis::<1>, 2usize);
            flat(a.exp().concat_along(b.square(), Axis::<1>))
        }
        "slice_step2" => flat(x2().try_slice(Axis::<1>, 1, 4, 2).unwrap().exp()),
        "tril_triu" => {
            let x = c.input::<B3>(0);
            flat(x.clone().tril(0).exp() + x.triu(1).square())
        }
        "topk2" => flat(x2().try_topk(Axis::<1>, 2usize, true).unwrap().0),
        "sort_ascending" => flat(x2().sort(Axis::<1>, false).0.square()),
        "max_along1" => flat(x2().max_along(Axis::<1>).0),
        "min_along0" => flat(x2().min_along(Axis::<0>).0),
        "cumsum_axis1" => flat(x2().cumsum(Axis::<1>).sin()),
        "cumprod_axis1" => flat(x2().cumprod(Axis::<1>)),
        "layer_norm" => {
            let (x, p) = (x2(), y2());
            flat(x.layer_norm(p.clone().select(Axis::<0>, 0), p.select(Axis::<0>, 1), 1e-5))
        }
        "rms_norm" => flat(x2().rms_norm(c.input::<(usize,)>(1), 1e-6)),
        "group_norm" => {
            let (x, p) = (c.input::<B4>(0), y2());
            flat(x.try_group_norm::<2, _, _>(p.clone().select(Axis::<0>, 0), p.select(Axis::<0>, 1), 1e-5).unwrap())
        }
        "batch_norm_train" => {
            let (x, p) = (c.input::<B4>(0), y2());
            flat(x.batch_norm_train(p.clone().select(Axis::<0>, 0), p.select(Axis::<0>, 1), 1e-5).0)
        }
        "batch_norm_eval" => {
            let (x, p) = (c.input::<B3>(0), y2());
            let mean = c.dev.from_vec((0..4).map(|i| E::cast_f64(i as f64 * 0.1)).collect(), (4usize,));
            let var = c.dev.from_vec((0..4).map(|i| E::cast_f64(1.0 + i as f64)).collect(), (4usize,));
            flat(x.batch_norm_eval(&mean, &var, p.clone().select(Axis::<0>, 0), p.select(Axis::<0>, 1), 1e-5))
        }
        "cross_entropy" => flat(x2().cross_entropy(&c.index::<(usize,)>(0))),
        "nll_loss" => flat(x2().log_softmax::<Axis<1>>().square().nll_loss(&c.index::<(usize,)>(0))),
        "cross_entropy_probs" => flat(x2().cross_entropy_probs(y2().softmax::<Axis<1>>())),
        "attention_masked" => {
            let keep = [[true, false, true, true], [true, true, false, false], [false, true, true, true]];
            let keep = c.dev.from_vec(keep.concat(), (3usize, 4usize));
            flat(c.input::<B4>(0).scaled_dot_product_attention(
                c.input::<B4>(1),
                c.input::<B4>(2),
                AttnMask::Keep(&keep),
            ))
        }
        "attention_causal" => {
            flat(c.input::<B4>(0).scaled_dot_product_attention(c.input::<B4>(1), c.input::<B4>(2), AttnMask::Causal))
        }
        "pad2d_modes" => {
            let x = c.input::<B4>(0);
            let r = x.clone().pad2d(Pad::<1, 2>, Pad::<1, 1>, PadMode::Reflect).realize::<B4>();
            let p = x.clone().pad2d(Pad::<1, 2>, Pad::<1, 1>, PadMode::Replicate).realize::<B4>();
            let k = x.pad2d(Pad::<1, 2>, Pad::<1, 1>, PadMode::Constant(0.5)).realize::<B4>();
            flat(r + p.square() + k.exp())
        }
        "pad1d_reflect" => flat(c.input::<B3>(0).pad1d(Pad::<2, 1>, PadMode::Reflect)),
        "upsample_nearest" => flat(c.input::<B4>(0).upsample_nearest2d::<5, 7>()),
        "upsample_bilinear_align" => flat(c.input::<B4>(0).upsample_bilinear2d::<5, 7>(true)),
        "upsample_bilinear" => flat(c.input::<B4>(0).upsample_bilinear2d::<5, 7>(false)),
        "mse_loss" => flat(loss::mse_loss(x2(), y2(), loss::Reduction::Mean)),
        "l1_loss_sum" => flat(loss::l1_loss(x2(), y2(), loss::Reduction::Sum)),
        "smooth_l1_loss" => flat(loss::smooth_l1_loss(x2(), y2(), 0.7, loss::Reduction::Mean)),
        "huber_loss" => flat(loss::huber_loss(x2(), y2(), 1.3, loss::Reduction::Mean)),
        "binary_cross_entropy" => {
            flat(loss::binary_cross_entropy(x2().sigmoid(), y2().sigmoid(), loss::Reduction::Mean))
        }
        "bce_with_logits" => flat(loss::binary_cross_entropy_with_logits(x2(), y2().sigmoid(), loss::Reduction::Mean)),
        "kl_div" => flat(loss::kl_div(x2().log_softmax::<Axis<1>>(), y2().softmax::<Axis<1>>(), loss::Reduction::Mean)),
        "mse_loss_none" => flat(loss::mse_loss_per_element(x2(), y2())),
        "cross_entropy_smooth_ignore" => {
            let opts = loss::ClassTargets { ignore_index: Some(3), label_smoothing: 0.2 };
            flat(loss::cross_entropy(x2(), &c.index::<(usize,)>(0), opts, loss::Reduction::Mean).unwrap())
        }
        "cross_entropy_smooth_sum_none" => {
            let opts = loss::ClassTargets { label_smoothing: 0.1, ..Default::default() };
            flat(loss::cross_entropy_per_sample(x2(), &c.index::<(usize,)>(0), opts).unwrap())
        }
        "nll_loss_ignore_sum" => {
            let opts = loss::ClassTargets { ignore_index: Some(1), ..Default::default() };
            let logp = x2().log_softmax::<Axis<1>>();
            flat(loss::nll_loss(logp, &c.index::<(usize,)>(0), opts, loss::Reduction::Sum).unwrap())
        }
        "cross_entropy_probs_smooth" => {
            flat(loss::cross_entropy_probs(x2(), y2().softmax::<Axis<1>>(), 0.3, loss::Reduction::Mean))
        }
        "bce_with_logits_pos_weight" => {
            let w = [0.5, 1.0, 2.0, 3.0].map(E::cast_f64);
            let w = c.dev.from_vec([w; 3].concat(), (3usize, 4usize));
            flat(loss::binary_cross_entropy_with_logits_weighted(x2(), y2().sigmoid(), &w, loss::Reduction::Mean))
        }
        "margin_ranking_loss" => {
            let signs = [[1.0, -1.0, 1.0, 1.0], [-1.0, -1.0, 1.0, -1.0], [1.0, 1.0, -1.0, 1.0]];
            let y = c.dev.from_vec(signs.concat().into_iter().map(E::cast_f64).collect(), (3usize, 4usize));
            flat(loss::margin_ranking_loss(x2(), y2(), &y, 0.3, loss::Reduction::Mean))
        }
        "cosine_embedding_loss" => {
            let y = c.dev.from_vec([1.0, -1.0, -1.0, 1.0].map(E::cast_f64).to_vec(), (4usize,));
            flat(loss::cosine_embedding_loss(x2(), y2(), &y, 0.2, loss::Reduction::Mean).unwrap())
        }
        other => panic!("no tensile op for fixture case `{other}`: add it to pytorch_parity.rs"),
    }
}

fn numbers(v: &Value) -> Vec<f64> {
    v.as_array().expect("array").iter().map(|x| x.as_f64().expect("number")).collect()
}

fn shaped(v: &Value) -> (Vec<usize>, Vec<f64>) {
    let shape = v["shape"].as_array().expect("shape").iter().map(|d| d.as_u64().expect("dim") as usize).collect();
    (shape, numbers(&v["data"]))
}

/// Runs one case in dtype `E` on a fresh CPU device.
fn run<E: Float>(case: &Value) -> Outcome {
    run_on::<E, Cpu>(case, Cpu::seeded(0))
}

/// Runs one case in dtype `E` on `dev`; returns the output and the gradient of each input.
fn run_on<E: Float, D: Device>(case: &Value, dev: D) -> Outcome {
    let c = Case::<E, D> {
        dev: dev.clone(),
        tape: OwnedTape::new(Gradients::leaky()),
        inputs: case["inputs"].as_array().expect("inputs").iter().map(shaped).collect(),
        indices: case["indices"].as_array().map_or(vec![], |v| v.iter().map(shaped).collect()),
        ids: RefCell::new(Vec::new()),
        _e: core::marker::PhantomData,
    };
    let y = forward::<E, D>(case["name"].as_str().expect("name"), &c);
    let (_, w) = shaped(&case["weights"]);
    let w = dev.from_vec(w.iter().map(|&v| E::cast_f64(v)).collect(), (w.len(),));
    let out: Vec<f64> = y.to_vec().iter().map(|v| v.as_f64()).collect();
    let g = (y * w).sum::<Rank0, _>().backward();
    let grads = c
        .ids
        .borrow()
        .iter()
        .map(|&id| {
            g.storage::<E>(id).map_or(vec![], |s| {
                let all = tensile::device::Layout::contiguous(Dims::from_slice(&[D::storage_len(s)]));
                dev.download(s, &all).iter().map(|v| v.as_f64()).collect()
            })
        })
        .collect();
    (out, grads)
}

fn close(what: &str, got: &[f64], want: &[f64], tol: f64) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!("{what}: {} values, PyTorch has {}", got.len(), want.len()));
    }
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let within = (g - w).abs() <= tol * w.abs().max(1.0);
        if !(within || (g.is_nan() && w.is_nan())) {
            return Err(format!("{what}[{i}]: tensile {g}, PyTorch {w} (tolerance {tol})"));
        }
    }
    Ok(())
}

/// A case's output and the gradient of each input.
type Outcome = (Vec<f64>, Vec<Vec<f64>>);

fn check_all(dtype: &str, tol: f64, run: impl Fn(&Value) -> Outcome) -> usize {
    let fixtures: Value = serde_json::from_str(include_str!("pytorch/fixtures.json")).expect("fixtures.json parses");
    let mut failures = Vec::new();
    let mut checked = 0;
    for case in fixtures["cases"].as_array().expect("cases") {
        let Some(want) = case["results"].get(dtype) else { continue };
        let name = case["name"].as_str().expect("name");
        let (out, grads) = run(case);
        let mut result = close(&format!("{name} {dtype} output"), &out, &numbers(&want["output"]), tol);
        for (i, (g, w)) in grads.iter().zip(want["grads"].as_array().expect("grads")).enumerate() {
            result = result.and_then(|_| close(&format!("{name} {dtype} grad of input {i}"), g, &numbers(w), tol));
        }
        if let Err(e) = result {
            failures.push(e);
        }
        checked += 1;
    }
    assert!(failures.is_empty(), "{} of {checked} cases differ from PyTorch:\n{}", failures.len(), failures.join("\n"));
    checked
}

#[test]
fn float64_matches_pytorch() {
    assert!(check_all("float64", 1e-6, run::<f64>) >= 115);
}

#[test]
fn float32_matches_pytorch() {
    assert!(check_all("float32", 1e-4, run::<f32>) >= 115);
}

#[test]
fn float16_matches_pytorch() {
    assert!(check_all("float16", 1e-2, run::<f16>) >= 49);
}

#[test]
fn bfloat16_matches_pytorch() {
    assert!(check_all("bfloat16", 4e-2, run::<bf16>) >= 49);
}

/// The same fixtures on a GPU: the whole suite, written once, run on every device there is.
#[cfg(feature = "cuda")]
mod cuda {
    use super::*;

    fn gpu() -> Option<Cuda> {
        match Cuda::try_new(0) {
            Ok(d) => Some(d),
            Err(e) => {
                eprintln!("SKIPPED: the Cuda parity tests ({e})");
                None
            }
        }
    }

    #[test]
    fn float64_on_cuda_matches_pytorch() {
        if let Some(d) = gpu() {
            assert!(check_all("float64", 1e-6, |c| run_on::<f64, Cuda>(c, d.clone())) >= 115);
        }
    }

    #[test]
    fn float32_on_cuda_matches_pytorch() {
        if let Some(d) = gpu() {
            assert!(check_all("float32", 1e-4, |c| run_on::<f32, Cuda>(c, d.clone())) >= 115);
        }
    }

    #[test]
    fn float16_on_cuda_matches_pytorch() {
        if let Some(d) = gpu() {
            assert!(check_all("float16", 1e-2, |c| run_on::<f16, Cuda>(c, d.clone())) >= 49);
        }
    }

    #[test]
    fn bfloat16_on_cuda_matches_pytorch() {
        if let Some(d) = gpu() {
            assert!(check_all("bfloat16", 4e-2, |c| run_on::<bf16, Cuda>(c, d.clone())) >= 49);
        }
    }

    /// Per fixture case, the largest difference between the Cpu and the Cuda results (f32),
    /// printed as a table; every case must agree to the f32 tolerance.
    #[test]
    fn cuda_against_cpu_per_op() {
        let Some(d) = gpu() else { return };
        let fixtures: Value =
            serde_json::from_str(include_str!("pytorch/fixtures.json")).expect("fixtures.json parses");
        let mut worse = Vec::new();
        println!("{:<36} {:>14}", "op (f32)", "max |cuda-cpu|");
        for case in fixtures["cases"].as_array().expect("cases") {
            if case["results"].get("float32").is_none() {
                continue;
            }
            let name = case["name"].as_str().expect("name");
            let (co, cg) = run::<f32>(case);
            let (go, gg) = run_on::<f32, Cuda>(case, d.clone());
            let diff = |a: &[f64], b: &[f64]| -> f64 {
                if a.len() != b.len() {
                    return f64::INFINITY;
                }
                a.iter()
                    .zip(b)
                    .map(|(x, y)| if x.is_nan() && y.is_nan() { 0.0 } else { (x - y).abs() / x.abs().max(1.0) })
                    .fold(0.0, f64::max)
            };
            let mut worst = diff(&co, &go);
            for (c, g) in cg.iter().zip(&gg) {
                worst = worst.max(diff(c, g));
            }
            println!("{name:<36} {worst:>14.3e}");
            if worst.is_nan() || worst > 1e-4 {
                worse.push(format!("{name}: {worst:e}"));
            }
        }
        assert!(worse.is_empty(), "Cuda differs from Cpu beyond 1e-4: {worse:?}");
    }
}
