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

/// The tensor-core prefill modules (TC_D): every type as K and as V at width 128 (each type's
/// decode into f16 tiles), every width with the turbo pair (rotation of Q and of the output)
/// and with f16 (the raw-copy decode).
#[test]
fn tensor_core_prefill_compiles() {
    if !nvrtc_or_skip() {
        return;
    }
    use formats::GgmlType::{Turbo3, F16};
    let mut cases = Vec::new();
    for &t in &KV_TYPES {
        cases.push((t, F16, 128));
        if t != F16 {
            cases.push((F16, t, 128));
        }
    }
    for d in [64, 256] {
        cases.push((F16, F16, d));
        cases.push((Turbo3, Turbo3, d));
    }
    for (k, v, d) in cases {
        let defines = [
            ("KT", k.id().to_string()),
            ("VT", v.id().to_string()),
            ("TC_D", d.to_string()),
        ];
        let src = compile::full_source(&ATTENTION, &defines);
        compile::compile_cubin("attention tc", &src, &compile::options((9, 0), false))
            .unwrap_or_else(|e| panic!("K {} V {} D {d}: {e}", k.name(), v.name()));
    }
}
