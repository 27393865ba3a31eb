//! Indexing, sorting and scans, with random indices and sizes.

use super::*;
use proptest::prelude::*;
use tensile::prelude::*;
use tensile::testing::{gradcheck, gradcheck2, tensor_of};

type B3 = (usize, usize, usize);

fn indices<S: Shape>(shape: S, bound: usize) -> impl Strategy<Value = Tensor<S, i64, Cpu>> {
    proptest::collection::vec(0..bound as i64, shape.numel()).prop_map(move |v| Cpu::seeded(0).from_vec(v, shape))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8))]

    #[test]
    fn gather((x, idx, w) in (1usize..4, 1usize..5, 1usize..5).prop_flat_map(|(r, n, m)| (sized((r, n)), indices((r, m), n), tensor_of((r, m), -1.0..1.0)))) {
        gradcheck(|x: Taped<M>| weighted(x.gather(Axis::<1>, &idx), &w), &x, cfg()).unwrap();
    }

    #[test]
    fn index_select_axis0((x, idx, w) in (1usize..5, 1usize..4, 1usize..6).prop_flat_map(|(n, c, m)| (sized((n, c)), indices((m,), n), tensor_of((m, c), -1.0..1.0)))) {
        gradcheck(|x: Taped<M>| weighted(x.index_select(Axis::<0>, &idx).realize::<M>(), &w), &x, cfg()).unwrap();
    }

    #[test]
    fn embedding((table, idx, w) in (1usize..6, 1usize..4, 1usize..4, 1usize..4).prop_flat_map(|(v, d, b, l)| (sized((v, d)), indices((b, l), v), tensor_of((b, l, d), -1.0..1.0)))) {
        gradcheck(|t: Taped<M>| weighted(t.embedding(&idx), &w), &table, cfg()).unwrap();
    }

    #[test]
    fn scatter_add((x, src, idx, w) in (1usize..4, 1usize..5, 1usize..5).prop_flat_map(|(r, n, m)| (sized((r, n)), sized((r, m)), indices((r, m), n), tensor_of((r, n), -1.0..1.0)))) {
        gradcheck2(|x: Taped<M>, s: Taped<M>| weighted(x.scatter_add(Axis::<1>, &idx, s.square()), &w), &x, &src, cfg()).unwrap();
    }

    #[test]
    fn masked_fill_flip_roll((x, w) in (1usize..4, 1usize..5).prop_flat_map(|s| (sized(s), tensor_of(s, -1.0..1.0)))) {
        let mask = x.gt_scalar(0.5);
        gradcheck(|x: Taped<M>| weighted(x.masked_fill(&mask, 2.0).flip(Axis::<1>).roll(Axis::<0>, 1).sin(), &w), &x, cfg()).unwrap();
    }

    #[test]
    fn slice_split_chunk((x, w) in (1usize..3, 2usize..7).prop_flat_map(|s| (sized(s), tensor_of((s.0, s.1.div_ceil(2)), -1.0..1.0)))) {
        gradcheck(|x: Taped<M>| {
            let n = x.dims()[1];
            let odd = x.clone().try_slice(Axis::<1>, 0, n, 2).unwrap();
            let parts = x.clone().try_split(Axis::<1>, 2).unwrap();
            let chunks = x.clone().try_chunk(Axis::<0>, 2).unwrap();
            let (head, tail) = x.split_at(Axis::<1>, 1usize);
            let halves = [head.sin().try_realize::<M>().unwrap(), tail.cos().try_realize::<M>().unwrap()];
            let extra = parts.into_iter().chain(chunks).chain(halves).map(|p| p.square().sum::<Rank0, _>()).reduce(|a, b| a + b).unwrap();
            weighted(odd.exp(), &w) + extra
        }, &x, cfg()).unwrap();
    }

    #[test]
    fn tril_triu((x, w) in (1usize..3, 1usize..4, 1usize..4).prop_flat_map(|s| (sized(s), tensor_of(s, -1.0..1.0)))) {
        gradcheck(|x: Taped<B3>| weighted(x.clone().tril(0).exp() + x.triu(1).square(), &w), &x, cfg()).unwrap();
    }

    #[test]
    fn topk_and_sort((x, w, ws) in (1usize..4, 2usize..6).prop_flat_map(|(r, n)| (sized((r, n)), tensor_of((r, 2), -1.0..1.0), tensor_of((r, n), -1.0..1.0)))) {
        gradcheck(|x: Taped<M>| {
            let (top, _) = x.clone().try_topk(Axis::<1>, 2usize, true).unwrap();
            let (sorted, _) = x.sort(Axis::<1>, false);
            weighted(top, &w) + weighted(sorted.square(), &ws)
        }, &x, cfg()).unwrap();
    }

    #[test]
    fn max_and_min_along((x, w) in (1usize..4, 1usize..5).prop_flat_map(|(r, n)| (sized((r, n)), tensor_of((r,), -1.0..1.0)))) {
        gradcheck(|x: Taped<M>| weighted(x.clone().max_along(Axis::<1>).0 + x.min_along(Axis::<1>).0.square(), &w), &x, cfg()).unwrap();
    }

    #[test]
    fn cumsum_and_cumprod((x, w) in (1usize..3, 1usize..4, 1usize..4).prop_flat_map(|s| (tensor_of(s, 0.3..1.5), tensor_of(s, -1.0..1.0)))) {
        gradcheck(|x: Taped<B3>| weighted(x.clone().cumsum(Axis::<1>).sin() + x.cumprod(Axis::<2>), &w), &x, cfg()).unwrap();
    }

    #[test]
    fn cumprod_through_a_zero((x, w) in (2usize..6).prop_flat_map(|n| (tensor_of((2, n), -1.5..1.5), tensor_of((2, n), -1.0..1.0)))) {
        // put an exact zero in the first row so the zero-aware backward runs
        let mut v = x.to_vec();
        let at = 1 % v.len();
        v[at] = 0.0;
        let x = x.device().from_vec(v, *x.shape());
        gradcheck(|x: Taped<M>| weighted(x.cumprod(Axis::<1>), &w), &x, cfg()).unwrap();
    }
}
