//! Hand-written f32 vector loops for the row kernels of softmax, cross-entropy and the row
//! norms (layer norm, RMS norm).
//!
//! The compiler's own vectorisation of those loops (the generic code in `softmax.rs` compiled
//! for AVX-512F) ran a 4096x1024 softmax about 3x slower than these: it kept the exponential's
//! range reduction scalar-ish and could not fuse the sum into the store. Each loop is written
//! once, generically over [`F32Simd`], and compiled twice (AVX-512F and AVX2 + FMA) by the
//! `#[target_feature]` wrappers at the bottom; tails shorter than a vector run the scalar
//! [`exp_f32`], which computes the same polynomial. Other architectures have no build yet (the
//! dispatch answers `None` and the callers run their generic code), hence the `allow` there.
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code, unused_macros, unused_imports))]

use super::fast_math::{Simd, exp_f32};
#[cfg(target_arch = "x86_64")]
use core::arch::x86_64::*;
use num_traits::Float;

/// The operations the row loops need on one register of f32 lanes. A value of the implementing
/// type is a token: it exists only after the CPU was found to support the instructions, which
/// is what makes the intrinsics inside the methods sound to call.
pub(super) trait F32Simd: Copy {
    /// The register type.
    type V: Copy;
    /// Lanes per register.
    const LANES: usize;
    fn splat(self, v: f32) -> Self::V;
    /// Reads `x[..LANES]` (panics when `x` is shorter).
    fn load(self, x: &[f32]) -> Self::V;
    /// Writes `y[..LANES]` (panics when `y` is shorter).
    fn store(self, y: &mut [f32], v: Self::V);
    fn add(self, a: Self::V, b: Self::V) -> Self::V;
    fn sub(self, a: Self::V, b: Self::V) -> Self::V;
    fn mul(self, a: Self::V, b: Self::V) -> Self::V;
    fn max(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a * b + c`, rounded once.
    fn mul_add(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    fn sum(self, v: Self::V) -> f32;
    fn hmax(self, v: Self::V) -> f32;
    /// `e^v` lane by lane, as [`exp_f32`] (NaN stays NaN).
    fn exp(self, v: Self::V) -> Self::V;
}

/// The polynomial of [`exp_f32`] for `e^r` on `[-ln2/2, ln2/2]`, in vector form.
macro_rules! exp_poly {
    ($fmadd:ident, $mul:ident, $add:ident, $set1:ident, $r:expr) => {{
        let r = $r;
        let mut p = $set1(1.987_569_1e-4);
        p = $fmadd(p, r, $set1(1.398_199_9e-3));
        p = $fmadd(p, r, $set1(8.333_452e-3));
        p = $fmadd(p, r, $set1(4.166_579_6e-2));
        p = $fmadd(p, r, $set1(1.666_666_5e-1));
        p = $fmadd(p, r, $set1(0.5));
        $add($fmadd(p, $mul(r, r), r), $set1(1.0))
    }};
}

const LOG2E: f32 = core::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;

/// Proof that the CPU runs AVX-512F (with AVX2 and FMA).
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub(super) struct Avx512(pub(super) ());

/// Proof that the CPU runs AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub(super) struct Avx2(pub(super) ());

/// Asks for the cache line at `p` to be brought into L1 (`L1`) or L2 (a hint: any address is
/// allowed).
#[inline(always)]
pub(super) fn prefetch<const L1: bool>(p: *const impl Sized) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing the program sees and never faults, whatever the address.
    unsafe {
        use core::arch::x86_64::{_MM_HINT_T0, _MM_HINT_T1, _mm_prefetch};
        if L1 { _mm_prefetch::<_MM_HINT_T0>(p.cast()) } else { _mm_prefetch::<_MM_HINT_T1>(p.cast()) }
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// One lane in plain scalar code, on any CPU: the vector kernels' reference build (tests run
/// it, Miri included, where the CPU or the interpreter has no vector build).
#[derive(Clone, Copy)]
pub(super) struct Scalar;

impl F32Simd for Scalar {
    type V = f32;
    const LANES: usize = 1;
    fn splat(self, v: f32) -> f32 {
        v
    }
    fn load(self, x: &[f32]) -> f32 {
        x[0]
    }
    fn store(self, y: &mut [f32], v: f32) {
        y[0] = v;
    }
    fn add(self, a: f32, b: f32) -> f32 {
        a + b
    }
    fn sub(self, a: f32, b: f32) -> f32 {
        a - b
    }
    fn mul(self, a: f32, b: f32) -> f32 {
        a * b
    }
    fn max(self, a: f32, b: f32) -> f32 {
        a.max(b)
    }
    fn mul_add(self, a: f32, b: f32, c: f32) -> f32 {
        num_traits::Float::mul_add(a, b, c)
    }
    fn sum(self, v: f32) -> f32 {
        v
    }
    fn hmax(self, v: f32) -> f32 {
        v
    }
    fn exp(self, v: f32) -> f32 {
        super::fast_math::exp_f32(v)
    }
}

// SAFETY (every `unsafe` block in the two impls): a token exists only when `Simd::detect`
// reported the features its intrinsics need (see `dispatch`), and the pointer loads and stores
// are preceded by a slice of exactly `LANES` elements, so they stay in bounds.
#[cfg(target_arch = "x86_64")]
impl F32Simd for Avx512 {
    type V = __m512;
    const LANES: usize = 16;
    #[inline(always)]
    fn splat(self, v: f32) -> __m512 {
        unsafe { _mm512_set1_ps(v) }
    }
    #[inline(always)]
    fn load(self, x: &[f32]) -> __m512 {
        let x = &x[..16];
        unsafe { _mm512_loadu_ps(x.as_ptr()) }
    }
    #[inline(always)]
    fn store(self, y: &mut [f32], v: __m512) {
        let y = &mut y[..16];
        unsafe { _mm512_storeu_ps(y.as_mut_ptr(), v) }
    }
    #[inline(always)]
    fn add(self, a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_add_ps(a, b) }
    }
    #[inline(always)]
    fn sub(self, a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_sub_ps(a, b) }
    }
    #[inline(always)]
    fn mul(self, a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_mul_ps(a, b) }
    }
    #[inline(always)]
    fn max(self, a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_max_ps(a, b) }
    }
    #[inline(always)]
    fn mul_add(self, a: __m512, b: __m512, c: __m512) -> __m512 {
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn sum(self, v: __m512) -> f32 {
        unsafe { _mm512_reduce_add_ps(v) }
    }
    #[inline(always)]
    fn hmax(self, v: __m512) -> f32 {
        unsafe { _mm512_reduce_max_ps(v) }
    }
    #[inline(always)]
    fn exp(self, x: __m512) -> __m512 {
        unsafe {
            // `max(lo, x)` and `min(hi, ..)` return their second operand for a NaN, so NaN
            // passes through. Above ln(f32::MAX) the result is infinity and from -104 down to
            // -87.3 a denormal: `scalef` (e * 2^k) rounds both ends. Below -104 (where e^x
            // rounds to 0) the lanes compute e^0 and are zeroed by a mask instead: an underflow
            // inside `scalef` takes a microcode assist, which made a softmax over causally
            // masked (-inf) scores 5x slower.
            let vanish = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, _mm512_set1_ps(-104.0));
            let xc = _mm512_maskz_min_ps(!vanish, _mm512_set1_ps(89.0), _mm512_max_ps(_mm512_set1_ps(-104.0), x));
            let k = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm512_mul_ps(
                xc,
                _mm512_set1_ps(LOG2E),
            ));
            let r = _mm512_fnmadd_ps(k, _mm512_set1_ps(LN2_HI), xc);
            let r = _mm512_fnmadd_ps(k, _mm512_set1_ps(LN2_LO), r);
            let e = exp_poly!(_mm512_fmadd_ps, _mm512_mul_ps, _mm512_add_ps, _mm512_set1_ps, r);
            _mm512_maskz_mov_ps(!vanish, _mm512_scalef_ps(e, k))
        }
    }
}

#[cfg(target_arch = "x86_64")]
impl F32Simd for Avx2 {
    type V = __m256;
    const LANES: usize = 8;
    #[inline(always)]
    fn splat(self, v: f32) -> __m256 {
        unsafe { _mm256_set1_ps(v) }
    }
    #[inline(always)]
    fn load(self, x: &[f32]) -> __m256 {
        let x = &x[..8];
        unsafe { _mm256_loadu_ps(x.as_ptr()) }
    }
    #[inline(always)]
    fn store(self, y: &mut [f32], v: __m256) {
        let y = &mut y[..8];
        unsafe { _mm256_storeu_ps(y.as_mut_ptr(), v) }
    }
    #[inline(always)]
    fn add(self, a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_add_ps(a, b) }
    }
    #[inline(always)]
    fn sub(self, a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_sub_ps(a, b) }
    }
    #[inline(always)]
    fn mul(self, a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_mul_ps(a, b) }
    }
    #[inline(always)]
    fn max(self, a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_max_ps(a, b) }
    }
    #[inline(always)]
    fn mul_add(self, a: __m256, b: __m256, c: __m256) -> __m256 {
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn sum(self, v: __m256) -> f32 {
        let mut lanes = [0f32; 8];
        self.store(&mut lanes, v);
        lanes.iter().sum()
    }
    #[inline(always)]
    fn hmax(self, v: __m256) -> f32 {
        let mut lanes = [0f32; 8];
        self.store(&mut lanes, v);
        lanes.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v))
    }
    #[inline(always)]
    fn exp(self, x: __m256) -> __m256 {
        unsafe {
            // As `exp_f32`: the exponent bits of `shifted` carry k, so 2^k is built with integer
            // adds and a shift; out-of-range inputs are patched afterwards (NaN compares false
            // both ways and stays NaN).
            const ROUND: f32 = 12_582_912.0;
            let xc = _mm256_min_ps(_mm256_set1_ps(88.0), _mm256_max_ps(_mm256_set1_ps(-87.0), x));
            let shifted = _mm256_fmadd_ps(xc, _mm256_set1_ps(LOG2E), _mm256_set1_ps(ROUND));
            let k = _mm256_sub_ps(shifted, _mm256_set1_ps(ROUND));
            let r = _mm256_fnmadd_ps(k, _mm256_set1_ps(LN2_HI), xc);
            let r = _mm256_fnmadd_ps(k, _mm256_set1_ps(LN2_LO), r);
            let e = exp_poly!(_mm256_fmadd_ps, _mm256_mul_ps, _mm256_add_ps, _mm256_set1_ps, r);
            let bits = _mm256_sub_epi32(_mm256_castps_si256(shifted), _mm256_set1_epi32(ROUND.to_bits() as i32));
            let scale = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(bits, _mm256_set1_epi32(127))));
            let y = _mm256_mul_ps(e, scale);
            let low = _mm256_cmp_ps::<_CMP_LT_OQ>(x, _mm256_set1_ps(-87.0));
            let high = _mm256_cmp_ps::<_CMP_GT_OQ>(x, _mm256_set1_ps(88.0));
            let y = _mm256_andnot_ps(low, y);
            _mm256_blendv_ps(y, _mm256_set1_ps(f32::INFINITY), high)
        }
    }
}

/// The row's maximum (a NaN anywhere makes every result below NaN anyway, through the sum).
#[inline(always)]
fn row_max<S: F32Simd>(s: S, x: &[f32]) -> f32 {
    let w = S::LANES;
    let mut acc = [s.splat(f32::NEG_INFINITY); 4];
    let mut blocks = x.chunks_exact(4 * w);
    for b in &mut blocks {
        for (j, a) in acc.iter_mut().enumerate() {
            *a = s.max(*a, s.load(&b[j * w..]));
        }
    }
    let mut rest = blocks.remainder().chunks_exact(w);
    for c in &mut rest {
        acc[0] = s.max(acc[0], s.load(c));
    }
    let m = s.hmax(s.max(s.max(acc[0], acc[1]), s.max(acc[2], acc[3])));
    rest.remainder().iter().fold(m, |m, &v| if v > m || v.is_nan() { v } else { m })
}

/// `Σ e^(x - shift)`, writing each term into `out` when there is one.
#[inline(always)]
fn exp_sum<S: F32Simd>(s: S, x: &[f32], shift: f32, mut out: Option<&mut [f32]>) -> f32 {
    let w = S::LANES;
    let sh = s.splat(shift);
    let mut acc = [s.splat(0.0); 4];
    let full = x.len() / (4 * w) * (4 * w);
    for i in (0..full).step_by(4 * w) {
        for (j, a) in acc.iter_mut().enumerate() {
            let e = s.exp(s.sub(s.load(&x[i + j * w..]), sh));
            if let Some(out) = out.as_deref_mut() {
                s.store(&mut out[i + j * w..], e);
            }
            *a = s.add(*a, e);
        }
    }
    let mut i = full;
    while i + w <= x.len() {
        let e = s.exp(s.sub(s.load(&x[i..]), sh));
        if let Some(out) = out.as_deref_mut() {
            s.store(&mut out[i..], e);
        }
        acc[0] = s.add(acc[0], e);
        i += w;
    }
    let mut total = s.sum(s.add(s.add(acc[0], acc[1]), s.add(acc[2], acc[3])));
    for j in i..x.len() {
        let e = exp_f32(x[j] - shift);
        if let Some(out) = out.as_deref_mut() {
            out[j] = e;
        }
        total += e;
    }
    total
}

/// `y = x - offset`.
#[inline(always)]
fn sub_scalar<S: F32Simd>(s: S, x: &[f32], offset: f32, y: &mut [f32]) {
    let (w, n, o) = (S::LANES, x.len().min(y.len()), s.splat(offset));
    let mut i = 0;
    while i + w <= n {
        s.store(&mut y[i..], s.sub(s.load(&x[i..]), o));
        i += w;
    }
    for j in i..n {
        y[j] = x[j] - offset;
    }
}

/// The shift that keeps `e^(x - shift)` in range; a row without a finite maximum (all `-inf`,
/// or an infinity) shifts by 0 so that the result is NaN as in PyTorch.
#[inline(always)]
fn finite_or_zero(m: f32) -> f32 {
    if m.is_finite() { m } else { 0.0 }
}

#[inline(always)]
fn softmax_row<S: F32Simd>(s: S, x: &[f32], y: &mut [f32], log: bool) {
    let shift = finite_or_zero(row_max(s, x));
    if log {
        let offset = shift + Float::ln(exp_sum(s, x, shift, None));
        sub_scalar(s, x, offset, y);
    } else {
        let inv = exp_sum(s, x, shift, Some(&mut *y)).recip();
        let k = s.splat(inv);
        let mut i = 0;
        while i + S::LANES <= y.len() {
            let v = s.mul(s.load(&y[i..]), k);
            s.store(&mut y[i..], v);
            i += S::LANES;
        }
        y[i..].iter_mut().for_each(|v| *v *= inv);
    }
}

/// `log Σ e^x`, stably.
#[inline(always)]
fn logsumexp_row<S: F32Simd>(s: S, x: &[f32]) -> f32 {
    let shift = finite_or_zero(row_max(s, x));
    shift + Float::ln(exp_sum(s, x, shift, None))
}

/// `gx (+)= g e^(x - lse)`.
#[inline(always)]
fn scaled_softmax_row<S: F32Simd>(s: S, x: &[f32], lse: f32, g: f32, gx: &mut [f32], accumulate: bool) {
    let w = S::LANES;
    let (sh, gv) = (s.splat(lse), s.splat(g));
    let n = x.len().min(gx.len());
    let mut i = 0;
    while i + w <= n {
        let mut v = s.mul(gv, s.exp(s.sub(s.load(&x[i..]), sh)));
        if accumulate {
            v = s.add(v, s.load(&gx[i..]));
        }
        s.store(&mut gx[i..], v);
        i += w;
    }
    for j in i..n {
        let v = g * exp_f32(x[j] - lse);
        gx[j] = if accumulate { gx[j] + v } else { v };
    }
}

/// `Σ_i term(i)` over `0..n` with four running vector sums (so that the additions do not wait
/// on one another): `$vector` gives the terms `$i..$i + LANES`, `$scalar` one term of the tail.
/// A macro, not a function taking closures: a closure does not inherit the `target_feature`s
/// of the build it is inlined into, so the intrinsics inside it would not inline (measured:
/// a layer-norm backward 6x slower).
macro_rules! sum_by {
    ($s:ident, $n:expr, |$i:ident| $vector:expr, |$j:ident| $scalar:expr) => {{
        let (w, n) = (S::LANES, $n);
        let mut acc = [$s.splat(0.0); 4];
        let mut $i = 0;
        while $i + 4 * w <= n {
            let base = $i;
            for (k, a) in acc.iter_mut().enumerate() {
                $i = base + k * w;
                *a = $s.add(*a, $vector);
            }
            $i = base + 4 * w;
        }
        while $i + w <= n {
            acc[0] = $s.add(acc[0], $vector);
            $i += w;
        }
        let mut total = $s.sum($s.add($s.add(acc[0], acc[1]), $s.add(acc[2], acc[3])));
        for $j in $i..n {
            total += $scalar;
        }
        total
    }};
}

/// What every row of a layer norm (or, without centring, an RMS norm) shares: the per-column
/// scale and shift (ones and zeros when the norm has none).
pub(crate) struct RowNorm<'a> {
    pub(crate) w: &'a [f32],
    pub(crate) b: &'a [f32],
    pub(crate) center: bool,
    pub(crate) eps: f32,
}

/// `y = (x - mean) * rstd * w + b`; returns `(mean, rstd)` (mean 0 without centring).
#[inline(always)]
fn norm_row<S: F32Simd>(s: S, p: &RowNorm<'_>, x: &[f32], y: &mut [f32]) -> (f32, f32) {
    let (n, w) = (x.len(), S::LANES);
    let (wv, bv) = (&p.w[..n], &p.b[..n]);
    let mean = if p.center { sum_by!(s, n, |i| s.load(&x[i..]), |j| x[j]) / n as f32 } else { 0.0 };
    let m = s.splat(mean);
    let var = sum_by!(
        s,
        n,
        |i| {
            let d = s.sub(s.load(&x[i..]), m);
            s.mul(d, d)
        },
        |j| (x[j] - mean) * (x[j] - mean)
    ) / n as f32;
    let rstd = Float::sqrt(var + p.eps).recip();
    let r = s.splat(rstd);
    let mut i = 0;
    while i + w <= n {
        let xhat = s.mul(s.sub(s.load(&x[i..]), m), r);
        s.store(&mut y[i..], s.mul_add(xhat, s.load(&wv[i..]), s.load(&bv[i..])));
        i += w;
    }
    for j in i..n {
        y[j] = (x[j] - mean) * rstd * wv[j] + bv[j];
    }
    (mean, rstd)
}

/// What every row of a row norm's backward shares.
pub(crate) struct RowNormGrad<'a> {
    pub(crate) w: &'a [f32],
    pub(crate) center: bool,
    /// Add the input gradient into `gx` (else write it).
    pub(crate) accumulate: bool,
}

/// With `g = gy * w` and `xhat = (x - mean) * rstd`: `gx (+)= rstd * (g - mean(g) - xhat *
/// mean(g * xhat))` (no `mean(g)` without centring), and when `params` is given, this row's
/// terms `gy * xhat` and `gy` added into the scale's and the shift's gradient sums.
#[inline(always)]
fn norm_row_backward<S: F32Simd>(
    s: S,
    p: &RowNormGrad<'_>,
    (x, gy): (&[f32], &[f32]),
    (mean, rstd): (f32, f32),
    gx: &mut [f32],
    params: Option<(&mut [f32], &mut [f32])>,
) {
    let (n, w) = (x.len(), S::LANES);
    let (wv, gy, gx) = (&p.w[..n], &gy[..n], &mut gx[..n]);
    let m = s.splat(mean);
    let sum_g = sum_by!(s, n, |i| s.mul(s.load(&gy[i..]), s.load(&wv[i..])), |j| gy[j] * wv[j]);
    let sum_gx = sum_by!(s, n, |i| s.mul(s.mul(s.load(&gy[i..]), s.load(&wv[i..])), s.sub(s.load(&x[i..]), m)), |j| gy
        [j]
        * wv[j]
        * (x[j] - mean))
        * rstd;
    let mean_g = if p.center { sum_g / n as f32 } else { 0.0 };
    let mean_gx = sum_gx / n as f32;
    let (r, mg, mgx) = (s.splat(rstd), s.splat(mean_g), s.splat(mean_gx));
    // (macros rather than closures: see `sum_by`)
    macro_rules! input_grad {
        ($i:expr, $xhat:expr, $gyv:expr) => {{
            // rstd * (g - mean_g - xhat * mean_gx)
            let inner = s.sub(s.sub(s.mul($gyv, s.load(&wv[$i..])), mg), s.mul($xhat, mgx));
            let v = if p.accumulate { s.mul_add(r, inner, s.load(&gx[$i..])) } else { s.mul(r, inner) };
            s.store(&mut gx[$i..], v);
        }};
    }
    macro_rules! scalar_grad {
        ($j:expr) => {{
            let xhat = (x[$j] - mean) * rstd;
            let v = rstd * (gy[$j] * wv[$j] - mean_g - xhat * mean_gx);
            gx[$j] = if p.accumulate { gx[$j] + v } else { v };
            xhat
        }};
    }
    let mut i = 0;
    match params {
        Some((aw, ab)) => {
            let (aw, ab) = (&mut aw[..n], &mut ab[..n]);
            while i + w <= n {
                let (gyv, xhat) = (s.load(&gy[i..]), s.mul(s.sub(s.load(&x[i..]), m), r));
                input_grad!(i, xhat, gyv);
                let (new_w, new_b) = (s.mul_add(gyv, xhat, s.load(&aw[i..])), s.add(gyv, s.load(&ab[i..])));
                s.store(&mut aw[i..], new_w);
                s.store(&mut ab[i..], new_b);
                i += w;
            }
            for j in i..n {
                let xhat = scalar_grad!(j);
                aw[j] += gy[j] * xhat;
                ab[j] += gy[j];
            }
        }
        None => {
            while i + w <= n {
                let (gyv, xhat) = (s.load(&gy[i..]), s.mul(s.sub(s.load(&x[i..]), m), r));
                input_grad!(i, xhat, gyv);
                i += w;
            }
            for j in i..n {
                scalar_grad!(j);
            }
        }
    }
}

/// Defines the two compiled builds of a row function and its run-time dispatch: `$name(simd,
/// args)` returns `None` when `simd` has no vector build (the caller runs its generic code).
macro_rules! builds {
    ($(#[$doc:meta])* fn $name:ident / $avx512:ident / $avx2:ident => $generic:ident ($($arg:ident: $ty:ty),*) -> $ret:ty) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f,avx2,fma")]
        fn $avx512(s: Avx512, $($arg: $ty),*) -> $ret {
            $generic(s, $($arg),*)
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        fn $avx2(s: Avx2, $($arg: $ty),*) -> $ret {
            $generic(s, $($arg),*)
        }

        $(#[$doc])*
        #[allow(unused_variables)]
        pub(crate) fn $name(simd: Simd, $($arg: $ty),*) -> Option<$ret> {
            match simd {
                // SAFETY: `simd` is no higher than what `Simd::detect` found (the callers'
                // contract), so the CPU has the features these builds are compiled for; the
                // tokens they receive carry that fact into the intrinsics.
                #[cfg(target_arch = "x86_64")]
                Simd::Avx512 => Some(unsafe { $avx512(Avx512(()), $($arg),*) }),
                // SAFETY: as above.
                #[cfg(target_arch = "x86_64")]
                Simd::Avx2 => Some(unsafe { $avx2(Avx2(()), $($arg),*) }),
                _ => None,
            }
        }
    };
}

builds! {
    /// Softmax (or log-softmax) of the f32 row `x` into `y`.
    fn softmax / softmax_avx512 / softmax_avx2 => softmax_row(x: &[f32], y: &mut [f32], log: bool) -> ()
}

builds! {
    /// The log-sum-exp of the f32 row `x`.
    fn logsumexp / logsumexp_avx512 / logsumexp_avx2 => logsumexp_row(x: &[f32]) -> f32
}

builds! {
    /// `gx (+)= g softmax(x)` for the f32 row `x` whose log-sum-exp is `lse`.
    fn scaled_softmax / scaled_softmax_avx512 / scaled_softmax_avx2 =>
        scaled_softmax_row(x: &[f32], lse: f32, g: f32, gx: &mut [f32], accumulate: bool) -> ()
}

builds! {
    /// A layer-norm (or RMS-norm) row of f32 into `y`; returns its `(mean, rstd)`.
    fn norm / norm_avx512 / norm_avx2 => norm_row(p: &RowNorm<'_>, x: &[f32], y: &mut [f32]) -> (f32, f32)
}

builds! {
    /// The backward of [`norm`] for one f32 row (see [`norm_row_backward`]).
    fn norm_backward / norm_backward_avx512 / norm_backward_avx2 => norm_row_backward(
        p: &RowNormGrad<'_>,
        inputs: (&[f32], &[f32]),
        stats: (f32, f32),
        gx: &mut [f32],
        params: Option<(&mut [f32], &mut [f32])>
    ) -> ()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn levels() -> Vec<Simd> {
        [Simd::Avx2, Simd::Avx512].into_iter().filter(|&s| s as u8 <= Simd::detect() as u8).collect()
    }

    /// Every build this CPU runs against the f64 definition, on rows whose lengths exercise
    /// the unrolled blocks, the single registers and the scalar tails, with extreme values.
    #[test]
    fn rows_match_the_definition() {
        for simd in levels() {
            for n in [1usize, 7, 8, 15, 16, 17, 63, 64, 65, 100, 1000] {
                let mut x: Vec<f32> = (0..n).map(|i| ((i * 37) % 23) as f32 / 2.0 - 6.0).collect();
                if n > 5 {
                    (x[1], x[3]) = (-1e30, 80.0);
                }
                let m = x.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
                let sum: f64 = x.iter().map(|&v| (v as f64 - m).exp()).sum();
                let lse = m + sum.ln();
                let mut y = vec![0f32; n];
                softmax(simd, &x, &mut y, false).expect("a vector build");
                let mut ly = vec![0f32; n];
                softmax(simd, &x, &mut ly, true).expect("a vector build");
                let got_lse = logsumexp(simd, &x).expect("a vector build");
                assert!((got_lse as f64 - lse).abs() < 1e-5 * lse.abs().max(1.0), "{simd:?} {n}");
                let mut g = vec![1f32; n];
                scaled_softmax(simd, &x, got_lse, 2.0, &mut g, true).expect("a vector build");
                for (j, &v) in x.iter().enumerate() {
                    let p = (v as f64 - lse).exp();
                    assert!((y[j] as f64 - p).abs() < 1e-6 * p.max(1e-30) + 1e-37, "{simd:?} {n} {j}");
                    assert!((ly[j] as f64 - (v as f64 - lse)).abs() < 1e-5 * (v as f64 - lse).abs().max(1.0));
                    assert!((g[j] as f64 - (1.0 + 2.0 * p)).abs() < 1e-6 * (1.0 + 2.0 * p));
                }
            }
        }
    }

    #[test]
    fn exp_matches_the_scalar_version_and_keeps_nan() {
        for simd in levels() {
            let x: Vec<f32> = (0..4096)
                .map(|i| i as f32 * 0.05 - 110.0)
                .chain([f32::NAN, -1e30, 1e30, f32::NEG_INFINITY, f32::INFINITY])
                .collect();
            let mut y = vec![0f32; x.len()];
            // `scaled_softmax` with lse = 0 and g = 1 is `e^x`
            scaled_softmax(simd, &x, 0.0, 1.0, &mut y, false).expect("a vector build");
            for (&v, &e) in x.iter().zip(&y) {
                let want = (v as f64).exp();
                if v.is_nan() {
                    assert!(e.is_nan());
                } else if v < -104.0 {
                    assert_eq!(e, 0.0, "{simd:?} {v}"); // (-inf included: the masked lanes)
                } else if !(1e-37..=1e38).contains(&want) {
                    assert!(e as f64 <= 1e-37 || e == f32::INFINITY || (e as f64 - want).abs() < 1e-6 * want);
                } else {
                    assert!((e as f64 - want).abs() < 4e-7 * want, "{simd:?} {v}: {e} vs {want}");
                }
            }
        }
    }

    /// The row norms' f32 builds against the generic f64 kernel (layer norm and RMS norm,
    /// written and added, with and without the parameter gradients).
    #[test]
    fn norm_rows_match_the_f64_kernel() {
        use super::super::norm::{norm_rows, norm_rows_backward};
        for simd in levels() {
            for n in [1usize, 7, 16, 17, 64, 65, 100] {
                let rows = 3;
                let x: Vec<f64> = (0..n * rows).map(|i| ((i * 7) % 13) as f64 / 4.0 - 1.5).collect();
                let gy: Vec<f64> = (0..n * rows).map(|i| ((i * 5) % 7) as f64 / 3.0 - 1.0).collect();
                let w: Vec<f64> = (0..n).map(|j| 0.5 + j as f64 / 10.0).collect();
                let b: Vec<f64> = (0..n).map(|j| j as f64 / 20.0).collect();
                let f32s = |v: &[f64]| v.iter().map(|&v| v as f32).collect::<Vec<f32>>();
                let (x32, gy32, w32, b32) = (f32s(&x), f32s(&gy), f32s(&w), f32s(&b));
                let close = |a: f32, b: f64| (a as f64 - b).abs() < 2e-4 * b.abs().max(1.0);
                for center in [true, false] {
                    let (mut y, mut stats) = (vec![0.0; x.len()], vec![0.0; 2 * rows]);
                    norm_rows(&x, n, 1e-5, center, Some(&w), Some(&b), &mut y, &mut stats);
                    let p = RowNorm { w: &w32, b: &b32, center, eps: 1e-5 };
                    for r in 0..rows {
                        let mut y32 = vec![0f32; n];
                        let (mean, rstd) = norm(simd, &p, &x32[r * n..(r + 1) * n], &mut y32).expect("a build");
                        assert!(close(mean, stats[r]) && close(rstd, stats[rows + r]), "{simd:?} {n} {center}");
                        assert!(y32.iter().zip(&y[r * n..]).all(|(&a, &b)| close(a, b)), "{simd:?} {n} {center}");
                    }
                    for accumulate in [false, true] {
                        let (mut gx, mut gw, mut gb) = (vec![0.5; x.len()], vec![0.0; n], vec![0.0; n]);
                        let flags = [accumulate, false, false];
                        norm_rows_backward(
                            &x,
                            n,
                            center,
                            &stats,
                            Some(&w),
                            &gy,
                            &mut gx,
                            flags,
                            Some(&mut gw),
                            Some(&mut gb),
                        );
                        let p = RowNormGrad { w: &w32, center, accumulate };
                        let (mut gw32, mut gb32) = (vec![0f32; n], vec![0f32; n]);
                        let mut gx32 = vec![0.5f32; x.len()];
                        for r in 0..rows {
                            let (rows_in, st) = (
                                (&x32[r * n..(r + 1) * n], &gy32[r * n..(r + 1) * n]),
                                (stats[r] as f32, stats[rows + r] as f32),
                            );
                            let params = Some((&mut gw32[..], &mut gb32[..]));
                            norm_backward(simd, &p, rows_in, st, &mut gx32[r * n..(r + 1) * n], params)
                                .expect("a build");
                        }
                        let all_close = |a: &[f32], b: &[f64]| a.iter().zip(b).all(|(&a, &b)| close(a, b));
                        assert!(
                            all_close(&gx32, &gx) && all_close(&gw32, &gw) && all_close(&gb32, &gb),
                            "{simd:?} {n} {center}"
                        );
                    }
                }
            }
        }
    }
}
