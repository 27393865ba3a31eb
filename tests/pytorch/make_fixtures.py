#!/usr/bin/env python3
"""Writes tests/pytorch/fixtures.json: PyTorch's forward values and gradients for every op that
tests/pytorch_parity.rs checks.

    python3 tests/pytorch/make_fixtures.py      # needs `pip install torch`

Inputs are rounded to bfloat16 so that every dtype starts from exactly the same numbers. Each case
is reduced to a scalar with fixed weights, loss = sum(w * y), so every output element's gradient
is checked. Output and gradients are recorded in each dtype the case lists, computed by PyTorch in
that dtype.
"""
import json
import pathlib

import torch
import torch.nn.functional as F

torch.manual_seed(0)
ALL = ["float64", "float32", "float16", "bfloat16"]
WIDE = ["float64", "float32"]


def rand(*shape, lo=-2.0, hi=2.0):
    x = torch.rand(tuple(shape), dtype=torch.float64) * (hi - lo) + lo
    return x.to(torch.bfloat16).to(torch.float64)


def pos(*shape):
    return rand(*shape, lo=0.3, hi=2.5)


CASES = []


def case(name, fn, inputs, dtypes=ALL, indices=()):
    """`fn` takes the float inputs, then the int64 `indices` (constants, no gradient)."""
    CASES.append((name, fn, inputs, dtypes, list(indices)))


def idx(*rows):
    return torch.tensor(rows, dtype=torch.int64)


# element-wise, one input
for name, fn, maker in [
    ("neg", torch.neg, rand), ("abs", torch.abs, rand), ("exp", torch.exp, rand),
    ("ln", torch.log, pos), ("sqrt", torch.sqrt, pos), ("square", torch.square, rand),
    ("powi", lambda x: x ** 3, rand), ("powf", lambda x: x ** 1.7, pos),
    ("recip", torch.reciprocal, pos), ("sin", torch.sin, rand), ("cos", torch.cos, rand),
    ("tanh", torch.tanh, rand), ("sigmoid", torch.sigmoid, rand), ("relu", torch.relu, rand),
    ("leaky_relu", lambda x: F.leaky_relu(x, 0.1), rand), ("gelu", F.gelu, rand),
    ("gelu_tanh", lambda x: F.gelu(x, approximate="tanh"), rand), ("silu", F.silu, rand),
    ("softplus", F.softplus, rand), ("erf", torch.erf, rand), ("clamp", lambda x: torch.clamp(x, -0.5, 0.7), rand),
    ("add_scalar", lambda x: x + 1.5, rand), ("sub_scalar", lambda x: x - 1.5, rand),
    ("mul_scalar", lambda x: x * 1.5, rand), ("div_scalar", lambda x: x / 1.5, rand),
    ("rsub_scalar", lambda x: 2.0 - x, rand),
]:
    case(name, fn, [maker(3, 4)])

# element-wise, two inputs
case("add", torch.add, [rand(3, 4), rand(3, 4)])
case("sub", torch.sub, [rand(3, 4), rand(3, 4)])
case("mul", torch.mul, [rand(3, 4), rand(3, 4)])
case("div", torch.div, [rand(3, 4), pos(3, 4)])
case("maximum", torch.maximum, [rand(3, 4), rand(3, 4)])
case("minimum", torch.minimum, [rand(3, 4), rand(3, 4)])
case("pow", torch.pow, [pos(3, 4), rand(3, 4)])
case("where", lambda a, b: torch.where(a > b, a, b), [rand(3, 4), rand(3, 4)])

# reductions
case("sum_axis1", lambda x: x.sum(1), [rand(3, 4)], WIDE)
case("sum_all", lambda x: x.sum(), [rand(3, 4)], WIDE)
case("sum_axes02", lambda x: x.sum((0, 2)), [rand(2, 3, 4)], WIDE)
case("mean_axis0", lambda x: x.mean(0), [rand(3, 4)], WIDE)
case("max_axis1", lambda x: x.amax(1), [rand(3, 4)], WIDE)
case("min_axis0", lambda x: x.amin(0), [rand(3, 4)], WIDE)
case("var_axis1", lambda x: x.var(1), [rand(3, 4)], WIDE)
case("std_axis1", lambda x: x.std(1), [rand(3, 4)], WIDE)
case("logsumexp_axis1", lambda x: x.logsumexp(1), [rand(3, 4)], WIDE)
case("softmax_axis1", lambda x: x.softmax(1), [rand(3, 4)], WIDE)
case("softmax_axis0", lambda x: x.softmax(0), [rand(3, 4)], WIDE)
case("log_softmax_axis1", lambda x: x.log_softmax(1), [rand(3, 4)], WIDE)

# matmul (f16/bf16 too: f32 accumulation)
case("matmul_mm", torch.matmul, [rand(3, 4), rand(4, 5)])
case("matmul_vm", torch.matmul, [rand(4), rand(4, 5)])
case("matmul_mv", torch.matmul, [rand(3, 4), rand(4)])
case("matmul_bmm", torch.matmul, [rand(2, 3, 4), rand(2, 4, 5)])
case("matmul_broadcast", torch.matmul, [rand(2, 3, 4), rand(4, 5)])
case("matmul_4d", torch.matmul, [rand(2, 2, 3, 4), rand(2, 2, 4, 5)])

# movement
case("reshape", lambda x: x.reshape(2, 6).sin(), [rand(3, 4)], WIDE)
case("permute", lambda x: x.permute(2, 0, 1).exp(), [rand(2, 3, 4)], WIDE)
case("transpose", lambda x: x.t() * 2.0, [rand(3, 4)], WIDE)
case("broadcast", lambda x: x.expand(3, 4).square(), [rand(4)], WIDE)
case("concat_axis0", lambda a, b: torch.cat([a, b.exp()], 0), [rand(2, 4), rand(3, 4)], WIDE)
case("concat_axis1", lambda a, b: torch.cat([a, b.exp()], 1), [rand(3, 2), rand(3, 4)], WIDE)
case("stack", lambda a, b: torch.stack([a.sin(), b.square()]), [rand(3, 4), rand(3, 4)], WIDE)
case("flatten", lambda x: x.permute(0, 2, 1).flatten(1).sin(), [rand(2, 3, 4)], WIDE)
case("narrow", lambda x: x.narrow(1, 1, 2).square(), [rand(3, 4)], WIDE)
case("select", lambda x: x.select(0, 1).exp(), [rand(3, 4)], WIDE)

# dtype conversion: the gradient crosses the round trip through float16
case("to_dtype", lambda x: x.to(torch.float16).to(x.dtype) * x, [rand(3, 4)], WIDE)


# convolution (f16/bf16 too: tensile computes them in f32 and rounds once)
case("conv2d", lambda x, w: F.conv2d(x, w), [rand(2, 3, 5, 6), rand(4, 3, 3, 3)])
case("conv2d_s2p1d2g2", lambda x, w: F.conv2d(x, w, stride=2, padding=1, dilation=2, groups=2),
     [rand(2, 4, 7, 6), rand(6, 2, 3, 2)])
case("conv2d_pointwise", lambda x, w: F.conv2d(x, w), [rand(2, 3, 4, 4), rand(5, 3, 1, 1)], WIDE)
case("conv1d_s2p1", lambda x, w: F.conv1d(x, w, stride=2, padding=1), [rand(2, 3, 9), rand(4, 3, 3)])
case("conv_transpose2d_s2p1op1", lambda x, w: F.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1),
     [rand(2, 3, 4, 5), rand(3, 2, 3, 3)])
case("conv_transpose1d_s3d2g2", lambda x, w: F.conv_transpose1d(x, w, stride=3, dilation=2, groups=2),
     [rand(2, 4, 5), rand(4, 1, 3)], WIDE)

# pooling
case("max_pool2d_k3s2p1", lambda x: F.max_pool2d(x, 3, 2, 1), [rand(2, 3, 7, 6)], WIDE)
case("max_pool1d_k2s1d2", lambda x: F.max_pool1d(x, 2, 1, 0, 2), [rand(2, 3, 8)], WIDE)
case("avg_pool2d_k3s2p1", lambda x: F.avg_pool2d(x, 3, 2, 1), [rand(2, 3, 7, 6)], WIDE)
case("avg_pool2d_k3s2p1_exclude_pad", lambda x: F.avg_pool2d(x, 3, 2, 1, count_include_pad=False),
     [rand(2, 3, 7, 6)], WIDE)
case("avg_pool1d_k2s2p1", lambda x: F.avg_pool1d(x, 2, 2, 1), [rand(2, 3, 7)], WIDE)
case("adaptive_avg_pool2d_3x2", lambda x: F.adaptive_avg_pool2d(x, (3, 2)), [rand(2, 3, 7, 5)], WIDE)
case("global_avg_pool2d", lambda x: x.mean((2, 3)), [rand(2, 3, 4, 5)], WIDE)
case("global_max_pool2d", lambda x: x.amax((2, 3)), [rand(2, 3, 4, 5)], WIDE)


# padding and resizing
case("pad2d_modes", lambda x: F.pad(x, (1, 1, 1, 2), mode="reflect") + F.pad(x, (1, 1, 1, 2), mode="replicate").square()
     + F.pad(x, (1, 1, 1, 2), value=0.5).exp(), [rand(2, 3, 4, 5)], WIDE)
case("pad1d_reflect", lambda x: F.pad(x, (2, 1), mode="reflect"), [rand(2, 3, 5)], WIDE)
case("upsample_nearest", lambda x: F.interpolate(x, size=(5, 7), mode="nearest"), [rand(2, 3, 3, 4)], WIDE)
case("upsample_bilinear_align", lambda x: F.interpolate(x, size=(5, 7), mode="bilinear", align_corners=True),
     [rand(2, 3, 3, 4)], WIDE)
case("upsample_bilinear", lambda x: F.interpolate(x, size=(5, 7), mode="bilinear", align_corners=False),
     [rand(2, 3, 3, 4)], WIDE)

# indexing (the index tensors are fixed; the inputs random)
case("gather_axis1", lambda x, i: torch.gather(x, 1, i), [rand(3, 4)], WIDE, [idx([3, 0], [1, 1], [2, 0])])
case("index_select_axis0", lambda x, i: x.index_select(0, i), [rand(3, 4)], WIDE, [idx(2, 0, 2, 1)])
case("embedding", lambda t, i: F.embedding(i, t), [rand(5, 3)], WIDE, [idx([4, 0, 4], [1, 2, 1])])
case("scatter_add_axis1", lambda x, s, i: x.scatter_add(1, i, s.square()), [rand(3, 4), rand(3, 2)], WIDE,
     [idx([3, 3], [0, 1], [2, 2])])
case("masked_fill", lambda x: x.masked_fill(x > 0.5, 2.0).exp(), [rand(3, 4)], WIDE)
case("flip_roll", lambda x: torch.roll(torch.flip(x, (1,)), 1, 0).sin(), [rand(3, 4)], WIDE)
case("split_at", lambda x: torch.cat([t.exp() if i == 0 else t.square() for i, t in enumerate(torch.split(x, [2, 3], 1))], 1),
     [rand(3, 5)], WIDE)
case("slice_step2", lambda x: x[:, 1:4:2].exp(), [rand(3, 5)], WIDE)
case("tril_triu", lambda x: x.tril(0).exp() + x.triu(1).square(), [rand(2, 3, 4)], WIDE)

# sorting and scans
case("topk2", lambda x: x.topk(2, 1).values, [rand(3, 5)], WIDE)
case("sort_ascending", lambda x: x.sort(1).values.square(), [rand(3, 5)], WIDE)
case("max_along1", lambda x: x.max(1).values, [rand(3, 5)], WIDE)
case("min_along0", lambda x: x.min(0).values, [rand(3, 5)], WIDE)
case("cumsum_axis1", lambda x: x.cumsum(1).sin(), [rand(3, 4)], WIDE)
case("cumprod_axis1", lambda x: x.cumprod(1), [rand(3, 4)], WIDE)


# normalisation (f16/bf16 too); weight and bias are the rows of the second input
case("layer_norm", lambda x, p: F.layer_norm(x, (5,), p[0], p[1], 1e-5), [rand(3, 5), rand(2, 5)])
case("rms_norm", lambda x, g: F.rms_norm(x, (5,), g, 1e-6), [rand(3, 5), rand(5)])
case("group_norm", lambda x, p: F.group_norm(x, 2, p[0], p[1], 1e-5), [rand(2, 4, 3, 2), rand(2, 4)])
case("batch_norm_train", lambda x, p: F.batch_norm(x, None, None, p[0], p[1], True, 0.1, 1e-5),
     [rand(3, 4, 2, 3), rand(2, 4)])
case("batch_norm_eval", lambda x, p: F.batch_norm(x, torch.arange(4.0, dtype=x.dtype) * 0.1,
                                                  1.0 + torch.arange(4.0, dtype=x.dtype), p[0], p[1], False, 0.1, 1e-5),
     [rand(3, 4, 5), rand(2, 4)], WIDE)

# losses
case("cross_entropy", lambda x, t: F.cross_entropy(x, t), [rand(4, 5)], WIDE, [idx(0, 4, 2, 2)])
case("nll_loss", lambda x, t: F.nll_loss(x.log_softmax(1).square(), t), [rand(4, 5)], WIDE, [idx(1, 3, 0, 4)])
case("cross_entropy_probs", lambda x, t: F.cross_entropy(x, t.softmax(1)), [rand(4, 5), rand(4, 5)], WIDE)

# regression and binary losses (nn::loss)
case("mse_loss", lambda a, b: F.mse_loss(a, b), [rand(3, 4), rand(3, 4)], WIDE)
case("l1_loss_sum", lambda a, b: F.l1_loss(a, b, reduction="sum"), [rand(3, 4), rand(3, 4)], WIDE)
case("smooth_l1_loss", lambda a, b: F.smooth_l1_loss(a, b, beta=0.7), [rand(3, 4), rand(3, 4)], WIDE)
case("huber_loss", lambda a, b: F.huber_loss(a, b, delta=1.3), [rand(3, 4), rand(3, 4)], WIDE)
case("binary_cross_entropy", lambda a, b: F.binary_cross_entropy(a.sigmoid(), b.sigmoid()), [rand(3, 4), rand(3, 4)], WIDE)
case("bce_with_logits", lambda a, b: F.binary_cross_entropy_with_logits(a, b.sigmoid()), [rand(3, 4), rand(3, 4)], WIDE)
case("kl_div", lambda a, b: F.kl_div(a.log_softmax(1), b.softmax(1)), [rand(3, 4), rand(3, 4)], WIDE)
case("mse_loss_none", lambda a, b: F.mse_loss(a, b, reduction="none"), [rand(3, 4), rand(3, 4)], WIDE)
# options of the class losses: ignore_index, label_smoothing, soft targets, sums
case("cross_entropy_smooth_ignore", lambda x, t: F.cross_entropy(x, t, ignore_index=3, label_smoothing=0.2),
     [rand(5, 4)], WIDE, [idx(0, 3, 2, 1, 3)])
case("cross_entropy_smooth_sum_none", lambda x, t: F.cross_entropy(x, t, label_smoothing=0.1, reduction="none"),
     [rand(4, 5)], WIDE, [idx(0, 4, 2, 2)])
case("nll_loss_ignore_sum", lambda x, t: F.nll_loss(x.log_softmax(1), t, ignore_index=1, reduction="sum"),
     [rand(4, 5)], WIDE, [idx(1, 3, 0, 1)])
case("cross_entropy_probs_smooth", lambda x, t: F.cross_entropy(x, t.softmax(1), label_smoothing=0.3),
     [rand(4, 5), rand(4, 5)], WIDE)
POS_WEIGHT = [0.5, 1.0, 2.0, 3.0]
case("bce_with_logits_pos_weight",
     lambda a, b: F.binary_cross_entropy_with_logits(a, b.sigmoid(), pos_weight=torch.tensor(POS_WEIGHT, dtype=a.dtype)),
     [rand(3, 4), rand(3, 4)], WIDE)
SIGNS = [[1, -1, 1, 1], [-1, -1, 1, -1], [1, 1, -1, 1]]
case("margin_ranking_loss", lambda a, b: F.margin_ranking_loss(a, b, torch.tensor(SIGNS, dtype=a.dtype), margin=0.3),
     [rand(3, 4), rand(3, 4)], WIDE)
PAIRS = [1, -1, -1, 1]
case("cosine_embedding_loss",
     lambda a, b: F.cosine_embedding_loss(a, b, torch.tensor(PAIRS, dtype=a.dtype), margin=0.2),
     [rand(4, 5), rand(4, 5)], WIDE)

# attention: (batch, heads, L, d); the mask keeps a fixed pattern
KEEP = torch.tensor([[True, False, True, True], [True, True, False, False], [False, True, True, True]])
case("attention_masked", lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=KEEP),
     [rand(2, 2, 3, 4), rand(2, 2, 4, 4), rand(2, 2, 4, 5)], WIDE)
case("attention_causal", lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
     [rand(2, 2, 3, 4), rand(2, 2, 3, 4), rand(2, 2, 3, 5)], WIDE)

# comparisons (bool results, no gradient of their own): each picks between a and 2b, so the value
# and the gradient's route both show the mask. Half of b's elements tie with a's. Drawn from their
# own generator, so that the inputs and weights of the cases above stay as they were.
GEN = torch.Generator().manual_seed(1)
CMP_A = (torch.rand((3, 4), generator=GEN, dtype=torch.float64) * 4 - 2).to(torch.bfloat16).to(torch.float64)
CMP_B = torch.where(torch.rand((3, 4), generator=GEN) < 0.5, CMP_A,
                    (torch.rand((3, 4), generator=GEN, dtype=torch.float64) * 4 - 2).to(torch.bfloat16).to(torch.float64))
case("compare", lambda a, b: torch.stack([torch.where(m, a, 2 * b) for m in
                                          (a == b, a != b, a < b, a <= b, a > b, a >= b)]), [CMP_A, CMP_B])


def run(fn, inputs, indices, dtype):
    dt = getattr(torch, dtype)
    xs = [x.detach().clone().to(dt).requires_grad_(True) for x in inputs]
    y = fn(*xs, *indices)
    w = WEIGHTS[y.shape]
    (y * w.to(dt)).sum().backward()
    return {
        "output": y.detach().to(torch.float64).flatten().tolist(),
        "grads": [x.grad.to(torch.float64).flatten().tolist() for x in xs],
    }


WEIGHTS = {}
out = []
for name, fn, inputs, dtypes, indices in CASES:
    with torch.no_grad():
        shape = fn(*inputs, *indices).shape
    if shape not in WEIGHTS:
        WEIGHTS[shape] = rand(*shape, lo=-1.0, hi=1.0)
    out.append({
        "name": name,
        "inputs": [{"shape": list(x.shape), "data": x.flatten().tolist()} for x in inputs],
        "indices": [{"shape": list(i.shape), "data": i.flatten().tolist()} for i in indices],
        "weights": {"shape": list(shape), "data": WEIGHTS[shape].flatten().tolist()},
        "results": {dt: run(fn, inputs, indices, dt) for dt in dtypes},
    })

path = pathlib.Path(__file__).with_name("fixtures.json")
lines = ",\n".join(json.dumps(c) for c in out)
path.write_text(f'{{"torch": "{torch.__version__}", "cases": [\n{lines}\n]}}\n')
print(f"wrote {len(out)} cases to {path}")
