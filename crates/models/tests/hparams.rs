//! Hyperparameters: values read from `{arch}.*` keys, defaults, and one-line errors naming the
//! key for missing or odd values.

use formats::GgmlType;
use gguf::{GgufFile, GgufWriter, Value};
use models::{Arch, HParams, ModelError};

/// A header with llama-style keys and a token_embd tensor (data zeros); `edit` adjusts it.
fn file(arch: &str, edit: impl FnOnce(&mut Vec<(String, Value)>)) -> GgufFile {
    let mut kv: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::from(arch)),
        (format!("{arch}.block_count"), Value::U32(2)),
        (format!("{arch}.embedding_length"), Value::U32(64)),
        (format!("{arch}.feed_forward_length"), Value::U32(128)),
        (format!("{arch}.attention.head_count"), Value::U32(4)),
        (format!("{arch}.attention.head_count_kv"), Value::U32(2)),
        (format!("{arch}.context_length"), Value::U32(1024)),
        (
            format!("{arch}.attention.layer_norm_rms_epsilon"),
            Value::F32(1e-5),
        ),
    ];
    edit(&mut kv);
    let mut w = GgufWriter::new();
    for (k, v) in kv {
        w.add_metadata(k, v);
    }
    let data = vec![0u8; 64 * 100 * 4];
    w.add_tensor("token_embd.weight", &[64, 100], GgmlType::F32, data)
        .unwrap();
    GgufFile::from_bytes(w.to_bytes().unwrap()).unwrap()
}

fn err(f: &GgufFile) -> String {
    match HParams::from_gguf(f) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn reads_values_and_defaults() {
    let hp = HParams::from_gguf(&file("llama", |_| {})).unwrap();
    assert_eq!(hp.arch, Arch::Llama);
    assert_eq!((hp.n_layer, hp.n_embd, hp.n_ff), (2, 64, 128));
    assert_eq!(
        (hp.n_head, hp.n_head_kv, hp.head_dim_k, hp.head_dim_v),
        (4, 2, 16, 16)
    );
    assert_eq!((hp.n_vocab, hp.n_ctx_train, hp.n_rot), (100, 1024, 16));
    assert_eq!(hp.rope_base, 10000.0);
    assert!(!hp.rope_neox);
    assert_eq!(hp.attn_scale, 0.25);
    assert!(
        HParams::from_gguf(&file("qwen2", |_| {}))
            .unwrap()
            .rope_neox
    );
}

#[test]
fn gemma3_rules() {
    let hp = HParams::from_gguf(&file("gemma3", |kv| {
        kv.push(("gemma3.attention.sliding_window".into(), Value::U32(512)));
        kv.push(("gemma3.attention.key_length".into(), Value::U32(32)));
        kv.push(("gemma3.rope.freq_base".into(), Value::F32(1e6)));
    }))
    .unwrap();
    assert_eq!(hp.embed_scale, Some(8.0));
    assert_eq!(hp.attn_scale, 1.0 / 32f32.sqrt());
    // Layers 0-4 local (window 512, base 10000), 5 global.
    assert_eq!(hp.layer_window(4), Some(512));
    assert_eq!(hp.layer_window(5), None);
    assert_eq!(hp.layer_rope(0).base, 10000.0);
    assert_eq!(hp.layer_rope(5).base, 1e6);
}

#[test]
fn clear_errors() {
    let e = err(&file("mamba9", |_| {}));
    assert!(e.contains("`mamba9` is not supported"), "{e}");
    let e = err(&file("llama", |kv| {
        kv.retain(|(k, _)| k != "llama.block_count")
    }));
    assert_eq!(e, "GGUF metadata key `llama.block_count` is missing");
    let e = err(&file("llama", |kv| {
        kv.push(("llama.attention.head_count_kv".into(), Value::U32(3)))
    }));
    assert!(
        e.contains("head_count_kv") && e.contains("does not divide"),
        "{e}"
    );
    let e = err(&file("llama", |kv| {
        kv.retain(|(k, _)| !k.ends_with("epsilon"));
        kv.push((
            "llama.attention.layer_norm_rms_epsilon".into(),
            Value::from("tiny"),
        ));
    }));
    assert!(e.contains("expected a float"), "{e}");
    let e = err(&file("llama", |kv| {
        kv.push(("llama.rope.scaling.type".into(), Value::from("yarn")));
        kv.push(("llama.rope.scaling.factor".into(), Value::F32(4.0)));
    }));
    assert!(e.contains("`yarn` is not supported"), "{e}");
    let e = err(&file("llama", |kv| {
        kv.push(("llama.rope.dimension_count".into(), Value::U32(17)))
    }));
    assert!(e.contains("rope.dimension_count"), "{e}");
    let e = err(&file("llama", |kv| {
        kv.push(("llama.embedding_length".into(), Value::U32(0)))
    }));
    assert!(e.contains("at least 1"), "{e}");
    assert!(matches!(
        HParams::from_gguf(&file("llama", |kv| kv
            .retain(|(k, _)| k != "llama.context_length"))),
        Err(ModelError::MissingKey(_))
    ));
}

#[test]
fn missing_tensor_is_named() {
    use std::sync::Arc;
    use turbine_core::cpu::CpuBackend;
    let f = Arc::new(file("llama", |_| {}));
    let b = Arc::new(CpuBackend::new(1).unwrap());
    let e = match models::Model::load(b, f, models::RunConfig::default()) {
        Ok(_) => panic!("loaded a model without layers' tensors"),
        Err(e) => e.to_string(),
    };
    assert_eq!(e, "tensor `output_norm.weight` is missing");
}

/// qwen35moe keys as llama.cpp writes them (ssm.*, expert_*, full_attention_interval).
fn qwen35moe(edit: impl FnOnce(&mut Vec<(String, Value)>)) -> GgufFile {
    file("qwen35moe", |kv| {
        kv.retain(|(k, _)| k != "qwen35moe.feed_forward_length");
        for (k, v) in [
            ("expert_count", 8),
            ("expert_used_count", 2),
            ("expert_feed_forward_length", 32),
            ("expert_shared_feed_forward_length", 48),
            ("ssm.conv_kernel", 4),
            ("ssm.state_size", 16),
            ("ssm.group_count", 2),
            ("ssm.time_step_rank", 4),
            ("ssm.inner_size", 64),
            ("full_attention_interval", 2),
        ] {
            kv.push((format!("qwen35moe.{k}"), Value::U32(v)));
        }
        edit(kv);
    })
}

#[test]
fn hybrid_moe_keys() {
    let hp = HParams::from_gguf(&qwen35moe(|_| {})).unwrap();
    assert_eq!(hp.arch, Arch::Qwen35Moe);
    let m = hp.moe.unwrap();
    assert_eq!(
        (m.n_expert, m.n_expert_used, m.n_ff_exp, m.n_ff_shexp),
        (8, 2, 32, 48)
    );
    assert!(m.norm_topk);
    let s = hp.ssm.unwrap();
    assert_eq!((s.head_v_dim(), s.conv_channels()), (16, 2 * 2 * 16 + 64));
    // Interval 2: layer 0 recurrent, layer 1 attention (KV layer 0).
    assert!(hp.is_recurrent(0) && !hp.is_recurrent(1));
    assert_eq!((hp.kv_layer(1), hp.recurrent_layer(0)), (Some(0), Some(0)));
    assert!(hp.attn_output_gate);

    let e = err(&qwen35moe(|kv| {
        kv.retain(|(k, _)| k != "qwen35moe.ssm.group_count")
    }));
    assert_eq!(
        e,
        "GGUF metadata key `qwen35moe.ssm.group_count` is missing"
    );
    let e = err(&qwen35moe(|kv| {
        kv.push(("qwen35moe.ssm.group_count".into(), Value::U32(3)))
    }));
    assert!(e.contains("multiple of 3 key heads"), "{e}");
    let e = err(&qwen35moe(|kv| {
        kv.push(("qwen35moe.expert_used_count".into(), Value::U32(9)))
    }));
    assert!(e.contains("exceeds the 8 experts"), "{e}");
    let e = err(&qwen35moe(|kv| {
        kv.push(("qwen35moe.expert_gating_func".into(), Value::U32(2)))
    }));
    assert!(e.contains("only softmax"), "{e}");
    let e = err(&qwen35moe(|kv| {
        kv.push(("qwen35moe.full_attention_interval".into(), Value::U32(0)))
    }));
    assert!(e.contains("full_attention_interval"), "{e}");
}

/// `-ctk auto` keeps K in f16 where many query heads share a KV head (the rule's measurement:
/// Qwen2.5-0.5B, GQA 7, q8_0 K alone +2.23% perplexity) and uses q8_0 K below that.
#[test]
fn auto_kv_keeps_f16_keys_for_wide_gqa() {
    for (heads, kv_heads, want_k) in [
        (4u32, 2u32, GgmlType::Q8_0),
        (8, 2, GgmlType::Q8_0),
        (16, 2, GgmlType::F16),
        (32, 4, GgmlType::F16),
    ] {
        let f = file("llama", |kv| {
            for (k, v) in kv.iter_mut() {
                if k == "llama.attention.head_count" {
                    *v = Value::U32(heads);
                } else if k == "llama.attention.head_count_kv" {
                    *v = Value::U32(kv_heads);
                }
            }
        });
        let hp = HParams::from_gguf(&f).unwrap();
        for v in [GgmlType::Turbo3, GgmlType::Turbo4, GgmlType::Q8_0] {
            let auto = models::plan::auto_kv_types(&hp, v);
            assert_eq!(
                auto.type_k,
                want_k,
                "GQA {heads}/{kv_heads}, V {}",
                v.name()
            );
        }
        // f16 V keeps f16 K whatever the GQA.
        assert_eq!(
            models::plan::auto_kv_types(&hp, GgmlType::F16).type_k,
            GgmlType::F16
        );
    }
}
