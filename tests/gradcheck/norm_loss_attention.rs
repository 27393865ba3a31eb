//! Normalisation, losses and attention, over random sizes.

use super::*;
use proptest::prelude::*;
use tensile::prelude::*;
use tensile::testing::{GradcheckConfig, gradcheck, gradcheck2, tensor_of};

type B3 = (usize, usize, usize);
type B4 = (usize, usize, usize, usize);
type V = (usize,);

fn labels(n: usize, classes: usize) -> impl Strategy<Value = Tensor<V, i64, Cpu>> {
    proptest::collection::vec(0..classes as i64, n).prop_map(move |v| Cpu::seeded(0).from_vec(v, (n,)))
}

/// Normalisation divides by a deviation: keep inputs spread out and the step small.
fn norm_cfg() -> GradcheckConfig {
    GradcheckConfig { eps: 1e-5, ..cfg() }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8))]

    #[test]
    fn layer_norm_all_inputs((x, p, w) in (1usize..4, 2usize..6).prop_flat_map(|(r, n)| (sized((r, n)), sized((2, n)), tensor_of((r, n), -1.0..1.0)))) {
        // weight and bias are the two rows of `p`
        gradcheck2(|x: Taped<M>, p: Taped<M>| {
            let wt = p.clone().select(Axis::<0>, 0);
            let b = p.select(Axis::<0>, 1);
            weighted(x.layer_norm(wt, b, 1e-5), &w)
        }, &x, &p, norm_cfg()).unwrap();
    }

    #[test]
    fn rms_norm_and_normalize((x, g, w) in (1usize..4, 1usize..6).prop_flat_map(|(r, n)| (sized((r, n)), sized((n,)), tensor_of((r, n), -1.0..1.0)))) {
        gradcheck2(|x: Taped<M>, g: Taped<V>| weighted(x.clone().rms_norm(g, 1e-6) + x.normalize(1e-5).square(), &w), &x, &g, norm_cfg()).unwrap();
    }

    #[test]
    fn batch_norm_train((x, p, w) in (2usize..4, 1usize..4, 1usize..3, 1usize..3).prop_flat_map(|(n, c, h, wd)| (sized((n, c, h, wd)), sized((2, c)), tensor_of((n, c, h, wd), -1.0..1.0)))) {
        gradcheck2(|x: Taped<B4>, p: Taped<M>| {
            let (wt, b) = (p.clone().select(Axis::<0>, 0), p.select(Axis::<0>, 1));
            weighted(x.batch_norm_train(wt, b, 1e-5).0, &w)
        }, &x, &p, norm_cfg()).unwrap();
    }

    #[test]
    fn batch_norm_eval((x, p, w) in (1usize..4, 1usize..4, 2usize..5).prop_flat_map(|(n, c, l)| (sized((n, c, l)), sized((2, c)), tensor_of((n, c, l), -1.0..1.0)))) {
        let c = x.dims()[1];
        let mean = x.device().from_vec((0..c).map(|i| i as f64 * 0.1).collect(), (c,));
        let var = x.device().from_vec((0..c).map(|i| 1.0 + i as f64).collect(), (c,));
        gradcheck2(|x: Taped<B3>, p: Taped<M>| {
            let (wt, b) = (p.clone().select(Axis::<0>, 0), p.select(Axis::<0>, 1));
            weighted(x.batch_norm_eval(&mean, &var, wt, b, 1e-5), &w)
        }, &x, &p, cfg()).unwrap();
    }

    #[test]
    fn group_norm((x, p, w) in (1usize..3, 1usize..3, 1usize..3, 1usize..4).prop_flat_map(|(n, cg, h, wd)| (sized((n, 2 * cg, h, wd + 1)), sized((2, 2 * cg)), tensor_of((n, 2 * cg, h, wd + 1), -1.0..1.0)))) {
        gradcheck2(|x: Taped<B4>, p: Taped<M>| {
            let (wt, b) = (p.clone().select(Axis::<0>, 0), p.select(Axis::<0>, 1));
            weighted(x.try_group_norm::<2, _, _>(wt, b, 1e-5).unwrap(), &w)
        }, &x, &p, norm_cfg()).unwrap();
    }

    #[test]
    fn cross_entropy_and_nll((x, y) in (1usize..5, 2usize..6).prop_flat_map(|(n, c)| (sized((n, c)), labels(n, c)))) {
        gradcheck(|x: Taped<M>| x.clone().try_cross_entropy(&y).unwrap() + x.log_softmax::<Axis<1>>().square().nll_loss(&y), &x, cfg()).unwrap();
    }

    #[test]
    fn cross_entropy_soft_targets((x, t) in (1usize..5, 2usize..6).prop_flat_map(|s| (sized(s), tensor_of(s, 0.0..1.0)))) {
        gradcheck2(|x: Taped<M>, t: Taped<M>| x.cross_entropy_probs(t.softmax::<Axis<1>>()), &x, &t, cfg()).unwrap();
    }

    #[test]
    fn attention((q, kv, w) in (1usize..3, 1usize..3, 1usize..4, 1usize..4, 1usize..4).prop_flat_map(|(b, h, l, s, d)| (sized((b, h, l, d)), sized((2, b * h * s * d)), tensor_of((b, h, l, d), -1.0..1.0)))) {
        let (b, h, l, d) = *q.shape();
        let s = kv.dims()[1] / (b * h * d);
        let keep = q.device().from_vec((0..l * s).map(|i| (i * 7) % 3 != 0 || i % s == 0).collect(), (l, s));
        gradcheck2(|q: Taped<B4>, kv: Taped<M>| {
            let k = kv.clone().select(Axis::<0>, 0).try_reshape_like(&(b, h, s, d)).unwrap();
            let v = kv.select(Axis::<0>, 1).try_reshape_like(&(b, h, s, d)).unwrap();
            let plain = q.clone().scaled_dot_product_attention(k.clone(), v.clone(), AttnMask::None);
            let masked = q.scaled_dot_product_attention(k, v, AttnMask::Keep(&keep));
            weighted(plain + masked.square(), &w)
        }, &q, &kv, cfg()).unwrap();
    }

    #[test]
    fn causal_attention((q, w) in (1usize..3, 2usize..5, 1usize..4).prop_flat_map(|(b, l, d)| (sized((b, 1, l, d)), tensor_of((b, 1, l, d), -1.0..1.0)))) {
        gradcheck(|q: Taped<B4>| weighted(q.clone().scaled_dot_product_attention(q.clone().exp(), q, AttnMask::Causal), &w), &q, cfg()).unwrap();
    }

    #[test]
    fn erf((x, w) in matrix(-2.0..2.0)) {
        gradcheck(|x: Taped<M>| weighted(x.erf(), &w), &x, cfg()).unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8))]

    #[test]
    fn regression_and_binary_losses((a, b) in (1usize..4, 1usize..5).prop_flat_map(|s| (sized(s), sized(s)))) {
        use tensile::nn::loss::*;
        gradcheck2(|a: Taped<M>, b: Taped<M>| {
            let r = Reduction::Mean;
            mse_loss(a.clone(), b.clone(), r)
                + l1_loss(a.clone(), b.clone(), Reduction::Sum)
                + smooth_l1_loss(a.clone(), b.clone(), 0.7, r)
                + huber_loss(a.clone(), b.clone(), 1.3, r)
                + binary_cross_entropy(a.clone().sigmoid(), b.clone().sigmoid(), r)
                + binary_cross_entropy_with_logits(a.clone(), b.clone().sigmoid(), r)
                + kl_div(a.log_softmax::<Axis<1>>(), b.softmax::<Axis<1>>(), r)
        }, &a, &b, cfg()).unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8))]

    /// The class losses' options: an ignored class, label smoothing, soft targets.
    #[test]
    fn class_loss_options((x, p, y) in (1usize..5, 2usize..6).prop_flat_map(|(n, c)| (sized((n, c)), sized((n, c)), labels(n, c)))) {
        use tensile::nn::loss::*;
        let opts = ClassTargets { ignore_index: Some(1), label_smoothing: 0.15 };
        gradcheck2(|x: Taped<M>, p: Taped<M>| {
            // every sample may be ignored: the mean is then NaN, as PyTorch's, so sum here
            cross_entropy(x.clone(), &y, opts, Reduction::Sum).unwrap()
                + nll_loss(x.clone().log_softmax::<Axis<1>>(), &y, opts, Reduction::Sum).unwrap()
                + cross_entropy_probs(x, p.softmax::<Axis<1>>(), 0.2, Reduction::Mean)
        }, &x, &p, cfg()).unwrap();
    }

    /// Binary cross-entropy with a positive weight, margin ranking and cosine embedding.
    #[test]
    fn weighted_and_pairwise_losses((a, b, w) in (1usize..4, 2usize..5).prop_flat_map(|s| (sized(s), sized(s), tensor_of(s, 0.5..3.0)))) {
        use tensile::nn::loss::*;
        let signs = w.clone().gt_scalar(1.5).cast::<f64>().mul_scalar(2.0).sub_scalar(1.0);
        let rows = signs.clone().select(Axis::<1>, 0);
        gradcheck2(|a: Taped<M>, b: Taped<M>| {
            binary_cross_entropy_with_logits_weighted(a.clone(), b.clone().sigmoid(), &w, Reduction::Mean)
                + margin_ranking_loss(a.clone(), b.clone(), &signs, 0.3, Reduction::Sum)
                + cosine_embedding_loss(a, b, &rows, 0.2, Reduction::Mean).unwrap()
        }, &a, &b, cfg()).unwrap();
    }
}
