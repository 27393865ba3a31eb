//! The CPU device: rayon for parallel loops, the `gemm` crate for matrix products.

mod attention;
mod cache;
mod conv;
mod conv_asm;
mod conv_blocked;
mod conv_direct;
pub(crate) use conv_blocked::BlockedFilters;
mod cross_entropy;
pub(crate) mod fast_math;
mod index;
mod matmul;
mod norm;
mod optim;
mod pool;
mod reduce;
mod softmax;
pub(crate) mod strided;
mod vector;

use crate::compat::prelude::*;
pub use index::ScanKind;

use super::{AttnGeometry, ConvGeometry, Device, Layout, PoolGeometry};
use crate::compat::Mutex;
use crate::dtypes::{DType, Dtype, Float, IndexDtype};
use crate::ops::{BinaryOp, CmpOp, ReduceKind, UnaryOp};
use alloc::sync::Arc;
use cache::BufferCache;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::Distribution;
use strided::{write_or_add, zip_map};

/// The CPU device. Cloning it is cheap and shares its random generator and buffer cache.
///
/// ```
/// use tensile::prelude::*;
/// let dev = Cpu::seeded(0);
/// let t: Tensor<Rank1<3>, f32, Cpu> = dev.ones();
/// assert_eq!(t.to_vec(), vec![1.0; 3]);
/// ```
#[derive(Clone)]
pub struct Cpu {
    rng: Arc<Mutex<StdRng>>,
    cache: Arc<BufferCache>,
}

impl core::fmt::Debug for Cpu {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Cpu")
    }
}

impl Default for Cpu {
    /// A device seeded with 0, so that programs are reproducible unless asked otherwise.
    fn default() -> Self {
        Self::seeded(0)
    }
}

impl Cpu {
    /// A device whose random generator starts from `seed`.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let (a, b) = (Cpu::seeded(3), Cpu::seeded(3));
    /// let x: Tensor<Rank1<3>, f32, Cpu> = a.randn();
    /// let y: Tensor<Rank1<3>, f32, Cpu> = b.randn();
    /// assert_eq!(x.to_vec(), y.to_vec());
    /// ```
    pub fn seeded(seed: u64) -> Self {
        Self { rng: Arc::new(Mutex::new(StdRng::seed_from_u64(seed))), cache: Arc::new(BufferCache::default()) }
    }
    /// Re-seeds the random generator.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let dev = Cpu::seeded(1);
    /// let a: Tensor<Rank1<4>, f32, Cpu> = dev.randn();
    /// dev.manual_seed(1);
    /// let b: Tensor<Rank1<4>, f32, Cpu> = dev.randn();
    /// assert_eq!(a.to_vec(), b.to_vec());
    /// ```
    pub fn manual_seed(&self, seed: u64) {
        *self.rng.lock() = StdRng::seed_from_u64(seed);
    }
    /// Frees the buffers kept for reuse.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let dev = Cpu::seeded(0);
    /// drop(dev.zeros::<Rank1<100_000>, f32>()); // its buffer goes to the cache
    /// dev.empty_cache();                       // and is freed here
    /// ```
    pub fn empty_cache(&self) {
        self.cache.clear();
    }
    /// `y (+)= x ⋆ w`, then `then(output channel, row segment)` on each part of the output
    /// right after it is computed (the graph runtime's fused bias and activation); `packed`:
    /// `w` as [`Cpu::conv2d_packed_filters`] packed it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn conv2d_then<E: Float>(
        &self,
        x: &CpuStorage<E>,
        w: &CpuStorage<E>,
        g: &ConvGeometry,
        y: &mut CpuStorage<E>,
        accumulate: bool,
        then: conv::Then<'_, E>,
        packed: Option<&BlockedFilters>,
    ) {
        conv::conv2d_forward(&x.data, &w.data, g, &mut y.data, accumulate, then, packed);
    }
    /// The f32 weights `w` of convolution `g` packed once for all its runs, when this CPU's
    /// kernel for `g` reads them packed (`None` otherwise: nothing to gain).
    pub(crate) fn conv2d_packed_filters(&self, w: &CpuStorage<f32>, g: &ConvGeometry) -> Option<BlockedFilters> {
        conv::blocked_filters(&w.data, g)
    }
    fn wrap<E: Dtype>(&self, data: Vec<E>) -> CpuStorage<E> {
        CpuStorage { data, cache: Some(self.cache.clone()) }
    }
    /// Reuses `x` as the output when the caller holds its only reference and it is laid out
    /// exactly as the output will be; otherwise allocates.
    fn reuse_or_alloc<E: Dtype>(&self, x: Arc<CpuStorage<E>>, l: &Layout) -> Result<CpuStorage<E>, Arc<CpuStorage<E>>> {
        if l.is_whole_buffer(x.data.len()) { Arc::try_unwrap(x) } else { Err(x) }
    }
}

/// A CPU buffer. When dropped, large buffers go back to their device's cache.
pub struct CpuStorage<E: Dtype> {
    pub(crate) data: Vec<E>,
    cache: Option<Arc<BufferCache>>,
}

impl<E: Dtype> CpuStorage<E> {
    /// The elements.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// let x = Cpu::seeded(0).tensor([1.0f32, 2.0]);
    /// let g = x.leaky_trace().sum::<Rank0, _>().backward();
    /// assert_eq!(g.storage::<f32>(x.id()).unwrap().as_slice(), &[1.0, 1.0]);
    /// ```
    pub fn as_slice(&self) -> &[E] {
        &self.data
    }
}

impl<E: Dtype> Drop for CpuStorage<E> {
    fn drop(&mut self) {
        if let Some(cache) = self.cache.take() {
            cache.give(core::mem::take(&mut self.data));
        }
    }
}

impl Device for Cpu {
    type Storage<E: Dtype> = CpuStorage<E>;

    fn storage_len<E: Dtype>(s: &CpuStorage<E>) -> usize {
        s.data.len()
    }

    fn alloc_zeros<E: Dtype>(&self, len: usize) -> CpuStorage<E> {
        match self.cache.take::<E>(len) {
            Some(mut v) => {
                v.fill(E::default());
                self.wrap(v)
            }
            None => self.wrap(cache::fresh(len)),
        }
    }

    fn alloc_for_overwrite<E: Dtype>(&self, len: usize) -> CpuStorage<E> {
        // A cached buffer keeps its old values; a new one is zeroed by the allocator (no pass).
        let data = self.cache.take(len).unwrap_or_else(|| cache::fresh(len));
        self.wrap(data)
    }

    fn upload<E: Dtype>(&self, data: Vec<E>) -> CpuStorage<E> {
        self.wrap(data)
    }

    fn download<E: Dtype>(&self, s: &CpuStorage<E>, l: &Layout) -> Vec<E> {
        if l.is_contiguous() {
            return s.data[l.offset..l.offset + l.numel()].to_vec();
        }
        let mut out = vec![E::default(); l.numel()];
        zip_map(&mut out, &l.dims, [(&s.data[..], l)], |o, [x]| *o = x);
        out
    }

    fn copy_into<E: Float>(
        &self,
        src: &CpuStorage<E>,
        sl: &Layout,
        dst: &mut CpuStorage<E>,
        dl: &Layout,
        accumulate: bool,
    ) {
        assert_eq!(sl.dims, dl.dims, "copy_into: views of different dims");
        if dl.is_contiguous() {
            let n = dl.numel();
            let out = &mut dst.data[dl.offset..dl.offset + n];
            if accumulate {
                zip_map(out, &sl.dims, [(&src.data[..], sl)], |o, [x]| *o = *o + x);
            } else {
                zip_map(out, &sl.dims, [(&src.data[..], sl)], |o, [x]| *o = x);
            }
            return;
        }
        // A strided destination: gather the source contiguously, then scatter (serially: views
        // written here are narrow slices of a gradient, never hot loops).
        for (off, v) in dl.offsets().zip(self.download(src, sl)) {
            dst.data[off] = if accumulate { dst.data[off] + v } else { v };
        }
    }

    fn contiguous<E: Dtype>(&self, s: Arc<CpuStorage<E>>, l: &Layout) -> Arc<CpuStorage<E>> {
        if l.is_whole_buffer(s.data.len()) {
            return s;
        }
        let mut out = self.alloc_for_overwrite::<E>(l.numel());
        zip_map(&mut out.data, &l.dims, [(&s.data[..], l)], |o, [x]| *o = x);
        Arc::new(out)
    }

    fn cast<A: Dtype, B: Dtype>(&self, s: &CpuStorage<A>, l: &Layout) -> CpuStorage<B> {
        let mut out = self.alloc_for_overwrite::<B>(l.numel());
        zip_map(&mut out.data, &l.dims, [(&s.data[..], l)], |o, [x]| *o = B::cast_f64(x.as_f64()));
        out
    }

    fn unary<E: Float, O: UnaryOp>(&self, op: &O, x: Arc<CpuStorage<E>>, l: &Layout) -> CpuStorage<E> {
        match self.reuse_or_alloc(x, l) {
            Ok(mut buf) => {
                strided::map_inplace(&mut buf.data, |v| *v = E::from_acc(op.f(v.to_acc())));
                buf
            }
            Err(x) => {
                let mut out = self.alloc_for_overwrite::<E>(l.numel());
                zip_map(&mut out.data, &l.dims, [(&x.data[..], l)], |o, [v]| *o = E::from_acc(op.f(v.to_acc())));
                out
            }
        }
    }

    fn unary_backward<E: Float, O: UnaryOp>(
        &self,
        op: &O,
        x: &CpuStorage<E>,
        l: &Layout,
        y: &CpuStorage<E>,
        gy: &CpuStorage<E>,
        gx: &mut CpuStorage<E>,
        accumulate: bool,
    ) {
        let c = Layout::contiguous(l.dims);
        let ins = [(&x.data[..], l), (&y.data[..], &c), (&gy.data[..], &c)];
        write_or_add(&mut gx.data, &l.dims, ins, accumulate, |[x, y, gy]| gy.to_acc() * op.df(x.to_acc(), y.to_acc()));
    }

    fn binary<E: Float, O: BinaryOp>(
        &self,
        op: &O,
        a: Arc<CpuStorage<E>>,
        al: &Layout,
        b: Arc<CpuStorage<E>>,
        bl: &Layout,
    ) -> CpuStorage<E> {
        let f = |o: &mut E, [x, y]: [E; 2]| *o = E::from_acc(op.f(x.to_acc(), y.to_acc()));
        // Write into `a` when it is ours alone.
        match self.reuse_or_alloc(a, al) {
            Ok(mut buf) => {
                // `b` cannot share this buffer: the caller held the only reference to it.
                zip_map(&mut buf.data, &al.dims, [(&b.data[..], bl)], |o, [y]| f(o, [*o, y]));
                buf
            }
            Err(a) => {
                let mut out = self.alloc_for_overwrite::<E>(al.numel());
                zip_map(&mut out.data, &al.dims, [(&a.data[..], al), (&b.data[..], bl)], f);
                out
            }
        }
    }

    fn binary_backward<E: Float, O: BinaryOp>(
        &self,
        op: &O,
        a: &CpuStorage<E>,
        al: &Layout,
        b: &CpuStorage<E>,
        bl: &Layout,
        gy: &CpuStorage<E>,
        ga: Option<&mut CpuStorage<E>>,
        gb: Option<&mut CpuStorage<E>>,
        accumulate: [bool; 2],
    ) {
        let c = Layout::contiguous(al.dims);
        let ins = [(&a.data[..], al), (&b.data[..], bl), (&gy.data[..], &c)];
        if let Some(ga) = ga {
            write_or_add(&mut ga.data, &al.dims, ins, accumulate[0], |[x, y, gy]| {
                let (x, y) = (x.to_acc(), y.to_acc());
                gy.to_acc() * op.dfa(x, y, op.f(x, y))
            });
        }
        if let Some(gb) = gb {
            write_or_add(&mut gb.data, &al.dims, ins, accumulate[1], |[x, y, gy]| {
                let (x, y) = (x.to_acc(), y.to_acc());
                gy.to_acc() * op.dfb(x, y, op.f(x, y))
            });
        }
    }

    fn reduce<E: Float>(&self, kind: ReduceKind, x: &CpuStorage<E>, l: &Layout, axes: &[usize]) -> CpuStorage<E> {
        let out_len: usize = (0..l.dims.len()).filter(|d| !axes.contains(d)).map(|d| l.dims[d]).product();
        let mut out = self.alloc_for_overwrite::<E>(out_len);
        reduce::reduce(kind, &x.data, l, axes, &mut out.data);
        out
    }

    fn reduce_backward<E: Float>(
        &self,
        kind: ReduceKind,
        x: &CpuStorage<E>,
        l: &Layout,
        axes: &[usize],
        y: &CpuStorage<E>,
        gy: &CpuStorage<E>,
        gx: &mut CpuStorage<E>,
        accumulate: bool,
    ) {
        let kept: Vec<usize> = (0..l.dims.len()).filter(|d| !axes.contains(d)).map(|d| l.dims[d]).collect();
        let yb = Layout::contiguous(crate::shapes::Dims::from_slice(&kept)).broadcast(l.dims, axes);
        match kind {
            ReduceKind::Sum if accumulate => {
                zip_map(&mut gx.data, &l.dims, [(&gy.data[..], &yb)], |g, [gy]| *g = *g + gy);
            }
            ReduceKind::Sum => zip_map(&mut gx.data, &l.dims, [(&gy.data[..], &yb)], |g, [gy]| *g = gy),
            ReduceKind::Max | ReduceKind::Min => {
                // As PyTorch's amax/amin: the gradient is shared evenly between tied extrema.
                let mut mask = self.alloc_for_overwrite::<E>(l.numel());
                zip_map(&mut mask.data, &l.dims, [(&x.data[..], l), (&y.data[..], &yb)], |m, [x, y]| {
                    *m = if x == y { E::one() } else { E::zero() }
                });
                let c = Layout::contiguous(l.dims);
                let counts = self.reduce(ReduceKind::Sum, &mask, &c, axes);
                let ins = [(&mask.data[..], &c), (&gy.data[..], &yb), (&counts.data[..], &yb)];
                write_or_add(&mut gx.data, &l.dims, ins, accumulate, |[m, gy, n]| {
                    m.to_acc() * gy.to_acc() / n.to_acc()
                });
            }
        }
    }

    fn matmul<E: Float>(
        &self,
        a: &CpuStorage<E>,
        al: &Layout,
        b: &CpuStorage<E>,
        bl: &Layout,
        c: &mut CpuStorage<E>,
        cl: &Layout,
        accumulate: bool,
    ) {
        matmul::matmul(&a.data, al, &b.data, bl, &mut c.data, cl, accumulate);
    }

    fn compare<E: Dtype, O: CmpOp>(
        &self,
        op: &O,
        a: &CpuStorage<E>,
        al: &Layout,
        b: &CpuStorage<E>,
        bl: &Layout,
    ) -> CpuStorage<bool> {
        let mut out = self.alloc_for_overwrite::<bool>(al.numel());
        zip_map(&mut out.data, &al.dims, [(&a.data[..], al), (&b.data[..], bl)], |o, [x, y]| *o = op.cmp(x, y));
        out
    }

    fn select_where<E: Dtype>(
        &self,
        cond: &CpuStorage<bool>,
        cl: &Layout,
        a: &CpuStorage<E>,
        al: &Layout,
        b: &CpuStorage<E>,
        bl: &Layout,
    ) -> CpuStorage<E> {
        // The condition as this dtype (1 or 0), element for element of its own buffer, so that
        // a broadcast mask keeps its strides and stays small; then one strided pass.
        let (yes, no) = (E::cast_f64(1.0), E::default());
        let picks: Vec<E> = cond.data.iter().map(|&p| if p { yes } else { no }).collect();
        let mut out = self.alloc_for_overwrite::<E>(cl.numel());
        zip_map(&mut out.data, &cl.dims, [(&picks[..], cl), (&a.data[..], al), (&b.data[..], bl)], |o, [p, x, y]| {
            *o = if p != no { x } else { y }
        });
        out
    }

    fn softmax_rows<E: Float>(&self, x: &CpuStorage<E>, l: &Layout, log: bool) -> CpuStorage<E> {
        assert!(l.is_contiguous(), "softmax_rows: the view must be contiguous");
        let n = l.numel();
        let row = l.dims.as_slice().last().copied().unwrap_or(1);
        let mut out = self.alloc_for_overwrite::<E>(n);
        softmax::forward(&x.data[l.offset..l.offset + n], &mut out.data, row, log);
        out
    }

    fn softmax_rows_backward<E: Float>(
        &self,
        y: &CpuStorage<E>,
        gy: &CpuStorage<E>,
        gx: &mut CpuStorage<E>,
        row: usize,
        log: bool,
        accumulate: bool,
    ) {
        softmax::backward(&y.data, &gy.data, &mut gx.data, row, log, accumulate);
    }

    fn conv2d<E: Float>(
        &self,
        x: &CpuStorage<E>,
        w: &CpuStorage<E>,
        g: &ConvGeometry,
        y: &mut CpuStorage<E>,
        accumulate: bool,
    ) {
        self.conv2d_then(x, w, g, y, accumulate, None, None);
    }

    fn conv2d_input_grad<E: Float>(
        &self,
        gy: &CpuStorage<E>,
        w: &CpuStorage<E>,
        g: &ConvGeometry,
        gx: &mut CpuStorage<E>,
    ) {
        conv::conv2d_input_grad(&gy.data, &w.data, g, &mut gx.data);
    }

    fn conv2d_weight_grad<E: Float>(
        &self,
        x: &CpuStorage<E>,
        gy: &CpuStorage<E>,
        g: &ConvGeometry,
        gw: &mut CpuStorage<E>,
    ) {
        conv::conv2d_weight_grad(&x.data, &gy.data, g, &mut gw.data);
    }

    fn max_pool2d<E: Float>(&self, x: &CpuStorage<E>, g: &PoolGeometry) -> (CpuStorage<E>, CpuStorage<i64>) {
        let len = g.planes * g.output[0] * g.output[1];
        let (mut y, mut idx) = (self.alloc_for_overwrite::<E>(len), self.alloc_for_overwrite::<i64>(len));
        pool::max_pool2d(&x.data, g, &mut y.data, &mut idx.data);
        (y, idx)
    }

    fn max_pool2d_values<E: Float>(&self, x: &CpuStorage<E>, g: &PoolGeometry) -> CpuStorage<E> {
        let mut y = self.alloc_for_overwrite::<E>(g.planes * g.output[0] * g.output[1]);
        pool::max_pool2d_values(&x.data, g, &mut y.data);
        y
    }

    fn max_pool2d_backward<E: Float>(
        &self,
        idx: &CpuStorage<i64>,
        gy: &CpuStorage<E>,
        g: &PoolGeometry,
        gx: &mut CpuStorage<E>,
    ) {
        pool::max_pool2d_backward(&idx.data, &gy.data, g, &mut gx.data);
    }

    fn avg_pool2d<E: Float>(&self, x: &CpuStorage<E>, g: &PoolGeometry, count_include_pad: bool) -> CpuStorage<E> {
        let mut y = self.alloc_for_overwrite::<E>(g.planes * g.output[0] * g.output[1]);
        pool::avg_pool2d(&x.data, g, count_include_pad, &mut y.data);
        y
    }

    fn avg_pool2d_backward<E: Float>(
        &self,
        gy: &CpuStorage<E>,
        g: &PoolGeometry,
        count_include_pad: bool,
        gx: &mut CpuStorage<E>,
    ) {
        pool::avg_pool2d_backward(&gy.data, g, count_include_pad, &mut gx.data);
    }

    fn gather<E: Dtype, I: IndexDtype>(
        &self,
        x: &CpuStorage<E>,
        xl: &Layout,
        index: &CpuStorage<I>,
        il: &Layout,
    ) -> crate::error::Result<CpuStorage<E>> {
        let mut out = self.alloc_for_overwrite::<E>(xl.dims[0] * il.dims[1] * xl.dims[2]);
        index::gather(&x.data, xl, &index.data, il, &mut out.data)?;
        Ok(out)
    }

    fn scatter_add<E: Float, I: IndexDtype>(
        &self,
        src: &CpuStorage<E>,
        index: &CpuStorage<I>,
        il: &Layout,
        dst: &mut CpuStorage<E>,
        n: usize,
    ) -> crate::error::Result<()> {
        index::scatter_add(&src.data, &index.data, il, &mut dst.data, n)
    }

    fn topk_indices<E: Float>(&self, x: &CpuStorage<E>, xl: &Layout, k: usize, largest: bool) -> CpuStorage<i64> {
        let mut out = self.alloc_for_overwrite::<i64>(xl.dims[0] * k * xl.dims[2]);
        index::topk_indices(&x.data, xl, k, largest, &mut out.data);
        out
    }

    fn scan<E: Float>(&self, kind: ScanKind, x: &CpuStorage<E>, dims: [usize; 3], reverse: bool) -> CpuStorage<E> {
        let mut out = self.alloc_for_overwrite::<E>(x.data.len());
        index::scan(kind, &x.data, dims, reverse, &mut out.data);
        out
    }

    fn cumprod_backward<E: Float>(
        &self,
        x: &CpuStorage<E>,
        y: &CpuStorage<E>,
        gy: &CpuStorage<E>,
        dims: [usize; 3],
        gx: &mut CpuStorage<E>,
    ) {
        index::cumprod_backward(&x.data, &y.data, &gy.data, dims, &mut gx.data);
    }

    fn norm_rows<E: Float>(
        &self,
        x: &CpuStorage<E>,
        row: usize,
        eps: f64,
        center: bool,
        w: Option<&CpuStorage<E>>,
        b: Option<&CpuStorage<E>>,
    ) -> (CpuStorage<E>, CpuStorage<f64>) {
        let mut y = self.alloc_for_overwrite::<E>(x.data.len());
        let rows = x.data.len().checked_div(row).unwrap_or(0);
        let mut stats = self.alloc_for_overwrite::<f64>(2 * rows);
        let (w, b) = (w.map(|w| &w.data[..]), b.map(|b| &b.data[..]));
        norm::norm_rows(&x.data, row, eps, center, w, b, &mut y.data, &mut stats.data);
        (y, stats)
    }

    fn norm_rows_backward<E: Float>(
        &self,
        x: &CpuStorage<E>,
        row: usize,
        center: bool,
        stats: &CpuStorage<f64>,
        w: Option<&CpuStorage<E>>,
        gy: &CpuStorage<E>,
        gx: &mut CpuStorage<E>,
        accumulate: [bool; 3],
        gw: Option<&mut CpuStorage<E>>,
        gb: Option<&mut CpuStorage<E>>,
    ) {
        norm::norm_rows_backward(
            &x.data,
            row,
            center,
            &stats.data,
            w.map(|w| &w.data[..]),
            &gy.data,
            &mut gx.data,
            accumulate,
            gw.map(|g| &mut g.data[..]),
            gb.map(|g| &mut g.data[..]),
        );
    }

    fn attention<E: Float>(
        &self,
        g: &AttnGeometry,
        q: &CpuStorage<E>,
        k: &CpuStorage<E>,
        v: &CpuStorage<E>,
        keep: Option<&CpuStorage<bool>>,
        keep_weights: bool,
    ) -> Option<(CpuStorage<E>, Option<CpuStorage<E>>)> {
        // through gemm's f32 and f64 kernels; half types compose it (and widen in its matmuls)
        if ![DType::F32, DType::F64].contains(&E::DTYPE) {
            return None;
        }
        let mut out = self.alloc_for_overwrite::<E>(g.heads * g.queries * g.value_depth);
        let mut weights = keep_weights.then(|| self.alloc_for_overwrite::<E>(g.heads * g.queries * g.keys));
        let keep = keep.map(|m| &m.data[..]);
        macro_rules! run {
            ($t:ty) => {
                attention::forward::<$t>(
                    g,
                    matmul::downcast(&q.data)?,
                    matmul::downcast(&k.data)?,
                    matmul::downcast(&v.data)?,
                    keep,
                    matmul::downcast_mut(&mut out.data)?,
                    match weights.as_mut() {
                        Some(w) => Some(matmul::downcast_mut(&mut w.data)?),
                        None => None,
                    },
                )
            };
        }
        match E::DTYPE {
            DType::F32 => run!(f32),
            _ => run!(f64),
        }
        Some((out, weights))
    }

    fn attention_backward<E: Float>(
        &self,
        g: &AttnGeometry,
        q: &CpuStorage<E>,
        k: &CpuStorage<E>,
        v: &CpuStorage<E>,
        weights: &CpuStorage<E>,
        gy: &CpuStorage<E>,
        [gq, gk, gv]: [&mut CpuStorage<E>; 3],
        accumulate: [bool; 3],
    ) {
        macro_rules! run {
            ($t:ty) => {{
                fn cast<E: Dtype, T: 'static>(s: &CpuStorage<E>) -> &[T] {
                    matmul::downcast(&s.data).expect("the fused forward's dtype")
                }
                fn cast_mut<E: Dtype, T: 'static>(s: &mut CpuStorage<E>) -> &mut [T] {
                    matmul::downcast_mut(&mut s.data).expect("the fused forward's dtype")
                }
                attention::backward::<$t>(
                    g,
                    cast(q),
                    cast(k),
                    cast(v),
                    cast(weights),
                    cast(gy),
                    [cast_mut(gq), cast_mut(gk), cast_mut(gv)],
                    accumulate,
                )
            }};
        }
        match E::DTYPE {
            DType::F32 => run!(f32),
            _ => run!(f64),
        }
    }

    fn cross_entropy_rows<E: Float, I: IndexDtype>(
        &self,
        x: &CpuStorage<E>,
        row: usize,
        target: &CpuStorage<I>,
    ) -> crate::error::Result<(CpuStorage<E>, CpuStorage<f64>)> {
        let rows = target.data.len();
        let (mut loss, mut lse) = (self.alloc_for_overwrite::<E>(rows), self.alloc_for_overwrite::<f64>(rows));
        cross_entropy::forward(&x.data, row, &target.data, &mut loss.data, &mut lse.data)?;
        Ok((loss, lse))
    }

    fn cross_entropy_rows_backward<E: Float, I: IndexDtype>(
        &self,
        x: &CpuStorage<E>,
        row: usize,
        target: &CpuStorage<I>,
        lse: &CpuStorage<f64>,
        gy: &CpuStorage<E>,
        gx: &mut CpuStorage<E>,
        accumulate: bool,
    ) -> crate::error::Result<()> {
        cross_entropy::backward(&x.data, row, &target.data, &lse.data, &gy.data, &mut gx.data, accumulate)
    }

    fn sample_uniform<E: Float>(&self, len: usize, lo: f64, hi: f64) -> CpuStorage<E> {
        let mut rng = self.rng.lock();
        let dist = rand_distr::Uniform::new(lo, hi).expect("uniform: lo < hi");
        let mut data = cache::fresh(len);
        data.iter_mut().for_each(|v| *v = E::cast_f64(dist.sample(&mut *rng)));
        self.wrap(data)
    }

    fn sample_normal<E: Float>(&self, len: usize, mean: f64, std: f64) -> CpuStorage<E> {
        let mut rng = self.rng.lock();
        let dist = rand_distr::Normal::new(mean, std).expect("normal: finite std");
        let mut data = cache::fresh(len);
        data.iter_mut().for_each(|v| *v = E::cast_f64(dist.sample(&mut *rng)));
        self.wrap(data)
    }

    fn fused_update<E: Float, R: crate::optim::UpdateRule>(
        &self,
        rule: &R,
        param: &mut CpuStorage<E>,
        grad: &CpuStorage<E>,
        state: &mut [CpuStorage<E::Acc>],
        master: Option<&mut CpuStorage<E::Acc>>,
    ) {
        let mut slots: Vec<&mut [E::Acc]> = state.iter_mut().map(|s| &mut s.data[..]).collect();
        optim::fused_update(rule, &mut param.data, &grad.data, &mut slots, master.map(|m| &mut m.data[..]));
    }
}
