//! Running sums and products along an axis (`cumsum`, `cumprod`).

use crate::autograd::{OpRecord, Tape};
use crate::compat::prelude::*;
use crate::device::{Device, ScanKind};
use crate::dtypes::Float;
use crate::ops::index::fold3;
use crate::shapes::{Axis, Shape};
use crate::tensor::Tensor;
use alloc::sync::Arc;

impl<S: Shape, E: Float, D: Device, T: Tape<D>> Tensor<S, E, D, T> {
    fn scan_op<const I: usize>(self, kind: ScanKind) -> Self {
        const { assert!(I < S::RANK, "cumsum/cumprod: the axis is out of range for this shape") };
        let d3 = fold3(&self.dims(), I);
        let xd = self.device.contiguous(self.data.clone(), &self.layout());
        let y = Arc::new(self.device.scan(kind, &xd, d3, false));
        let (x, tape) = self.split_tape();
        let dev = x.device.clone();
        let out = Tensor::from_arc(dev.clone(), y.clone(), x.shape);
        if T::TAPED {
            let (xid, oid, n) = (x.id, out.id, x.shape.numel());
            let name = if kind == ScanKind::Sum { "cumsum" } else { "cumprod" };
            tape.add_backward_op(OpRecord::new(name, vec![xid], oid, x.shape.dims()), move |grads| {
                grads.backward_step::<E, 1>(&dev, oid, [(xid, n)], |gy, [gx]| match kind {
                    ScanKind::Sum => {
                        // d cumsum: the running sum of the gradient from the end
                        let back = dev.scan(ScanKind::Sum, gy, d3, true);
                        let flat = crate::device::Layout::contiguous(crate::shapes::Dims::from_slice(&[n]));
                        dev.copy_into(&back, &flat, gx, &flat, true);
                    }
                    ScanKind::Prod => dev.cumprod_backward(&xd, &y, gy, d3, gx),
                });
                Ok(())
            });
        }
        out.put_tape(tape)
    }

    /// Running sums along axis `I` (PyTorch's `cumsum`).
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let x = Cpu::seeded(0).tensor([[1.0f32, 2.0, 3.0]]);
    /// assert_eq!(x.cumsum(Axis::<1>).to_array(), [[1.0, 3.0, 6.0]]);
    /// ```
    pub fn cumsum<const I: usize>(self, _axis: Axis<I>) -> Self {
        self.scan_op::<I>(ScanKind::Sum)
    }

    /// Running products along axis `I` (PyTorch's `cumprod`); the gradient is exact with zeros.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let x = Cpu::seeded(0).tensor([2.0f32, 3.0, 4.0]);
    /// assert_eq!(x.cumprod(Axis::<0>).to_array(), [2.0, 6.0, 24.0]);
    /// ```
    pub fn cumprod<const I: usize>(self, _axis: Axis<I>) -> Self {
        self.scan_op::<I>(ScanKind::Prod)
    }
}
