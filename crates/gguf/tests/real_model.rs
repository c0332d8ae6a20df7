//! The reader on a real model, checked against the Python `gguf` package's reading of it.

mod common;

use gguf::GgufFile;

#[test]
fn smollm2_header_facts() {
    let Some(path) = common::asset(common::SMOLLM) else {
        return;
    };
    let f = GgufFile::open(&path).expect("open");
    assert_eq!(f.version(), 3);
    assert_eq!(f.alignment(), 32);
    let md = f.metadata();
    assert_eq!(md.get_str("general.architecture"), Some("llama"));
    assert_eq!(md.get_u32("llama.block_count"), Some(30));
    assert_eq!(f.tensors().len(), 272);
    assert_eq!(f.n_parameters(), 134_515_008);
    assert_eq!(
        md.get_str_array("tokenizer.ggml.tokens").map(|t| t.len()),
        Some(49152)
    );
    assert_eq!(
        md.get_i32_array("tokenizer.ggml.token_type")
            .map(|t| t.len()),
        Some(49152)
    );
    assert_eq!(md.get_bool("tokenizer.ggml.add_bos_token"), Some(false));
    let emb = f.tensor("token_embd.weight").expect("token_embd");
    assert_eq!(emb.dims, [576, 49152]);
    assert_eq!(f.tensor_data(emb).len() as u64, emb.n_bytes);
}

/// Every metadata key (order, type, value) and every tensor (name, dims, type, offset, size,
/// and a hash of its bytes) as the Python `gguf` package reads them.
#[test]
fn smollm2_matches_python_reader() {
    let Some(path) = common::asset(common::SMOLLM) else {
        return;
    };
    let Some(py) = common::python() else {
        return;
    };
    let script = r#"
import sys, json
import numpy as np
from gguf import GGUFReader, GGUFValueType
def checksum(b):
    d = np.frombuffer(b, np.uint8).astype(np.uint64)
    w = np.arange(len(d), dtype=np.uint64) % 65521 + 1
    return str(int((d * w).sum()))
r = GGUFReader(sys.argv[1])
kv = []
for k, f in r.fields.items():
    if k.startswith('GGUF.'):
        continue
    t = f.types[0]
    if t == GGUFValueType.ARRAY:
        v = f.contents()
        if len(v) > 8:
            v = [len(v), v[:3], v[-1]]
        kv.append([k, [t.name, f.types[-1].name], v])
    else:
        kv.append([k, [t.name], f.contents()])
ts = [[t.name, [int(d) for d in t.shape], t.tensor_type.name, int(t.data_offset),
       int(t.n_bytes), checksum(t.data.tobytes())] for t in r.tensors]
print(json.dumps({"kv": kv, "tensors": ts}))
"#;
    let out = common::run_python(&py, script, &[path.to_str().unwrap()]);
    let want: serde_json::Value = serde_json::from_str(&out).unwrap();
    let f = GgufFile::open(&path).unwrap();

    let kv = want["kv"].as_array().unwrap();
    assert_eq!(kv.len(), f.metadata().len());
    for (w, (key, value)) in kv.iter().zip(f.metadata().iter()) {
        assert_eq!(w[0], key);
        assert_eq!(w[1][0], value.value_type().name(), "{key}");
        let got = common_json::value_json(value);
        assert_eq!(w[2], got, "{key}");
    }

    let ts = want["tensors"].as_array().unwrap();
    assert_eq!(ts.len(), f.tensors().len());
    for (w, t) in ts.iter().zip(f.tensors()) {
        assert_eq!(w[0], t.name.as_str());
        // The Python reader lists shape in ggml order too.
        let dims: Vec<u64> = w[1]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap())
            .collect();
        assert_eq!(dims, t.dims, "{}", t.name);
        assert_eq!(
            w[2].as_str().unwrap(),
            format!("{:?}", t.ty).to_uppercase(),
            "{}",
            t.name
        );
        assert_eq!(w[3].as_u64().unwrap(), t.file_offset, "{}", t.name);
        assert_eq!(w[4].as_u64().unwrap(), t.n_bytes, "{}", t.name);
        assert_eq!(
            w[5].as_str().unwrap(),
            common_json::checksum(f.tensor_data(t)),
            "{}",
            t.name
        );
    }
}

mod common_json {
    use gguf::{Array, Value};
    use serde_json::json;

    fn scalar(v: &Value) -> serde_json::Value {
        match v {
            Value::U8(x) => json!(x),
            Value::I8(x) => json!(x),
            Value::U16(x) => json!(x),
            Value::I16(x) => json!(x),
            Value::U32(x) => json!(x),
            Value::I32(x) => json!(x),
            Value::U64(x) => json!(x),
            Value::I64(x) => json!(x),
            Value::F32(x) => json!(*x as f64),
            Value::F64(x) => json!(x),
            Value::Bool(x) => json!(x),
            Value::String(s) => json!(s),
            Value::Array(a) => array(a),
        }
    }

    fn array(a: &Array) -> serde_json::Value {
        let items: Vec<serde_json::Value> =
            (0..a.len()).map(|i| scalar(&a.get(i).unwrap())).collect();
        if items.len() > 8 {
            json!([items.len(), items[..3], items[items.len() - 1]])
        } else {
            json!(items)
        }
    }

    pub fn value_json(v: &Value) -> serde_json::Value {
        scalar(v)
    }

    /// Position-weighted byte sum, the same formula as the Python side.
    pub fn checksum(bytes: &[u8]) -> String {
        let sum: u64 = bytes
            .iter()
            .enumerate()
            .map(|(i, &b)| b as u64 * (i as u64 % 65521 + 1))
            .sum();
        sum.to_string()
    }
}
