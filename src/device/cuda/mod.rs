//! The CUDA device: NVIDIA GPUs through cudarc, kernels from `kernels/` compiled by NVRTC.
//!
//! The CUDA libraries (driver, NVRTC, cuBLAS) are loaded when a device is created, not linked,
//! so a program built with the `cuda` feature runs on machines without them: [`Cuda::try_new`]
//! then returns an `Err` that says which library is missing.
//!
//! Kernels are compiled once per device and file, for the device's own architecture, the first
//! time an op needs them. Work is queued on one stream; a download waits for it.
//!
//! Where this device has no kernel of its own yet, an op runs through the CPU kernel: its inputs
//! are copied to the host, the CPU computes, and the result is copied back (correct, and slow
//! for large tensors). [`Cuda::NATIVE_KERNELS`] lists what runs on the GPU.
//!
//! A failure inside CUDA (out of memory, a kernel fault) panics with CUDA's message, as
//! PyTorch raises: the [`Device`] kernels cannot return errors, and such failures are not the
//! shape errors `try_*` methods report.

mod blas;
mod conv;
mod kernels;

pub use kernels::KernelFile;

use super::{ConvGeometry, Cpu, Device, Layout, PoolGeometry, ScanKind};
use crate::compat::{HashMap, Mutex};
use crate::dtypes::{DType, Dtype, Float, IndexDtype};
use crate::error::{Error, Result};
use crate::ops::{BinaryOp, CmpOp, ReduceKind, UnaryOp};
use alloc::sync::Arc;
use core::marker::PhantomData;
use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, DeviceRepr, LaunchConfig, PushKernelArg,
};

/// An NVIDIA GPU. Cloning it is cheap and shares its stream, compiled kernels and generator.
///
/// ```
/// use tensile::prelude::*;
/// match Cuda::try_new(0) {
///     Ok(gpu) => {
///         let x: Tensor<Rank1<3>, f32, Cuda> = gpu.ones();
///         assert_eq!(x.exp().to_vec(), vec![core::f32::consts::E; 3]);
///     }
///     Err(e) => println!("no GPU here: {e}"),
/// }
/// ```
#[derive(Clone)]
pub struct Cuda {
    inner: Arc<Inner>,
}

struct Inner {
    ordinal: usize,
    name: String,
    arch: &'static str,
    stream: Arc<CudaStream>,
    blas: Mutex<cudarc::cublas::CudaBlas>,
    modules: Mutex<HashMap<KernelFile, Arc<CudaModule>>>,
    functions: Mutex<HashMap<String, CudaFunction>>,
    /// The host side: its generator makes this device's random numbers (so a seed gives the
    /// same numbers on Cpu and Cuda), and its kernels run the ops without a CUDA kernel yet.
    host: Cpu,
}

impl core::fmt::Debug for Cuda {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Cuda({}: {})", self.inner.ordinal, self.inner.name)
    }
}

fn cuda_err(reason: impl core::fmt::Display) -> Error {
    Error::Device { device: "cuda", reason: reason.to_string() }
}

/// Why no CUDA device can be opened here, or `None` when the libraries it needs load.
fn missing_library() -> Option<&'static str> {
    // SAFETY: these only try to dlopen the libraries (cudarc's dynamic loading); they call
    // nothing in them.
    let (driver, nvrtc, cublas) = unsafe {
        (
            cudarc::driver::sys::is_culib_present(),
            cudarc::nvrtc::sys::is_culib_present(),
            cudarc::cublas::sys::is_culib_present(),
        )
    };
    if !driver {
        Some("the CUDA driver library (libcuda) is not installed")
    } else if !nvrtc {
        Some("NVRTC (libnvrtc), which compiles tensile's kernels, was not found")
    } else if !cublas {
        Some("cuBLAS (libcublas), which runs matrix products, was not found")
    } else {
        None
    }
}

impl Cuda {
    /// What runs on the GPU itself; every other [`Device`] kernel goes through the host.
    pub const NATIVE_KERNELS: &'static [&'static str] = &[
        "alloc_zeros",
        "upload",
        "download",
        "copy_into",
        "contiguous",
        "cast",
        "unary",
        "unary_backward",
        "binary",
        "binary_backward",
        "reduce",
        "reduce_backward",
        "matmul",
        "compare",
        "select_where",
        "softmax_rows",
        "softmax_rows_backward",
        "norm_rows",
        "norm_rows_backward",
        "cross_entropy_rows",
        "cross_entropy_rows_backward",
        "conv2d",
        "conv2d_input_grad",
        "conv2d_weight_grad",
    ];

    /// The GPU numbered `ordinal`, with its generator seeded with 0. `Err` when the CUDA
    /// libraries are missing, there is no such GPU, or it cannot be opened.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// if let Err(e) = Cuda::try_new(0) {
    ///     assert!(matches!(e, Error::Device { device: "cuda", .. }));
    /// }
    /// ```
    pub fn try_new(ordinal: usize) -> Result<Self> {
        Self::try_seeded(ordinal, 0)
    }

    /// [`Cuda::try_new`] with the generator seeded with `seed`.
    pub fn try_seeded(ordinal: usize, seed: u64) -> Result<Self> {
        if let Some(why) = missing_library() {
            return Err(cuda_err(why));
        }
        let count = CudaContext::device_count().map_err(cuda_err)?;
        if ordinal >= count.max(0) as usize {
            return Err(cuda_err(format!("there is no GPU {ordinal} ({count} found)")));
        }
        let ctx = CudaContext::new(ordinal).map_err(cuda_err)?;
        let name = ctx.name().map_err(cuda_err)?;
        let (major, minor) = ctx.compute_capability().map_err(cuda_err)?;
        if major < 8 {
            return Err(cuda_err(format!(
                "{name} has compute capability {major}.{minor}; tensile's kernels need 8.0 (Ampere) or newer"
            )));
        }
        let stream = ctx.default_stream();
        let blas = cudarc::cublas::CudaBlas::new(stream.clone()).map_err(cuda_err)?;
        Ok(Cuda {
            inner: Arc::new(Inner {
                ordinal,
                name,
                arch: arch_name(major, minor),
                stream,
                blas: Mutex::new(blas),
                modules: Mutex::new(HashMap::default()),
                functions: Mutex::new(HashMap::default()),
                host: Cpu::seeded(seed),
            }),
        })
    }

    /// Whether a CUDA device can be opened here; when not, the reason.
    ///
    /// ```
    /// use tensile::prelude::*;
    /// match Cuda::availability() {
    ///     Ok(()) => println!("a GPU is here"),
    ///     Err(why) => println!("skipping the GPU: {why}"),
    /// }
    /// ```
    pub fn availability() -> core::result::Result<(), String> {
        Cuda::try_new(0).map(|_| ()).map_err(|e| e.to_string())
    }

    /// Re-seeds the generator.
    pub fn manual_seed(&self, seed: u64) {
        self.inner.host.manual_seed(seed);
    }

    /// The GPU's name, as the driver gives it.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Waits until every queued kernel and copy has finished (for timing).
    pub fn synchronize(&self) {
        check(self.inner.stream.synchronize(), "synchronize");
    }

    fn stream(&self) -> &Arc<CudaStream> {
        &self.inner.stream
    }

    /// The kernel `name` from `file`, compiled for this GPU on first use.
    fn function(&self, file: KernelFile, name: &str) -> CudaFunction {
        if let Some(f) = self.inner.functions.lock().get(name) {
            return f.clone();
        }
        let module = {
            let mut modules = self.inner.modules.lock();
            match modules.get(&file) {
                Some(m) => m.clone(),
                None => {
                    let ptx = compile(file, self.inner.arch).unwrap_or_else(|e| panic!("{e}"));
                    let m = check(self.stream().context().load_module(ptx), "load_module");
                    modules.insert(file, m.clone());
                    m
                }
            }
        };
        let f = check(module.load_function(name), name);
        self.inner.functions.lock().insert(name.into(), f.clone());
        f
    }

    fn alloc<E: Dtype>(&self, len: usize) -> CudaStorage<E> {
        // Zero bytes cannot be allocated; an empty tensor keeps one unused byte.
        let bytes = check(self.stream().alloc_zeros::<u8>((len * E::BYTES).max(1)), "alloc");
        CudaStorage { bytes, len, _e: PhantomData }
    }

    fn download_to_host<E: Dtype>(&self, s: &CudaStorage<E>) -> <Cpu as Device>::Storage<E> {
        self.inner.host.upload(self.download(s, &contiguous_of(s.len)))
    }

    fn upload_from_host<E: Dtype>(&self, s: &<Cpu as Device>::Storage<E>) -> CudaStorage<E> {
        self.upload(s.as_slice().to_vec())
    }

    /// Copies a host result over an existing device buffer of the same length.
    fn write_back<E: Dtype>(&self, s: &<Cpu as Device>::Storage<E>, dst: &mut CudaStorage<E>) {
        assert_eq!(s.as_slice().len(), dst.len, "write_back: lengths differ");
        let mut bytes = Vec::with_capacity(dst.len * E::BYTES);
        s.as_slice().iter().for_each(|v| v.put_le(&mut bytes));
        check(self.stream().memcpy_htod(&bytes, &mut dst.bytes.slice_mut(..bytes.len())), "memcpy_htod");
    }

    /// `Err` (as the CPU kernel) unless every class index is in `0..classes`: checked on the host,
    /// since the kernels index with them.
    fn check_targets<I: IndexDtype>(&self, target: &CudaStorage<I>, classes: usize) -> Result<()> {
        for t in self.download(target, &contiguous_of(target.len)) {
            match t.to_index() {
                Some(i) if i < classes => {}
                _ => {
                    return Err(Error::IndexOutOfRange {
                        op: "cross_entropy",
                        index: t.as_f64() as i64,
                        size: classes,
                    });
                }
            }
        }
        Ok(())
    }

    /// `dst[view] = src[view]` (or `+=`) with both views strided.
    fn strided_copy<E: Dtype>(
        &self,
        src: &CudaStorage<E>,
        sl: &Layout,
        dst: &mut CudaStorage<E>,
        dl: &Layout,
        add: bool,
    ) {
        let n = sl.numel();
        if n == 0 {
            return;
        }
        let kind = if add { "strided_add" } else { "strided_copy" };
        let f = self.function(KernelFile::Elementwise, &kernel_name(kind, E::DTYPE));
        let (sk, dk) = (KLayout::from(sl), KLayout::from(dl));
        let n_64 = n as i64;
        let mut b = self.stream().launch_builder(&f);
        b.arg(&src.bytes).arg(&sk).arg(&mut dst.bytes).arg(&dk).arg(&n_64);
        // SAFETY: the kernel reads `n` elements of `src` through `sl` and writes `n` of `dst`
        // through `dl`; both layouts were checked against their buffers by the typed front end.
        check(unsafe { b.launch(elementwise_config(n)) }, kind);
    }
}

/// cudarc's `CompileOptions::arch` takes a `&'static str`: the common architectures are
/// spelled out, any other is leaked once per device opened.
fn arch_name(major: i32, minor: i32) -> &'static str {
    match (major, minor) {
        (8, 0) => "sm_80",
        (8, 6) => "sm_86",
        (8, 7) => "sm_87",
        (8, 9) => "sm_89",
        (9, 0) => "sm_90",
        (10, 0) => "sm_100",
        (12, 0) => "sm_120",
        _ => Box::leak(format!("sm_{major}{minor}").into_boxed_str()),
    }
}

/// Compiles a kernel file with NVRTC to PTX for `arch` (`"sm_80"`, `"sm_90"`, ...). Needs
/// only NVRTC (no GPU, no driver): this is what CI runs to check the kernels on machines
/// without a GPU.
///
/// ```
/// use tensile::device::cuda::{compile, KernelFile};
/// match compile(KernelFile::Softmax, "sm_90") {
///     Ok(ptx) => assert!(ptx.to_src().contains(".entry softmax_rows_f32")),
///     Err(e) => println!("{e}"), // no NVRTC on this machine
/// }
/// ```
pub fn compile(file: KernelFile, arch: &'static str) -> Result<cudarc::nvrtc::Ptx> {
    // SAFETY: only tries to dlopen NVRTC.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Err(cuda_err("NVRTC (libnvrtc) was not found; put its directory on LD_LIBRARY_PATH"));
    }
    let opts = cudarc::nvrtc::CompileOptions {
        arch: Some(arch),
        name: Some(file.file_name().into()),
        options: vec!["--std=c++17".into()],
        ..Default::default()
    };
    cudarc::nvrtc::compile_ptx_with_opts(file.program(), opts)
        .map_err(|e| cuda_err(format!("kernels/{} does not compile for {arch}: {e:?}", file.file_name())))
}

/// Unwraps a CUDA result; a failure inside CUDA panics with its message (see the module docs).
fn check<T, E: core::fmt::Debug>(r: core::result::Result<T, E>, what: &str) -> T {
    r.unwrap_or_else(|e| panic!("cuda: {what} failed: {e:?}"))
}

fn dtype_suffix(d: DType) -> &'static str {
    match d {
        DType::F32 => "f32",
        DType::F64 => "f64",
        DType::F16 => "f16",
        DType::BF16 => "bf16",
        DType::I64 => "i64",
        DType::I32 => "i32",
        DType::U8 => "u8",
        DType::Bool => "bool",
    }
}

fn kernel_name(kind: &str, d: DType) -> String {
    format!("{kind}_{}", dtype_suffix(d))
}

const BLOCK: u32 = 256;

/// A grid-stride launch over `n` elements.
fn elementwise_config(n: usize) -> LaunchConfig {
    let blocks = n.div_ceil(BLOCK as usize).clamp(1, 1 << 20) as u32;
    LaunchConfig { grid_dim: (blocks, 1, 1), block_dim: (BLOCK, 1, 1), shared_mem_bytes: 0 }
}

/// One block of [`BLOCK`] threads per row.
fn rows_config(rows: usize) -> LaunchConfig {
    LaunchConfig { grid_dim: (rows as u32, 1, 1), block_dim: (BLOCK, 1, 1), shared_mem_bytes: 0 }
}

/// A [`Layout`] as the kernels' `Strided` struct (`kernels/common.cuh`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct KLayout {
    rank: i32,
    pad: i32,
    offset: i64,
    dims: [i64; crate::shapes::MAX_RANK],
    strides: [i64; crate::shapes::MAX_RANK],
}

// SAFETY: `KLayout` is `repr(C)`, plain integers, and matches `Strided` in kernels/common.cuh
// field for field (checked by `klayout_matches_the_cuda_struct`).
unsafe impl DeviceRepr for KLayout {}

impl From<&Layout> for KLayout {
    fn from(l: &Layout) -> Self {
        let mut k =
            KLayout { rank: l.dims.len() as i32, pad: 0, offset: l.offset as i64, dims: [1; 6], strides: [0; 6] };
        for d in 0..l.dims.len() {
            k.dims[d] = l.dims[d] as i64;
            k.strides[d] = l.strides[d] as i64;
        }
        k
    }
}

/// A buffer of `len` elements on a GPU, kept as bytes so that one type serves every dtype.
pub struct CudaStorage<E> {
    bytes: CudaSlice<u8>,
    len: usize,
    _e: PhantomData<fn() -> E>,
}

fn contiguous_of(len: usize) -> Layout {
    Layout::contiguous(crate::shapes::Dims::from_slice(&[len]))
}

impl Device for Cuda {
    type Storage<E: Dtype> = CudaStorage<E>;

    fn storage_len<E: Dtype>(s: &CudaStorage<E>) -> usize {
        s.len
    }

    fn alloc_zeros<E: Dtype>(&self, len: usize) -> CudaStorage<E> {
        self.alloc(len)
    }

    fn alloc_for_overwrite<E: Dtype>(&self, len: usize) -> CudaStorage<E> {
        // SAFETY: the buffer is only read after a kernel has written all of it; device memory
        // is plain bytes, so even a read of stale contents is not undefined behaviour in Rust.
        let bytes = check(unsafe { self.stream().alloc::<u8>((len * E::BYTES).max(1)) }, "alloc");
        CudaStorage { bytes, len, _e: PhantomData }
    }

    fn upload<E: Dtype>(&self, data: Vec<E>) -> CudaStorage<E> {
        let mut out = self.alloc_for_overwrite::<E>(data.len());
        let mut bytes = Vec::with_capacity(data.len() * E::BYTES);
        data.iter().for_each(|v| v.put_le(&mut bytes));
        if !bytes.is_empty() {
            check(self.stream().memcpy_htod(&bytes, &mut out.bytes.slice_mut(..bytes.len())), "memcpy_htod");
        }
        out
    }

    fn download<E: Dtype>(&self, s: &CudaStorage<E>, l: &Layout) -> Vec<E> {
        let n = l.numel();
        if n == 0 {
            return Vec::new();
        }
        let staged;
        let (src, off) = if l.is_contiguous() {
            (s, l.offset)
        } else {
            let mut c = self.alloc_for_overwrite::<E>(n);
            self.strided_copy(s, l, &mut c, &Layout::contiguous(l.dims), false);
            staged = c;
            (&staged, 0)
        };
        let range = off * E::BYTES..(off + n) * E::BYTES;
        let bytes = check(self.stream().clone_dtoh(&src.bytes.slice(range)), "memcpy_dtoh");
        bytes.chunks_exact(E::BYTES).map(E::from_le).collect()
    }

    fn copy_into<E: Float>(
        &self,
        src: &CudaStorage<E>,
        sl: &Layout,
        dst: &mut CudaStorage<E>,
        dl: &Layout,
        accumulate: bool,
    ) {
        assert_eq!(sl.dims, dl.dims, "copy_into: views of different dims");
        self.strided_copy(src, sl, dst, dl, accumulate);
    }

    fn contiguous<E: Dtype>(&self, s: Arc<CudaStorage<E>>, l: &Layout) -> Arc<CudaStorage<E>> {
        if l.is_whole_buffer(s.len) {
            return s;
        }
        let mut out = self.alloc_for_overwrite::<E>(l.numel());
        self.strided_copy(&s, l, &mut out, &Layout::contiguous(l.dims), false);
        Arc::new(out)
    }

    fn cast<A: Dtype, B: Dtype>(&self, s: &CudaStorage<A>, l: &Layout) -> CudaStorage<B> {
        let n = l.numel();
        let mut out = self.alloc_for_overwrite::<B>(n);
        if n == 0 {
            return out;
        }
        let name = format!("cast_{}_{}", dtype_suffix(A::DTYPE), dtype_suffix(B::DTYPE));
        let f = self.function(KernelFile::Elementwise, &name);
        let sl = KLayout::from(l);
        let n_64 = n as i64;
        let mut b = self.stream().launch_builder(&f);
        b.arg(&s.bytes).arg(&sl).arg(&mut out.bytes).arg(&n_64);
        // SAFETY: reads `n` elements of `s` through `l`, writes `n` contiguous ones of `out`.
        check(unsafe { b.launch(elementwise_config(n)) }, &name);
        out
    }

    fn unary<E: Float, O: UnaryOp>(&self, op: &O, x: Arc<CudaStorage<E>>, l: &Layout) -> CudaStorage<E> {
        let n = l.numel();
        let mut out = self.alloc_for_overwrite::<E>(n);
        if n == 0 {
            return out;
        }
        let (code, p0, p1) = kernels::unary_code(&op.to_fn());
        let f = self.function(KernelFile::Elementwise, &kernel_name("unary_fwd", E::DTYPE));
        let xl = KLayout::from(l);
        let n_64 = n as i64;
        let mut b = self.stream().launch_builder(&f);
        b.arg(&code).arg(&p0).arg(&p1).arg(&x.bytes).arg(&xl).arg(&mut out.bytes).arg(&n_64);
        // SAFETY: reads `n` elements of `x` through `l`, writes `n` contiguous ones of `out`.
        check(unsafe { b.launch(elementwise_config(n)) }, O::NAME);
        out
    }

    fn unary_backward<E: Float, O: UnaryOp>(
        &self,
        op: &O,
        x: &CudaStorage<E>,
        l: &Layout,
        y: &CudaStorage<E>,
        gy: &CudaStorage<E>,
        gx: &mut CudaStorage<E>,
        accumulate: bool,
    ) {
        let n = l.numel();
        if n == 0 {
            return;
        }
        let (code, p0, p1) = kernels::unary_code(&op.to_fn());
        let acc = accumulate as i32;
        let f = self.function(KernelFile::Elementwise, &kernel_name("unary_bwd", E::DTYPE));
        let xl = KLayout::from(l);
        let n_64 = n as i64;
        let mut b = self.stream().launch_builder(&f);
        b.arg(&code).arg(&p0).arg(&p1).arg(&x.bytes).arg(&xl).arg(&y.bytes).arg(&gy.bytes).arg(&mut gx.bytes);
        b.arg(&acc).arg(&n_64);
        // SAFETY: `y`, `gy` and `gx` hold `n` contiguous elements (the trait's contract).
        check(unsafe { b.launch(elementwise_config(n)) }, O::NAME);
    }

    fn binary<E: Float, O: BinaryOp>(
        &self,
        _op: &O,
        a: Arc<CudaStorage<E>>,
        al: &Layout,
        b: Arc<CudaStorage<E>>,
        bl: &Layout,
    ) -> CudaStorage<E> {
        let n = al.numel();
        let mut out = self.alloc_for_overwrite::<E>(n);
        if n == 0 {
            return out;
        }
        let code = kernels::binary_code(O::FN);
        let f = self.function(KernelFile::Elementwise, &kernel_name("binary_fwd", E::DTYPE));
        let (ak, bk) = (KLayout::from(al), KLayout::from(bl));
        let n_64 = n as i64;
        let mut lb = self.stream().launch_builder(&f);
        lb.arg(&code).arg(&a.bytes).arg(&ak).arg(&b.bytes).arg(&bk).arg(&mut out.bytes).arg(&n_64);
        // SAFETY: reads `n` elements of each input through its layout, writes `n` of `out`.
        check(unsafe { lb.launch(elementwise_config(n)) }, O::NAME);
        out
    }

    fn binary_backward<E: Float, O: BinaryOp>(
        &self,
        _op: &O,
        a: &CudaStorage<E>,
        al: &Layout,
        b: &CudaStorage<E>,
        bl: &Layout,
        gy: &CudaStorage<E>,
        ga: Option<&mut CudaStorage<E>>,
        gb: Option<&mut CudaStorage<E>>,
        accumulate: [bool; 2],
    ) {
        let n = al.numel();
        if n == 0 || (ga.is_none() && gb.is_none()) {
            return;
        }
        let code = kernels::binary_code(O::FN);
        let f = self.function(KernelFile::Elementwise, &kernel_name("binary_bwd", E::DTYPE));
        let (ak, bk) = (KLayout::from(al), KLayout::from(bl));
        let null: u64 = 0;
        let n_64 = n as i64;
        let mut lb = self.stream().launch_builder(&f);
        lb.arg(&code).arg(&a.bytes).arg(&ak).arg(&b.bytes).arg(&bk).arg(&gy.bytes);
        match ga {
            Some(g) => lb.arg(&mut g.bytes),
            None => lb.arg(&null),
        };
        match gb {
            Some(g) => lb.arg(&mut g.bytes),
            None => lb.arg(&null),
        };
        let (acc_a, acc_b) = (accumulate[0] as i32, accumulate[1] as i32);
        lb.arg(&acc_a).arg(&acc_b).arg(&n_64);
        // SAFETY: `gy`, `ga` and `gb` hold `n` contiguous elements; a null gradient is skipped
        // by the kernel.
        check(unsafe { lb.launch(elementwise_config(n)) }, O::NAME);
    }

    fn reduce<E: Float>(&self, kind: ReduceKind, x: &CudaStorage<E>, l: &Layout, axes: &[usize]) -> CudaStorage<E> {
        let rank = l.dims.len();
        let kept: Vec<usize> = (0..rank).filter(|d| !axes.contains(d)).collect();
        let out_len: usize = kept.iter().map(|&d| l.dims[d]).product();
        let len: usize = axes.iter().map(|&d| l.dims[d]).product();
        let mut out = self.alloc_for_overwrite::<E>(out_len);
        if out_len == 0 {
            return out;
        }
        // Kept axes first, reduced ones last: output `o` reduces elements `o*len..(o+1)*len`.
        let order: Vec<usize> = kept.iter().chain(axes).copied().collect();
        let xl = KLayout::from(&l.permuted(&order));
        let f = self.function(KernelFile::Reduce, &kernel_name("reduce", E::DTYPE));
        let code: i32 = match kind {
            ReduceKind::Sum => 0,
            ReduceKind::Max => 1,
            ReduceKind::Min => 2,
        };
        let len_64 = len as i64;
        let mut b = self.stream().launch_builder(&f);
        b.arg(&code).arg(&x.bytes).arg(&xl).arg(&len_64).arg(&mut out.bytes);
        // SAFETY: one block per output; each reads `len` elements of `x` through the permuted
        // view of `l` and writes its own element of `out`.
        check(unsafe { b.launch(rows_config(out_len)) }, "reduce");
        out
    }

    fn reduce_backward<E: Float>(
        &self,
        kind: ReduceKind,
        x: &CudaStorage<E>,
        l: &Layout,
        axes: &[usize],
        y: &CudaStorage<E>,
        gy: &CudaStorage<E>,
        gx: &mut CudaStorage<E>,
        accumulate: bool,
    ) {
        let n = l.numel();
        if n == 0 {
            return;
        }
        let kept: Vec<usize> = (0..l.dims.len()).filter(|d| !axes.contains(d)).map(|d| l.dims[d]).collect();
        let yb = Layout::contiguous(crate::shapes::Dims::from_slice(&kept)).broadcast(l.dims, axes);
        let c = Layout::contiguous(l.dims);
        match kind {
            ReduceKind::Sum => self.strided_copy(gy, &yb, gx, &c, accumulate),
            ReduceKind::Max | ReduceKind::Min => {
                // As PyTorch's amax/amin: the gradient is shared evenly between tied extrema.
                let mut mask = self.alloc_for_overwrite::<E>(n);
                let (xk, yk) = (KLayout::from(l), KLayout::from(&yb));
                let f = self.function(KernelFile::Reduce, &kernel_name("extremum_mask", E::DTYPE));
                let n_64 = n as i64;
                let mut b = self.stream().launch_builder(&f);
                b.arg(&x.bytes).arg(&xk).arg(&y.bytes).arg(&yk).arg(&mut mask.bytes).arg(&n_64);
                // SAFETY: reads `n` elements of `x` and of `y` broadcast, writes `n` of `mask`.
                check(unsafe { b.launch(elementwise_config(n)) }, "extremum_mask");
                let counts = self.reduce(ReduceKind::Sum, &mask, &c, axes);
                let f = self.function(KernelFile::Reduce, &kernel_name("extremum_grad", E::DTYPE));
                let (acc, n_64) = (accumulate as i32, n as i64);
                let mut b = self.stream().launch_builder(&f);
                b.arg(&mask.bytes).arg(&gy.bytes).arg(&counts.bytes).arg(&yk).arg(&mut gx.bytes).arg(&acc).arg(&n_64);
                // SAFETY: `mask` and `gx` hold `n` contiguous elements; `gy` and `counts` are
                // read through the broadcast view `yk` of their kept dims.
                check(unsafe { b.launch(elementwise_config(n)) }, "extremum_grad");
            }
        }
    }

    fn matmul<E: Float>(
        &self,
        a: &CudaStorage<E>,
        al: &Layout,
        b: &CudaStorage<E>,
        bl: &Layout,
        c: &mut CudaStorage<E>,
        cl: &Layout,
        accumulate: bool,
    ) {
        blas::matmul(self, a, al, b, bl, c, cl, accumulate);
    }

    fn compare<E: Dtype, O: CmpOp>(
        &self,
        _op: &O,
        a: &CudaStorage<E>,
        al: &Layout,
        b: &CudaStorage<E>,
        bl: &Layout,
    ) -> CudaStorage<bool> {
        let n = al.numel();
        let mut out = self.alloc_for_overwrite::<bool>(n);
        if n == 0 {
            return out;
        }
        let code = kernels::cmp_code(O::FN);
        let f = self.function(KernelFile::Elementwise, &kernel_name("compare", E::DTYPE));
        let (ak, bk) = (KLayout::from(al), KLayout::from(bl));
        let n_64 = n as i64;
        let mut lb = self.stream().launch_builder(&f);
        lb.arg(&code).arg(&a.bytes).arg(&ak).arg(&b.bytes).arg(&bk).arg(&mut out.bytes).arg(&n_64);
        // SAFETY: reads `n` elements of each input through its layout, writes `n` bools.
        check(unsafe { lb.launch(elementwise_config(n)) }, O::NAME);
        out
    }

    fn select_where<E: Dtype>(
        &self,
        cond: &CudaStorage<bool>,
        cl: &Layout,
        a: &CudaStorage<E>,
        al: &Layout,
        b: &CudaStorage<E>,
        bl: &Layout,
    ) -> CudaStorage<E> {
        let n = al.numel();
        let mut out = self.alloc_for_overwrite::<E>(n);
        if n == 0 {
            return out;
        }
        let f = self.function(KernelFile::Elementwise, &kernel_name("where", E::DTYPE));
        let (ck, ak, bk) = (KLayout::from(cl), KLayout::from(al), KLayout::from(bl));
        let n_64 = n as i64;
        let mut lb = self.stream().launch_builder(&f);
        lb.arg(&cond.bytes).arg(&ck).arg(&a.bytes).arg(&ak).arg(&b.bytes).arg(&bk).arg(&mut out.bytes);
        lb.arg(&n_64);
        // SAFETY: reads `n` elements of each input through its layout, writes `n` of `out`.
        check(unsafe { lb.launch(elementwise_config(n)) }, "where");
        out
    }

    fn softmax_rows<E: Float>(&self, x: &CudaStorage<E>, l: &Layout, log: bool) -> CudaStorage<E> {
        assert!(l.is_contiguous(), "softmax_rows: the view must be contiguous");
        let n = l.numel();
        let row = l.dims.as_slice().last().copied().unwrap_or(1);
        let mut out = self.alloc_for_overwrite::<E>(n);
        if n == 0 {
            return out;
        }
        let xs = x.bytes.slice(l.offset * E::BYTES..(l.offset + n) * E::BYTES);
        let f = self.function(KernelFile::Softmax, &kernel_name("softmax_rows", E::DTYPE));
        let row_64 = row as i64;
        let log_32 = log as i32;
        let mut b = self.stream().launch_builder(&f);
        b.arg(&xs).arg(&mut out.bytes).arg(&row_64).arg(&log_32);
        // SAFETY: one block per `row`-long row of the `n` contiguous elements.
        check(unsafe { b.launch(rows_config(n / row)) }, "softmax");
        out
    }

    fn softmax_rows_backward<E: Float>(
        &self,
        y: &CudaStorage<E>,
        gy: &CudaStorage<E>,
        gx: &mut CudaStorage<E>,
        row: usize,
        log: bool,
        accumulate: bool,
    ) {
        let n = y.len;
        if n == 0 {
            return;
        }
        let f = self.function(KernelFile::Softmax, &kernel_name("softmax_rows_bwd", E::DTYPE));
        let row_64 = row as i64;
        let (log_32, acc) = (log as i32, accumulate as i32);
        let mut b = self.stream().launch_builder(&f);
        b.arg(&y.bytes).arg(&gy.bytes).arg(&mut gx.bytes).arg(&row_64).arg(&log_32).arg(&acc);
        // SAFETY: `y`, `gy` and `gx` hold the same `n` contiguous elements, rows of `row`.
        check(unsafe { b.launch(rows_config(n / row)) }, "softmax_backward");
    }

    fn conv2d<E: Float>(
        &self,
        x: &CudaStorage<E>,
        w: &CudaStorage<E>,
        g: &ConvGeometry,
        y: &mut CudaStorage<E>,
        accumulate: bool,
    ) {
        self.conv_forward(x, w, g, y, accumulate);
    }

    fn conv2d_input_grad<E: Float>(
        &self,
        gy: &CudaStorage<E>,
        w: &CudaStorage<E>,
        g: &ConvGeometry,
        gx: &mut CudaStorage<E>,
    ) {
        self.conv_input_grad(gy, w, g, gx);
    }

    fn conv2d_weight_grad<E: Float>(
        &self,
        x: &CudaStorage<E>,
        gy: &CudaStorage<E>,
        g: &ConvGeometry,
        gw: &mut CudaStorage<E>,
    ) {
        self.conv_weight_grad(x, gy, g, gw);
    }

    // The kernels below run through the host for now (see the module docs).

    fn max_pool2d<E: Float>(&self, x: &CudaStorage<E>, g: &PoolGeometry) -> (CudaStorage<E>, CudaStorage<i64>) {
        let (y, i) = self.inner.host.max_pool2d(&self.download_to_host(x), g);
        (self.upload_from_host(&y), self.upload_from_host(&i))
    }

    fn max_pool2d_backward<E: Float>(
        &self,
        indices: &CudaStorage<i64>,
        gy: &CudaStorage<E>,
        g: &PoolGeometry,
        gx: &mut CudaStorage<E>,
    ) {
        let mut hx = self.download_to_host(gx);
        self.inner.host.max_pool2d_backward(&self.download_to_host(indices), &self.download_to_host(gy), g, &mut hx);
        self.write_back(&hx, gx);
    }

    fn avg_pool2d<E: Float>(&self, x: &CudaStorage<E>, g: &PoolGeometry, count_include_pad: bool) -> CudaStorage<E> {
        self.upload_from_host(&self.inner.host.avg_pool2d(&self.download_to_host(x), g, count_include_pad))
    }

    fn avg_pool2d_backward<E: Float>(
        &self,
        gy: &CudaStorage<E>,
        g: &PoolGeometry,
        count_include_pad: bool,
        gx: &mut CudaStorage<E>,
    ) {
        let mut hx = self.download_to_host(gx);
        self.inner.host.avg_pool2d_backward(&self.download_to_host(gy), g, count_include_pad, &mut hx);
        self.write_back(&hx, gx);
    }

    fn gather<E: Dtype, I: IndexDtype>(
        &self,
        x: &CudaStorage<E>,
        xl: &Layout,
        index: &CudaStorage<I>,
        il: &Layout,
    ) -> Result<CudaStorage<E>> {
        let y = self.inner.host.gather(&self.download_to_host(x), xl, &self.download_to_host(index), il)?;
        Ok(self.upload_from_host(&y))
    }

    fn scatter_add<E: Float, I: IndexDtype>(
        &self,
        src: &CudaStorage<E>,
        index: &CudaStorage<I>,
        il: &Layout,
        dst: &mut CudaStorage<E>,
        n: usize,
    ) -> Result<()> {
        let mut hd = self.download_to_host(dst);
        self.inner.host.scatter_add(&self.download_to_host(src), &self.download_to_host(index), il, &mut hd, n)?;
        self.write_back(&hd, dst);
        Ok(())
    }

    fn topk_indices<E: Float>(&self, x: &CudaStorage<E>, xl: &Layout, k: usize, largest: bool) -> CudaStorage<i64> {
        self.upload_from_host(&self.inner.host.topk_indices(&self.download_to_host(x), xl, k, largest))
    }

    fn scan<E: Float>(&self, kind: ScanKind, x: &CudaStorage<E>, dims: [usize; 3], reverse: bool) -> CudaStorage<E> {
        self.upload_from_host(&self.inner.host.scan(kind, &self.download_to_host(x), dims, reverse))
    }

    fn cumprod_backward<E: Float>(
        &self,
        x: &CudaStorage<E>,
        y: &CudaStorage<E>,
        gy: &CudaStorage<E>,
        dims: [usize; 3],
        gx: &mut CudaStorage<E>,
    ) {
        let mut hx = self.download_to_host(gx);
        self.inner.host.cumprod_backward(
            &self.download_to_host(x),
            &self.download_to_host(y),
            &self.download_to_host(gy),
            dims,
            &mut hx,
        );
        self.write_back(&hx, gx);
    }

    fn norm_rows<E: Float>(
        &self,
        x: &CudaStorage<E>,
        row: usize,
        eps: f64,
        center: bool,
        w: Option<&CudaStorage<E>>,
        b: Option<&CudaStorage<E>>,
    ) -> (CudaStorage<E>, CudaStorage<f64>) {
        let rows = x.len.checked_div(row).unwrap_or(0);
        let mut y = self.alloc_for_overwrite::<E>(x.len);
        let mut stats = self.alloc_for_overwrite::<f64>(2 * rows);
        if rows == 0 {
            return (y, stats);
        }
        let f = self.function(KernelFile::Norm, &kernel_name("norm_rows", E::DTYPE));
        let (row64, rows64, center32, null) = (row as i64, rows as i64, center as i32, 0u64);
        let mut lb = self.stream().launch_builder(&f);
        lb.arg(&x.bytes).arg(&row64).arg(&rows64).arg(&eps).arg(&center32);
        match w {
            Some(w) => lb.arg(&w.bytes),
            None => lb.arg(&null),
        };
        match b {
            Some(b) => lb.arg(&b.bytes),
            None => lb.arg(&null),
        };
        lb.arg(&mut y.bytes).arg(&mut stats.bytes);
        // SAFETY: one block per `row`-long row of `x` and `y`; `w` and `b` (or null) hold `row`
        // elements, `stats` holds `2 * rows`.
        check(unsafe { lb.launch(rows_config(rows)) }, "norm_rows");
        (y, stats)
    }

    fn norm_rows_backward<E: Float>(
        &self,
        x: &CudaStorage<E>,
        row: usize,
        center: bool,
        stats: &CudaStorage<f64>,
        w: Option<&CudaStorage<E>>,
        gy: &CudaStorage<E>,
        gx: &mut CudaStorage<E>,
        accumulate: [bool; 3],
        gw: Option<&mut CudaStorage<E>>,
        gb: Option<&mut CudaStorage<E>>,
    ) {
        let rows = x.len.checked_div(row).unwrap_or(0);
        if rows == 0 {
            return;
        }
        let (row64, rows64, center32, null) = (row as i64, rows as i64, center as i32, 0u64);
        let f = self.function(KernelFile::Norm, &kernel_name("norm_rows_bwd", E::DTYPE));
        let mut lb = self.stream().launch_builder(&f);
        lb.arg(&x.bytes).arg(&row64).arg(&rows64).arg(&center32).arg(&stats.bytes);
        match w {
            Some(w) => lb.arg(&w.bytes),
            None => lb.arg(&null),
        };
        let [acc_x, acc_w, acc_b] = accumulate.map(i32::from);
        lb.arg(&gy.bytes).arg(&mut gx.bytes).arg(&acc_x);
        // SAFETY: one block per row of `x`, `gy` and `gx`; `stats` holds `2 * rows`.
        check(unsafe { lb.launch(rows_config(rows)) }, "norm_rows_backward");
        if gw.is_none() && gb.is_none() {
            return;
        }
        let f = self.function(KernelFile::Norm, &kernel_name("norm_params_bwd", E::DTYPE));
        let mut lb = self.stream().launch_builder(&f);
        lb.arg(&x.bytes).arg(&row64).arg(&rows64).arg(&stats.bytes).arg(&gy.bytes);
        match gw {
            Some(g) => lb.arg(&mut g.bytes),
            None => lb.arg(&null),
        };
        match gb {
            Some(g) => lb.arg(&mut g.bytes),
            None => lb.arg(&null),
        };
        lb.arg(&acc_w).arg(&acc_b);
        // SAFETY: one thread per column; `gw` and `gb` (or null) hold `row` elements.
        check(unsafe { lb.launch(elementwise_config(row)) }, "norm_params_backward");
    }

    fn cross_entropy_rows<E: Float, I: IndexDtype>(
        &self,
        x: &CudaStorage<E>,
        row: usize,
        target: &CudaStorage<I>,
    ) -> Result<(CudaStorage<E>, CudaStorage<f64>)> {
        let rows = target.len;
        self.check_targets(target, row)?;
        let (mut loss, mut lse) = (self.alloc_for_overwrite::<E>(rows), self.alloc_for_overwrite::<f64>(rows));
        if rows == 0 {
            return Ok((loss, lse));
        }
        let name = format!("cross_entropy_{}_{}", dtype_suffix(E::DTYPE), dtype_suffix(I::DTYPE));
        let f = self.function(KernelFile::Loss, &name);
        let row64 = row as i64;
        let mut lb = self.stream().launch_builder(&f);
        lb.arg(&x.bytes).arg(&row64).arg(&target.bytes).arg(&mut loss.bytes).arg(&mut lse.bytes);
        // SAFETY: one block per row of `x`; every target was checked to be in `0..row`.
        check(unsafe { lb.launch(rows_config(rows)) }, "cross_entropy");
        Ok((loss, lse))
    }

    fn cross_entropy_rows_backward<E: Float, I: IndexDtype>(
        &self,
        x: &CudaStorage<E>,
        row: usize,
        target: &CudaStorage<I>,
        lse: &CudaStorage<f64>,
        gy: &CudaStorage<E>,
        gx: &mut CudaStorage<E>,
        accumulate: bool,
    ) -> Result<()> {
        let rows = target.len;
        self.check_targets(target, row)?;
        if rows == 0 {
            return Ok(());
        }
        let name = format!("cross_entropy_bwd_{}_{}", dtype_suffix(E::DTYPE), dtype_suffix(I::DTYPE));
        let f = self.function(KernelFile::Loss, &name);
        let (row64, acc) = (row as i64, accumulate as i32);
        let mut lb = self.stream().launch_builder(&f);
        lb.arg(&x.bytes).arg(&row64).arg(&target.bytes).arg(&lse.bytes).arg(&gy.bytes).arg(&mut gx.bytes).arg(&acc);
        // SAFETY: one block per row of `x` and `gx`; every target was checked to be in `0..row`.
        check(unsafe { lb.launch(rows_config(rows)) }, "cross_entropy_backward");
        Ok(())
    }

    fn sample_uniform<E: Float>(&self, len: usize, lo: f64, hi: f64) -> CudaStorage<E> {
        self.upload_from_host(&self.inner.host.sample_uniform::<E>(len, lo, hi))
    }

    fn sample_normal<E: Float>(&self, len: usize, mean: f64, std: f64) -> CudaStorage<E> {
        self.upload_from_host(&self.inner.host.sample_normal::<E>(len, mean, std))
    }

    fn fused_update<E: Float, R: crate::optim::UpdateRule>(
        &self,
        rule: &R,
        param: &mut CudaStorage<E>,
        grad: &CudaStorage<E>,
        state: &mut [CudaStorage<E::Acc>],
        master: Option<&mut CudaStorage<E::Acc>>,
    ) {
        let mut hp = self.download_to_host(param);
        let mut hs: Vec<_> = state.iter().map(|s| self.download_to_host(s)).collect();
        let mut hm = master.as_ref().map(|m| self.download_to_host(m));
        self.inner.host.fused_update(rule, &mut hp, &self.download_to_host(grad), &mut hs, hm.as_mut());
        self.write_back(&hp, param);
        for (h, s) in hs.iter().zip(state.iter_mut()) {
            self.write_back(h, s);
        }
        if let (Some(h), Some(m)) = (hm, master) {
            self.write_back(&h, m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn klayout_matches_the_cuda_struct() {
        // `Strided` in kernels/common.cuh: int rank; int pad; i64 offset; i64 dims[6]; i64 strides[6].
        assert_eq!(core::mem::size_of::<KLayout>(), 4 + 4 + 8 + 8 * 6 + 8 * 6);
        assert_eq!(core::mem::align_of::<KLayout>(), 8);
        let src = include_str!("../../../kernels/common.cuh");
        assert!(src.contains("#define MAX_RANK 6") && crate::shapes::MAX_RANK == 6);
    }

    #[test]
    fn without_a_driver_try_new_is_an_err_not_a_panic() {
        if missing_library().is_some() {
            let e = Cuda::try_new(0).unwrap_err();
            assert!(matches!(e, Error::Device { device: "cuda", .. }), "{e}");
        }
    }
}
