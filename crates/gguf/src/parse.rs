//! Parsing and validating one GGUF file's header (magic, version, metadata, tensor infos)
//! from a byte buffer. Every count is checked against the bytes left before anything is
//! allocated for it, and every tensor's data range is checked against the file.

use std::collections::HashSet;

use formats::GgmlType;

use crate::cursor::Cursor;
use crate::error::{ErrorKind, GgufError};
use crate::tensor::{TensorInfo, MAX_DIMS};
use crate::value::{Array, Metadata, Value, ValueType};

pub const MAGIC: [u8; 4] = *b"GGUF";
pub const DEFAULT_ALIGNMENT: u64 = 32;
pub const ALIGNMENT_KEY: &str = "general.alignment";
/// How deeply arrays may nest (an array value is level 1). Bounds recursion on hostile input.
pub const MAX_ARRAY_DEPTH: usize = 8;

/// Pre-allocation cap for element vectors whose elements are larger in memory than in the
/// file (strings, arrays, tensor infos): counts are already bounded by the file size, this
/// keeps a hostile count from reserving several times the file size up front.
const MAX_PREALLOC: usize = 4096;

/// Smallest possible encoded metadata entry: key length, value type, one-byte value.
const MIN_KV_SIZE: u64 = 8 + 4 + 1;
/// Smallest possible tensor info: name length, n_dims, type, offset.
const MIN_TENSOR_INFO_SIZE: u64 = 8 + 4 + 4 + 8;

/// The header of one GGUF file, validated.
#[derive(Debug)]
pub(crate) struct Header {
    pub version: u32,
    pub alignment: u64,
    pub metadata: Metadata,
    pub tensors: Vec<TensorInfo>,
    /// End of the tensor infos.
    pub header_len: u64,
    /// Start of the data section: `header_len` rounded up to `alignment`.
    pub data_offset: u64,
}

/// Parses `bytes` as a GGUF file. With `check_data`, every tensor's data must lie inside
/// `bytes`; without it (header-only files), only its arithmetic is checked. `part` is stored
/// in each [`TensorInfo`].
pub(crate) fn parse(bytes: &[u8], part: usize, check_data: bool) -> Result<Header, GgufError> {
    let mut cur = Cursor::new(bytes);
    let magic = cur.array::<4>(|| "magic".into())?;
    if magic != MAGIC {
        return Err(GgufError::at(0, ErrorKind::BadMagic(magic)));
    }
    let version = cur.u32(|| "version".into())?;
    match version {
        2 | 3 => {}
        v if v.swap_bytes() == 2 || v.swap_bytes() == 3 => {
            return Err(GgufError::at(4, ErrorKind::BigEndian(v)));
        }
        v => return Err(GgufError::at(4, ErrorKind::UnsupportedVersion(v))),
    }
    let n_tensors_at = cur.pos();
    let n_tensors = cur.u64(|| "tensor count".into())?;
    let n_kv_at = cur.pos();
    let n_kv = cur.u64(|| "metadata count".into())?;
    let n_kv = cur.check_count(n_kv, MIN_KV_SIZE, n_kv_at, || "metadata entry".into())?;
    let n_tensors = cur.check_count(n_tensors, MIN_TENSOR_INFO_SIZE, n_tensors_at, || {
        "tensor info".into()
    })?;

    let mut metadata = Metadata::new();
    let mut alignment = DEFAULT_ALIGNMENT;
    for i in 0..n_kv {
        let entry_at = cur.pos();
        let key = cur.string(|| format!("key of metadata entry {i}"))?;
        let what = || format!("metadata '{}'", key.escape_debug());
        let type_at = cur.pos();
        let type_id = cur.u32(|| format!("{} (value type)", what()))?;
        let ty = ValueType::from_id(type_id).ok_or_else(|| {
            GgufError::at(
                type_at,
                ErrorKind::UnknownValueType {
                    what: what(),
                    id: type_id,
                },
            )
        })?;
        let value_at = cur.pos();
        let value = read_value(&mut cur, ty, 0, &what)?;
        if key == ALIGNMENT_KEY {
            alignment = match value {
                Value::U32(a) if a != 0 && a.is_power_of_two() => a.into(),
                Value::U32(a) => {
                    return Err(GgufError::at(value_at, ErrorKind::BadAlignment(a.into())))
                }
                ref other => {
                    return Err(GgufError::at(
                        type_at,
                        ErrorKind::AlignmentType(other.value_type()),
                    ))
                }
            };
        }
        metadata
            .push_new(key.to_owned(), value)
            .map_err(|key| GgufError::at(entry_at, ErrorKind::DuplicateKey(key)))?;
    }

    let cap = n_tensors.min(MAX_PREALLOC);
    let mut tensors = Vec::with_capacity(cap);
    let mut info_offsets = Vec::with_capacity(cap);
    let mut names: HashSet<&str> = HashSet::with_capacity(cap);
    for i in 0..n_tensors {
        let info_at = cur.pos();
        let name = cur.string(|| format!("name of tensor info {i}"))?;
        if !names.insert(name) {
            return Err(GgufError::at(
                info_at,
                ErrorKind::DuplicateTensor(name.into()),
            ));
        }
        let what = || format!("tensor '{}'", name.escape_debug());
        let n_dims_at = cur.pos();
        let n_dims = cur.u32(|| format!("{} (n_dims)", what()))?;
        if n_dims > MAX_DIMS {
            return Err(GgufError::at(
                n_dims_at,
                ErrorKind::TooManyDims {
                    name: name.into(),
                    n_dims,
                    max: MAX_DIMS,
                },
            ));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for d in 0..n_dims as usize {
            let dim_at = cur.pos();
            let value = cur.u64(|| format!("{} (dimension {d})", what()))?;
            // ggml stores dimensions as int64_t.
            if value > i64::MAX as u64 {
                return Err(GgufError::at(
                    dim_at,
                    ErrorKind::DimTooLarge {
                        name: name.into(),
                        dim: d,
                        value,
                    },
                ));
            }
            dims.push(value);
        }
        let n_elements = dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .filter(|&n| n <= i64::MAX as u64)
            .ok_or_else(|| {
                GgufError::at(
                    n_dims_at,
                    ErrorKind::ShapeOverflow {
                        name: name.into(),
                        dims: dims.clone(),
                    },
                )
            })?;
        let type_at = cur.pos();
        let type_id = cur.u32(|| format!("{} (type)", what()))?;
        // The TurboQuant KV types exist only in memory; their ids (41-43, from the fork)
        // collide with newer ggml types (ggml's 41 is Q1_0), so a file claiming them is
        // treated as using a type turbine does not know.
        let ty = GgmlType::from_id(type_id)
            .filter(|t| !t.is_turbo())
            .ok_or_else(|| {
                GgufError::at(
                    type_at,
                    ErrorKind::UnknownTensorType {
                        name: name.into(),
                        id: type_id,
                    },
                )
            })?;
        let block = ty.block_size() as u64;
        let row = dims.first().copied().unwrap_or(1);
        if row % block != 0 {
            return Err(GgufError::at(
                n_dims_at,
                ErrorKind::PartialBlock {
                    name: name.into(),
                    ty,
                    row,
                    block,
                },
            ));
        }
        // A whole number of rows of whole blocks, so bytes_for only fails on overflow.
        let offset_at = cur.pos();
        let n_bytes = ty.bytes_for(n_elements).ok_or_else(|| {
            GgufError::at(
                n_dims_at,
                ErrorKind::ShapeOverflow {
                    name: name.into(),
                    dims: dims.clone(),
                },
            )
        })?;
        let offset = cur.u64(|| format!("{} (data offset)", what()))?;
        if offset % alignment != 0 {
            return Err(GgufError::at(
                offset_at,
                ErrorKind::MisalignedOffset {
                    name: name.into(),
                    offset,
                    alignment,
                },
            ));
        }
        info_offsets.push(offset_at);
        tensors.push(TensorInfo {
            name: name.into(),
            dims,
            ty,
            offset,
            n_bytes,
            part,
            file_offset: 0, // set below, once the data section's start is known
        });
    }

    let header_len = cur.pos();
    // header_len <= bytes.len() and alignment <= 2^31, so this cannot overflow a u64.
    let data_offset = header_len.div_ceil(alignment) * alignment;
    let file_len = bytes.len() as u64;
    for (t, &offset_at) in tensors.iter_mut().zip(&info_offsets) {
        let overflow = || {
            GgufError::at(
                offset_at,
                ErrorKind::DataOffsetOverflow {
                    name: t.name.clone(),
                    offset: t.offset,
                },
            )
        };
        let start = data_offset.checked_add(t.offset).ok_or_else(overflow)?;
        let end = start.checked_add(t.n_bytes).ok_or_else(overflow)?;
        if check_data && end > file_len {
            return Err(GgufError::at(
                offset_at,
                ErrorKind::DataOutOfFile {
                    name: t.name.clone(),
                    start,
                    end,
                    file_len,
                },
            ));
        }
        t.file_offset = start;
    }
    check_overlaps(&tensors, &info_offsets)?;

    Ok(Header {
        version,
        alignment,
        metadata,
        tensors,
        header_len,
        data_offset,
    })
}

/// Tensors may come in any order and with gaps, but no two may share bytes. Empty tensors
/// occupy no bytes and so overlap nothing.
fn check_overlaps(tensors: &[TensorInfo], info_offsets: &[u64]) -> Result<(), GgufError> {
    let mut order: Vec<usize> = (0..tensors.len())
        .filter(|&i| tensors[i].n_bytes > 0)
        .collect();
    order.sort_by_key(|&i| tensors[i].file_offset);
    for pair in order.windows(2) {
        let (a, b) = (&tensors[pair[0]], &tensors[pair[1]]);
        let a_end = a.file_offset + a.n_bytes;
        if b.file_offset < a_end {
            return Err(GgufError::at(
                info_offsets[pair[1]],
                ErrorKind::OverlappingTensors {
                    a: a.name.clone(),
                    a_start: a.file_offset,
                    a_end,
                    b: b.name.clone(),
                    b_start: b.file_offset,
                },
            ));
        }
    }
    Ok(())
}

fn read_value(
    cur: &mut Cursor<'_>,
    ty: ValueType,
    depth: usize,
    what: &dyn Fn() -> String,
) -> Result<Value, GgufError> {
    let at = cur.pos();
    Ok(match ty {
        ValueType::U8 => Value::U8(cur.u8(what)?),
        ValueType::I8 => Value::I8(cur.u8(what)? as i8),
        ValueType::U16 => Value::U16(u16::from_le_bytes(cur.array(what)?)),
        ValueType::I16 => Value::I16(i16::from_le_bytes(cur.array(what)?)),
        ValueType::U32 => Value::U32(cur.u32(what)?),
        ValueType::I32 => Value::I32(i32::from_le_bytes(cur.array(what)?)),
        ValueType::F32 => Value::F32(f32::from_le_bytes(cur.array(what)?)),
        ValueType::U64 => Value::U64(cur.u64(what)?),
        ValueType::I64 => Value::I64(i64::from_le_bytes(cur.array(what)?)),
        ValueType::F64 => Value::F64(f64::from_le_bytes(cur.array(what)?)),
        ValueType::Bool => Value::Bool(to_bool(cur.u8(what)?, at, what)?),
        ValueType::String => Value::String(cur.string(what)?.to_owned()),
        ValueType::Array => Value::Array(read_array(cur, depth + 1, what)?),
    })
}

fn to_bool(byte: u8, at: u64, what: &dyn Fn() -> String) -> Result<bool, GgufError> {
    match byte {
        0 => Ok(false),
        1 => Ok(true),
        value => Err(GgufError::at(
            at,
            ErrorKind::InvalidBool {
                what: what(),
                value,
            },
        )),
    }
}

/// Reads fixed-size elements of `N` bytes each with `conv`.
fn fixed<const N: usize, T>(
    cur: &mut Cursor<'_>,
    n: usize,
    what: &dyn Fn() -> String,
    conv: fn([u8; N]) -> T,
) -> Result<Vec<T>, GgufError> {
    // check_count guaranteed n * N <= remaining, so this neither overflows nor truncates.
    let bytes = cur.take((n * N) as u64, what)?;
    Ok(bytes
        .chunks_exact(N)
        .map(|c| {
            let mut a = [0u8; N];
            a.copy_from_slice(c);
            conv(a)
        })
        .collect())
}

/// An array value: element type, u64 count, elements. `depth` is this array's nesting level.
fn read_array(
    cur: &mut Cursor<'_>,
    depth: usize,
    what: &dyn Fn() -> String,
) -> Result<Array, GgufError> {
    let type_at = cur.pos();
    let type_id = cur.u32(|| format!("{} (array element type)", what()))?;
    let ety = ValueType::from_id(type_id).ok_or_else(|| {
        GgufError::at(
            type_at,
            ErrorKind::UnknownValueType {
                what: format!("{} (array element)", what()),
                id: type_id,
            },
        )
    })?;
    if ety == ValueType::Array && depth >= MAX_ARRAY_DEPTH {
        return Err(GgufError::at(
            type_at,
            ErrorKind::ArrayTooDeep {
                what: what(),
                max: MAX_ARRAY_DEPTH,
            },
        ));
    }
    let count_at = cur.pos();
    let count = cur.u64(|| format!("{} (array length)", what()))?;
    let n = cur.check_count(count, ety.min_encoded_size(), count_at, || {
        format!("{} array element", what())
    })?;
    Ok(match ety {
        ValueType::U8 => Array::U8(cur.take(n as u64, what)?.to_vec()),
        ValueType::I8 => Array::I8(fixed(cur, n, what, i8::from_le_bytes)?),
        ValueType::U16 => Array::U16(fixed(cur, n, what, u16::from_le_bytes)?),
        ValueType::I16 => Array::I16(fixed(cur, n, what, i16::from_le_bytes)?),
        ValueType::U32 => Array::U32(fixed(cur, n, what, u32::from_le_bytes)?),
        ValueType::I32 => Array::I32(fixed(cur, n, what, i32::from_le_bytes)?),
        ValueType::F32 => Array::F32(fixed(cur, n, what, f32::from_le_bytes)?),
        ValueType::U64 => Array::U64(fixed(cur, n, what, u64::from_le_bytes)?),
        ValueType::I64 => Array::I64(fixed(cur, n, what, i64::from_le_bytes)?),
        ValueType::F64 => Array::F64(fixed(cur, n, what, f64::from_le_bytes)?),
        ValueType::Bool => {
            let start = cur.pos();
            let bytes = cur.take(n as u64, what)?;
            let mut out = Vec::with_capacity(n);
            for (i, &b) in bytes.iter().enumerate() {
                out.push(to_bool(b, start + i as u64, &|| {
                    format!("{} element {i}", what())
                })?);
            }
            Array::Bool(out)
        }
        ValueType::String => {
            let mut out = Vec::with_capacity(n.min(MAX_PREALLOC));
            for i in 0..n {
                out.push(cur.string(|| format!("{} element {i}", what()))?.to_owned());
            }
            Array::String(out)
        }
        ValueType::Array => {
            let mut out = Vec::with_capacity(n.min(MAX_PREALLOC));
            for i in 0..n {
                let inner_what = || format!("{} element {i}", what());
                out.push(read_array(cur, depth + 1, &inner_what)?);
            }
            Array::Array(out)
        }
    })
}
