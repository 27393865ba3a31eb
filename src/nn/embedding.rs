//! `Embedding<V, M>`: a table of `V` rows of `M` features looked up by integer indices
//! (`nn.Embedding`, initialised `N(0, 1)` as PyTorch's).

use super::{BuildOn, Module, init, same_in_training, tensor_params};
use crate::autograd::Tape;
use crate::device::{Cpu, Device};
use crate::dtypes::{Float, IndexDtype};
use crate::error::Result;
use crate::shapes::{AppendDim, Const, Rank2};
use crate::tensor::Tensor;

/// A lookup table of `V` embeddings of size `M`. Its input is an index tensor of any shape; to
/// train the table, put the tape on the indices (`tokens.trace(nn::alloc_grads(&model))`).
///
/// ```
/// use tensile::prelude::*;
/// use tensile::nn::{self, Embedding};
/// let dev = Cpu::seeded(0);
/// let emb = Embedding::<100, 8>::build(&dev);
/// let tokens: Tensor<(usize, usize), i64, Cpu> = dev.from_vec(vec![1, 5, 99, 5], (2, 2));
/// let y = emb.forward(tokens.trace(nn::alloc_grads(&emb)));
/// assert_eq!(y.dims().as_slice(), &[2, 2, 8]);
/// let g = y.sum::<Rank0, _>().backward();
/// assert_eq!(g.get(&emb.weight).to_vec().iter().filter(|&&v| v != 0.0).count(), 3 * 8); // rows 1, 5, 99
/// ```
#[derive(Clone, Debug)]
pub struct Embedding<const V: usize, const M: usize, E: Float = f32, D: Device = Cpu> {
    /// `(V, M)`.
    pub weight: Tensor<Rank2<V, M>, E, D>,
}

impl<const V: usize, const M: usize, E: Float, D: Device> BuildOn<D> for Embedding<V, M, E, D> {
    fn try_build(dev: &D) -> Result<Self> {
        Ok(Self { weight: init::normal(dev, &Default::default(), 0.0, 1.0) })
    }
}

tensor_params!([const V: usize, const M: usize, E: Float, D: Device] Embedding<V, M, E, D> { weight: Parameter });

impl<const V: usize, const M: usize, S: AppendDim<Const<M>>, I: IndexDtype, E: Float, D: Device, T: Tape<D>>
    Module<Tensor<S, I, D, T>> for Embedding<V, M, E, D>
{
    type Output = Tensor<S::Output, E, D, T>;
    fn try_forward(&self, indices: Tensor<S, I, D, T>) -> Result<Self::Output> {
        let (indices, tape) = indices.split_tape();
        self.weight.clone().put_tape(tape).try_embedding(&indices)
    }
}
same_in_training!([const V: usize, const M: usize, E: Float, D: Device] Embedding<V, M, E, D>);
