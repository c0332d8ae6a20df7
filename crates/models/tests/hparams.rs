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
