//! A small GPT-style decoder as types: token and position embeddings, 4 pre-norm transformer
//! layers (d_model 256, 4 heads, GELU, causal self-attention), a final norm and a language-model
//! head. It trains for a few dozen steps on this repository's own README, byte by byte, and
//! prints the loss as it falls from ln 256.
//!
//! ```sh
//! cargo run --release --example gpt
//! ```

use std::time::Instant;
use tensile::nn::{
    self, Embedding, LayerNorm, Linear, Params, Repeat, TensorKind, TransformerEncoderLayer, VisitorMut,
};
use tensile::prelude::*;

const VOCAB: usize = 256; // bytes
const CONTEXT: usize = 64;
const MODEL: usize = 256;
const HEADS: usize = 4;
const FEED_FORWARD: usize = 4 * MODEL;
const LAYERS: usize = 4;
const BATCH: usize = 8;

/// Token ids `(batch, CONTEXT)`, any tape.
type Tokens<T> = Tensor<(usize, Const<CONTEXT>), i64, Cpu, T>;
/// Next-byte logits `(batch, CONTEXT, VOCAB)`.
type Logits<T> = Tensor<(usize, Const<CONTEXT>, Const<VOCAB>), f32, Cpu, T>;

struct Gpt {
    tokens: Embedding<VOCAB, MODEL>,
    positions: Embedding<CONTEXT, MODEL>,
    layers: Repeat<TransformerEncoderLayer<MODEL, HEADS, FEED_FORWARD>, LAYERS>,
    norm: LayerNorm<MODEL>,
    head: Linear<MODEL, VOCAB>,
}
tensile::module_fields!(Gpt { tokens, positions, layers, norm, head });

impl Gpt {
    fn new(dev: &Cpu) -> Self {
        let mut gpt = Gpt::build(dev);
        for layer in &mut gpt.layers.0 {
            *layer = layer.clone().with_dropout(0.0);
            layer.norm_first = true; // GPT-2's pre-norm layers
            layer.activation = nn::Activation::GELU;
        }
        gpt
    }

    fn run<T: Tape<Cpu>>(&self, ids: Tokens<T>, train: bool) -> Result<Logits<T>> {
        let batch = ids.shape().0;
        let tape = ids.tape().clone();
        let x = self.tokens.try_forward(ids)?;
        let at: Tensor<(Const<CONTEXT>,), i64, Cpu> = x.device().arange_const();
        let pos = self.positions.try_forward(at.put_tape(tape))?;
        let mut x = x + pos.broadcast_like::<_, Axis<0>>(&(batch, Const, Const));
        for layer in &self.layers.0 {
            x = layer.try_encode(x, AttnMask::Causal, train)?;
        }
        self.head.try_forward(self.norm.try_forward(x)?)
    }
}

impl<T: Tape<Cpu>> Module<Tokens<T>> for Gpt {
    type Output = Logits<T>;
    fn try_forward(&self, ids: Tokens<T>) -> Result<Logits<T>> {
        self.run(ids, false)
    }
}

impl<T: Tape<Cpu>> ModuleMut<Tokens<T>> for Gpt {
    type Output = Logits<T>;
    fn try_forward_mut(&mut self, ids: Tokens<T>) -> Result<Logits<T>> {
        self.run(ids, true)
    }
}

/// Plain gradient descent over every parameter: `p -= lr * grad`.
struct Sgd<'a>(&'a Gradients<Cpu>, f64);
impl VisitorMut<Cpu> for Sgd<'_> {
    fn visit_mut<S: Shape, E: Float>(&mut self, _: &str, kind: TensorKind, t: &mut Tensor<S, E, Cpu>) {
        if kind == TensorKind::Parameter {
            *t = t.clone() - self.0.get(t).mul_scalar(self.1);
        }
    }
}

/// `BATCH` windows of `CONTEXT + 1` bytes from `text`, as inputs and next-byte targets.
fn batch(text: &[u8], seed: &mut u64, dev: &Cpu) -> (Tokens<NoTape>, Tensor<(usize,), i64, Cpu>) {
    let (mut inputs, mut targets) = (Vec::new(), Vec::new());
    for _ in 0..BATCH {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let start = (*seed >> 33) as usize % (text.len() - CONTEXT - 1);
        let window = &text[start..start + CONTEXT + 1];
        inputs.extend(window[..CONTEXT].iter().map(|&b| b as i64));
        targets.extend(window[1..].iter().map(|&b| b as i64));
    }
    (dev.from_vec(inputs, (BATCH, Const)), dev.from_vec(targets, (BATCH * CONTEXT,)))
}

fn main() -> Result<()> {
    let text = include_str!("../README.md").as_bytes();
    let dev = Cpu::seeded(0);
    let mut model = Gpt::new(&dev);
    println!("GPT: {} layers, d_model {MODEL}, {} parameters", LAYERS, nn::num_params(&model));

    let mut seed = 7;
    let (mut first, mut last) = (None, 0.0);
    let start = Instant::now();
    for step in 0..=40 {
        let (ids, targets) = batch(text, &mut seed, &dev);
        let logits = model.try_forward_mut(ids.trace(nn::alloc_grads(&model)))?;
        let flat = logits.try_reshape_like(&(BATCH * CONTEXT, Const::<VOCAB>))?;
        let loss = flat.try_cross_entropy(&targets)?.ensure_finite()?;
        let value = loss.to_array();
        let grads = loss.backward();
        model.visit_params_mut("", &mut Sgd(&grads, 0.1));
        first.get_or_insert(value);
        last = value;
        if step % 10 == 0 {
            println!("step {step:3}: loss {value:.3} ({:.1} s)", start.elapsed().as_secs_f64());
        }
    }
    let first = first.unwrap_or(last);
    println!("loss {first:.3} -> {last:.3} (ln 256 = {:.3})", (VOCAB as f32).ln());
    assert!(last < first, "the loss did not fall");
    Ok(())
}
