//! Matrix products through cuBLAS: row-major `[batch, m, k] x [batch, k, n]` as the
//! column-major product `Cᵀ = Bᵀ Aᵀ`, so that no operand is copied when its rows or its
//! columns are contiguous. f16 and bf16 multiply with f32 accumulation (cudarc's `Gemm`
//! impls use `cublasGemmStridedBatchedEx` with `CUBLAS_COMPUTE_32F` for them).

use super::{Cuda, CudaStorage, check};
use crate::device::{Device, Layout};
use crate::dtypes::{DType, Float};
use cudarc::cublas::sys::cublasOperation_t;
use cudarc::cublas::{Gemm, GemmConfig, StridedBatchedConfig};

/// How a row-major `rows x cols` view with strides `(sr, sc)` is handed to cuBLAS as its
/// transpose in column-major order: `(transpose it, leading dimension)`. `None` when neither
/// its rows nor its columns are contiguous (or a stride is 0): it is copied first.
pub(super) fn operand(rows: usize, cols: usize, sr: usize, sc: usize) -> Option<(bool, usize)> {
    // A single row or column may carry any stride: give it the one that makes it valid.
    let sc = if cols == 1 { 1 } else { sc };
    let sr = if rows == 1 && sc == 1 { cols } else { sr };
    if sc == 1 && sr >= cols.max(1) {
        Some((false, sr))
    } else if sr == 1 && sc >= rows.max(1) {
        Some((true, sc))
    } else {
        None
    }
}

/// A view that cuBLAS can read: the storage and, when it had to be copied, the copy.
struct Operand<'a, E> {
    data: &'a CudaStorage<E>,
    copy: Option<CudaStorage<E>>,
    offset: usize,
    transpose: bool,
    ld: usize,
    batch_stride: usize,
}

impl<'a, E: Float> Operand<'a, E> {
    fn new(dev: &Cuda, s: &'a CudaStorage<E>, l: &Layout) -> Self {
        let (rows, cols) = (l.dims[1], l.dims[2]);
        let batch_stride = if l.dims[0] == 1 { 0 } else { l.strides[0] };
        match operand(rows, cols, l.strides[1], l.strides[2]) {
            Some((transpose, ld)) => Operand { data: s, copy: None, offset: l.offset, transpose, ld, batch_stride },
            None => {
                let c = Layout::contiguous(l.dims);
                let mut copy = dev.alloc_for_overwrite::<E>(l.numel());
                dev.strided_copy(s, l, &mut copy, &c, false);
                let batch_stride = if l.dims[0] == 1 { 0 } else { rows * cols };
                Operand { data: s, copy: Some(copy), offset: 0, transpose: false, ld: cols.max(1), batch_stride }
            }
        }
    }
    fn storage(&self) -> &CudaStorage<E> {
        self.copy.as_ref().unwrap_or(self.data)
    }
}

fn op(transpose: bool) -> cublasOperation_t {
    if transpose { cublasOperation_t::CUBLAS_OP_T } else { cublasOperation_t::CUBLAS_OP_N }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn matmul<E: Float>(
    dev: &Cuda,
    a: &CudaStorage<E>,
    al: &Layout,
    b: &CudaStorage<E>,
    bl: &Layout,
    c: &mut CudaStorage<E>,
    cl: &Layout,
    accumulate: bool,
) {
    let (batch, m, k, n) = (al.dims[0], al.dims[1], al.dims[2], bl.dims[2]);
    if batch * m * n == 0 {
        return;
    }
    // The output must be row-major with unit column stride; anything else goes through a copy.
    let c_ld = if m == 1 { n } else { cl.strides[1] };
    let c_ok = (n == 1 || cl.strides[2] == 1) && c_ld >= n && (batch == 1 || cl.strides[0] >= m * c_ld);
    if !c_ok {
        let cc = Layout::contiguous(cl.dims);
        let mut tmp = dev.alloc(cl.numel());
        if accumulate {
            dev.strided_copy(c, cl, &mut tmp, &cc, false);
        }
        matmul(dev, a, al, b, bl, &mut tmp, &cc, accumulate);
        dev.strided_copy(&tmp, &cc, c, cl, false);
        return;
    }
    let c_batch = if batch == 1 { m * c_ld } else { cl.strides[0] };
    if k == 0 {
        if !accumulate {
            let zeros = dev.alloc::<E>(cl.numel());
            dev.copy_into(&zeros, &Layout::contiguous(cl.dims), c, cl, false);
        }
        return;
    }
    let (oa, ob) = (Operand::new(dev, a, al), Operand::new(dev, b, bl));
    // Column-major: Cᵀ (n x m) = Bᵀ (n x k) · Aᵀ (k x m).
    let cfg = StridedBatchedConfig {
        gemm: GemmConfig {
            transa: op(ob.transpose),
            transb: op(oa.transpose),
            m: n as i32,
            n: m as i32,
            k: k as i32,
            alpha: 1.0f64,
            lda: ob.ld as i32,
            ldb: oa.ld as i32,
            beta: if accumulate { 1.0 } else { 0.0 },
            ldc: c_ld as i32,
        },
        batch_size: batch as i32,
        stride_a: ob.batch_stride as i64,
        stride_b: oa.batch_stride as i64,
        stride_c: c_batch as i64,
    };
    let blas = dev.inner.blas.lock();
    let (sa, sb) = (oa.storage(), ob.storage());
    let (off_a, off_b) = (oa.offset, ob.offset);
    macro_rules! run {
        ($t:ty, $from:expr) => {{
            let cfg = StridedBatchedConfig {
                gemm: GemmConfig { alpha: $from(cfg.gemm.alpha), beta: $from(cfg.gemm.beta), ..map_cfg(cfg.gemm) },
                batch_size: cfg.batch_size,
                stride_a: cfg.stride_a,
                stride_b: cfg.stride_b,
                stride_c: cfg.stride_c,
            };
            let size = core::mem::size_of::<$t>();
            // SAFETY: each view is reinterpreted as the element type it holds (`E` is `$t`,
            // by the dtype match), starting at its layout's offset and running to the end of
            // its buffer; cuBLAS reads and writes only inside the views the layouts describe.
            unsafe {
                let av = sa.bytes.slice(off_a * size..).transmute::<$t>(sa.len - off_a).expect("a view");
                let bv = sb.bytes.slice(off_b * size..).transmute::<$t>(sb.len - off_b).expect("b view");
                let c_len = c.len - cl.offset;
                let mut cs = c.bytes.slice_mut(cl.offset * size..);
                let mut cv = cs.transmute_mut::<$t>(c_len).expect("c view");
                check(blas.gemm_strided_batched(cfg, &bv, &av, &mut cv), "cublas gemm");
            }
        }};
    }
    match E::DTYPE {
        DType::F32 => run!(f32, |v: f64| v as f32),
        DType::F64 => run!(f64, |v: f64| v),
        DType::F16 => run!(half::f16, half::f16::from_f64),
        DType::BF16 => run!(half::bf16, half::bf16::from_f64),
        other => unreachable!("matmul on {other:?}, which is not a float dtype"),
    }
}

/// The integer fields of a config, with the scalars still to be converted.
fn map_cfg<T: Copy + Default>(g: GemmConfig<f64>) -> GemmConfig<T> {
    GemmConfig {
        transa: g.transa,
        transb: g.transb,
        m: g.m,
        n: g.n,
        k: g.k,
        alpha: T::default(),
        lda: g.lda,
        ldb: g.ldb,
        beta: T::default(),
        ldc: g.ldc,
    }
}

#[cfg(test)]
mod tests {
    use super::operand;

    #[test]
    fn operands_are_passed_without_copies_when_rows_or_columns_are_contiguous() {
        assert_eq!(operand(3, 4, 4, 1), Some((false, 4))); // row-major
        assert_eq!(operand(3, 4, 1, 3), Some((true, 3))); // a transposed view
        assert_eq!(operand(3, 4, 8, 1), Some((false, 8))); // rows of a wider buffer
        assert_eq!(operand(1, 4, 0, 1), Some((false, 4))); // one row, any stride
        assert_eq!(operand(3, 1, 1, 0), Some((false, 1))); // one column
        assert_eq!(operand(3, 4, 0, 1), None); // rows broadcast: copied
        assert_eq!(operand(3, 4, 8, 2), None); // every other column: copied
    }
}
