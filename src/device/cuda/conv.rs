//! Convolution on the GPU: `im2col` (kernels/conv.cu) and then one cuBLAS product per group
//! through [`Device::matmul`] with strided views, so the products need no copies: the
//! weights of a group are broadcast over the images (batch stride 0), and the input gradient
//! multiplies by the weights' transposed view.
//!
//! The columns of a run of images are kept at once, up to [`COLUMN_LIMIT`] elements (the
//! batch is split into runs beyond that).

use super::{Cuda, CudaStorage, KernelFile, check, elementwise_config, kernel_name};
use crate::device::{ConvGeometry, Device, Layout};
use crate::dtypes::Float;
use crate::shapes::Dims;
use cudarc::driver::{DeviceRepr, PushKernelArg};

/// Elements of the column buffer of one run of images (at most 256 MiB of f32).
pub(super) const COLUMN_LIMIT: usize = 64 << 20;

/// [`ConvGeometry`] as the kernels' `Conv` struct.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct KConv([i64; 16]);

// SAFETY: sixteen `i64`s, `repr(C)`, as `struct Conv` in kernels/conv.cu (field order checked by
// `kconv_follows_the_cuda_struct`).
unsafe impl DeviceRepr for KConv {}

impl From<&ConvGeometry> for KConv {
    fn from(g: &ConvGeometry) -> Self {
        let v = [
            g.batch,
            g.in_channels,
            g.out_channels,
            g.groups,
            g.input[0],
            g.input[1],
            g.kernel[0],
            g.kernel[1],
            g.stride[0],
            g.stride[1],
            g.padding[0],
            g.padding[1],
            g.dilation[0],
            g.dilation[1],
            g.output[0],
            g.output[1],
        ];
        KConv(v.map(|d| d as i64))
    }
}

fn layout(dims: [usize; 3], strides: [usize; 3], offset: usize) -> Layout {
    Layout { dims: Dims::from_slice(&dims), strides: Dims::from_slice(&strides), offset }
}

/// The sizes the three passes share.
struct Plan {
    groups: usize,
    out_channels: usize,
    og: usize,
    patch: usize,
    pixels: usize,
    /// Images per run.
    run: usize,
}

impl Plan {
    fn new(g: &ConvGeometry) -> Self {
        let (patch, pixels) = (g.patch_len(), g.output_pixels());
        let per_image = (g.in_channels * g.kernel[0] * g.kernel[1] * pixels).max(1);
        let run = (COLUMN_LIMIT / per_image).clamp(1, g.batch.max(1));
        Plan { groups: g.groups, out_channels: g.out_channels, og: g.out_per_group(), patch, pixels, run }
    }
    /// Runs of images: `(first, count)`.
    fn runs(&self, batch: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
        (0..batch).step_by(self.run).map(move |n0| (n0, self.run.min(batch - n0)))
    }
    /// Group `gi`'s weights, `[images, og, patch]`, the same matrix for every image.
    fn weights(&self, images: usize, gi: usize) -> Layout {
        layout([images, self.og, self.patch], [0, self.patch, 1], gi * self.og * self.patch)
    }
    /// Group `gi`'s columns, `[images, patch, pixels]`.
    fn columns(&self, images: usize, gi: usize) -> Layout {
        layout(
            [images, self.patch, self.pixels],
            [self.groups * self.patch * self.pixels, self.pixels, 1],
            gi * self.patch * self.pixels,
        )
    }
    /// Group `gi`'s outputs of images `n0..`, `[images, og, pixels]`.
    fn outputs(&self, images: usize, n0: usize, gi: usize) -> Layout {
        let image = self.out_channels * self.pixels;
        layout([images, self.og, self.pixels], [image, self.pixels, 1], n0 * image + gi * self.og * self.pixels)
    }
}

impl Cuda {
    fn im2col<E: Float>(&self, x: &CudaStorage<E>, g: &ConvGeometry, n0: usize, images: usize) -> CudaStorage<E> {
        let n = images * g.in_channels * g.kernel[0] * g.kernel[1] * g.output_pixels();
        let mut col = self.alloc_for_overwrite::<E>(n);
        if n == 0 {
            return col;
        }
        let f = self.function(KernelFile::Conv, &kernel_name("im2col", E::DTYPE));
        let (kg, n0, images) = (KConv::from(g), n0 as i64, images as i64);
        let mut b = self.stream().launch_builder(&f);
        b.arg(&x.bytes).arg(&kg).arg(&n0).arg(&images).arg(&mut col.bytes);
        // SAFETY: writes every element of `col`, reading `x` only inside the images and planes
        // the geometry describes (the front end checked `x` against it).
        check(unsafe { b.launch(elementwise_config(n)) }, "im2col");
        col
    }

    fn col2im<E: Float>(
        &self,
        col: &CudaStorage<E>,
        g: &ConvGeometry,
        n0: usize,
        images: usize,
        gx: &mut CudaStorage<E>,
    ) {
        let n = images * g.in_channels * g.input_pixels();
        if n == 0 {
            return;
        }
        let f = self.function(KernelFile::Conv, &kernel_name("col2im", E::DTYPE));
        let (kg, n0, images) = (KConv::from(g), n0 as i64, images as i64);
        let mut b = self.stream().launch_builder(&f);
        b.arg(&col.bytes).arg(&kg).arg(&n0).arg(&images).arg(&mut gx.bytes);
        // SAFETY: one thread per input element of the run; `col` holds the run's columns.
        check(unsafe { b.launch(elementwise_config(n)) }, "col2im");
    }

    pub(super) fn conv_forward<E: Float>(
        &self,
        x: &CudaStorage<E>,
        w: &CudaStorage<E>,
        g: &ConvGeometry,
        y: &mut CudaStorage<E>,
        accumulate: bool,
    ) {
        let plan = Plan::new(g);
        for (n0, images) in plan.runs(g.batch) {
            let col = self.im2col(x, g, n0, images);
            for gi in 0..g.groups {
                let (wl, cl, yl) = (plan.weights(images, gi), plan.columns(images, gi), plan.outputs(images, n0, gi));
                self.matmul(w, &wl, &col, &cl, y, &yl, accumulate);
            }
        }
    }

    pub(super) fn conv_input_grad<E: Float>(
        &self,
        gy: &CudaStorage<E>,
        w: &CudaStorage<E>,
        g: &ConvGeometry,
        gx: &mut CudaStorage<E>,
    ) {
        let plan = Plan::new(g);
        for (n0, images) in plan.runs(g.batch) {
            let mut col =
                self.alloc_for_overwrite::<E>(images * g.in_channels * g.kernel[0] * g.kernel[1] * plan.pixels);
            for gi in 0..g.groups {
                // columns = Wᵀ gy: the weights' transposed view, `[images, patch, og]`.
                let wt = plan.weights(images, gi).permuted(&[0, 2, 1]);
                let (gyl, cl) = (plan.outputs(images, n0, gi), plan.columns(images, gi));
                self.matmul(w, &wt, gy, &gyl, &mut col, &cl, false);
            }
            self.col2im(&col, g, n0, images, gx);
        }
    }

    pub(super) fn conv_weight_grad<E: Float>(
        &self,
        x: &CudaStorage<E>,
        gy: &CudaStorage<E>,
        g: &ConvGeometry,
        gw: &mut CudaStorage<E>,
    ) {
        let plan = Plan::new(g);
        for (n0, images) in plan.runs(g.batch) {
            let col = self.im2col(x, g, n0, images);
            for j in 0..images {
                for gi in 0..g.groups {
                    // gw[gi] += gy[n, gi] · columns[n, gi]ᵀ, one image at a time.
                    let gyl = plan.outputs(1, n0 + j, gi);
                    let ct = plan.columns(1, gi).permuted(&[0, 2, 1]);
                    let ct = Layout { offset: ct.offset + j * g.groups * plan.patch * plan.pixels, ..ct };
                    let gwl = layout([1, plan.og, plan.patch], [0, plan.patch, 1], gi * plan.og * plan.patch);
                    self.matmul(gy, &gyl, &col, &ct, gw, &gwl, true);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kconv_follows_the_cuda_struct() {
        let src = include_str!("../../../kernels/conv.cu");
        assert!(src.contains("i64 batch, in_channels, out_channels, groups;"));
        assert!(src.contains("i64 ih, iw, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow;"));
        let g = ConvGeometry::new(2, 4, 6, 2, [9, 8], [3, 2], [2, 1], [1, 0], [1, 2]).unwrap();
        let k = KConv::from(&g);
        assert_eq!(&k.0[..4], &[2, 4, 6, 2]);
        assert_eq!(&k.0[4..], &[9, 8, 3, 2, 2, 1, 1, 0, 1, 2, g.output[0] as i64, g.output[1] as i64]);
    }

    #[test]
    fn runs_cover_the_batch_within_the_column_limit() {
        let g = ConvGeometry::new(32, 64, 64, 1, [56, 56], [3, 3], [1, 1], [1, 1], [1, 1]).unwrap();
        let plan = Plan::new(&g);
        let runs: Vec<_> = plan.runs(32).collect();
        assert_eq!(runs.iter().map(|r| r.1).sum::<usize>(), 32);
        assert!(plan.run * 64 * 9 * 56 * 56 <= COLUMN_LIMIT);
        assert_eq!(plan.columns(2, 0).strides.as_slice(), &[576 * 3136, 3136, 1]);
    }
}
