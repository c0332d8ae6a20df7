//! Read -> write gives back the identical bytes, for real files (SmolLM2, llama.cpp's vocab
//! files) and for files the Python `gguf` package writes with every value type.

mod common;

use std::path::Path;

use gguf::{Array, GgufFile, GgufWriter, Value};

fn assert_round_trip(path: &Path) {
    let original = std::fs::read(path).unwrap();
    let f = GgufFile::open(path).unwrap_or_else(|e| panic!("{e}"));
    let written = GgufWriter::from_file(&f).unwrap().to_bytes().unwrap();
    assert_eq!(written.len(), original.len(), "{}: length", path.display());
    if let Some(i) = written.iter().zip(&original).position(|(a, b)| a != b) {
        panic!("{}: first difference at byte {i}", path.display());
    }
}

#[test]
fn smollm2_round_trips_byte_for_byte() {
    if let Some(path) = common::asset(common::SMOLLM) {
        assert_round_trip(&path);
    }
}

#[test]
fn llama_cpp_vocab_files_round_trip() {
    let Some(dir) = common::asset("fixtures/llama.cpp/models") else {
        return;
    };
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "gguf") {
            assert_round_trip(&path);
            n += 1;
        }
    }
    assert!(n > 0, "no vocab files found");
}

/// Files written by the Python `gguf` package: all 13 value types, arrays of each, empty
/// arrays, an odd alignment, v2 and v3, tensors of several types, no tensors at all.
#[test]
fn python_written_files_round_trip() {
    let Some(py) = common::python() else {
        return;
    };
    let dir = common::temp_dir("py-roundtrip");
    let script = r#"
import sys, numpy as np, gguf
from gguf import GGUFWriter, GGUFValueType as T
out = sys.argv[1]
def make(name, alignment=None, tensors=True):
    w = GGUFWriter(f"{out}/{name}.gguf", "llama")
    if alignment is not None:
        w.add_custom_alignment(alignment)
    w.add_uint8("t.u8", 200); w.add_int8("t.i8", -5)
    w.add_uint16("t.u16", 65000); w.add_int16("t.i16", -300)
    w.add_uint32("t.u32", 4000000000); w.add_int32("t.i32", -7)
    w.add_float32("t.f32", 1.25); w.add_bool("t.bool", True)
    w.add_string("t.str", "héllo ✓"); w.add_uint64("t.u64", 2**63 + 5)
    w.add_int64("t.i64", -2**40); w.add_float64("t.f64", -3.5e-300)
    w.add_string("t.empty_str", "")
    w.add_array("t.arr_str", ["a", "", "ünï"])
    w.add_array("t.arr_i32", [1, -2, 3])
    w.add_array("t.arr_f32", [0.5, -1.0])
    w.add_array("t.arr_bool", [True, False, True])
    w.add_key_value("t.arr_u8", [1, 2, 255], T.ARRAY, sub_type=T.UINT8)
    w.add_key_value("t.arr_i8", [-1, 2], T.ARRAY, sub_type=T.INT8)
    w.add_key_value("t.arr_u16", [1, 65535], T.ARRAY, sub_type=T.UINT16)
    w.add_key_value("t.arr_i16", [-1, 300], T.ARRAY, sub_type=T.INT16)
    w.add_key_value("t.arr_u32", [7], T.ARRAY, sub_type=T.UINT32)
    w.add_key_value("t.arr_u64", [2**64 - 1], T.ARRAY, sub_type=T.UINT64)
    w.add_key_value("t.arr_i64", [-2**63], T.ARRAY, sub_type=T.INT64)
    w.add_key_value("t.arr_f64", [1e300, -0.0], T.ARRAY, sub_type=T.FLOAT64)
    w.add_array("t.nested", [[1, 2], [3]])
    w.add_array("t.nested_str", [["x", "yz"], ["w"]])
    if tensors:
        w.add_tensor("a", np.arange(12, dtype=np.float32).reshape(3, 4))
        w.add_tensor("b", np.arange(5, dtype=np.float16))
        w.add_tensor("c", np.zeros((2, 18), dtype=np.uint8), raw_dtype=gguf.GGMLQuantizationType.Q4_0)
        w.add_tensor("d", np.ones((2, 3, 4), dtype=np.int32))
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
make("plain")
make("align64", alignment=64)
make("align1", alignment=1)
make("no_tensors", tensors=False)
"#;
    common::run_python(&py, script, &[dir.to_str().unwrap()]);
    let f = GgufFile::open(dir.join("plain.gguf")).unwrap();
    let md = f.metadata();
    assert_eq!(md.get("t.u8"), Some(&Value::U8(200)));
    assert_eq!(md.get("t.i16"), Some(&Value::I16(-300)));
    assert_eq!(md.get_u64("t.u64"), Some((1 << 63) + 5));
    assert_eq!(md.get("t.f64"), Some(&Value::F64(-3.5e-300)));
    assert_eq!(md.get_str("t.str"), Some("héllo ✓"));
    assert_eq!(md.get_bool("t.bool"), Some(true));
    assert_eq!(md.get_i32_array("t.arr_i32"), Some(&[1, -2, 3][..]));
    assert_eq!(
        md.get_array("t.nested"),
        Some(&Array::Array(vec![
            Array::I32(vec![1, 2]),
            Array::I32(vec![3])
        ]))
    );
    assert_eq!(f.tensor("a").unwrap().dims, [4, 3]);
    assert_eq!(f.tensor("c").unwrap().ty, formats::GgmlType::Q4_0);
    assert_eq!(f.tensor("c").unwrap().dims, [32, 2]);
    for name in ["plain", "align64", "align1", "no_tensors"] {
        assert_round_trip(&dir.join(format!("{name}.gguf")));
    }
    // Version 2 has the same layout: patch the version field and round-trip that too.
    let mut v2 = std::fs::read(dir.join("plain.gguf")).unwrap();
    v2[4..8].copy_from_slice(&2u32.to_le_bytes());
    std::fs::write(dir.join("v2.gguf"), &v2).unwrap();
    let f = GgufFile::open(dir.join("v2.gguf")).unwrap();
    assert_eq!(f.version(), 2);
    assert_round_trip(&dir.join("v2.gguf"));
    let _ = std::fs::remove_dir_all(dir);
}

/// Non-zero padding and gaps between tensors are reproduced too.
#[test]
fn odd_padding_and_gaps_round_trip() {
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", "x");
    w.add_tensor("a", &[3], formats::GgmlType::F32, vec![1u8; 12])
        .unwrap();
    w.add_tensor("b", &[2], formats::GgmlType::F16, vec![2u8; 4])
        .unwrap();
    let mut bytes = w.to_bytes().unwrap();
    let f = GgufFile::from_bytes(bytes.clone()).unwrap();
    let data_offset = f.parts()[0].data_offset() as usize;
    // Scribble over the header padding, the gap after "a", and append trailing bytes.
    let header_len = f.parts()[0].header_len() as usize;
    for b in &mut bytes[header_len..data_offset] {
        *b = 0xAB;
    }
    bytes[data_offset + 12] = 0xCD;
    bytes.extend_from_slice(b"trailing");
    let f = GgufFile::from_bytes(bytes.clone()).unwrap();
    assert_eq!(
        GgufWriter::from_file(&f).unwrap().to_bytes().unwrap(),
        bytes
    );
}
