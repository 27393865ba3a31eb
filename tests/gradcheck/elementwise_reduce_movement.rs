//! The core ops: element-wise, reductions, movement, matmul, softmax.

use super::*;
use proptest::prelude::*;
use tensile::prelude::*;
use tensile::testing::{gradcheck, gradcheck2, tensor_of};

macro_rules! unary_checks {
    ($($name:ident, $range:expr, |$x:ident| $body:expr;)*) => {
        proptest! {
            #![proptest_config(ProptestConfig::with_cases(10))]
            $(
                #[test]
                fn $name((x, w) in matrix($range)) {
                    gradcheck(|$x: Taped<M>| weighted($body, &w), &x, cfg()).unwrap();
                }
            )*
        }
    };
}

unary_checks! {
    neg, -2.0..2.0, |x| x.neg();
    abs, -2.0..2.0, |x| x.abs();
    exp, -2.0..2.0, |x| x.exp();
    ln, 0.2..3.0, |x| x.ln();
    sqrt, 0.2..3.0, |x| x.sqrt();
    square, -2.0..2.0, |x| x.square();
    powi, -2.0..2.0, |x| x.powi(3);
    powf, 0.2..3.0, |x| x.powf(1.7);
    recip, 0.3..3.0, |x| x.recip();
    sin, -3.0..3.0, |x| x.sin();
    cos, -3.0..3.0, |x| x.cos();
    tanh, -3.0..3.0, |x| x.tanh();
    sigmoid, -4.0..4.0, |x| x.sigmoid();
    relu, -2.0..2.0, |x| x.relu();
    leaky_relu, -2.0..2.0, |x| x.leaky_relu(0.1);
    gelu, -3.0..3.0, |x| x.gelu();
    gelu_tanh, -3.0..3.0, |x| x.gelu_tanh();
    silu, -3.0..3.0, |x| x.silu();
    softplus, -3.0..3.0, |x| x.softplus();
    clamp, -2.0..2.0, |x| x.clamp(-0.5, 0.7);
    add_scalar, -2.0..2.0, |x| x + 1.5;
    sub_scalar, -2.0..2.0, |x| x - 1.5;
    mul_scalar, -2.0..2.0, |x| x * 1.5;
    div_scalar, -2.0..2.0, |x| x / 1.5;
    rsub_scalar, -2.0..2.0, |x| x.rsub_scalar(2.0);
    mean_axis0, -2.0..2.0, |x| { let s = *x.shape(); x.mean::<(usize,), Axis<0>>().broadcast_like::<M, Axis<0>>(&s) };
    max_axis1, -2.0..2.0, |x| { let s = *x.shape(); x.max::<(usize,), Axis<1>>().broadcast_like::<M, Axis<1>>(&s) };
    min_axis0, -2.0..2.0, |x| { let s = *x.shape(); x.min::<(usize,), Axis<0>>().broadcast_like::<M, Axis<0>>(&s) };
    logsumexp_axis1, -2.0..2.0, |x| { let s = *x.shape(); x.logsumexp::<(usize,), Axis<1>>().broadcast_like::<M, Axis<1>>(&s) };
    softmax_axis1, -2.0..2.0, |x| x.softmax::<Axis<1>>();
    softmax_axis0, -2.0..2.0, |x| x.softmax::<Axis<0>>();
    log_softmax_axis1, -2.0..2.0, |x| x.log_softmax::<Axis<1>>();
    permute_t, -2.0..2.0, |x| { let y = x.t(); y.clone() * y.t().t() }.t();
    dropout, -2.0..2.0, |x| { x.device().manual_seed(7); x.dropout(0.3) };
    to_dtype_roundtrip, -2.0..2.0, |x| x.to_dtype::<f64>().square();
}

macro_rules! binary_checks {
    ($($name:ident, $ra:expr, $rb:expr, |$a:ident, $b:ident| $body:expr;)*) => {
        proptest! {
            #![proptest_config(ProptestConfig::with_cases(10))]
            $(
                #[test]
                fn $name((a, b, w) in (1usize..5, 1usize..5).prop_flat_map(|s| (tensor_of(s, $ra), tensor_of(s, $rb), tensor_of(s, -1.0..1.0)))) {
                    gradcheck2(|$a: Taped<M>, $b: Taped<M>| weighted($body, &w), &a, &b, cfg()).unwrap();
                }
            )*
        }
    };
}

binary_checks! {
    add, -2.0..2.0, -2.0..2.0, |a, b| a + b;
    sub, -2.0..2.0, -2.0..2.0, |a, b| a - b;
    mul, -2.0..2.0, -2.0..2.0, |a, b| a * b;
    div, -2.0..2.0, 0.5..2.0, |a, b| a / b;
    maximum, -2.0..2.0, -2.0..2.0, |a, b| a.maximum(b);
    minimum, -2.0..2.0, -2.0..2.0, |a, b| a.minimum(b);
    pow, 0.3..2.0, -2.0..2.0, |a, b| a.pow(b);
    choose, -2.0..2.0, -2.0..2.0, |a, b| { let m = a.detach().gt(&b.detach()); m.choose(a * 2.0, b.square()) };
    used_twice, -2.0..2.0, -2.0..2.0, |a, b| a.clone() * a + b.clone() * b.exp();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10))]

    #[test]
    fn sum_axes_of_rank3((x, w) in (1usize..4, 1usize..4, 1usize..4).prop_flat_map(|s| (sized(s), tensor_of((s.1,), -1.0..1.0)))) {
        gradcheck(|x: Taped<(usize, usize, usize)>| weighted(x.sum::<(usize,), Axes2<0, 2>>(), &w), &x, cfg()).unwrap();
    }

    #[test]
    fn var_and_std((x, w) in (2usize..5, 2usize..5).prop_flat_map(|s| (sized(s), tensor_of((s.0,), -1.0..1.0)))) {
        gradcheck(|x: Taped<M>| weighted(x.clone().var::<(usize,), Axis<1>>() + x.std::<(usize,), Axis<1>>(), &w), &x, cfg()).unwrap();
    }

    #[test]
    fn permute_rank3((x, w) in (1usize..4, 1usize..4, 1usize..4).prop_flat_map(|s| (sized(s), tensor_of((s.2, s.0, s.1), -1.0..1.0)))) {
        gradcheck(|x: Taped<(usize, usize, usize)>| weighted(x.permute::<_, Axes3<2, 0, 1>>().exp(), &w), &x, cfg()).unwrap();
    }

    #[test]
    fn reshape((x, w) in (1usize..4, 1usize..4).prop_flat_map(|s| (sized(s), tensor_of((s.0 * s.1,), -1.0..1.0)))) {
        gradcheck(|x: Taped<M>| { let n = x.numel(); weighted(x.t().try_reshape_like(&(n,)).unwrap().sin(), &w) }, &x, cfg()).unwrap();
    }

    #[test]
    fn broadcast((x, w) in (1usize..4, 1usize..4).prop_flat_map(|s| (sized((s.1,)), tensor_of(s, -1.0..1.0)))) {
        let s = *w.shape();
        gradcheck(|x: Taped<(usize,)>| weighted(x.broadcast_like::<M, Axis<0>>(&s).square(), &w), &x, cfg()).unwrap();
    }

    #[test]
    fn narrow_and_select((x, w) in (2usize..5, 3usize..6).prop_flat_map(|s| (sized(s), tensor_of((s.0, 2), -1.0..1.0)))) {
        gradcheck(|x: Taped<M>| {
            let row = x.clone().select(Axis::<0>, 1).sum::<Rank0, _>();
            weighted(x.narrow(Axis::<1>, 1, 2usize).square(), &w) + row
        }, &x, cfg()).unwrap();
    }

    #[test]
    fn concat((a, b, w) in (1usize..4, 1usize..4, 1usize..4).prop_flat_map(|(m, n, k)| (sized((m, k)), sized((n, k)), tensor_of((m + n, k), -1.0..1.0)))) {
        gradcheck2(|a: Taped<M>, b: Taped<M>| {
            let c = a.concat_along(b.exp(), Axis::<0>);
            let c: Taped<M> = c.realize();
            weighted(c, &w)
        }, &a, &b, cfg()).unwrap();
    }

    #[test]
    fn stack((a, b, w) in (1usize..4, 1usize..4).prop_flat_map(|s| (sized(s), sized(s), tensor_of((2, s.0, s.1), -1.0..1.0)))) {
        gradcheck2(|a: Taped<M>, b: Taped<M>| {
            let s = Tensor::stack([a.sin(), b.square()]).realize::<(usize, usize, usize)>();
            weighted(s, &w)
        }, &a, &b, cfg()).unwrap();
    }

    #[test]
    fn matmul_matrix((a, b, w) in (1usize..5, 1usize..5, 1usize..5).prop_flat_map(|(m, k, n)| (sized((m, k)), sized((k, n)), tensor_of((m, n), -1.0..1.0)))) {
        gradcheck2(|a: Taped<M>, b: Taped<M>| weighted(a.matmul(b), &w), &a, &b, cfg()).unwrap();
    }

    #[test]
    fn matmul_vector_matrix((a, b, w) in (1usize..5, 1usize..5).prop_flat_map(|(k, n)| (sized((k,)), sized((k, n)), tensor_of((n,), -1.0..1.0)))) {
        gradcheck2(|a: Taped<(usize,)>, b: Taped<M>| weighted(a.matmul(b), &w), &a, &b, cfg()).unwrap();
    }

    #[test]
    fn matmul_matrix_vector((a, b, w) in (1usize..5, 1usize..5).prop_flat_map(|(m, k)| (sized((m, k)), sized((k,)), tensor_of((m,), -1.0..1.0)))) {
        gradcheck2(|a: Taped<M>, b: Taped<(usize,)>| weighted(a.matmul(b), &w), &a, &b, cfg()).unwrap();
    }

    #[test]
    fn matmul_batched((a, b, w) in (1usize..4, 1usize..4, 1usize..4, 1usize..4).prop_flat_map(|(bt, m, k, n)| (sized((bt, m, k)), sized((bt, k, n)), tensor_of((bt, m, n), -1.0..1.0)))) {
        type B3 = (usize, usize, usize);
        gradcheck2(|a: Taped<B3>, b: Taped<B3>| weighted(a.matmul(b), &w), &a, &b, cfg()).unwrap();
    }

    #[test]
    fn matmul_broadcast_batch((a, b, w) in (1usize..4, 1usize..4, 1usize..4, 1usize..4).prop_flat_map(|(bt, m, k, n)| (sized((bt, m, k)), sized((k, n)), tensor_of((bt, m, n), -1.0..1.0)))) {
        gradcheck2(|a: Taped<(usize, usize, usize)>, b: Taped<M>| weighted(a.matmul(b), &w), &a, &b, cfg()).unwrap();
    }

    #[test]
    fn matmul_rank4((a, b, w) in (1usize..3, 1usize..3, 1usize..4, 1usize..4, 1usize..4).prop_flat_map(|(b0, h, m, k, n)| (sized((b0, h, m, k)), sized((b0, h, k, n)), tensor_of((b0, h, m, n), -1.0..1.0)))) {
        type B4 = (usize, usize, usize, usize);
        gradcheck2(|a: Taped<B4>, b: Taped<B4>| weighted(a.matmul(b), &w), &a, &b, cfg()).unwrap();
    }

    #[test]
    fn matmul_transposed_operand((a, b, w) in (1usize..5, 1usize..5, 1usize..5).prop_flat_map(|(m, k, n)| (sized((k, m)), sized((n, k)), tensor_of((m, n), -1.0..1.0)))) {
        gradcheck2(|a: Taped<M>, b: Taped<M>| weighted(a.t().matmul(b.t()), &w), &a, &b, cfg()).unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10))]

    #[test]
    fn flatten((x, w) in (1usize..3, 1usize..3, 1usize..3, 1usize..3).prop_flat_map(|s| (sized(s), tensor_of((s.0, s.1 * s.2 * s.3), -1.0..1.0)))) {
        gradcheck(|x: Taped<(usize, usize, usize, usize)>| {
            let f: Taped<M> = x.permute::<_, Axes4<0, 2, 1, 3>>().flatten().realize();
            weighted(f.sin(), &w)
        }, &x, cfg()).unwrap();
    }
}
