//! Recurrent layers over a sequence, batch first: `LSTM<I, H, NL>` and `GRU<I, H, NL>`, as
//! PyTorch's `nn.LSTM` / `nn.GRU` (`batch_first=True`, unidirectional), with its parameter names
//! (`weight_ih_l0`, `bias_hh_l1`, ..), gate order and initialisation (uniform in `±1/√H`).
//! The sequence length may be a run-time dim.

use super::linear::{affine, on_tape};
use super::{BuildOn, Module, Params, TensorKind, Visitor, VisitorMut, init, same_in_training};
use crate::autograd::Tape;
use crate::compat::math;
use crate::compat::prelude::*;
use crate::device::{Cpu, Device};
use crate::dtypes::Float;
use crate::error::{Error, Result};
use crate::shapes::{Axes3, Axis, Const, Dim, Prod};
use crate::tensor::{Tensor, TensorFactory};

/// One layer's weights: `G` gates of `H` units over inputs of `I` features.
#[derive(Clone, Debug)]
pub struct RnnWeights<const G: usize, const I: usize, const H: usize, E: Float = f32, D: Device = Cpu> {
    /// Input to gates, `(G·H, I)`.
    pub weight_ih: Tensor<(Prod<Const<G>, Const<H>>, Const<I>), E, D>,
    /// Hidden state to gates, `(G·H, H)`.
    pub weight_hh: Tensor<(Prod<Const<G>, Const<H>>, Const<H>), E, D>,
    /// `(G·H,)`.
    pub bias_ih: Tensor<(Prod<Const<G>, Const<H>>,), E, D>,
    /// `(G·H,)`.
    pub bias_hh: Tensor<(Prod<Const<G>, Const<H>>,), E, D>,
}

impl<const G: usize, const I: usize, const H: usize, E: Float, D: Device> RnnWeights<G, I, H, E, D> {
    fn build(dev: &D) -> Self {
        let gates = Prod::<Const<G>, Const<H>>::new(G * H);
        let b = 1.0 / math::sqrt(H.max(1) as f64);
        Self {
            weight_ih: init::uniform(dev, &(gates, Const), -b, b),
            weight_hh: init::uniform(dev, &(gates, Const), -b, b),
            bias_ih: init::uniform(dev, &(gates,), -b, b),
            bias_hh: init::uniform(dev, &(gates,), -b, b),
        }
    }

    fn visit<V: Visitor<D>>(&self, prefix: &str, layer: usize, v: &mut V) {
        v.visit(&format!("{prefix}weight_ih_l{layer}"), TensorKind::Parameter, &self.weight_ih);
        v.visit(&format!("{prefix}weight_hh_l{layer}"), TensorKind::Parameter, &self.weight_hh);
        v.visit(&format!("{prefix}bias_ih_l{layer}"), TensorKind::Parameter, &self.bias_ih);
        v.visit(&format!("{prefix}bias_hh_l{layer}"), TensorKind::Parameter, &self.bias_hh);
    }

    fn visit_mut<V: VisitorMut<D>>(&mut self, prefix: &str, layer: usize, v: &mut V) {
        v.visit_mut(&format!("{prefix}weight_ih_l{layer}"), TensorKind::Parameter, &mut self.weight_ih);
        v.visit_mut(&format!("{prefix}weight_hh_l{layer}"), TensorKind::Parameter, &mut self.weight_hh);
        v.visit_mut(&format!("{prefix}bias_ih_l{layer}"), TensorKind::Parameter, &mut self.bias_ih);
        v.visit_mut(&format!("{prefix}bias_hh_l{layer}"), TensorKind::Parameter, &mut self.bias_hh);
    }

    /// The input's contribution to every gate at every step, `(batch, seq, G·H)`: one matmul
    /// for the whole sequence, outside the recurrence.
    fn project_input<B: Dim, S: Dim, T: Tape<D>>(
        &self,
        x: Tensor<(B, S, Const<I>), E, D, T>,
    ) -> Result<Tensor<(B, S, Prod<Const<G>, Const<H>>), E, D, T>> {
        let tape = x.tape().clone();
        affine(x, on_tape(&self.weight_ih, &tape), Some(on_tape(&self.bias_ih, &tape)))
    }
}

/// The hidden state's contribution to the gates, `h W_hhᵀ + b_hh`, with the weights on the tape.
struct Recurrent<B, const G: usize, const H: usize, E: Float, D: Device, T> {
    weight_t: Tensor<(Const<H>, Prod<Const<G>, Const<H>>), E, D, T>,
    bias: Tensor<(B, Prod<Const<G>, Const<H>>), E, D, T>,
}

impl<B: Dim, const G: usize, const H: usize, E: Float, D: Device, T: Tape<D>> Recurrent<B, G, H, E, D, T> {
    fn new<const I: usize>(w: &RnnWeights<G, I, H, E, D>, batch: B, tape: &T) -> Self {
        let gates = Prod::<Const<G>, Const<H>>::new(G * H);
        Self {
            weight_t: on_tape(&w.weight_hh, tape).t(),
            bias: on_tape(&w.bias_hh, tape).broadcast_like::<_, Axis<0>>(&(batch, gates)),
        }
    }

    fn apply(&self, h: Tensor<(B, Const<H>), E, D, T>) -> Result<Tensor<(B, Prod<Const<G>, Const<H>>), E, D, T>> {
        use crate::ops::MatMul;
        h.try_matmul(self.weight_t.clone())?.try_add(self.bias.clone())
    }
}

/// Gate `k` of a `(batch, G·H)` tensor of gate values.
fn gate<B: Dim, const G: usize, const H: usize, E: Float, D: Device, T: Tape<D>>(
    x: &Tensor<(B, Prod<Const<G>, Const<H>>), E, D, T>,
    k: usize,
) -> Result<Tensor<(B, Const<H>), E, D, T>> {
    x.clone().try_narrow(Axis::<1>, k * H, Const::<H>)
}

/// A `(layers, batch, H)` state as one `(batch, H)` tensor per layer.
fn per_layer<const NL: usize, B: Dim, const H: usize, E: Float, D: Device, T: Tape<D>>(
    state: Tensor<(Const<NL>, B, Const<H>), E, D, T>,
) -> Vec<Tensor<(B, Const<H>), E, D, T>> {
    (0..NL).map(|l| state.clone().select(Axis::<0>, l)).collect()
}

/// Per-step outputs `(batch, H)` as the sequence `(batch, seq, H)`.
fn sequence<B: Dim, S: Dim, const H: usize, E: Float, D: Device, T: Tape<D>>(
    steps: Vec<Tensor<(B, Const<H>), E, D, T>>,
) -> Result<Tensor<(B, S, Const<H>), E, D, T>> {
    Tensor::try_stack_vec(steps)?.permute::<_, Axes3<1, 0, 2>>().try_realize()
}

/// Per-layer final states as `(layers, batch, H)`, PyTorch's `h_n`.
fn stacked<const NL: usize, B: Dim, const H: usize, E: Float, D: Device, T: Tape<D>>(
    states: Vec<Tensor<(B, Const<H>), E, D, T>>,
) -> Result<Tensor<(Const<NL>, B, Const<H>), E, D, T>> {
    Tensor::try_stack_vec(states)?.try_realize()
}

fn empty_sequence(op: &'static str) -> Error {
    Error::InvalidSize { op, reason: "the sequence is empty".into() }
}

/// Declares a recurrent layer type with `$gates` gates: its struct, build and parameters (the
/// cell's maths is in `lstm_layer` / `gru_layer`).
macro_rules! recurrent_layer {
    ($(#[$doc:meta])* $name:ident, $gates:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug)]
        pub struct $name<const I: usize, const H: usize, const NL: usize = 1, E: Float = f32, D: Device = Cpu> {
            /// Layer 0, over the input's `I` features.
            pub first: RnnWeights<$gates, I, H, E, D>,
            /// Layers 1 to `NL - 1`, over the previous layer's `H` features.
            pub rest: Vec<RnnWeights<$gates, H, H, E, D>>,
        }

        impl<const I: usize, const H: usize, const NL: usize, E: Float, D: Device> BuildOn<D> for $name<I, H, NL, E, D> {
            fn try_build(dev: &D) -> Result<Self> {
                const { assert!(NL >= 1, concat!(stringify!($name), "<I, H, NL>: NL must be at least 1")) };
                Ok(Self { first: RnnWeights::build(dev), rest: (1..NL).map(|_| RnnWeights::build(dev)).collect() })
            }
        }

        impl<const I: usize, const H: usize, const NL: usize, E: Float, D: Device> Params<D> for $name<I, H, NL, E, D> {
            fn visit_params<V: Visitor<D>>(&self, prefix: &str, v: &mut V) {
                self.first.visit(prefix, 0, v);
                for (l, w) in self.rest.iter().enumerate() {
                    w.visit(prefix, l + 1, v);
                }
            }
            fn visit_params_mut<V: VisitorMut<D>>(&mut self, prefix: &str, v: &mut V) {
                self.first.visit_mut(prefix, 0, v);
                for (l, w) in self.rest.iter_mut().enumerate() {
                    w.visit_mut(prefix, l + 1, v);
                }
            }
        }

        same_in_training!([const I: usize, const H: usize, const NL: usize, E: Float, D: Device] $name<I, H, NL, E, D>);
    };
}

recurrent_layer!(
    /// A long short-term memory over `(batch, seq, I)` inputs with `H` hidden units and `NL`
    /// stacked layers (`nn.LSTM(I, H, NL, batch_first=True)`; gates in PyTorch's order i, f, g, o).
    /// Takes `x` (zero initial state) or `(x, (h0, c0))`; gives `(output, (h_n, c_n))` with
    /// `output` `(batch, seq, H)` and the states `(NL, batch, H)`, as PyTorch.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// use tensile::nn::{self, LSTM};
    /// let dev = Cpu::seeded(0);
    /// let lstm = LSTM::<3, 8, 2>::build(&dev);
    /// assert_eq!(nn::named_tensors(&lstm)[4].0, "weight_ih_l1");
    /// let x: Tensor<(usize, usize, Const<3>), f32, Cpu> = dev.randn_like(&(4, 10, Const));
    /// let (out, (h, c)) = lstm.forward(x);
    /// assert_eq!((out.dims().as_slice(), h.dims().as_slice(), c.dims().as_slice()), (&[4, 10, 8][..], &[2, 4, 8][..], &[2, 4, 8][..]));
    /// ```
    LSTM, 4
);

recurrent_layer!(
    /// A gated recurrent unit over `(batch, seq, I)` inputs with `H` hidden units and `NL`
    /// stacked layers (`nn.GRU(I, H, NL, batch_first=True)`; gates in PyTorch's order r, z, n).
    /// Takes `x` (zero initial state) or `(x, h0)`; gives `(output, h_n)`.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// use tensile::nn::GRU;
    /// let dev = Cpu::seeded(0);
    /// let gru = GRU::<3, 8>::build(&dev);
    /// let x: Tensor<(usize, usize, Const<3>), f32, Cpu> = dev.randn_like(&(4, 10, Const));
    /// let (out, h) = gru.forward(x);
    /// assert_eq!((out.dims().as_slice(), h.dims().as_slice()), (&[4, 10, 8][..], &[1, 4, 8][..]));
    /// ```
    GRU, 3
);

/// `(batch, seq, F)` with any tape.
type Seq<B, S, const F: usize, E, D, T> = Tensor<(B, S, Const<F>), E, D, T>;
/// A `(layers, batch, H)` state.
type State<const NL: usize, B, const H: usize, E, D, T> = Tensor<(Const<NL>, B, Const<H>), E, D, T>;

/// One LSTM layer over the sequence from `(h, c)`: the outputs and the final `(h, c)`.
#[allow(clippy::type_complexity)]
fn lstm_layer<const I: usize, const H: usize, B: Dim, S: Dim, E: Float, D: Device, T: Tape<D>>(
    w: &RnnWeights<4, I, H, E, D>,
    x: Seq<B, S, I, E, D, T>,
    mut h: Tensor<(B, Const<H>), E, D, T>,
    mut c: Tensor<(B, Const<H>), E, D, T>,
) -> Result<(Seq<B, S, H, E, D, T>, Tensor<(B, Const<H>), E, D, T>, Tensor<(B, Const<H>), E, D, T>)> {
    let (batch, len, _) = *x.shape();
    let recurrent = Recurrent::new(w, batch, x.tape());
    let xs = w.project_input(x)?;
    let mut outputs = Vec::with_capacity(len.size());
    for t in 0..len.size() {
        let gates = xs.clone().try_select(Axis::<1>, t)?.try_add(recurrent.apply(h)?)?;
        let i = gate(&gates, 0)?.sigmoid();
        let f = gate(&gates, 1)?.sigmoid();
        let g = gate(&gates, 2)?.tanh();
        let o = gate(&gates, 3)?.sigmoid();
        c = f.try_mul(c)?.try_add(i.try_mul(g)?)?;
        h = o.try_mul(c.clone().tanh())?;
        outputs.push(h.clone());
    }
    Ok((sequence(outputs)?, h, c))
}

/// One GRU layer over the sequence from `h`: the outputs and the final `h`.
fn gru_layer<const I: usize, const H: usize, B: Dim, S: Dim, E: Float, D: Device, T: Tape<D>>(
    w: &RnnWeights<3, I, H, E, D>,
    x: Seq<B, S, I, E, D, T>,
    mut h: Tensor<(B, Const<H>), E, D, T>,
) -> Result<(Seq<B, S, H, E, D, T>, Tensor<(B, Const<H>), E, D, T>)> {
    let (batch, len, _) = *x.shape();
    let recurrent = Recurrent::new(w, batch, x.tape());
    let xs = w.project_input(x)?;
    let mut outputs = Vec::with_capacity(len.size());
    for t in 0..len.size() {
        let xt = xs.clone().try_select(Axis::<1>, t)?;
        let ht = recurrent.apply(h.clone())?;
        let r = gate(&xt, 0)?.try_add(gate(&ht, 0)?)?.sigmoid();
        let z = gate(&xt, 1)?.try_add(gate(&ht, 1)?)?.sigmoid();
        let n = gate(&xt, 2)?.try_add(r.try_mul(gate(&ht, 2)?)?)?.tanh();
        // (1 - z) n + z h = n + z (h - n)
        h = n.clone().try_add(z.try_mul(h.try_sub(n)?)?)?;
        outputs.push(h.clone());
    }
    Ok((sequence(outputs)?, h))
}

/// A zero `(NL, batch, H)` state on the input's tape.
fn zero_state<const NL: usize, const H: usize, B: Dim, E: Float, D: Device, T: Tape<D>>(
    x: &Tensor<(B, impl Dim, impl Dim), E, D, T>,
) -> State<NL, B, H, E, D, T> {
    x.device().zeros_like(&(Const, x.shape().0, Const)).put_tape(x.tape().clone())
}

impl<const I: usize, const H: usize, const NL: usize, E: Float, D: Device> LSTM<I, H, NL, E, D> {
    /// The LSTM over `x` from the initial state `(h0, c0)`: `(output, (h_n, c_n))`.
    #[allow(clippy::type_complexity)]
    pub fn try_run<B: Dim, S: Dim, T: Tape<D>>(
        &self,
        x: Seq<B, S, I, E, D, T>,
        (h0, c0): (State<NL, B, H, E, D, T>, State<NL, B, H, E, D, T>),
    ) -> Result<(Seq<B, S, H, E, D, T>, (State<NL, B, H, E, D, T>, State<NL, B, H, E, D, T>))> {
        if x.shape().1.size() == 0 {
            return Err(empty_sequence("LSTM"));
        }
        let (h0, c0) = (per_layer(h0), per_layer(c0));
        let (mut out, h, c) = lstm_layer(&self.first, x, h0[0].clone(), c0[0].clone())?;
        let (mut hs, mut cs) = (vec![h], vec![c]);
        for (l, w) in self.rest.iter().enumerate() {
            let (o, h, c) = lstm_layer(w, out, h0[l + 1].clone(), c0[l + 1].clone())?;
            out = o;
            hs.push(h);
            cs.push(c);
        }
        Ok((out, (stacked(hs)?, stacked(cs)?)))
    }
}

impl<const I: usize, const H: usize, const NL: usize, E: Float, D: Device> GRU<I, H, NL, E, D> {
    /// The GRU over `x` from the initial state `h0`: `(output, h_n)`.
    #[allow(clippy::type_complexity)]
    pub fn try_run<B: Dim, S: Dim, T: Tape<D>>(
        &self,
        x: Seq<B, S, I, E, D, T>,
        h0: State<NL, B, H, E, D, T>,
    ) -> Result<(Seq<B, S, H, E, D, T>, State<NL, B, H, E, D, T>)> {
        if x.shape().1.size() == 0 {
            return Err(empty_sequence("GRU"));
        }
        let h0 = per_layer(h0);
        let (mut out, h) = gru_layer(&self.first, x, h0[0].clone())?;
        let mut hs = vec![h];
        for (l, w) in self.rest.iter().enumerate() {
            let (o, h) = gru_layer(w, out, h0[l + 1].clone())?;
            out = o;
            hs.push(h);
        }
        Ok((out, stacked(hs)?))
    }
}

impl<const I: usize, const H: usize, const NL: usize, B: Dim, S: Dim, E: Float, D: Device, T: Tape<D>>
    Module<Seq<B, S, I, E, D, T>> for LSTM<I, H, NL, E, D>
{
    type Output = (Seq<B, S, H, E, D, T>, (State<NL, B, H, E, D, T>, State<NL, B, H, E, D, T>));
    fn try_forward(&self, x: Seq<B, S, I, E, D, T>) -> Result<Self::Output> {
        let state = (zero_state(&x), zero_state(&x));
        self.try_run(x, state)
    }
}

impl<const I: usize, const H: usize, const NL: usize, B: Dim, S: Dim, E: Float, D: Device, T: Tape<D>>
    Module<(Seq<B, S, I, E, D, T>, (State<NL, B, H, E, D, T>, State<NL, B, H, E, D, T>))> for LSTM<I, H, NL, E, D>
{
    type Output = (Seq<B, S, H, E, D, T>, (State<NL, B, H, E, D, T>, State<NL, B, H, E, D, T>));
    fn try_forward(
        &self,
        (x, state): (Seq<B, S, I, E, D, T>, (State<NL, B, H, E, D, T>, State<NL, B, H, E, D, T>)),
    ) -> Result<Self::Output> {
        self.try_run(x, state)
    }
}

impl<const I: usize, const H: usize, const NL: usize, B: Dim, S: Dim, E: Float, D: Device, T: Tape<D>>
    Module<Seq<B, S, I, E, D, T>> for GRU<I, H, NL, E, D>
{
    type Output = (Seq<B, S, H, E, D, T>, State<NL, B, H, E, D, T>);
    fn try_forward(&self, x: Seq<B, S, I, E, D, T>) -> Result<Self::Output> {
        let h0 = zero_state(&x);
        self.try_run(x, h0)
    }
}

impl<const I: usize, const H: usize, const NL: usize, B: Dim, S: Dim, E: Float, D: Device, T: Tape<D>>
    Module<(Seq<B, S, I, E, D, T>, State<NL, B, H, E, D, T>)> for GRU<I, H, NL, E, D>
{
    type Output = (Seq<B, S, H, E, D, T>, State<NL, B, H, E, D, T>);
    fn try_forward(&self, (x, h0): (Seq<B, S, I, E, D, T>, State<NL, B, H, E, D, T>)) -> Result<Self::Output> {
        self.try_run(x, h0)
    }
}
