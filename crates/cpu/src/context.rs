//! [`Cpu`]: the thread pool and the kernel path, built once at startup and passed to every op.

use crate::error::CpuError;
use crate::path::{Avx2, Avx512, KernelPath};
use crate::pool::ThreadPool;

/// Start-up configuration of the CPU backend.
#[derive(Clone, Debug, Default)]
pub struct CpuConfig {
    /// Threads per op (`-t`), the calling thread included; 0 means 1.
    pub n_threads: usize,
    /// Force a kernel path (it must be supported); `None` picks the best one.
    pub kernel_path: Option<KernelPath>,
}

/// The kernel path with the capability token that proves it is supported.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Simd {
    Scalar,
    Avx2(Avx2),
    Avx512(Avx512),
}

impl Simd {
    pub(crate) fn for_path(path: KernelPath) -> Result<Simd, CpuError> {
        let token = match path {
            KernelPath::Scalar => Some(Simd::Scalar),
            KernelPath::Avx2 => Avx2::new().map(Simd::Avx2),
            KernelPath::Avx512 => Avx512::new().map(Simd::Avx512),
        };
        match token {
            Some(t) => Ok(t),
            None => {
                Err(KernelPath::resolve(Some(path))
                    .err()
                    .unwrap_or(CpuError::PathUnsupported {
                        requested: path.name(),
                        missing: "a required feature",
                    }))
            }
        }
    }

    /// The AVX2 token when the path is AVX2 or AVX-512 (the AVX-512 path reuses AVX2 code for
    /// small helpers such as activation quantization).
    pub(crate) fn avx2(self) -> Option<Avx2> {
        match self {
            Simd::Scalar => None,
            Simd::Avx2(t) => Some(t),
            Simd::Avx512(t) => Some(t.avx2()),
        }
    }
}

/// The CPU backend: a persistent thread pool plus the kernel path all ops dispatch to.
pub struct Cpu {
    pool: ThreadPool,
    path: KernelPath,
    pub(crate) simd: Simd,
}

impl Cpu {
    /// Starts the pool and settles the kernel path (errors if a forced path is unsupported).
    pub fn new(config: &CpuConfig) -> Result<Cpu, CpuError> {
        let path = KernelPath::resolve(config.kernel_path)?;
        let simd = Simd::for_path(path)?;
        Ok(Cpu {
            pool: ThreadPool::new(config.n_threads)?,
            path,
            simd,
        })
    }

    pub fn path(&self) -> KernelPath {
        self.path
    }

    pub fn pool(&self) -> &ThreadPool {
        &self.pool
    }

    pub fn n_threads(&self) -> usize {
        self.pool.n_threads()
    }
}
