//! Every kernel module compiles with NVRTC for sm_90 (the H100). Needs only libnvrtc, no GPU:
//! skipped (with a message) where libnvrtc cannot be loaded, as on CI.

use turbine_cuda::compile::{self, ATTENTION, HYBRID_MODULES, PLAIN_MODULES};
use turbine_cuda::kv::KV_TYPES;

fn nvrtc_or_skip() -> bool {
    if compile::nvrtc_present() {
        return true;
    }
    eprintln!(
        "skipped: libnvrtc not found (put its directory on LD_LIBRARY_PATH to check kernels)"
    );
    false
}

#[test]
fn plain_modules_compile_for_sm90() {
    if !nvrtc_or_skip() {
        return;
    }
    for m in PLAIN_MODULES.into_iter().chain(HYBRID_MODULES) {
        let src = compile::full_source(&m, &[]);
        let cubin = compile::compile_cubin(m.name, &src, &compile::options((9, 0), m.exact))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            cubin.len() > 1000,
            "{}: cubin of {} bytes",
            m.name,
            cubin.len()
        );
    }
}

#[test]
fn attention_compiles_for_every_kv_type() {
    if !nvrtc_or_skip() {
        return;
    }
    // Every type as K and as V (paired with f16 on the other side), and the turbo pairs.
    let mut pairs = Vec::new();
    for &t in &KV_TYPES {
        pairs.push((t, formats::GgmlType::F16));
        pairs.push((formats::GgmlType::F16, t));
        if t.is_turbo() {
            pairs.push((t, t));
        }
    }
    for (k, v) in pairs {
        let defines = [("KT", k.id().to_string()), ("VT", v.id().to_string())];
        let src = compile::full_source(&ATTENTION, &defines);
        compile::compile_cubin("attention", &src, &compile::options((9, 0), false))
            .unwrap_or_else(|e| panic!("K {} V {}: {e}", k.name(), v.name()));
    }
}
