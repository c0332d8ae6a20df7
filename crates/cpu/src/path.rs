//! Which SIMD instruction set the kernels use, chosen once at startup.
//!
//! [`KernelPath::detect`] picks the best path the CPU supports; a caller may ask for a lower
//! one explicitly (configuration, never an environment variable read in here). The capability
//! tokens ([`Avx2`], [`Avx512`]) can only be made after a successful feature check, so every
//! kernel that holds one may call `#[target_feature]` code soundly.

use crate::error::CpuError;

/// The kernel family every op dispatches to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KernelPath {
    /// Portable Rust, the reference every SIMD kernel is tested against.
    Scalar,
    /// AVX2 + FMA + F16C (256-bit).
    Avx2,
    /// AVX-512 F + BW (512-bit) on top of the AVX2 set.
    Avx512,
}

impl KernelPath {
    /// The fastest path this CPU supports.
    pub fn detect() -> KernelPath {
        if Avx512::new().is_some() {
            KernelPath::Avx512
        } else if Avx2::new().is_some() {
            KernelPath::Avx2
        } else {
            KernelPath::Scalar
        }
    }

    /// True when this CPU can run the path.
    pub fn is_supported(self) -> bool {
        match self {
            KernelPath::Scalar => true,
            KernelPath::Avx2 => Avx2::new().is_some(),
            KernelPath::Avx512 => Avx512::new().is_some(),
        }
    }

    /// `requested` if given and supported, the detected best path if not given.
    pub fn resolve(requested: Option<KernelPath>) -> Result<KernelPath, CpuError> {
        match requested {
            None => Ok(KernelPath::detect()),
            Some(p) if p.is_supported() => Ok(p),
            Some(p) => Err(CpuError::PathUnsupported {
                requested: p.name(),
                missing: p.required_features(),
            }),
        }
    }

    /// Lower-case name as used on the command line (`scalar`, `avx2`, `avx512`).
    pub fn name(self) -> &'static str {
        match self {
            KernelPath::Scalar => "scalar",
            KernelPath::Avx2 => "avx2",
            KernelPath::Avx512 => "avx512",
        }
    }

    /// Parse a command-line name (case-insensitive).
    pub fn from_name(name: &str) -> Option<KernelPath> {
        [KernelPath::Scalar, KernelPath::Avx2, KernelPath::Avx512]
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(name))
    }

    fn required_features(self) -> &'static str {
        match self {
            KernelPath::Scalar => "nothing",
            KernelPath::Avx2 => "avx2, fma and f16c",
            KernelPath::Avx512 => "avx512f, avx512bw, avx2, fma and f16c",
        }
    }
}

impl std::fmt::Display for KernelPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Proof that the CPU supports AVX2, FMA and F16C.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx2(());

impl Avx2 {
    pub(crate) fn new() -> Option<Avx2> {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("f16c")
            {
                return Some(Avx2(()));
            }
        }
        None
    }
}

/// Proof that the CPU supports AVX-512 F and BW on top of everything [`Avx2`] needs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx512(());

impl Avx512 {
    pub(crate) fn new() -> Option<Avx512> {
        #[cfg(target_arch = "x86_64")]
        {
            if Avx2::new().is_some()
                && is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
            {
                return Some(Avx512(()));
            }
        }
        None
    }

    /// Every AVX-512 CPU also runs the AVX2 kernels (used for odd tails and small helpers).
    pub(crate) fn avx2(self) -> Avx2 {
        Avx2(())
    }
}
