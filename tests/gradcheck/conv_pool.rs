//! Convolution, pooling, padding and resizing, over random batch sizes, channel counts and
//! spatial sizes.

use super::*;
use proptest::prelude::*;
use tensile::prelude::*;
use tensile::testing::{gradcheck, gradcheck2, tensor_of};

type B3 = (usize, usize, usize);
type B4 = (usize, usize, usize, usize);

/// Output weights for a rank-4 output of run-time dims.
fn weights4(y: B4) -> impl Strategy<Value = Tensor<B4, f64, Cpu>> {
    tensor_of(y, -1.0..1.0)
}

/// The run-time output size of a window op along one axis.
fn out(n: usize, k: usize, s: usize, p: usize, d: usize) -> usize {
    (n + 2 * p - d * (k - 1) - 1) / s + 1
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8))]

    #[test]
    fn conv2d_plain((x, w, wy) in (1usize..3, 1usize..4, 1usize..4, 1usize..4, 2usize..6, 2usize..6).prop_flat_map(|(b, c, o, k, h, wd)| {
        let (h, wd) = (h + k - 1, wd + k - 1);
        (sized((b, c, h, wd)), sized((o, c, k, k)), weights4((b, o, h - k + 1, wd - k + 1)))
    })) {
        gradcheck2(|x: Taped<B4>, w: Taped<B4>| weighted(x.conv2d(w, ConvOpts::<1>).realize::<B4>(), &wy), &x, &w, cfg()).unwrap();
    }

    #[test]
    fn conv2d_strided_padded_dilated_grouped((x, w, wy) in (1usize..3, 1usize..3, 1usize..3, 1usize..3, 3usize..7, 3usize..7).prop_flat_map(|(b, cg, og, k, h, wd)| {
        // stride 2, padding 1, dilation 2, groups 2
        let (h, wd) = (h + 2 * k, wd + 2 * k);
        (sized((b, 2 * cg, h, wd)), sized((2 * og, cg, k, k)), weights4((b, 2 * og, out(h, k, 2, 1, 2), out(wd, k, 2, 1, 2))))
    })) {
        gradcheck2(|x: Taped<B4>, w: Taped<B4>| weighted(x.conv2d(w, ConvOpts::<2, 1, 2, 2>).realize::<B4>(), &wy), &x, &w, cfg()).unwrap();
    }

    #[test]
    fn conv2d_depthwise_pointwise((x, w, wy) in (1usize..3, 1usize..4, 2usize..5).prop_flat_map(|(b, c, h)| {
        // a depthwise 1x1 convolution with 2 outputs per channel: the no-unfold path, grouped
        (sized((b, c, h, h)), sized((2 * c, 1, 1, 1)), weights4((b, 2 * c, h, h)))
    })) {
        let groups = x.dims()[1];
        gradcheck2(|x: Taped<B4>, w: Taped<B4>| {
            // the group count is a const: pick the matching instantiation
            let y = match groups {
                1 => x.try_conv2d(w, ConvOpts::<1, 0, 1, 1>),
                2 => x.try_conv2d(w, ConvOpts::<1, 0, 1, 2>),
                _ => x.try_conv2d(w, ConvOpts::<1, 0, 1, 3>),
            };
            weighted(y.unwrap().realize::<B4>(), &wy)
        }, &x, &w, cfg()).unwrap();
    }

    #[test]
    fn conv1d((x, w, wy) in (1usize..3, 1usize..4, 1usize..4, 1usize..4, 3usize..9).prop_flat_map(|(b, c, o, k, n)| {
        // stride 2, padding 1
        let n = n + k;
        (sized((b, c, n)), sized((o, c, k)), tensor_of((b, o, out(n, k, 2, 1, 1)), -1.0..1.0))
    })) {
        gradcheck2(|x: Taped<B3>, w: Taped<B3>| weighted(x.conv1d(w, ConvOpts::<2, 1>).realize::<B3>(), &wy), &x, &w, cfg()).unwrap();
    }

    #[test]
    fn conv_transpose2d((x, w, wy) in (1usize..3, 1usize..4, 1usize..3, 1usize..4, 1usize..5).prop_flat_map(|(b, c, og, k, h)| {
        // stride 2, padding 1, output padding 1
        // kernel k + 1: output (h - 1) 2 - 2 + k + 1 + 1
        (sized((b, c, h, h + 1)), sized((c, og, k + 1, k + 1)), weights4((b, og, 2 * h + k - 2, 2 * h + k)))
    })) {
        gradcheck2(|x: Taped<B4>, w: Taped<B4>| {
            let y = x.try_conv_transpose2d(w, ConvTransposeOpts::<2, 1, 1, 1, 1>).unwrap();
            weighted(y.realize::<B4>(), &wy)
        }, &x, &w, cfg()).unwrap();
    }

    #[test]
    fn conv_transpose1d_grouped((x, w, wy) in (1usize..3, 1usize..3, 1usize..3, 1usize..4, 1usize..6).prop_flat_map(|(b, cg, og, k, n)| {
        // groups 2, stride 3, dilation 2
        (sized((b, 2 * cg, n)), sized((2 * cg, og, k)), tensor_of((b, 2 * og, (n - 1) * 3 + 2 * (k - 1) + 1), -1.0..1.0))
    })) {
        gradcheck2(|x: Taped<B3>, w: Taped<B3>| {
            let y = x.try_conv_transpose1d(w, ConvTransposeOpts::<3, 0, 2, 2>).unwrap();
            weighted(y.realize::<B3>(), &wy)
        }, &x, &w, cfg()).unwrap();
    }

    #[test]
    fn max_pool2d((x, wy) in (1usize..3, 1usize..3, 2usize..7, 2usize..7).prop_flat_map(|(b, c, h, w)| {
        (sized((b, c, h, w)), weights4((b, c, out(h, 3, 2, 1, 1), out(w, 3, 2, 1, 1))))
    })) {
        gradcheck(|x: Taped<B4>| weighted(x.max_pool2d(PoolOpts::<3, 2, 1>).realize::<B4>(), &wy), &x, cfg()).unwrap();
    }

    #[test]
    fn max_pool1d_dilated((x, wy) in (1usize..3, 1usize..3, 3usize..9).prop_flat_map(|(b, c, n)| {
        (sized((b, c, n)), tensor_of((b, c, out(n, 2, 1, 0, 2)), -1.0..1.0))
    })) {
        gradcheck(|x: Taped<B3>| weighted(x.max_pool1d(PoolOpts::<2, 1, 0, 2>).realize::<B3>(), &wy), &x, cfg()).unwrap();
    }

    #[test]
    fn avg_pool2d_both_divisors((x, wy) in (1usize..3, 1usize..3, 2usize..7, 2usize..7).prop_flat_map(|(b, c, h, w)| {
        (sized((b, c, h, w)), weights4((b, c, out(h, 3, 2, 1, 1), out(w, 3, 2, 1, 1))))
    })) {
        gradcheck(|x: Taped<B4>| {
            let a = x.clone().avg_pool2d(PoolOpts::<3, 2, 1>).realize::<B4>();
            let b = x.try_avg_pool2d(PoolOpts::<3, 2, 1>, false).unwrap().realize::<B4>();
            weighted(a + b.square(), &wy)
        }, &x, cfg()).unwrap();
    }

    #[test]
    fn avg_pool1d((x, wy) in (1usize..3, 1usize..3, 2usize..9).prop_flat_map(|(b, c, n)| {
        (sized((b, c, n)), tensor_of((b, c, out(n, 2, 2, 1, 1)), -1.0..1.0))
    })) {
        gradcheck(|x: Taped<B3>| weighted(x.avg_pool1d(PoolOpts::<2, 2, 1>).realize::<B3>(), &wy), &x, cfg()).unwrap();
    }

    #[test]
    fn adaptive_avg_pool2d((x, wy) in (1usize..3, 1usize..3, 1usize..8, 1usize..8).prop_flat_map(|(b, c, h, w)| {
        (sized((b, c, h, w)), weights4((b, c, 3, 2)))
    })) {
        gradcheck(|x: Taped<B4>| weighted(x.adaptive_avg_pool2d::<3, 2>().realize::<B4>(), &wy), &x, cfg()).unwrap();
    }

    #[test]
    fn global_pools((x, wy) in (1usize..3, 1usize..3, 1usize..5, 1usize..5).prop_flat_map(|(b, c, h, w)| {
        (sized((b, c, h, w)), tensor_of((b, c), -1.0..1.0))
    })) {
        gradcheck(|x: Taped<B4>| weighted(x.clone().global_avg_pool2d() + x.global_max_pool2d(), &wy), &x, cfg()).unwrap();
    }

    #[test]
    fn pad_all_modes((x, wy) in (1usize..3, 1usize..3, 3usize..6, 3usize..6).prop_flat_map(|(b, c, h, w)| {
        (sized((b, c, h, w)), weights4((b, c, h + 3, w + 2)))
    })) {
        gradcheck(|x: Taped<B4>| {
            let r = x.clone().pad2d(Pad::<1, 2>, Pad::<1, 1>, PadMode::Reflect).realize::<B4>();
            let p = x.clone().pad2d(Pad::<1, 2>, Pad::<1, 1>, PadMode::Replicate).realize::<B4>();
            let k = x.pad2d(Pad::<1, 2>, Pad::<1, 1>, PadMode::Constant(0.5)).realize::<B4>();
            weighted(r + p.square() + k.exp(), &wy)
        }, &x, cfg()).unwrap();
    }

    #[test]
    fn pad1d_reflect((x, wy) in (1usize..3, 1usize..3, 3usize..7).prop_flat_map(|(b, c, n)| {
        (sized((b, c, n)), tensor_of((b, c, n + 3), -1.0..1.0))
    })) {
        gradcheck(|x: Taped<B3>| weighted(x.pad1d(Pad::<2, 1>, PadMode::Reflect).realize::<B3>(), &wy), &x, cfg()).unwrap();
    }

    #[test]
    fn upsample((x, wy) in (1usize..3, 1usize..3, 1usize..5, 1usize..5).prop_flat_map(|(b, c, h, w)| {
        (sized((b, c, h, w)), weights4((b, c, 5, 3)))
    })) {
        gradcheck(|x: Taped<B4>| {
            let n = x.clone().upsample_nearest2d::<5, 3>().realize::<B4>();
            let a = x.clone().upsample_bilinear2d::<5, 3>(true).realize::<B4>();
            let f = x.upsample_bilinear2d::<5, 3>(false).realize::<B4>();
            weighted(n + a.square() + f.sin(), &wy)
        }, &x, cfg()).unwrap();
    }
}
