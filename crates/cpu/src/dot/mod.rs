//! Dot-product kernels: one weight row against up to four activation rows at once (the weight
//! block is unpacked once and reused for every token: register blocking for prefill).
//!
//! Each (weight type, kernel path) pair is a small `Copy` value implementing [`RowDot`]; the
//! matmul driver is generic over it, so the per-row call is direct. SIMD kernel values hold a
//! capability token from `path.rs`, which is what makes calling their `#[target_feature]`
//! code sound.

pub(crate) mod scalar;

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2_float;
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2_kquants;
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2_legacy;
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512_float;
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512_kquants;
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512_legacy;
#[cfg(target_arch = "x86_64")]
mod legacy_formats;
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86_util;

/// `out[t] = weight_row · acts[t]` for `t < NT`, on packed blocks.
pub(crate) trait RowDot: Copy + Send + Sync {
    /// Element type of an activation row: `u8` for packed formats, `f32` for plain rows.
    type Act: Copy + Send + Sync;
    fn dot<const NT: usize>(self, w: &[u8], acts: [&[Self::Act]; NT], out: &mut [f32; NT]);
}

/// A scalar kernel over packed activations.
#[derive(Clone, Copy)]
pub(crate) struct ScalarPacked(pub(crate) fn(&[u8], &[u8]) -> f32);

impl RowDot for ScalarPacked {
    type Act = u8;
    fn dot<const NT: usize>(self, w: &[u8], acts: [&[u8]; NT], out: &mut [f32; NT]) {
        for (o, a) in out.iter_mut().zip(acts) {
            *o = (self.0)(w, a);
        }
    }
}

/// A scalar kernel over plain f32 activations.
#[derive(Clone, Copy)]
pub(crate) struct ScalarF32(pub(crate) fn(&[u8], &[f32]) -> f32);

impl RowDot for ScalarF32 {
    type Act = f32;
    fn dot<const NT: usize>(self, w: &[u8], acts: [&[f32]; NT], out: &mut [f32; NT]) {
        for (o, a) in out.iter_mut().zip(acts) {
            *o = (self.0)(w, a);
        }
    }
}

/// Checks that `w` is whole blocks of `w_block` bytes and every activation row has at least as
/// many blocks of `a_block` elements; returns the block count. SIMD kernels call this before
/// any unchecked load.
#[inline(always)]
#[allow(dead_code)]
pub(crate) fn checked_blocks<A, const NT: usize>(
    w: &[u8],
    w_block: usize,
    acts: &[&[A]; NT],
    a_block: usize,
) -> usize {
    assert!(
        w.len().is_multiple_of(w_block),
        "dot: weight row is not whole blocks"
    );
    let nb = w.len() / w_block;
    for a in acts {
        assert!(a.len() >= nb * a_block, "dot: activation row too short");
    }
    nb
}

/// Declares a SIMD kernel value type wrapping `$func::<NT>` behind capability token `$token`.
#[allow(unused_macros)]
macro_rules! simd_kernel {
    ($name:ident, $token:ty, $func:ident, $act:ty) => {
        #[derive(Clone, Copy)]
        pub(crate) struct $name(pub(crate) $token);

        impl $crate::dot::RowDot for $name {
            type Act = $act;
            #[inline(always)]
            fn dot<const NT: usize>(self, w: &[u8], acts: [&[$act]; NT], out: &mut [f32; NT]) {
                let _ = self.0;
                // SAFETY: holding the token proves the CPU supports the features `$func` is
                // compiled for; `$func` validates all lengths before loading.
                unsafe { $func::<NT>(w, acts, out) }
            }
        }
    };
}
#[allow(unused_imports)]
pub(crate) use simd_kernel;
