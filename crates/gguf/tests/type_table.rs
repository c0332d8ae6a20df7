//! `formats::GgmlType`'s ids, block sizes and block bytes against the Python `gguf`
//! package's `GGMLQuantizationType` and `GGML_QUANT_SIZES`.

mod common;

use formats::{GgmlType, ALL_TYPES};

/// Types the Python package knows that turbine does not read yet. Q1_0 is ggml's id 41, which
/// `formats` gives to the TurboQuant fork's turbo3; the GGUF reader rejects ids 41-43 (turbo
/// types never appear in model files), so a Q1_0 model fails cleanly instead of misreading.
const NOT_SUPPORTED: &[&str] = &["NVFP4", "Q1_0"];

#[test]
fn type_table_matches_python_gguf() {
    let Some(py) = common::python() else {
        return;
    };
    let script = r#"
import json
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType
print(json.dumps({t.name: [int(t.value), *GGML_QUANT_SIZES[t]] for t in GGMLQuantizationType if t in GGML_QUANT_SIZES}))
"#;
    let out = common::run_python(&py, script, &[]);
    let table: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert!(table.len() > 25, "suspiciously small table");
    for (name, v) in &table {
        let id = v[0].as_u64().unwrap() as u32;
        let block = v[1].as_u64().unwrap() as usize;
        let bytes = v[2].as_u64().unwrap() as usize;
        if NOT_SUPPORTED.contains(&name.as_str()) {
            continue;
        }
        let Some(ty) = GgmlType::from_id(id) else {
            // Types newer than turbine's table: files using them are rejected as unknown.
            assert!(
                NOT_SUPPORTED.contains(&name.as_str()),
                "{name} (id {id}) unknown"
            );
            continue;
        };
        assert_eq!(ty.name().to_uppercase(), *name, "id {id}");
        assert_eq!(ty.block_size(), block, "{name} block size");
        if ty == GgmlType::Q8_1 {
            // The Python table still has the old float d/s layout (40); ggml's block_q8_1 is
            // two halves + 32 quants = 36 bytes (static_assert in ggml-common.h).
            assert_eq!((bytes, ty.block_bytes()), (40, 36));
            continue;
        }
        assert_eq!(ty.block_bytes(), bytes, "{name} block bytes");
    }
    // Every type turbine knows is in Python's table, except the TurboQuant KV types.
    for ty in ALL_TYPES {
        if !ty.is_turbo() {
            assert!(
                table.contains_key(&ty.name().to_uppercase()),
                "{ty} missing in Python"
            );
        }
    }
}
