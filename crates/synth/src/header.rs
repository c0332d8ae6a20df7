//! The GGUF header (v3) for tensors whose bytes are streamed separately: metadata, then each
//! tensor's name, dims, type and offset in the data section. `gguf::GgufWriter` wants every
//! tensor's bytes in memory; a 20 GB model is written in parallel pieces instead, so the header
//! is laid out here and the data positions handed to the writer.

use gguf::{Array, Metadata, Value};

use crate::tensors::TensorSpec;

const MAGIC: &[u8; 4] = b"GGUF";
const VERSION: u32 = 3;
/// `general.alignment` default.
pub const ALIGNMENT: u64 = 32;

/// Where everything goes: the header bytes, the data section's start and each tensor's
/// absolute file offset.
pub struct Layout {
    pub header: Vec<u8>,
    pub data_start: u64,
    pub offsets: Vec<u64>,
    /// File length: the last tensor's end, padded to the alignment.
    pub file_len: u64,
}

pub fn layout(metadata: &Metadata, tensors: &[TensorSpec]) -> Layout {
    let mut rel = Vec::with_capacity(tensors.len());
    let mut end = 0u64;
    for t in tensors {
        let at = end.div_ceil(ALIGNMENT) * ALIGNMENT;
        rel.push(at);
        end = at + t.n_bytes();
    }
    let mut h = Vec::new();
    h.extend_from_slice(MAGIC);
    h.extend_from_slice(&VERSION.to_le_bytes());
    h.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    h.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
    for (key, value) in metadata.iter() {
        put_str(&mut h, key);
        h.extend_from_slice(&value.value_type().id().to_le_bytes());
        put_value(&mut h, value);
    }
    for (t, &off) in tensors.iter().zip(&rel) {
        put_str(&mut h, &t.name);
        h.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
        for d in &t.dims {
            h.extend_from_slice(&d.to_le_bytes());
        }
        h.extend_from_slice(&t.ty.id().to_le_bytes());
        h.extend_from_slice(&off.to_le_bytes());
    }
    let data_start = (h.len() as u64).div_ceil(ALIGNMENT) * ALIGNMENT;
    Layout {
        header: h,
        data_start,
        offsets: rel.iter().map(|o| data_start + o).collect(),
        file_len: data_start + end.div_ceil(ALIGNMENT) * ALIGNMENT,
    }
}

fn put_str(h: &mut Vec<u8>, s: &str) {
    h.extend_from_slice(&(s.len() as u64).to_le_bytes());
    h.extend_from_slice(s.as_bytes());
}

fn put_value(h: &mut Vec<u8>, v: &Value) {
    match v {
        Value::U8(x) => h.push(*x),
        Value::I8(x) => h.extend_from_slice(&x.to_le_bytes()),
        Value::U16(x) => h.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => h.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => h.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => h.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => h.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => h.push(u8::from(*x)),
        Value::String(s) => put_str(h, s),
        Value::Array(a) => put_array(h, a),
        Value::U64(x) => h.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => h.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => h.extend_from_slice(&x.to_le_bytes()),
    }
}

fn put_array(h: &mut Vec<u8>, a: &Array) {
    h.extend_from_slice(&a.element_type().id().to_le_bytes());
    h.extend_from_slice(&(a.len() as u64).to_le_bytes());
    fn each<T: Copy, const N: usize>(h: &mut Vec<u8>, v: &[T], le: impl Fn(T) -> [u8; N]) {
        for &x in v {
            h.extend_from_slice(&le(x));
        }
    }
    match a {
        Array::U8(v) => h.extend_from_slice(v),
        Array::I8(v) => each(h, v, i8::to_le_bytes),
        Array::U16(v) => each(h, v, u16::to_le_bytes),
        Array::I16(v) => each(h, v, i16::to_le_bytes),
        Array::U32(v) => each(h, v, u32::to_le_bytes),
        Array::I32(v) => each(h, v, i32::to_le_bytes),
        Array::F32(v) => each(h, v, f32::to_le_bytes),
        Array::Bool(v) => h.extend(v.iter().map(|&b| u8::from(b))),
        Array::String(v) => v.iter().for_each(|s| put_str(h, s)),
        Array::Array(v) => v.iter().for_each(|inner| put_array(h, inner)),
        Array::U64(v) => each(h, v, u64::to_le_bytes),
        Array::I64(v) => each(h, v, i64::to_le_bytes),
        Array::F64(v) => each(h, v, f64::to_le_bytes),
    }
}
