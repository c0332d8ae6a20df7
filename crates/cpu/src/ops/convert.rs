//! f32 ↔ f16 / bf16 conversion of slices (round to nearest even; F16C on the SIMD paths).

use crate::context::Cpu;
use crate::error::{check_len, CpuError};

/// `dst[i] = f16(src[i])` as raw bits.
pub fn f32_to_f16(cpu: &Cpu, src: &[f32], dst: &mut [u16]) -> Result<(), CpuError> {
    check_len("f32_to_f16", "destination length", dst.len(), src.len())?;
    match cpu.simd.avx2() {
        #[cfg(target_arch = "x86_64")]
        Some(t) => avx2::f32_to_f16(t, src, dst),
        _ => {
            for (d, &s) in dst.iter_mut().zip(src) {
                *d = half::f16::from_f32(s).to_bits();
            }
        }
    }
    Ok(())
}

/// `dst[i] = f32(f16 bits src[i])`.
pub fn f16_to_f32(cpu: &Cpu, src: &[u16], dst: &mut [f32]) -> Result<(), CpuError> {
    check_len("f16_to_f32", "destination length", dst.len(), src.len())?;
    match cpu.simd.avx2() {
        #[cfg(target_arch = "x86_64")]
        Some(t) => avx2::f16_to_f32(t, src, dst),
        _ => {
            for (d, &s) in dst.iter_mut().zip(src) {
                *d = half::f16::from_bits(s).to_f32();
            }
        }
    }
    Ok(())
}

/// `dst[i] = bf16(src[i])` as raw bits (round to nearest even, NaN stays NaN).
pub fn f32_to_bf16(src: &[f32], dst: &mut [u16]) -> Result<(), CpuError> {
    check_len("f32_to_bf16", "destination length", dst.len(), src.len())?;
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = half::bf16::from_f32(s).to_bits();
    }
    Ok(())
}

/// `dst[i] = f32(bf16 bits src[i])` (exact).
pub fn bf16_to_f32(src: &[u16], dst: &mut [f32]) -> Result<(), CpuError> {
    check_len("bf16_to_f32", "destination length", dst.len(), src.len())?;
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = f32::from_bits((s as u32) << 16);
    }
    Ok(())
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use crate::path::Avx2;

    pub(super) fn f32_to_f16(t: Avx2, src: &[f32], dst: &mut [u16]) {
        let _ = t;
        assert_eq!(src.len(), dst.len());
        // SAFETY: the token proves F16C/AVX2; equal lengths checked above.
        unsafe { f32_to_f16_impl(src, dst) }
    }

    pub(super) fn f16_to_f32(t: Avx2, src: &[u16], dst: &mut [f32]) {
        let _ = t;
        assert_eq!(src.len(), dst.len());
        // SAFETY: as above.
        unsafe { f16_to_f32_impl(src, dst) }
    }

    /// # Safety
    /// AVX2/F16C supported; `src.len() == dst.len()`.
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn f32_to_f16_impl(src: &[f32], dst: &mut [u16]) {
        let n8 = src.len() / 8 * 8;
        for i in (0..n8).step_by(8) {
            // SAFETY: i + 8 <= len of both.
            unsafe {
                let h = _mm256_cvtps_ph(
                    _mm256_loadu_ps(src.as_ptr().add(i)),
                    _MM_FROUND_TO_NEAREST_INT,
                );
                _mm_storeu_si128(dst.as_mut_ptr().add(i) as *mut __m128i, h);
            }
        }
        for i in n8..src.len() {
            dst[i] = half::f16::from_f32(src[i]).to_bits();
        }
    }

    /// # Safety
    /// AVX2/F16C supported; `src.len() == dst.len()`.
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn f16_to_f32_impl(src: &[u16], dst: &mut [f32]) {
        let n8 = src.len() / 8 * 8;
        for i in (0..n8).step_by(8) {
            // SAFETY: i + 8 <= len of both.
            unsafe {
                let h = _mm_loadu_si128(src.as_ptr().add(i) as *const __m128i);
                _mm256_storeu_ps(dst.as_mut_ptr().add(i), _mm256_cvtph_ps(h));
            }
        }
        for i in n8..src.len() {
            dst[i] = half::f16::from_bits(src[i]).to_f32();
        }
    }
}
