//! One CUDA device as the backend sees it: the primary context, the one stream every
//! operation of a model runs on, kernels loaded on first use, and plain `cuMemAlloc`
//! allocations (no stream-ordered pools: every byte is a planned buffer).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use cudarc::driver::{
    result as drv, sys as drv_sys, CudaContext, CudaFunction, CudaModule, CudaStream,
};
use cudarc::driver::{LaunchConfig, PushKernelArg};
use cudarc::nvrtc::Ptx;
use turbine_core::CoreError;

use crate::compile::{self, KernelSource};
use crate::profile::OpProfile;

/// A CUDA error as a one-line core error naming the operation.
pub fn cuda_err(op: &str, e: impl std::fmt::Display) -> CoreError {
    CoreError::Shape(format!("CUDA {op}: {e}"))
}

/// Why CUDA cannot be used here, or `Ok` with the number of devices.
pub fn probe() -> Result<usize, String> {
    // SAFETY: only tries to dlopen the library.
    if !unsafe { drv_sys::is_culib_present() } {
        return Err("the NVIDIA driver library (libcuda) was not found".into());
    }
    if !compile::nvrtc_present() {
        return Err(
            "NVRTC (libnvrtc) was not found: add the directory holding libnvrtc.so to LD_LIBRARY_PATH"
                .into(),
        );
    }
    let n = CudaContext::device_count().map_err(|e| format!("the CUDA driver reports {e}"))?;
    if n <= 0 {
        return Err("the CUDA driver reports no device".into());
    }
    Ok(n as usize)
}

/// A kernel argument.
#[derive(Clone, Copy, Debug)]
pub enum Arg {
    Ptr(u64),
    I32(i32),
    I64(i64),
    F32(f32),
}

pub struct Device {
    pub ctx: Arc<CudaContext>,
    pub stream: Arc<CudaStream>,
    pub ordinal: usize,
    pub name: String,
    pub arch: (i32, i32),
    cache_dir: Option<PathBuf>,
    /// Loaded modules by name and defines, and their functions by module key and name.
    modules: Mutex<HashMap<String, Arc<CudaModule>>>,
    functions: Mutex<HashMap<String, CudaFunction>>,
    /// Synchronize after every launch so an asynchronous fault is reported by the operation
    /// that caused it (check-backend turns this on; a forward pass leaves it off).
    sync_each_op: AtomicBool,
    /// `TURBINE_CUDA_PROFILE=1`: device time of every launch by CUDA events, host launch
    /// time (printed by [`Device::profile_report`]).
    profile: Option<Mutex<OpProfile>>,
}

impl Device {
    pub fn new(ordinal: usize, cache_dir: Option<PathBuf>) -> Result<Device, CoreError> {
        probe().map_err(|e| cuda_err("init", e))?;
        let ctx = CudaContext::new(ordinal).map_err(|e| cuda_err("context", e))?;
        // One stream, raw device pointers: cudarc's cross-stream event tracking has nothing to
        // order here.
        // SAFETY: no CudaSlice of this context exists yet; we never use several streams.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.new_stream().map_err(|e| cuda_err("stream", e))?;
        let name = ctx.name().map_err(|e| cuda_err("device name", e))?;
        let arch = ctx
            .compute_capability()
            .map_err(|e| cuda_err("compute capability", e))?;
        Ok(Device {
            ctx,
            stream,
            ordinal,
            name,
            arch,
            cache_dir,
            modules: Mutex::new(HashMap::new()),
            functions: Mutex::new(HashMap::new()),
            sync_each_op: AtomicBool::new(false),
            profile: std::env::var_os("TURBINE_CUDA_PROFILE")
                .filter(|v| v == "1")
                .map(|_| Mutex::new(OpProfile::default())),
        })
    }

    pub fn set_sync_each_op(&self, on: bool) {
        self.sync_each_op.store(on, Ordering::Relaxed);
    }

    pub fn bind(&self, op: &str) -> Result<(), CoreError> {
        self.ctx.bind_to_thread().map_err(|e| cuda_err(op, e))
    }

    /// The kernel `func` of module `src` (compiled with `defines`), compiled and loaded on
    /// first use.
    pub fn function(
        &self,
        src: &KernelSource,
        defines: &[(&str, String)],
        func: &str,
    ) -> Result<CudaFunction, CoreError> {
        let mut module_key = src.name.to_string();
        for (k, v) in defines {
            module_key.push_str(&format!(" {k}={v}"));
        }
        let key = format!("{module_key}/{func}");
        let mut funcs = self
            .functions
            .lock()
            .map_err(|_| cuda_err(func, "kernel table lock poisoned"))?;
        if let Some(f) = funcs.get(&key) {
            return Ok(f.clone());
        }
        let module = {
            let mut modules = self
                .modules
                .lock()
                .map_err(|_| cuda_err(func, "module table lock poisoned"))?;
            match modules.get(&module_key) {
                Some(m) => m.clone(),
                None => {
                    let cubin =
                        compile::cubin_cached(self.cache_dir.as_deref(), src, defines, self.arch)
                            .map_err(|e| cuda_err(&format!("compile {}", src.name), e))?;
                    let m = self
                        .ctx
                        .load_module(Ptx::from_binary(cubin))
                        .map_err(|e| cuda_err(&format!("load module {}", src.name), e))?;
                    modules.insert(module_key, m.clone());
                    m
                }
            }
        };
        let f = module
            .load_function(func)
            .map_err(|e| cuda_err(&format!("load kernel {func}"), e))?;
        funcs.insert(key, f.clone());
        Ok(f)
    }

    /// Launches `f` on the model's stream.
    pub fn launch(
        &self,
        op: &str,
        f: &CudaFunction,
        grid: (u32, u32, u32),
        block: u32,
        shared_bytes: u32,
        args: &[Arg],
    ) -> Result<(), CoreError> {
        if grid.0 == 0 || grid.1 == 0 || grid.2 == 0 {
            return Ok(());
        }
        let mut b = self.stream.launch_builder(f);
        for a in args {
            match a {
                Arg::Ptr(v) => b.arg(v),
                Arg::I32(v) => b.arg(v),
                Arg::I64(v) => b.arg(v),
                Arg::F32(v) => b.arg(v),
            };
        }
        let cfg = LaunchConfig {
            grid_dim: grid,
            block_dim: (block, 1, 1),
            shared_mem_bytes: shared_bytes,
        };
        // SAFETY: every kernel's parameter list matches the `args` its caller builds (see the
        // op modules), and every pointer is a live allocation sized by the caller's checks.
        self.profiled(op, move || {
            unsafe { b.launch(cfg) }
                .map(|_| ())
                .map_err(|e| cuda_err(op, e))
        })?;
        if self.sync_each_op.load(Ordering::Relaxed) {
            self.synchronize(op)?;
        }
        Ok(())
    }

    /// Runs `work` (stream work: a launch, a library call), timed as `op` under
    /// `TURBINE_CUDA_PROFILE=1`.
    pub fn profiled<F>(&self, op: &str, work: F) -> Result<(), CoreError>
    where
        F: FnOnce() -> Result<(), CoreError>,
    {
        match &self.profile {
            Some(p) => p
                .lock()
                .map_err(|_| cuda_err(op, "profile lock poisoned"))?
                .around(&self.ctx, &self.stream, op, work),
            None => work(),
        }
    }

    /// The per-operation device times gathered under `TURBINE_CUDA_PROFILE=1` since the last
    /// report, largest first, and clears them; `None` when profiling is off.
    pub fn profile_report(&self) -> Option<String> {
        let mut p = self.profile.as_ref()?.lock().ok()?;
        Some(p.report().unwrap_or_else(|e| format!("profile: {e}\n")))
    }

    pub fn synchronize(&self, op: &str) -> Result<(), CoreError> {
        self.stream.synchronize().map_err(|e| cuda_err(op, e))
    }

    /// Host → device copy on the stream. The host slice may be reused as soon as this returns
    /// (pageable copies are staged by the driver before the call returns).
    pub fn upload<T: Copy>(&self, op: &str, dst: u64, src: &[T]) -> Result<(), CoreError> {
        if src.is_empty() {
            return Ok(());
        }
        self.bind(op)?;
        // SAFETY: the caller guarantees `dst` has room for `src`.
        unsafe { drv::memcpy_htod_async(dst, src, self.stream.cu_stream()) }
            .map_err(|e| cuda_err(op, e))
    }

    /// Device → host copy, waiting for it (and everything before it on the stream).
    pub fn download<T: Copy>(&self, op: &str, dst: &mut [T], src: u64) -> Result<(), CoreError> {
        if dst.is_empty() {
            return self.synchronize(op);
        }
        self.bind(op)?;
        // SAFETY: the caller guarantees `src` holds at least `dst.len()` values.
        unsafe { drv::memcpy_dtoh_async(dst, src, self.stream.cu_stream()) }
            .map_err(|e| cuda_err(op, e))?;
        self.synchronize(op)
    }

    /// `(free, total)` bytes of device memory.
    pub fn mem_info(&self) -> Result<(usize, usize), CoreError> {
        self.ctx
            .mem_get_info()
            .map_err(|e| cuda_err("memory info", e))
    }
}

/// One device allocation, zeroed, freed on drop. Zero bytes allocate nothing (pointer 0).
pub struct DeviceAlloc {
    ptr: u64,
    bytes: usize,
    ctx: Arc<CudaContext>,
}

impl DeviceAlloc {
    pub fn new(dev: &Device, what: &str, bytes: u64) -> Result<DeviceAlloc, CoreError> {
        let fail = || CoreError::Alloc {
            name: what.to_string(),
            bytes,
            device: format!("CUDA{}", dev.ordinal),
        };
        let n = usize::try_from(bytes).map_err(|_| fail())?;
        if n == 0 {
            return Ok(DeviceAlloc {
                ptr: 0,
                bytes: 0,
                ctx: dev.ctx.clone(),
            });
        }
        dev.bind("alloc")?;
        // SAFETY: plain device allocation of n > 0 bytes, freed in Drop.
        let ptr = unsafe { drv::malloc_sync(n) }.map_err(|_| fail())?;
        let a = DeviceAlloc {
            ptr,
            bytes: n,
            ctx: dev.ctx.clone(),
        };
        // Zeroed on the model's stream, so the zeroing is ordered before every later use. (The
        // "synchronous" cuMemsetD8 runs on the legacy default stream, which does not order with
        // our non-blocking stream: it could land after the first kernels wrote the buffer.)
        // SAFETY: `ptr` holds `n` bytes.
        unsafe { drv::memset_d8_async(ptr, 0, n, dev.stream.cu_stream()) }
            .map_err(|e| cuda_err("zero", e))?;
        Ok(a)
    }

    pub fn ptr(&self) -> u64 {
        self.ptr
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for DeviceAlloc {
    fn drop(&mut self) {
        if self.ptr != 0 {
            let _ = self.ctx.bind_to_thread();
            // Kernels still queued may read this memory: wait for them first.
            let _ = self.ctx.synchronize();
            // SAFETY: allocated by malloc_sync in `new`, freed once, nothing uses it any more.
            let _ = unsafe { drv::free_sync(self.ptr) };
        }
    }
}

// SAFETY: a device address plus a shared context handle; the memory is only touched through
// the backend's stream.
unsafe impl Send for DeviceAlloc {}
// SAFETY: as above.
unsafe impl Sync for DeviceAlloc {}
