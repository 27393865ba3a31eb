//! With run-time dims, a mismatch is an `Err` from the `try_*` form, never a panic: one test per
//! op family.

use tensile::prelude::*;

type V = Tensor<(usize,), f32, Cpu>;
type M = Tensor<(usize, usize), f32, Cpu>;

fn dev() -> Cpu {
    Cpu::seeded(0)
}
fn v(n: usize) -> V {
    dev().zeros_like(&(n,))
}
fn m(r: usize, c: usize) -> M {
    dev().zeros_like(&(r, c))
}

#[test]
fn elementwise() {
    for op in ["add", "sub", "mul", "div", "maximum", "minimum", "pow"] {
        let (a, b) = (m(2, 3), m(3, 2));
        let r = match op {
            "add" => a.try_add(b),
            "sub" => a.try_sub(b),
            "mul" => a.try_mul(b),
            "div" => a.try_div(b),
            "maximum" => a.try_maximum(b),
            "minimum" => a.try_minimum(b),
            _ => a.try_pow(b),
        };
        let e = r.unwrap_err();
        assert_eq!(e, Error::ShapeMismatch { op, lhs: vec![2, 3], rhs: vec![3, 2] });
    }
    // a taped operand does not change that
    assert!(m(2, 3).leaky_trace().try_add(m(2, 4)).is_err());
}

#[test]
fn matmul() {
    let e = m(2, 3).try_matmul(m(4, 5)).unwrap_err();
    assert_eq!(e.to_string(), "matmul: shapes differ: [2, 3] vs [4, 5]");
    assert!(v(3).try_matmul(m(4, 5)).is_err());
    assert!(m(2, 3).try_matmul(v(4)).is_err());
    let b3 = |b: usize, r: usize, c: usize| -> Tensor<(usize, usize, usize), f32, Cpu> { dev().zeros_like(&(b, r, c)) };
    assert!(b3(2, 3, 4).try_matmul(b3(3, 4, 5)).is_err(), "batch sizes differ");
    assert!(b3(2, 3, 4).try_matmul(b3(2, 5, 5)).is_err(), "inner dims differ");
    assert!(b3(2, 3, 4).try_matmul(m(5, 5)).is_err());
    assert!(m(2, 3).try_matmul(m(3, 5)).is_ok());
}

#[test]
fn reductions_and_broadcast() {
    assert!(v(3).try_broadcast_like::<_, Axis<0>>(&(2usize, 4usize)).is_err());
    assert!(v(4).try_broadcast_like::<_, Axis<0>>(&(2usize, 4usize)).is_ok());
}

#[test]
fn reshape_and_realize() {
    assert!(matches!(m(2, 3).try_reshape_like(&(4usize, 2usize)), Err(Error::InvalidSize { op: "reshape", .. })));
    assert!(matches!(m(2, 3).try_realize::<Rank2<3, 2>>(), Err(Error::InvalidSize { op: "realize", .. })));
    assert!(m(2, 3).try_realize::<Rank2<2, 3>>().is_ok());
}

#[test]
fn narrow_select() {
    assert!(matches!(m(2, 3).try_narrow(Axis::<1>, 2, 2usize), Err(Error::InvalidSize { op: "narrow", .. })));
    assert!(m(2, 3).try_narrow(Axis::<1>, usize::MAX, 2usize).is_err(), "no overflow panic");
    assert!(matches!(
        m(2, 3).try_select(Axis::<0>, 2),
        Err(Error::IndexOutOfRange { op: "select", index: 2, size: 2 })
    ));
}

#[test]
fn concat_and_stack() {
    assert!(matches!(m(2, 3).try_concat_along(m(2, 4), Axis::<0>), Err(Error::ShapeMismatch { op: "concat", .. })));
    assert!(m(2, 3).try_concat_along(m(2, 4), Axis::<1>).is_ok());
    assert!(matches!(Tensor::try_stack_vec(vec![m(2, 3), m(3, 2)]), Err(Error::ShapeMismatch { op: "stack", .. })));
    assert!(Tensor::try_stack_vec(Vec::<M>::new()).is_err());
}

#[test]
fn compare_and_choose() {
    assert!(m(2, 3).try_lt(&m(3, 2)).is_err());
    let mask = m(2, 3).try_gt(&m(2, 3)).unwrap();
    assert!(matches!(mask.try_choose(m(3, 2), m(2, 3)), Err(Error::ShapeMismatch { op: "where", .. })));
}

#[test]
fn creation() {
    assert_eq!(
        dev().try_from_vec(vec![1.0f32; 5], (2usize, 3usize)).unwrap_err(),
        Error::DataLength { op: "from_vec", expected: 6, found: 5 }
    );
}

#[test]
fn missing_gradient() {
    let x = v(3);
    let y = v(3);
    let g = x.leaky_trace().sum::<Rank0, _>().backward();
    assert_eq!(g.try_get(&y).unwrap_err(), Error::NoGradient);
}

type R4 = Tensor<(usize, usize, usize, usize), f32, Cpu>;
type R3 = Tensor<(usize, usize, usize), f32, Cpu>;

fn t4(s: (usize, usize, usize, usize)) -> R4 {
    dev().zeros_like(&s)
}

fn t3(s: (usize, usize, usize)) -> R3 {
    dev().zeros_like(&s)
}

#[test]
fn convolution() {
    let err = t4((1, 3, 4, 4)).try_conv2d(t4((2, 3, 5, 5)), ConvOpts::<1>).unwrap_err();
    assert!(matches!(err, Error::InvalidSize { op: "conv2d", .. }), "{err}");
    assert!(err.to_string().contains("kernel of 5"), "{err}");
    assert!(t4((1, 3, 4, 4)).try_conv2d(t4((2, 3, 5, 5)), ConvOpts::<1, 1>).is_ok());
    // channels: the weight expects 2, the input has 3; groups that do not divide
    assert!(matches!(
        t4((1, 3, 4, 4)).try_conv2d(t4((2, 2, 3, 3)), ConvOpts::<1>),
        Err(Error::InvalidSize { op: "conv2d", .. })
    ));
    assert!(t4((1, 4, 4, 4)).try_conv2d(t4((3, 2, 3, 3)), ConvOpts::<1, 0, 1, 2>).is_err());
    assert!(matches!(
        t3((1, 4, 9)).try_conv1d(t3((6, 2, 3)), ConvOpts::<1, 0, 1, 4>),
        Err(Error::InvalidSize { op: "conv1d", .. })
    ));
    assert!(matches!(
        t4((1, 3, 4, 4)).try_conv_transpose2d(t4((4, 2, 3, 3)), ConvTransposeOpts::<1>),
        Err(Error::ShapeMismatch { op: "conv_transpose2d", .. })
    ));
    assert!(matches!(
        t3((1, 2, 4)).try_conv_transpose1d(t3((2, 1, 3)), ConvTransposeOpts::<1, 0, 1, 1, 1>),
        Err(Error::InvalidSize { op: "conv_transpose1d", .. })
    ));
}

#[test]
fn pooling() {
    assert!(matches!(
        t4((1, 1, 2, 2)).try_max_pool2d(PoolOpts::<3, 1>),
        Err(Error::InvalidSize { op: "max_pool2d", .. })
    ));
    assert!(matches!(
        t4((1, 1, 2, 2)).try_avg_pool2d(PoolOpts::<3, 1>, true),
        Err(Error::InvalidSize { op: "avg_pool2d", .. })
    ));
    assert!(t4((1, 1, 2, 2)).try_avg_pool2d(PoolOpts::<3, 1, 1>, true).is_ok());
    assert!(matches!(t3((1, 1, 2)).try_max_pool1d(PoolOpts::<3, 1>), Err(Error::InvalidSize { op: "max_pool1d", .. })));
    assert!(matches!(
        t3((1, 1, 2)).try_avg_pool1d(PoolOpts::<3, 1>, false),
        Err(Error::InvalidSize { op: "avg_pool1d", .. })
    ));
}

#[test]
fn indexing() {
    let idx = |v: Vec<i64>| dev().from_vec(v.clone(), (v.len(),));
    // gather: the index's other dims must match; indices must be inside the axis
    let i2: Tensor<(usize, usize), i64, Cpu> = dev().from_vec(vec![0, 1, 0], (3, 1));
    assert!(matches!(m(2, 3).try_gather(Axis::<1>, &i2), Err(Error::ShapeMismatch { op: "gather", .. })));
    let i2: Tensor<(usize, usize), i64, Cpu> = dev().from_vec(vec![0, 3], (2, 1));
    assert_eq!(
        m(2, 3).try_gather(Axis::<1>, &i2).unwrap_err(),
        Error::IndexOutOfRange { op: "gather", index: 3, size: 3 }
    );
    assert!(matches!(
        m(2, 3).try_index_select(Axis::<0>, &idx(vec![0, -1])),
        Err(Error::IndexOutOfRange { index: -1, .. })
    ));
    assert!(matches!(m(4, 2).try_embedding(&idx(vec![4])), Err(Error::IndexOutOfRange { size: 4, .. })));
    let src = m(2, 1);
    assert!(matches!(
        m(2, 3).try_scatter_add(Axis::<1>, &i2, src),
        Err(Error::IndexOutOfRange { op: "scatter_add", .. })
    ));
    assert!(matches!(idx(vec![0, 5]).try_one_hot::<_, f32>(5usize), Err(Error::IndexOutOfRange { op: "one_hot", .. })));
    assert!(matches!(m(2, 3).try_masked_fill(&m(3, 2).gt_scalar(0.0), 1.0), Err(Error::ShapeMismatch { .. })));
}

#[test]
fn slicing_and_sorting() {
    assert!(matches!(m(2, 3).try_slice(Axis::<1>, 0, 4, 1), Err(Error::InvalidSize { op: "slice", .. })));
    assert!(m(2, 3).try_slice(Axis::<1>, 0, 3, 0).is_err());
    assert!(matches!(m(2, 3).try_split(Axis::<1>, 0), Err(Error::InvalidSize { op: "split", .. })));
    assert!(matches!(m(2, 3).try_chunk(Axis::<1>, 0), Err(Error::InvalidSize { op: "chunk", .. })));
    assert!(matches!(m(2, 3).try_topk(Axis::<1>, 4usize, true), Err(Error::InvalidSize { op: "topk", .. })));
}

#[test]
fn padding() {
    assert!(matches!(
        t3((1, 1, 2)).try_pad1d(Pad::<2, 0>, PadMode::Reflect),
        Err(Error::InvalidSize { op: "pad1d", .. })
    ));
    assert!(t3((1, 1, 2)).try_pad1d(Pad::<2, 0>, PadMode::Replicate).is_ok());
    assert!(matches!(
        t4((1, 1, 3, 1)).try_pad2d(Pad::<1, 1>, Pad::<1, 1>, PadMode::Reflect),
        Err(Error::InvalidSize { op: "pad2d", .. })
    ));
}
