//! The memory plan of Qwen3.5-35B-A3B (`qwen35moe`) from a header-only file: KV only for the
//! 10 full-attention layers, the recurrent state of the 30 DeltaNet layers as context, and a
//! compute budget that does not grow with the context.
//!
//! The header is written here with llama.cpp's metadata keys and tensor names and shapes for
//! that model (40 layers, n_embd 2048, 16 heads / 2 KV heads of 256, 256 experts of 512, top 8,
//! one shared expert of 512, DeltaNet 16 key / 32 value heads of 128, conv 4, vocab 248320);
//! tensor data lies past the end of the file, as in `turbine synth --header-only`.

use std::path::PathBuf;

use formats::GgmlType;
use gguf::GgufFile;
use models::{context_growth_allowance, plan_memory, HParams, RunConfig};
use turbine_core::cpu::CpuBackend;
use turbine_core::{mib, Role};

const MIB: u64 = 1024 * 1024;

enum V {
    U32(u32),
    F32(f32),
    Str(&'static str),
    I32s(Vec<i32>),
}

fn put_str(h: &mut Vec<u8>, s: &str) {
    h.extend_from_slice(&(s.len() as u64).to_le_bytes());
    h.extend_from_slice(s.as_bytes());
}

/// A GGUF v3 header (metadata and tensor infos, no data) for `kv` and `tensors`.
fn header(kv: &[(String, V)], tensors: &[(String, Vec<u64>, GgmlType)]) -> Vec<u8> {
    let mut h = b"GGUF".to_vec();
    h.extend_from_slice(&3u32.to_le_bytes());
    h.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    h.extend_from_slice(&(kv.len() as u64).to_le_bytes());
    for (k, v) in kv {
        put_str(&mut h, k);
        match v {
            V::U32(x) => {
                h.extend_from_slice(&4u32.to_le_bytes());
                h.extend_from_slice(&x.to_le_bytes());
            }
            V::F32(x) => {
                h.extend_from_slice(&6u32.to_le_bytes());
                h.extend_from_slice(&x.to_le_bytes());
            }
            V::Str(s) => {
                h.extend_from_slice(&8u32.to_le_bytes());
                put_str(&mut h, s);
            }
            V::I32s(a) => {
                h.extend_from_slice(&9u32.to_le_bytes());
                h.extend_from_slice(&5u32.to_le_bytes());
                h.extend_from_slice(&(a.len() as u64).to_le_bytes());
                for x in a {
                    h.extend_from_slice(&x.to_le_bytes());
                }
            }
        }
    }
    let mut offset = 0u64;
    for (name, dims, ty) in tensors {
        put_str(&mut h, name);
        h.extend_from_slice(&(dims.len() as u32).to_le_bytes());
        for d in dims {
            h.extend_from_slice(&d.to_le_bytes());
        }
        h.extend_from_slice(&ty.id().to_le_bytes());
        h.extend_from_slice(&offset.to_le_bytes());
        let n: u64 = dims.iter().product();
        offset += ty.bytes_for(n).expect("whole blocks").div_ceil(32) * 32;
    }
    while !h.len().is_multiple_of(32) {
        h.push(0);
    }
    h
}

/// Header-only Qwen3.5-35B-A3B with q4_K matrices (q6_K output, f32 norms, router, conv and
/// gates), as `llama-quantize` leaves them.
fn write_35b_a3b() -> PathBuf {
    let a = "qwen35moe";
    let k = |s: &str| format!("{a}.{s}");
    let kv: Vec<(String, V)> = vec![
        ("general.architecture".into(), V::Str(a)),
        (k("block_count"), V::U32(40)),
        (k("context_length"), V::U32(262144)),
        (k("embedding_length"), V::U32(2048)),
        (k("attention.head_count"), V::U32(16)),
        (k("attention.head_count_kv"), V::U32(2)),
        (k("attention.key_length"), V::U32(256)),
        (k("attention.value_length"), V::U32(256)),
        (k("attention.layer_norm_rms_epsilon"), V::F32(1e-6)),
        (k("rope.freq_base"), V::F32(1e7)),
        (k("rope.dimension_count"), V::U32(64)),
        (k("rope.dimension_sections"), V::I32s(vec![11, 11, 10, 0])),
        (k("expert_count"), V::U32(256)),
        (k("expert_used_count"), V::U32(8)),
        (k("expert_feed_forward_length"), V::U32(512)),
        (k("expert_shared_feed_forward_length"), V::U32(512)),
        (k("ssm.conv_kernel"), V::U32(4)),
        (k("ssm.state_size"), V::U32(128)),
        (k("ssm.group_count"), V::U32(16)),
        (k("ssm.time_step_rank"), V::U32(32)),
        (k("ssm.inner_size"), V::U32(4096)),
        (k("full_attention_interval"), V::U32(4)),
    ];
    use GgmlType::{F32, Q4K, Q6K};
    let (e, vocab) = (2048u64, 248320u64);
    let mut t: Vec<(String, Vec<u64>, GgmlType)> = vec![
        ("token_embd.weight".into(), vec![e, vocab], Q4K),
        ("output_norm.weight".into(), vec![e], F32),
        ("output.weight".into(), vec![e, vocab], Q6K),
    ];
    for il in 0..40 {
        let mut add =
            |s: &str, dims: &[u64], ty| t.push((format!("blk.{il}.{s}"), dims.to_vec(), ty));
        add("attn_norm.weight", &[e], F32);
        add("post_attention_norm.weight", &[e], F32);
        if (il + 1) % 4 == 0 {
            add("attn_q.weight", &[e, 16 * 256 * 2], Q4K);
            add("attn_k.weight", &[e, 2 * 256], Q4K);
            add("attn_v.weight", &[e, 2 * 256], Q4K);
            add("attn_output.weight", &[16 * 256, e], Q4K);
            add("attn_q_norm.weight", &[256], F32);
            add("attn_k_norm.weight", &[256], F32);
        } else {
            add("attn_qkv.weight", &[e, 2 * 16 * 128 + 4096], Q4K);
            add("attn_gate.weight", &[e, 4096], Q4K);
            add("ssm_beta.weight", &[e, 32], F32);
            add("ssm_alpha.weight", &[e, 32], F32);
            add("ssm_conv1d.weight", &[4, 8192], F32);
            add("ssm_dt.bias", &[32], F32);
            add("ssm_a", &[32], F32);
            add("ssm_norm.weight", &[128], F32);
            add("ssm_out.weight", &[4096, e], Q4K);
        }
        add("ffn_gate_inp.weight", &[e, 256], F32);
        add("ffn_gate_exps.weight", &[e, 512, 256], Q4K);
        add("ffn_up_exps.weight", &[e, 512, 256], Q4K);
        add("ffn_down_exps.weight", &[512, e, 256], Q4K);
        add("ffn_gate_inp_shexp.weight", &[e], F32);
        add("ffn_gate_shexp.weight", &[e, 512], Q4K);
        add("ffn_up_shexp.weight", &[e, 512], Q4K);
        add("ffn_down_shexp.weight", &[512, e], Q4K);
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join("qwen35moe-35b-a3b-q4_K.header.gguf");
    std::fs::write(&path, header(&kv, &t)).expect("write header");
    path
}

fn cfg(n_ctx: usize) -> RunConfig {
    RunConfig {
        n_ctx,
        n_batch: 2048,
        n_ubatch: 512,
        n_seq: 1,
        type_k: GgmlType::Q8_0,
        type_v: GgmlType::Turbo4,
        logits_all: false,
    }
}

#[test]
fn qwen35moe_35b_a3b_plan() {
    let path = write_35b_a3b();
    let file = GgufFile::open_header_only(&path).expect("open header");
    let hp = HParams::from_gguf(&file).expect("hparams");
    assert_eq!((hp.n_attn_layers(), hp.n_recurrent_layers()), (10, 30));
    assert_eq!(hp.kv_layer(3), Some(0));
    assert_eq!(hp.kv_layer(39), Some(9));
    assert_eq!(hp.kv_layer(4), None);
    // 16 threads, as on the reference machine; the attention workspace is per worker.
    let b = CpuBackend::new(16).expect("backend");
    let plan = plan_memory(&b, &file, &hp, &cfg(65536)).expect("plan");
    let get = |n: &str| plan.get(n).map(|s| s.bytes).expect(n);
    eprintln!("{}", plan.table());

    // KV: 10 attention layers × 65536 cells × 2 KV heads × (q8_0 K 256 → 272 B + turbo4 V
    // 256 → 2 × 66 B), plus the page tables.
    let kv_data = 10 * 65536 * 2 * (272 + 132) as u64;
    let kv = get("kv");
    assert!(
        kv >= kv_data && kv < kv_data + MIB,
        "kv {kv}, data {kv_data}"
    );
    assert_eq!(mib(kv), 505);
    // Recurrent state: 30 layers × (3 × 8192 conv + 32 × 128 × 128 delta) × 4 B = 62.8 MiB.
    let rec = get("recurrent");
    assert_eq!(rec, 30 * (3 * 8192 + 32 * 128 * 128) * 4);
    assert_eq!(plan.role_bytes("CPU", Role::Context), kv + rec);
    assert_eq!(mib(kv + rec), 567);

    let compute = plan.role_bytes("CPU", Role::Compute);
    eprintln!(
        "qwen35moe 35B-A3B -c 65536 -ub 512 -np 1 q8_0/turbo4: KV {} MiB, context {} MiB, compute {} MiB",
        mib(kv),
        mib(kv + rec),
        mib(compute)
    );
    assert!(compute < 489 * MIB, "compute {} MiB", mib(compute));

    // Compute does not grow with the context beyond the stated allowance (0).
    let small = plan_memory(&b, &file, &hp, &cfg(8192)).expect("plan 8k");
    let large = plan_memory(&b, &file, &hp, &cfg(262144)).expect("plan 256k");
    let (cs, cl) = (
        small.role_bytes("CPU", Role::Compute),
        large.role_bytes("CPU", Role::Compute),
    );
    assert!(
        cl <= cs + context_growth_allowance(&hp, 8192, 262144),
        "compute grew from {cs} to {cl} bytes"
    );
    // The recurrent state does not depend on the context either; the KV cache scales with it.
    assert_eq!(large.get("recurrent").map(|s| s.bytes), Some(rec));
    let kv_large = large.get("kv").map(|s| s.bytes).expect("kv");
    assert!(kv_large >= 4 * kv_data, "kv at 262144: {kv_large}");
}
