//! Matrix products: vector-matrix, matrix-vector, matrix-matrix, batched (3-D and 4-D) and
//! batched-times-matrix (a broadcast batch). The inner dims share one type parameter, so a
//! static mismatch is a type error that prints both sizes.

use crate::autograd::{Merge, Tape};
use crate::compat::prelude::*;
use crate::device::{Device, Layout};
use crate::dtypes::Float;
use crate::error::{Error, Result};
use crate::shapes::{Dim, Dims, Shape};
use crate::tensor::Tensor;

/// A matrix product of `Self` and `Rhs`.
///
/// ```
/// use tensile::prelude::*;
/// let dev = Cpu::seeded(0);
/// let a = dev.tensor([[1.0f32, 2.0], [3.0, 4.0]]);
/// let b = dev.tensor([[5.0f32], [6.0]]);
/// assert_eq!(a.matmul(b).to_array(), [[17.0], [39.0]]);
/// ```
#[diagnostic::on_unimplemented(
    message = "matmul: cannot multiply `{Self}` by `{Rhs}`",
    label = "the inner dims differ (or the ranks do not pair up)",
    note = "matmul pairs (M, K) x (K, N), (K,) x (K, N), (M, K) x (K,), (B, M, K) x (K, N), (B, M, K) x (B, K, N) and (B, H, M, K) x (B, H, K, N): each K must be the same dim",
    note = "both operands must also have the same dtype and the same device (move one with `to_dtype` or `to_device`)"
)]
pub trait MatMul<Rhs> {
    /// The product's type.
    type Output;
    /// The product; an `Err` when run-time inner dims (or batch dims) differ.
    fn try_matmul(self, rhs: Rhs) -> Result<Self::Output>;
    /// The product, panicking when run-time dims differ.
    fn matmul(self, rhs: Rhs) -> Self::Output
    where
        Self: Sized,
    {
        self.try_matmul(rhs).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Views a layout as `[batch, rows, cols]` by picking which of its axes play each part
/// (`None`: a size-1 axis that is not there).
fn as3(l: &Layout, batch: Option<usize>, rows: Option<usize>, cols: Option<usize>) -> Layout {
    let part = |ax: Option<usize>| ax.map_or((1, 0), |a| (l.dims[a], l.strides[a]));
    let (b, r, c) = (part(batch), part(rows), part(cols));
    Layout { dims: Dims::from_slice(&[b.0, r.0, c.0]), strides: Dims::from_slice(&[b.1, r.1, c.1]), offset: l.offset }
}

/// A rank-3 operand's batch broadcast to `batch` (stride 0) when it has one matrix.
fn broadcast_batch(l: &Layout, batch: usize) -> Layout {
    let mut l = *l;
    if l.dims[0] == 1 {
        l.dims[0] = batch;
        l.strides[0] = 0;
    }
    l
}

/// The product of two rank-3 views (`[batch or 1, m, k]` and `[batch or 1, k, n]`): the output
/// buffer, the operands' views with their batch broadcast, and the output's layout. The one
/// forward of eager `matmul` and the export runtime.
pub(crate) fn forward3<E: Float, D: Device>(
    dev: &D,
    a: &D::Storage<E>,
    al: &Layout,
    b: &D::Storage<E>,
    bl: &Layout,
) -> (D::Storage<E>, Layout, Layout, Layout) {
    let batch = al.dims[0].max(bl.dims[0]);
    let c3 = Layout::contiguous(Dims::from_slice(&[batch, al.dims[1], bl.dims[2]]));
    let (al, bl) = (broadcast_batch(al, batch), broadcast_batch(bl, batch));
    // every output element is written, except with an empty inner dimension (a sum of nothing)
    let mut c = match al.dims[2] {
        0 => dev.alloc_zeros::<E>(c3.numel()),
        _ => dev.alloc_for_overwrite::<E>(c3.numel()),
    };
    dev.matmul(a, &al, b, &bl, &mut c, &c3, false);
    (c, al, bl, c3)
}

/// How an operand of rank `rank` (the other one's is `other`) is viewed as `[batch, rows, cols]`:
/// the pairing of every `MatMul` impl, also used by the export runtime. Rank-4 operands must
/// have mergeable batch axes (callers make them contiguous otherwise).
pub(crate) fn operand3(l: &Layout, lhs: bool, rank: usize, other: usize) -> Layout {
    match (lhs, rank, other) {
        (true, 1, _) => as3(l, None, None, Some(0)),
        (false, 1, _) => as3(l, None, Some(0), None),
        (_, 2, _) => as3(l, None, Some(0), Some(1)),
        (_, 3, _) => as3(l, Some(0), Some(1), Some(2)),
        _ => merge_batch(l),
    }
}

/// Whether a rank-4 operand's two batch axes merge into one without a copy.
pub(crate) fn batch_mergeable(l: &Layout) -> bool {
    l.dims[0] <= 1 || l.strides[0] == l.strides[1] * l.dims[1]
}

fn transpose3(l: &Layout) -> Layout {
    l.permuted(&[0, 2, 1])
}

fn check_inner(op_dims: (Dims, Dims), k_a: usize, k_b: usize) -> Result<()> {
    if k_a != k_b {
        return Err(Error::ShapeMismatch { op: "matmul", lhs: op_dims.0.to_vec(), rhs: op_dims.1.to_vec() });
    }
    Ok(())
}

/// Runs `c = a b` on rank-3 views and records the backward. `a3`/`b3` map the operands' layouts
/// to rank 3, and the same mapping applied to contiguous layouts gives their gradients' views.
#[allow(clippy::too_many_arguments)]
fn matmul3<S1, S2, S3, E, D, L, R>(
    a: Tensor<S1, E, D, L>,
    b: Tensor<S2, E, D, R>,
    shape: S3,
    a3: impl Fn(&Layout) -> Layout + Send + 'static,
    b3: impl Fn(&Layout) -> Layout + Send + 'static,
) -> Tensor<S3, E, D, <L as Merge<D, R>>::Output>
where
    S1: Shape,
    S2: Shape,
    S3: Shape,
    E: Float,
    D: Device,
    L: Tape<D> + Merge<D, R>,
    R: Tape<D>,
{
    let (al, bl) = (a3(&a.layout()), b3(&b.layout()));
    let batch = al.dims[0].max(bl.dims[0]);
    let (a, ta) = a.split_tape();
    let (b, tb) = b.split_tape();
    let tape = ta.merge(tb);
    let dev = a.device.clone();
    let broadcast = |l: &Layout| broadcast_batch(l, batch);
    let (c, al, bl, c3) = forward3(&dev, &a.data, &al, &b.data, &bl);
    let out = Tensor::from_storage(dev.clone(), c, shape);
    if <<L as Merge<D, R>>::Output as Tape<D>>::TAPED {
        crate::autograd::capture(&tape, &a);
        crate::autograd::capture(&tape, &b);
        let (ga3, gb3) =
            (broadcast(&a3(&Layout::contiguous(a.shape.dims()))), broadcast(&b3(&Layout::contiguous(b.shape.dims()))));
        let (ad, bd, aid, bid, oid) = (a.data, b.data, a.id, b.id, out.id);
        let (na, nb) = (a.shape.numel(), b.shape.numel());
        tape.add_backward_op(
            crate::autograd::OpRecord::new("matmul", vec![aid, bid], oid, out.shape.dims())
                .exports(crate::export::Op::MatMul, E::DTYPE),
            move |g| {
                g.backward_step_write::<E, 2>(&dev, oid, [(aid, na), (bid, nb)], |gy, [ga, gb], [acc_a, acc_b]| {
                    // dA = dC Bᵀ and dB = Aᵀ dC, batch by batch where an operand is shared by the
                    // batch (the first batch writes a new gradient, the rest add to it).
                    for (grad, acc, gl, lhs, lhs_l, rhs, rhs_l) in [
                        (ga, acc_a, ga3, gy, c3, &*bd, transpose3(&bl)),
                        (gb, acc_b, gb3, &*ad, transpose3(&al), gy, c3),
                    ] {
                        if gl.strides[0] == 0 && batch > 1 {
                            for i in 0..batch {
                                let one = |l: &Layout| Layout {
                                    dims: Dims::from_slice(&[1, l.dims[1], l.dims[2]]),
                                    offset: l.offset + i * l.strides[0],
                                    ..*l
                                };
                                dev.matmul(lhs, &one(&lhs_l), rhs, &one(&rhs_l), grad, &one(&gl), acc || i > 0);
                            }
                        } else {
                            dev.matmul(lhs, &lhs_l, rhs, &rhs_l, grad, &gl, acc);
                        }
                    }
                });
                Ok(())
            },
        );
    }
    out.put_tape(tape)
}

/// `(K,) x (K, N) -> (N,)`
impl<K: Dim, N: Dim, E: Float, D: Device, L: Tape<D> + Merge<D, R>, R: Tape<D>> MatMul<Tensor<(K, N), E, D, R>>
    for Tensor<(K,), E, D, L>
{
    type Output = Tensor<(N,), E, D, <L as Merge<D, R>>::Output>;
    fn try_matmul(self, rhs: Tensor<(K, N), E, D, R>) -> Result<Self::Output> {
        check_inner((self.dims(), rhs.dims()), self.shape.0.size(), rhs.shape.0.size())?;
        let shape = (rhs.shape.1,);
        Ok(matmul3(self, rhs, shape, |l| operand3(l, true, 1, 2), |l| operand3(l, false, 2, 1)))
    }
}

/// `(M, K) x (K,) -> (M,)`
impl<M: Dim, K: Dim, E: Float, D: Device, L: Tape<D> + Merge<D, R>, R: Tape<D>> MatMul<Tensor<(K,), E, D, R>>
    for Tensor<(M, K), E, D, L>
{
    type Output = Tensor<(M,), E, D, <L as Merge<D, R>>::Output>;
    fn try_matmul(self, rhs: Tensor<(K,), E, D, R>) -> Result<Self::Output> {
        check_inner((self.dims(), rhs.dims()), self.shape.1.size(), rhs.shape.0.size())?;
        let shape = (self.shape.0,);
        Ok(matmul3(self, rhs, shape, |l| operand3(l, true, 2, 1), |l| operand3(l, false, 1, 2)))
    }
}

/// `(M, K) x (K, N) -> (M, N)`
impl<M: Dim, K: Dim, N: Dim, E: Float, D: Device, L: Tape<D> + Merge<D, R>, R: Tape<D>> MatMul<Tensor<(K, N), E, D, R>>
    for Tensor<(M, K), E, D, L>
{
    type Output = Tensor<(M, N), E, D, <L as Merge<D, R>>::Output>;
    fn try_matmul(self, rhs: Tensor<(K, N), E, D, R>) -> Result<Self::Output> {
        check_inner((self.dims(), rhs.dims()), self.shape.1.size(), rhs.shape.0.size())?;
        let shape = (self.shape.0, rhs.shape.1);
        Ok(matmul3(self, rhs, shape, |l| operand3(l, true, 2, 2), |l| operand3(l, false, 2, 2)))
    }
}

/// `(B, M, K) x (K, N) -> (B, M, N)`: one matrix for the whole batch.
impl<B: Dim, M: Dim, K: Dim, N: Dim, E: Float, D: Device, L: Tape<D> + Merge<D, R>, R: Tape<D>>
    MatMul<Tensor<(K, N), E, D, R>> for Tensor<(B, M, K), E, D, L>
{
    type Output = Tensor<(B, M, N), E, D, <L as Merge<D, R>>::Output>;
    fn try_matmul(self, rhs: Tensor<(K, N), E, D, R>) -> Result<Self::Output> {
        check_inner((self.dims(), rhs.dims()), self.shape.2.size(), rhs.shape.0.size())?;
        let shape = (self.shape.0, self.shape.1, rhs.shape.1);
        Ok(matmul3(self, rhs, shape, |l| operand3(l, true, 3, 2), |l| operand3(l, false, 2, 3)))
    }
}

/// `(B, M, K) x (B, K, N) -> (B, M, N)`
impl<B: Dim, M: Dim, K: Dim, N: Dim, E: Float, D: Device, L: Tape<D> + Merge<D, R>, R: Tape<D>>
    MatMul<Tensor<(B, K, N), E, D, R>> for Tensor<(B, M, K), E, D, L>
{
    type Output = Tensor<(B, M, N), E, D, <L as Merge<D, R>>::Output>;
    fn try_matmul(self, rhs: Tensor<(B, K, N), E, D, R>) -> Result<Self::Output> {
        check_inner((self.dims(), rhs.dims()), self.shape.2.size(), rhs.shape.1.size())?;
        check_inner((self.dims(), rhs.dims()), self.shape.0.size(), rhs.shape.0.size())?;
        let shape = (self.shape.0, self.shape.1, rhs.shape.2);
        Ok(matmul3(self, rhs, shape, |l| operand3(l, true, 3, 3), |l| operand3(l, false, 3, 3)))
    }
}

/// Merges the two leading axes of a rank-4 layout into one batch axis (callers make the tensor
/// contiguous first when the axes cannot merge).
fn merge_batch(l: &Layout) -> Layout {
    Layout {
        dims: Dims::from_slice(&[l.dims[0] * l.dims[1], l.dims[2], l.dims[3]]),
        strides: Dims::from_slice(&[l.strides[1], l.strides[2], l.strides[3]]),
        offset: l.offset,
    }
}

/// `(B, H, M, K) x (B, H, K, N) -> (B, H, M, N)` (attention-style products)
impl<B: Dim, H: Dim, M: Dim, K: Dim, N: Dim, E: Float, D: Device, L: Tape<D> + Merge<D, R>, R: Tape<D>>
    MatMul<Tensor<(B, H, K, N), E, D, R>> for Tensor<(B, H, M, K), E, D, L>
{
    type Output = Tensor<(B, H, M, N), E, D, <L as Merge<D, R>>::Output>;
    fn try_matmul(self, rhs: Tensor<(B, H, K, N), E, D, R>) -> Result<Self::Output> {
        check_inner((self.dims(), rhs.dims()), self.shape.3.size(), rhs.shape.2.size())?;
        check_inner((self.dims(), rhs.dims()), self.shape.0.size(), rhs.shape.0.size())?;
        check_inner((self.dims(), rhs.dims()), self.shape.1.size(), rhs.shape.1.size())?;
        let shape = (self.shape.0, self.shape.1, self.shape.2, rhs.shape.3);
        let a = if batch_mergeable(&self.layout()) { self } else { self.contiguous() };
        let b = if batch_mergeable(&rhs.layout()) { rhs } else { rhs.contiguous() };
        Ok(matmul3(a, b, shape, |l| operand3(l, true, 4, 4), |l| operand3(l, false, 4, 4)))
    }
}
