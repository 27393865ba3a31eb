//! Dropout with the device's random generator.

use crate::autograd::Tape;
use crate::device::Device;
use crate::dtypes::Float;
use crate::shapes::Shape;
use crate::tensor::{Tensor, TensorFactory};

impl<S: Shape, E: Float, D: Device, T: Tape<D>> Tensor<S, E, D, T> {
    /// Zeroes each element with probability `p` and scales the rest by `1 / (1 - p)`, as
    /// `torch.nn.functional.dropout` in training mode. The mask comes from the device's seeded
    /// generator, so a run is reproducible.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let dev = Cpu::seeded(0);
    /// let x: Tensor<Rank1<1000>, f32, Cpu> = dev.ones();
    /// let y = x.dropout(0.25).to_vec();
    /// let kept = y.iter().filter(|&&v| v != 0.0).count();
    /// assert!(kept > 650 && kept < 850);
    /// assert!(y.iter().all(|&v| v == 0.0 || (v - 4.0 / 3.0).abs() < 1e-6));
    /// ```
    pub fn dropout(self, p: f64) -> Self {
        assert!((0.0..=1.0).contains(&p), "dropout: p must lie in [0, 1], got {p}");
        if p == 0.0 {
            return self;
        }
        let shape = self.shape;
        let u = self.device.rand_like::<S, E>(&shape);
        let keep = u.ge_scalar(E::cast_f64(p)).cast::<E>();
        let scale = if p < 1.0 { 1.0 / (1.0 - p) } else { 0.0 };
        self * keep.mul_scalar(scale)
    }
}
