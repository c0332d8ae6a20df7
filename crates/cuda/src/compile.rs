//! Run-time kernel compilation: NVRTC turns `kernels/*.cu` into a cubin for the device's
//! architecture on first use, and the cubin is cached on disk under its source hash, so a
//! second run (or a second model in the same run) loads it without compiling.
//!
//! Needs only `libnvrtc` (no CUDA toolkit, no GPU): [`compile_cubin`] also runs on a machine
//! without a device, which is how the kernels are compile-checked in tests.

use std::ffi::{c_char, CString};
use std::path::{Path, PathBuf};

use cudarc::nvrtc::{result as nvrtc, sys as nvrtc_sys};

/// Included by every module: types, f16 helpers, block dequantizers, the turbo rotation.
pub const COMMON: &str = include_str!("../kernels/common.cuh");

/// One kernel source file.
#[derive(Clone, Copy, Debug)]
pub struct KernelSource {
    pub name: &'static str,
    pub text: &'static str,
    /// Compile without fused multiply-add, so every product rounds on its own: needed where a
    /// kernel must match a Rust reference bit for bit (the KV quantizers).
    pub exact: bool,
}

pub const MATMUL: KernelSource = KernelSource {
    name: "matmul",
    text: include_str!("../kernels/matmul.cu"),
    exact: false,
};
pub const GET_ROWS: KernelSource = KernelSource {
    name: "get_rows",
    text: include_str!("../kernels/get_rows.cu"),
    exact: false,
};
pub const NORM: KernelSource = KernelSource {
    name: "norm",
    text: include_str!("../kernels/norm.cu"),
    exact: false,
};
pub const ROPE: KernelSource = KernelSource {
    name: "rope",
    text: include_str!("../kernels/rope.cu"),
    exact: false,
};
pub const ELEMENTWISE: KernelSource = KernelSource {
    name: "elementwise",
    text: include_str!("../kernels/elementwise.cu"),
    exact: false,
};
pub const KV_STORE: KernelSource = KernelSource {
    name: "kv_store",
    text: include_str!("../kernels/kv_store.cu"),
    exact: true,
};
/// Compiled once per (K type, V type): defines `KT` and `VT`.
pub const ATTENTION: KernelSource = KernelSource {
    name: "attention",
    text: include_str!("../kernels/attention.cu"),
    exact: false,
};

/// Mixture-of-experts FFN (qwen3moe, qwen35moe).
pub const MOE: KernelSource = KernelSource {
    name: "moe",
    text: include_str!("../kernels/moe.cu"),
    exact: false,
};
/// Gated DeltaNet conv, delta rule and state reset (qwen35, qwen35moe).
pub const DELTA_NET: KernelSource = KernelSource {
    name: "delta_net",
    text: include_str!("../kernels/delta_net.cu"),
    exact: false,
};
/// Query/gate split and sigmoid gates (qwen35, qwen35moe).
pub const GATED: KernelSource = KernelSource {
    name: "gated",
    text: include_str!("../kernels/gated.cu"),
    exact: false,
};
/// The modules of the hybrid and MoE families (also compile without defines).
pub const HYBRID_MODULES: [KernelSource; 3] = [MOE, DELTA_NET, GATED];

/// Every module that compiles without defines.
pub const PLAIN_MODULES: [KernelSource; 6] = [MATMUL, GET_ROWS, NORM, ROPE, ELEMENTWISE, KV_STORE];

/// The full translation unit: defines, the common header, the module.
pub fn full_source(src: &KernelSource, defines: &[(&str, String)]) -> String {
    let mut s = String::new();
    for (k, v) in defines {
        s.push_str(&format!("#define {k} {v}\n"));
    }
    s.push_str(COMMON);
    s.push('\n');
    s.push_str(src.text);
    s
}

/// NVRTC options for `arch` (compute capability).
pub fn options(arch: (i32, i32), exact: bool) -> Vec<String> {
    vec![
        format!("--gpu-architecture=sm_{}{}", arch.0, arch.1),
        "--std=c++17".to_string(),
        format!("--fmad={}", !exact),
    ]
}

/// NVRTC's version, `(major, minor)`.
pub fn nvrtc_version() -> Result<(i32, i32), String> {
    let (mut major, mut minor) = (0, 0);
    // SAFETY: plain out-parameters.
    unsafe { nvrtc_sys::nvrtcVersion(&mut major, &mut minor) }
        .result()
        .map_err(|e| format!("nvrtcVersion: {e}"))?;
    Ok((major, minor))
}

/// FNV-1a, 64 bits: stable across runs and Rust versions (unlike `DefaultHasher`).
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for &b in *p {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // Separator so ("ab", "c") and ("a", "bc") differ.
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The cache key of one compilation: source, options and compiler version.
pub fn cache_key(source: &str, opts: &[String], version: (i32, i32)) -> String {
    let opts = opts.join(" ");
    let ver = format!("nvrtc {}.{}", version.0, version.1);
    format!(
        "{:016x}",
        fnv1a(&[source.as_bytes(), opts.as_bytes(), ver.as_bytes()])
    )
}

/// Where cubins are cached by default: `$XDG_CACHE_HOME/turbine/cuda`, else
/// `$HOME/.cache/turbine/cuda`; `None` if neither is set.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|x| !x.is_empty()) {
        return Some(PathBuf::from(x).join("turbine").join("cuda"));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".cache").join("turbine").join("cuda"))
}

/// Compiles one translation unit to a cubin. `name` labels errors. The error carries NVRTC's
/// log.
pub fn compile_cubin(name: &str, source: &str, opts: &[String]) -> Result<Vec<u8>, String> {
    let src = CString::new(source).map_err(|_| format!("kernel {name}: source contains NUL"))?;
    let cname = CString::new(name).map_err(|_| format!("kernel {name}: bad name"))?;
    let prog = nvrtc::create_program(&src, Some(&cname))
        .map_err(|e| format!("kernel {name}: nvrtcCreateProgram: {e}"))?;
    // SAFETY: `prog` is a live program created above; destroyed exactly once below.
    let result = unsafe { compile_and_get(prog, name, opts) };
    // SAFETY: as above.
    let _ = unsafe { nvrtc::destroy_program(prog) };
    result
}

/// # Safety
/// `prog` must be a live NVRTC program.
unsafe fn compile_and_get(
    prog: nvrtc_sys::nvrtcProgram,
    name: &str,
    opts: &[String],
) -> Result<Vec<u8>, String> {
    if let Err(e) = nvrtc::compile_program(prog, opts) {
        let log = nvrtc::get_program_log(prog)
            .map(|raw| {
                let bytes: Vec<u8> = raw
                    .iter()
                    .take_while(|&&c| c != 0)
                    .map(|&c| c as u8)
                    .collect();
                String::from_utf8_lossy(&bytes).into_owned()
            })
            .unwrap_or_default();
        return Err(format!(
            "kernel {name}: NVRTC failed ({e}) with options {opts:?}:\n{log}"
        ));
    }
    let mut size = 0usize;
    nvrtc_sys::nvrtcGetCUBINSize(prog, &mut size)
        .result()
        .map_err(|e| format!("kernel {name}: nvrtcGetCUBINSize: {e}"))?;
    let mut cubin = vec![0u8; size];
    nvrtc_sys::nvrtcGetCUBIN(prog, cubin.as_mut_ptr() as *mut c_char)
        .result()
        .map_err(|e| format!("kernel {name}: nvrtcGetCUBIN: {e}"))?;
    Ok(cubin)
}

/// Returns the cubin of `src` with `defines` for `arch`, from `cache_dir` if it holds one with
/// the same key, else compiled and (best effort) written there.
pub fn cubin_cached(
    cache_dir: Option<&Path>,
    src: &KernelSource,
    defines: &[(&str, String)],
    arch: (i32, i32),
) -> Result<Vec<u8>, String> {
    let source = full_source(src, defines);
    let opts = options(arch, src.exact);
    let key = cache_key(&source, &opts, nvrtc_version()?);
    let path = cache_dir.map(|d| d.join(format!("{}-{key}.cubin", src.name)));
    if let Some(p) = &path {
        if let Ok(bytes) = std::fs::read(p) {
            if !bytes.is_empty() {
                return Ok(bytes);
            }
        }
    }
    let label = if defines.is_empty() {
        src.name.to_string()
    } else {
        let d: Vec<String> = defines.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("{}[{}]", src.name, d.join(","))
    };
    let cubin = compile_cubin(&label, &source, &opts)?;
    if let (Some(p), Some(dir)) = (&path, cache_dir) {
        // A cache that cannot be written only costs a recompile next time; write to a unique
        // temporary name and rename so concurrent processes never see half a file.
        if std::fs::create_dir_all(dir).is_ok() {
            let tmp = dir.join(format!(".{}-{key}.{}.tmp", src.name, std::process::id()));
            if std::fs::write(&tmp, &cubin).is_ok() && std::fs::rename(&tmp, p).is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
        }
    }
    Ok(cubin)
}

/// True if `libnvrtc` can be loaded.
pub fn nvrtc_present() -> bool {
    // SAFETY: only tries to dlopen the library.
    unsafe { nvrtc_sys::is_culib_present() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_key_depends_on_every_part() {
        let o1 = vec!["a".to_string()];
        let o2 = vec!["b".to_string()];
        let k = cache_key("src", &o1, (13, 0));
        assert_eq!(k, cache_key("src", &o1, (13, 0)));
        assert_ne!(k, cache_key("src2", &o1, (13, 0)));
        assert_ne!(k, cache_key("src", &o2, (13, 0)));
        assert_ne!(k, cache_key("src", &o1, (13, 1)));
        assert_eq!(k.len(), 16);
    }

    #[test]
    fn defines_come_first() {
        let s = full_source(&ATTENTION, &[("KT", "1".into()), ("VT", "41".into())]);
        assert!(s.starts_with("#define KT 1\n#define VT 41\n"));
        assert!(s.contains("attn_partial"));
    }
}
