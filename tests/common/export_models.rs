//! Small models of each family the export tests trace: a CNN and a decoder-only transformer.

#![allow(dead_code)]

use tensile::nn;
use tensile::prelude::*;

/// Convolutions, batch norm, both pools, flatten and a linear layer.
pub type Cnn = (
    nn::Conv2d<1, 8, 3>,
    nn::BatchNorm2d<8>,
    nn::ReLU,
    nn::MaxPool2d<2>,
    nn::Conv2d<8, 16, 3, 1, 1>,
    nn::ReLU,
    nn::AdaptiveAvgPool2d<2, 2>,
    nn::Flatten,
    nn::Linear<64, 10>,
);

pub const VOCAB: usize = 32;
pub const CONTEXT: usize = 6;
pub const MODEL: usize = 16;

/// A GPT-style decoder: token and position embeddings, two pre-norm GELU layers with causal
/// self-attention, a final norm and a language-model head.
pub struct TinyGpt {
    pub tokens: nn::Embedding<VOCAB, MODEL>,
    pub positions: nn::Embedding<CONTEXT, MODEL>,
    pub layers: nn::Repeat<nn::TransformerEncoderLayer<MODEL, 2, 32>, 2>,
    pub norm: nn::LayerNorm<MODEL>,
    pub head: nn::Linear<MODEL, VOCAB>,
}
tensile::module_fields!(TinyGpt { tokens, positions, layers, norm, head });

/// A [`TinyGpt`] with GPT-2's layer choices.
pub fn tiny_gpt(dev: &Cpu) -> TinyGpt {
    let mut model = TinyGpt::build(dev);
    for layer in &mut model.layers.0 {
        layer.norm_first = true;
        layer.activation = nn::Activation::GELU;
    }
    model
}

impl<T: Tape<Cpu>> Module<Tensor<(Const<2>, Const<CONTEXT>), i64, Cpu, T>> for TinyGpt {
    type Output = Tensor<(Const<2>, Const<CONTEXT>, Const<VOCAB>), f32, Cpu, T>;
    fn try_forward(&self, ids: Tensor<(Const<2>, Const<CONTEXT>), i64, Cpu, T>) -> Result<Self::Output> {
        let tape = ids.tape().clone();
        let x = self.tokens.try_forward(ids)?;
        let at: Tensor<(Const<CONTEXT>,), i64, Cpu> = x.device().arange_const();
        let pos = self.positions.try_forward(at.put_tape(tape))?;
        let mut x = x + pos.broadcast::<_, Axis<0>>();
        for layer in &self.layers.0 {
            x = layer.try_encode(x, AttnMask::Causal, false)?;
        }
        self.head.try_forward(self.norm.try_forward(x)?)
    }
}
