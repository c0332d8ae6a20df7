//! New files from [`GgufWriter`]: identical to what the Python `gguf` package writes for the
//! same content, and read back by Python's `GGUFReader` with the same metadata and data.

mod common;

use formats::GgmlType;
use gguf::{Array, GgufFile, GgufWriter, Value};

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn new_file_is_byte_identical_to_python_writer() {
    let Some(py) = common::python() else {
        return;
    };
    let dir = common::temp_dir("writer-vs-python");
    let py_path = dir.join("py.gguf");
    let script = r#"
import sys, numpy as np, gguf
w = gguf.GGUFWriter(sys.argv[1], "llama")
w.add_uint32("llama.block_count", 2)
w.add_float32("llama.rope.freq_base", 10000.0)
w.add_string("general.name", "tiny")
w.add_bool("tokenizer.ggml.add_bos_token", False)
w.add_array("tokenizer.ggml.tokens", ["<s>", "a", "bc"])
w.add_array("tokenizer.ggml.scores", [0.0, -1.5, -2.25])
w.add_tensor("token_embd.weight", np.arange(24, dtype=np.float32).reshape(3, 8))
w.add_tensor("blk.0.attn_q.weight", np.full((2, 34), 7, dtype=np.uint8), raw_dtype=gguf.GGMLQuantizationType.Q8_0)
w.add_tensor("output_norm.weight", np.ones(5, dtype=np.float16))
w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
"#;
    common::run_python(&py, script, &[py_path.to_str().unwrap()]);

    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", "llama");
    w.add_metadata("llama.block_count", 2u32);
    w.add_metadata("llama.rope.freq_base", 10000.0f32);
    w.add_metadata("general.name", "tiny");
    w.add_metadata("tokenizer.ggml.add_bos_token", false);
    w.add_metadata(
        "tokenizer.ggml.tokens",
        Array::String(vec!["<s>".into(), "a".into(), "bc".into()]),
    );
    w.add_metadata("tokenizer.ggml.scores", Array::F32(vec![0.0, -1.5, -2.25]));
    let emb: Vec<f32> = (0..24).map(|i| i as f32).collect();
    w.add_tensor("token_embd.weight", &[8, 3], GgmlType::F32, f32_bytes(&emb))
        .unwrap();
    w.add_tensor(
        "blk.0.attn_q.weight",
        &[32, 2],
        GgmlType::Q8_0,
        vec![7u8; 68],
    )
    .unwrap();
    let ones: Vec<u8> = (0..5).flat_map(|_| 0x3c00u16.to_le_bytes()).collect();
    w.add_tensor("output_norm.weight", &[5], GgmlType::F16, ones)
        .unwrap();
    let ours = w.to_bytes().unwrap();
    let theirs = std::fs::read(&py_path).unwrap();
    assert_eq!(ours.len(), theirs.len());
    assert!(ours == theirs, "bytes differ from the Python writer's");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn python_reads_what_we_write() {
    let Some(py) = common::python() else {
        return;
    };
    let dir = common::temp_dir("python-reads-ours");
    let path = dir.join("ours.gguf");
    let mut w = GgufWriter::new();
    w.add_metadata("general.alignment", 64u32);
    w.add_metadata("k.u8", 1u8);
    w.add_metadata("k.i8", -2i8);
    w.add_metadata("k.u16", 3u16);
    w.add_metadata("k.i16", -4i16);
    w.add_metadata("k.u32", 5u32);
    w.add_metadata("k.i32", -6i32);
    w.add_metadata("k.f32", 0.75f32);
    w.add_metadata("k.bool", true);
    w.add_metadata("k.str", "ünicode ✓");
    w.add_metadata("k.u64", u64::MAX);
    w.add_metadata("k.i64", i64::MIN);
    w.add_metadata("k.f64", 1e-300f64);
    w.add_metadata("k.arr_str", Array::String(vec!["x".into(), "".into()]));
    w.add_metadata("k.arr_i32", Array::I32(vec![-1, 2]));
    w.add_metadata("k.arr_u64", Array::U64(vec![u64::MAX]));
    w.add_metadata("k.arr_bool", Array::Bool(vec![true, false]));
    w.add_metadata("k.arr_empty", Array::F32(vec![]));
    let data_a: Vec<u8> = (0..96u32).map(|i| (i * 7) as u8).collect();
    w.add_tensor("a", &[8, 3], GgmlType::F32, data_a.clone())
        .unwrap();
    let data_b: Vec<u8> = (0..40u32).map(|i| (i * 13 + 1) as u8).collect();
    w.add_tensor("b", &[64], GgmlType::Q4_1, data_b.clone())
        .unwrap();
    w.write_file(&path).unwrap();

    let script = r#"
import sys, json
from gguf import GGUFReader, GGUFValueType
r = GGUFReader(sys.argv[1])
kv = {}
for k, f in r.fields.items():
    if k.startswith('GGUF.'):
        continue
    types = [t.name for t in f.types]
    kv[k] = [types, f.contents()]
ts = [[t.name, [int(d) for d in t.shape], t.tensor_type.name, list(t.data.tobytes())] for t in r.tensors]
print(json.dumps({"kv": kv, "tensors": ts, "alignment": int(r.alignment)}, default=lambda x: x.item()))
"#;
    let out = common::run_python(&py, script, &[path.to_str().unwrap()]);
    let got: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(got["alignment"], 64);
    let kv = &got["kv"];
    let expect = |k: &str, types: serde_json::Value, v: serde_json::Value| {
        assert_eq!(kv[k][0], types, "{k} types");
        assert_eq!(kv[k][1], v, "{k} value");
    };
    use serde_json::json;
    expect("k.u8", json!(["UINT8"]), json!(1));
    expect("k.i8", json!(["INT8"]), json!(-2));
    expect("k.u16", json!(["UINT16"]), json!(3));
    expect("k.i16", json!(["INT16"]), json!(-4));
    expect("k.u32", json!(["UINT32"]), json!(5));
    expect("k.i32", json!(["INT32"]), json!(-6));
    expect("k.f32", json!(["FLOAT32"]), json!(0.75));
    expect("k.bool", json!(["BOOL"]), json!(true));
    expect("k.str", json!(["STRING"]), json!("ünicode ✓"));
    expect("k.u64", json!(["UINT64"]), json!(u64::MAX));
    expect("k.i64", json!(["INT64"]), json!(i64::MIN));
    expect("k.f64", json!(["FLOAT64"]), json!(1e-300));
    expect("k.arr_str", json!(["ARRAY", "STRING"]), json!(["x", ""]));
    expect("k.arr_i32", json!(["ARRAY", "INT32"]), json!([-1, 2]));
    expect("k.arr_u64", json!(["ARRAY", "UINT64"]), json!([u64::MAX]));
    expect("k.arr_bool", json!(["ARRAY", "BOOL"]), json!([true, false]));
    // GGUFReader lists no element type for an empty array (it takes it from the elements).
    expect("k.arr_empty", json!(["ARRAY"]), json!([]));
    let ts = got["tensors"].as_array().unwrap();
    assert_eq!(ts[0][0], "a");
    assert_eq!(ts[0][1], json!([8, 3]));
    assert_eq!(ts[0][2], "F32");
    assert_eq!(ts[0][3], json!(data_a));
    assert_eq!(ts[1][0], "b");
    assert_eq!(ts[1][2], "Q4_1");
    assert_eq!(ts[1][3], json!(data_b));

    // And our own reader agrees, including the tensors' alignment to 64.
    let f = GgufFile::open(&path).unwrap();
    assert_eq!(f.alignment(), 64);
    assert!(f.tensors().iter().all(|t| t.file_offset % 64 == 0));
    assert_eq!(f.metadata().get("k.i64"), Some(&Value::I64(i64::MIN)));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn add_tensor_rejects_bad_input() {
    let mut w = GgufWriter::new();
    let e = w
        .add_tensor("x", &[4], GgmlType::F32, vec![0u8; 15])
        .unwrap_err();
    assert!(e.to_string().contains("needs 16 bytes, got 15"), "{e}");
    let e = w
        .add_tensor("x", &[16], GgmlType::Q4_0, vec![0u8; 9])
        .unwrap_err();
    assert!(e.to_string().contains("whole number"), "{e}");
    let e = w
        .add_tensor("x", &[1, 1, 1, 1, 1], GgmlType::F32, vec![0u8; 4])
        .unwrap_err();
    assert!(e.to_string().contains("5 dimensions"), "{e}");
    w.add_tensor("x", &[1], GgmlType::F32, vec![0u8; 4])
        .unwrap();
    let e = w
        .add_tensor("x", &[1], GgmlType::F32, vec![0u8; 4])
        .unwrap_err();
    assert!(e.to_string().contains("duplicate"), "{e}");
    w.add_metadata("general.alignment", 3u32);
    assert!(w.to_bytes().is_err());
}

/// Nested arrays and empty arrays (which the Python writer cannot produce) survive our own
/// write -> read -> write.
#[test]
fn nested_and_empty_arrays_round_trip() {
    let nested = Array::Array(vec![
        Array::String(vec!["a".into()]),
        Array::Array(vec![Array::U8(vec![]), Array::F64(vec![1.5])]),
        Array::Bool(vec![]),
    ]);
    let mut w = GgufWriter::new();
    w.add_metadata("n", nested.clone());
    w.add_metadata("e", Array::Array(vec![]));
    let bytes = w.to_bytes().unwrap();
    let f = GgufFile::from_bytes(bytes.clone()).unwrap();
    assert_eq!(f.metadata().get_array("n"), Some(&nested));
    assert_eq!(f.metadata().get_array("e"), Some(&Array::Array(vec![])));
    assert_eq!(
        GgufWriter::from_file(&f).unwrap().to_bytes().unwrap(),
        bytes
    );
}
