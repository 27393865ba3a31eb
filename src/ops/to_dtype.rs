//! Conversion between float dtypes, with the gradient converted back.

use crate::autograd::Tape;
use crate::compat::prelude::*;
use crate::device::{Device, Layout};
use crate::dtypes::Float;
use crate::shapes::{Dims, Shape};
use crate::tensor::Tensor;

impl<S: Shape, E: Float, D: Device, T: Tape<D>> Tensor<S, E, D, T> {
    /// Converts to another float dtype; the gradient is converted back on the way down.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let dev = Cpu::seeded(0);
    /// let x: Tensor<Rank1<2>, f32, Cpu> = dev.tensor([1.5, 2.0]);
    /// let h = x.clone().to_dtype::<half::f16>();
    /// assert_eq!(h.to_dtype::<f64>().to_vec(), vec![1.5, 2.0]);
    /// ```
    pub fn to_dtype<E2: Float>(self) -> Tensor<S, E2, D, T> {
        let l = self.layout();
        let (x, tape) = self.split_tape();
        let out = Tensor::from_storage(x.device.clone(), x.device.cast::<E, E2>(&x.data, &l), x.shape);
        if T::TAPED {
            crate::autograd::capture(&tape, &x);
            let (dev, xid, oid, n) = (x.device, x.id, out.id, l.numel());
            let record = crate::autograd::OpRecord::new("to_dtype", vec![xid], oid, l.dims)
                .exports(crate::export::Op::Cast, E2::DTYPE);
            tape.add_backward_op(record, move |g| {
                let Some(gy) = g.storage::<E2>(oid) else { return Ok(()) };
                let flat = Layout::contiguous(Dims::from_slice(&[n]));
                let back = dev.cast::<E2, E>(gy, &flat);
                let gx = g.get_or_zeros::<E>(&dev, xid, n);
                dev.copy_into(&back, &flat, gx, &flat, true);
                Ok(())
            });
        }
        out.put_tape(tape)
    }
}
