//! Prefill products on tensor cores through cuBLAS: `out = x · Wᵀ` with the weight dequantized
//! to f16 one chunk of output rows at a time into planned scratch, the input converted to f16
//! once, and f32 accumulation and output (`cublasGemmEx`, `CUBLAS_COMPUTE_32F`).
//!
//! Scratch (from the plan, see [`scratch_bytes`]): the f16 input, `rows × k`, then one f16
//! weight chunk of [`chunk_rows`] rows. The chunk is sized by a byte budget, not by the weight,
//! because the planner asks for scratch by `(type, k, rows)` only, and a whole f16 copy of an
//! output layer (150k × 4096) would be over a GiB.
//!
//! cuBLAS's own workspace and handle state are runtime memory outside the plan (reported by
//! the backend's runtime term).

use std::ffi::c_void;

use cudarc::cublas::{result as blas, sys as blas_sys};
use formats::GgmlType;
use turbine_core::CoreError;

use crate::buffer::{weight_kernel_suffix, CudaBuffer, CudaWeight};
use crate::compile;
use crate::device::{cuda_err, Arg, Device};

/// Most bytes one f16 weight chunk may take.
const CHUNK_BUDGET: usize = 64 << 20;
const EW_THREADS: u32 = 256;

/// Output rows per dequantized chunk for inner dimension `k` (a multiple of 128, at least 128).
pub fn chunk_rows(k: usize) -> usize {
    ((CHUNK_BUDGET / (2 * k.max(1))) / 128 * 128).max(128)
}

fn align256(n: usize) -> usize {
    n.div_ceil(256) * 256
}

/// True where this path serves a weight of `ty` with inner dimension `k`.
pub fn serves(ty: GgmlType, k: usize) -> bool {
    // f32 weights keep the exact f32 tiled kernel; the f16 path decodes 8 values at a time.
    ty != GgmlType::F32 && k.is_multiple_of(32) && weight_kernel_suffix(ty).is_some()
}

/// Scratch bytes of one product of `rows` input rows with inner dimension `k`.
pub fn scratch_bytes(k: usize, rows: usize) -> u64 {
    (align256(rows * k * 2) + chunk_rows(k) * k * 2) as u64
}

/// A cuBLAS handle bound to the model's stream.
pub struct Blas {
    handle: blas_sys::cublasHandle_t,
}

// SAFETY: the handle is only used on the backend's single stream, by one thread at a time
// (the backend's operations take `&self` but a model runs one forward at a time).
unsafe impl Send for Blas {}
// SAFETY: as above.
unsafe impl Sync for Blas {}

impl Blas {
    /// `None` where libcublas cannot be loaded (the tiled kernel serves everything then).
    pub fn new(dev: &Device) -> Result<Option<Blas>, CoreError> {
        // SAFETY: only tries to dlopen the library.
        if !unsafe { blas_sys::is_culib_present() } {
            return Ok(None);
        }
        dev.bind("cuBLAS init")?;
        let handle = blas::create_handle().map_err(|e| cuda_err("cuBLAS create", e))?;
        // SAFETY: live handle; the stream outlives the backend's Blas (both in the backend).
        unsafe { blas::set_stream(handle, dev.stream.cu_stream() as blas_sys::cudaStream_t) }
            .map_err(|e| cuda_err("cuBLAS set stream", e))?;
        Ok(Some(Blas { handle }))
    }

    /// `out[r][o] = Σ_i w[o][i] · x[r][i]` for `rows` rows, through f16 operands in `scratch`.
    pub fn matmul(
        &self,
        dev: &Device,
        w: &CudaWeight,
        x: &CudaBuffer,
        rows: usize,
        out: &mut CudaBuffer,
        scratch: &mut CudaBuffer,
    ) -> Result<(), CoreError> {
        let (k, n_out) = (w.row_len, w.n_rows);
        let xp = x.f32_ptr(rows * k)?;
        let op = out.f32_ptr(rows * n_out)?;
        let need = scratch_bytes(k, rows);
        if (scratch.mem.bytes() as u64) < need {
            return Err(CoreError::BufferTooSmall {
                name: scratch.name.clone(),
                need,
                have: scratch.mem.bytes() as u64,
            });
        }
        let suffix = weight_kernel_suffix(w.ty).ok_or(CoreError::Unsupported {
            op: "matmul",
            ty: w.ty,
            backend: "CUDA",
        })?;
        let x16 = scratch.mem.ptr();
        let w16 = x16 + align256(rows * k * 2) as u64;
        let n = (rows * k) as i64;
        let blocks = (n as usize).div_ceil(EW_THREADS as usize).clamp(1, 1 << 16) as u32;
        let conv = dev.function(&compile::MATMUL, &[], "f32_to_f16")?;
        dev.launch(
            "matmul (f16 input)",
            &conv,
            (blocks, 1, 1),
            EW_THREADS,
            0,
            &[Arg::Ptr(xp), Arg::Ptr(x16), Arg::I64(n)],
        )?;
        let deq = dev.function(&compile::MATMUL, &[], &format!("dequant_f16_{suffix}"))?;
        let chunk = chunk_rows(k);
        let (alpha, beta) = (1.0f32, 0.0f32);
        let mut o0 = 0;
        while o0 < n_out {
            let nc = chunk.min(n_out - o0);
            let threads = nc * k / 8;
            dev.launch(
                "matmul (f16 weights)",
                &deq,
                (threads.div_ceil(EW_THREADS as usize) as u32, 1, 1),
                EW_THREADS,
                0,
                &[
                    Arg::Ptr(w.ptr()),
                    Arg::Ptr(w16),
                    Arg::I32(k as i32),
                    Arg::I32(nc as i32),
                    Arg::I64(w.row_bytes as i64),
                    Arg::I32(o0 as i32),
                ],
            )?;
            // Column-major view: C (nc × rows, ld n_out) = Aᵀ (A: k × nc, ld k) · B (k × rows,
            // ld k), i.e. out[r][o0 + i] = Σ_j w16[i][j] · x16[r][j].
            // SAFETY: the pointers are live device allocations sized above; alpha/beta are
            // host scalars read during the call.
            dev.profiled("matmul (cuBLAS)", || unsafe {
                blas::gemm_ex(
                    self.handle,
                    blas_sys::cublasOperation_t::CUBLAS_OP_T,
                    blas_sys::cublasOperation_t::CUBLAS_OP_N,
                    nc as i32,
                    rows as i32,
                    k as i32,
                    &alpha as *const f32 as *const c_void,
                    w16 as *const c_void,
                    blas_sys::cudaDataType::CUDA_R_16F,
                    k as i32,
                    x16 as *const c_void,
                    blas_sys::cudaDataType::CUDA_R_16F,
                    k as i32,
                    &beta as *const f32 as *const c_void,
                    (op + (o0 * 4) as u64) as *mut c_void,
                    blas_sys::cudaDataType::CUDA_R_32F,
                    n_out as i32,
                    blas_sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
                    blas_sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
                )
                .map_err(|e| cuda_err(&format!("cuBLAS gemm {}", w.name), e))
            })?;
            o0 += nc;
        }
        Ok(())
    }
}

impl Drop for Blas {
    fn drop(&mut self) {
        // SAFETY: created in `new`, destroyed once.
        let _ = unsafe { blas::destroy_handle(self.handle) };
    }
}
