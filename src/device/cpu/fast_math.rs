//! Branch-free approximations that the compiler vectorises, for the hot loops of fused kernels,
//! and the CPU-feature check that picks the AVX2 build of those loops.

/// Whether this CPU can run the AVX2 + FMA builds of the hot loops (with `std` detected at run time, once).
pub(crate) fn has_avx2() -> bool {
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    // Without `std` there is no run-time detection: what the build targets decides.
    #[cfg(not(all(target_arch = "x86_64", feature = "std")))]
    {
        cfg!(all(target_arch = "x86_64", target_feature = "avx2", target_feature = "fma"))
    }
}

/// The widest vector build of a hot loop this CPU runs (the builds that have one).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Simd {
    /// The baseline build (SSE2 on x86-64, or another architecture).
    Baseline,
    /// AVX2 + FMA: 8-wide f32 vectors.
    Avx2,
    /// AVX-512F besides AVX2 + FMA: 16-wide f32 vectors.
    Avx512,
}

impl Simd {
    /// What this CPU supports (with `std` detected at run time, once; without it, what the
    /// build targets).
    pub(crate) fn detect() -> Self {
        if !has_avx2() {
            return Simd::Baseline;
        }
        #[cfg(all(target_arch = "x86_64", feature = "std"))]
        let avx512 = std::arch::is_x86_feature_detected!("avx512f");
        #[cfg(not(all(target_arch = "x86_64", feature = "std")))]
        let avx512 = cfg!(all(target_arch = "x86_64", target_feature = "avx512f"));
        if avx512 { Simd::Avx512 } else { Simd::Avx2 }
    }
}

/// `e^x` in the accumulator type: [`exp_f32`] for f32 (the compiler vectorises it, where
/// libm's `expf` is a call per element), the library's otherwise.
#[inline(always)]
pub(crate) fn exp_acc<A: crate::dtypes::Float>(x: A) -> A {
    if core::any::TypeId::of::<A>() == core::any::TypeId::of::<f32>() {
        A::cast_f32(exp_f32(x.as_f32()))
    } else {
        num_traits::Float::exp(x)
    }
}

/// `e^x` in f32 to about 2 ulp, without a libm call: `x = k ln 2 + r`, a degree-6 polynomial
/// for `e^r` on `[-ln2/2, ln2/2]`, and `2^k` built in the exponent bits. Below the smallest
/// normal result it returns 0 (as `exp(-inf)`), above the largest it returns infinity.
#[inline(always)]
pub(crate) fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = core::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23: adding and subtracting it rounds to an integer
    let xc = x.clamp(-87.0, 88.0);
    let shifted = xc * LOG2E + ROUND;
    let k = shifted - ROUND;
    let r = xc - k * LN2_HI - k * LN2_LO;
    let p = 1.987_569_1e-4_f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let e = (p * r * r + r) + 1.0;
    // `shifted`'s low mantissa bits hold k: integer arithmetic on the bits builds 2^k without a
    // float-to-int conversion, so the whole function stays in vector registers.
    let scale = f32::from_bits(shifted.to_bits().wrapping_sub(ROUND.to_bits()).wrapping_add(127) << 23);
    let y = e * scale;
    if x < -87.0 {
        0.0
    } else if x > 88.0 {
        f32::INFINITY
    } else {
        y
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_f32_is_within_a_few_ulp() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let want = (x as f64).exp();
            let got = exp_f32(x) as f64;
            worst = worst.max(((got - want) / want).abs());
            x += if cfg!(miri) { 0.97 } else { 0.001_3 };
        }
        assert!(worst < 4e-7, "worst relative error {worst}");
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(-100.0), 0.0);
        assert_eq!(exp_f32(100.0), f32::INFINITY);
        assert_eq!(exp_f32(0.0), 1.0);
    }
}
