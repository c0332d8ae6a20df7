//! The KV cache through the `Backend` trait: planned sizes, reserve/store/attention plumbing,
//! and the precision of the f16 cache against the f32 cache on the same rows (the cache's own
//! error, isolated from the activation quantization of the matmuls).

use formats::GgmlType;
use turbine_core::cpu::CpuBackend;
use turbine_core::{
    AttnParams, AttnShape, Backend, BufferSpec, KvLayerShape, KvSpec, Role, TokenPos,
};

struct Lcg(u64);

impl Lcg {
    /// Roughly normal values (sum of uniforms, std ≈ 1.2): attention scores of a few units,
    /// like a trained model's.
    fn next(&mut self) -> f32 {
        let mut s = 0.0;
        for _ in 0..4 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            s += (self.0 >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
        }
        s * 2.0
    }
}

fn spec(name: &str, role: Role, bytes: u64) -> BufferSpec {
    BufferSpec {
        name: name.into(),
        device: "CPU".into(),
        role,
        bytes,
        formula: String::new(),
    }
}

/// Attention output of `rows` query rows after `n_tok` cached tokens, for one K/V type pair.
fn attend(b: &CpuBackend, ty_k: GgmlType, ty_v: GgmlType, window: Option<usize>) -> Vec<f32> {
    let (n_head, n_kv, hd, n_tok) = (6, 2, 64, 150);
    let kv_spec = KvSpec {
        layers: vec![KvLayerShape {
            n_head_kv: n_kv,
            head_dim_k: hd,
            head_dim_v: hd,
            window,
        }],
        n_ctx: 512,
        n_seq: 1,
        type_k: ty_k,
        type_v: ty_v,
    };
    let kv_bytes = b.kv_cache_bytes(&kv_spec).unwrap();
    let mut kv = b
        .alloc_kv(&spec("kv", Role::Context, kv_bytes), &kv_spec)
        .unwrap();
    let mut rng = Lcg(7);
    let mut fill = |n: usize, name: &str| {
        let mut buf = b.alloc(&spec(name, Role::Compute, n as u64 * 4)).unwrap();
        for v in buf.f32_mut() {
            *v = rng.next();
        }
        buf
    };
    let k = fill(n_tok * n_kv * hd, "k");
    let v = fill(n_tok * n_kv * hd, "v");
    let q = fill(n_tok * n_head * hd, "q");
    let rows: Vec<TokenPos> = (0..n_tok).map(|pos| TokenPos { seq: 0, pos }).collect();
    b.kv_reserve(&mut kv, 0, n_tok).unwrap();
    // Two stores: the second batch attends to rows cached by the first.
    let shape = AttnShape {
        rows: n_tok,
        n_kv: 512,
        n_head,
        n_head_kv: n_kv,
        head_dim_k: hd,
        head_dim_v: hd,
    };
    let ws_bytes = b.attention_workspace_bytes(ty_k, ty_v, &shape).unwrap();
    let mut ws = b.alloc(&spec("ws", Role::Compute, ws_bytes)).unwrap();
    let mut out = b
        .alloc(&spec(
            "out",
            Role::Compute,
            (n_tok * n_head * hd * 4) as u64,
        ))
        .unwrap();
    b.kv_store(&mut kv, 0, &rows, &k, &v).unwrap();
    let params = AttnParams {
        n_head,
        n_head_kv: n_kv,
        head_dim_k: hd,
        head_dim_v: hd,
        scale: 1.0 / (hd as f32).sqrt(),
        window,
        softcap: None,
    };
    b.attention(&kv, 0, &rows, &q, &params, &mut out, &mut ws)
        .unwrap();
    out.f32().to_vec()
}

/// Naive f64 attention over the same random rows (f32 cache: exact inputs).
fn reference(window: Option<usize>) -> Vec<f64> {
    let (n_head, n_kv, hd, n_tok) = (6usize, 2usize, 64usize, 150usize);
    let mut rng = Lcg(7);
    let mut gen = |n: usize| (0..n).map(|_| rng.next() as f64).collect::<Vec<f64>>();
    let k = gen(n_tok * n_kv * hd);
    let v = gen(n_tok * n_kv * hd);
    let q = gen(n_tok * n_head * hd);
    let scale = 1.0 / (hd as f64).sqrt();
    let mut out = vec![0.0; n_tok * n_head * hd];
    for r in 0..n_tok {
        for h in 0..n_head {
            let kh = h / (n_head / n_kv);
            let lo = window.map_or(0, |w| (r + 1).saturating_sub(w));
            let scores: Vec<f64> = (lo..=r)
                .map(|t| {
                    (0..hd)
                        .map(|i| q[(r * n_head + h) * hd + i] * k[(t * n_kv + kh) * hd + i])
                        .sum::<f64>()
                        * scale
                })
                .collect();
            let m = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = scores.iter().map(|s| (s - m).exp()).sum();
            for (j, t) in (lo..=r).enumerate() {
                let p = (scores[j] - m).exp() / z;
                for i in 0..hd {
                    out[(r * n_head + h) * hd + i] += p * v[(t * n_kv + kh) * hd + i];
                }
            }
        }
    }
    out
}

/// Root-mean-square error relative to the reference's RMS.
fn rms_rel(a: &[f32], b: &[f64]) -> f64 {
    let err: f64 = a.iter().zip(b).map(|(&x, &y)| (x as f64 - y).powi(2)).sum();
    let norm: f64 = b.iter().map(|y| y * y).sum();
    (err / norm.max(1e-30)).sqrt()
}

fn max_rel(a: &[f32], b: &[f64]) -> f64 {
    let scale = b.iter().map(|x| x.abs()).fold(0.0, f64::max).max(1e-9);
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y).abs() / scale)
        .fold(0.0, f64::max)
}

#[test]
fn f32_cache_matches_f64_reference_and_f16_stays_within_1e3() {
    let b = CpuBackend::new(2).unwrap();
    for window in [None, Some(40)] {
        let want = reference(window);
        let f32_out = attend(&b, GgmlType::F32, GgmlType::F32, window);
        let e32 = max_rel(&f32_out, &want);
        assert!(e32 < 1e-5, "f32 cache vs f64 reference: {e32:.2e}");
        let f16_out = attend(&b, GgmlType::F16, GgmlType::F16, window);
        let e16 = max_rel(&f16_out, &want);
        eprintln!("window {window:?}: f32 {e32:.2e}, f16 {e16:.2e} (relative to max |out|)");
        assert!(e16 < 1e-3, "f16 cache vs reference: {e16:.2e}");
    }
}

#[test]
fn every_cache_type_runs_through_the_trait() {
    let b = CpuBackend::new(2).unwrap();
    let want = reference(None);
    let mut errs = Vec::new();
    for ty in models_kv_types() {
        let out = attend(&b, ty, ty, None);
        let err = rms_rel(&out, &want);
        eprintln!("{:>6}: RMS error {err:.2e}", ty.name());
        // Loose: every type must produce attention, not noise (the kvcache crate tests each
        // type's exact decoding).
        assert!(
            err.is_finite() && err < if ty == GgmlType::Turbo2 { 0.6 } else { 0.3 },
            "{}: {err}",
            ty.name()
        );
        errs.push(err);
    }
    // More bits, less error: f32 < f16 < bf16, q8_0 < q4_0, turbo4 < turbo3 < turbo2.
    assert!(errs[0] < errs[1] && errs[1] < errs[2]);
    assert!(errs[3] < errs[4]);
    assert!(errs[11] < errs[10] && errs[10] < errs[9]);
}

fn models_kv_types() -> [GgmlType; 12] {
    use GgmlType::*;
    [
        F32, F16, Bf16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Iq4Nl, Turbo2, Turbo3, Turbo4,
    ]
}

#[test]
fn allocations_are_recorded() {
    let b = CpuBackend::new(1).unwrap();
    let _ = attend(&b, GgmlType::Q8_0, GgmlType::Turbo3, None);
    let recs = b.allocation_log().records();
    let kv = recs.iter().find(|r| r.name == "kv").unwrap();
    let kv_spec = KvSpec {
        layers: vec![KvLayerShape {
            n_head_kv: 2,
            head_dim_k: 64,
            head_dim_v: 64,
            window: None,
        }],
        n_ctx: 512,
        n_seq: 1,
        type_k: GgmlType::Q8_0,
        type_v: GgmlType::Turbo3,
    };
    assert_eq!(kv.bytes, b.kv_cache_bytes(&kv_spec).unwrap());
}
