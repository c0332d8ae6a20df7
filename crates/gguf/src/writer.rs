//! [`GgufWriter`]: writes GGUF files, either new ones (metadata + tensor bytes, laid out the
//! way llama.cpp and the Python `gguf` package lay them out) or an exact copy of a file the
//! reader accepted ([`GgufWriter::from_file`]): same bytes, padding and gaps included.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use formats::GgmlType;

use crate::error::{ErrorKind, GgufError};
use crate::file::GgufFile;
use crate::parse::{ALIGNMENT_KEY, DEFAULT_ALIGNMENT, MAGIC};
use crate::split::{split_path, SPLIT_COUNT, SPLIT_NO, SPLIT_TENSORS_COUNT};
use crate::tensor::MAX_DIMS;
use crate::value::{Array, Metadata, Value};

struct WriterTensor<'a> {
    name: String,
    dims: Vec<u64>,
    ty: GgmlType,
    data: Cow<'a, [u8]>,
    /// Offset in the data section; `None` = next free aligned offset.
    offset: Option<u64>,
}

/// The bytes of a read file that are neither header nor tensor data (padding, gaps, trailing
/// bytes), so a copy can reproduce them. Only used while the header keeps its length.
struct Layout<'a> {
    header_len: u64,
    file_len: u64,
    /// (absolute offset, bytes) of every stretch outside the header and the tensors' data.
    filler: Vec<(u64, &'a [u8])>,
}

/// Builds a GGUF file in memory (tensor data borrowed or owned) and writes it out.
///
/// ```
/// use gguf::{GgufWriter, GgufFile};
/// use formats::GgmlType;
/// let mut w = GgufWriter::new();
/// w.add_metadata("general.architecture", "llama");
/// w.add_tensor("x", &[4], GgmlType::F32, vec![0u8; 16]).unwrap();
/// let bytes = w.to_bytes().unwrap();
/// let f = GgufFile::from_bytes(bytes).unwrap();
/// assert_eq!(f.metadata().get_str("general.architecture"), Some("llama"));
/// ```
pub struct GgufWriter<'a> {
    version: u32,
    metadata: Metadata,
    tensors: Vec<WriterTensor<'a>>,
    names: HashSet<String>,
    layout: Option<Layout<'a>>,
}

impl Default for GgufWriter<'_> {
    fn default() -> Self {
        GgufWriter {
            version: 3,
            metadata: Metadata::new(),
            tensors: Vec::new(),
            names: HashSet::new(),
            layout: None,
        }
    }
}

fn write_err(msg: String) -> GgufError {
    GgufError::new(ErrorKind::Write(msg), None)
}

impl<'a> GgufWriter<'a> {
    /// An empty GGUF v3 file.
    pub fn new() -> GgufWriter<'a> {
        GgufWriter::default()
    }

    /// A writer that reproduces `file` byte for byte (its first part for a split model; see
    /// [`from_part`](Self::from_part)). Metadata and tensors can still be changed; padding and
    /// gaps are kept as long as the header keeps its length.
    pub fn from_file(file: &'a GgufFile) -> Result<GgufWriter<'a>, GgufError> {
        Self::from_part(file, 0)
    }

    /// A writer that reproduces part `part` of `file` byte for byte.
    pub fn from_part(file: &'a GgufFile, part: usize) -> Result<GgufWriter<'a>, GgufError> {
        let p = file
            .parts()
            .get(part)
            .ok_or_else(|| write_err(format!("no part {part}")))?;
        let mut w = GgufWriter {
            version: p.version(),
            metadata: p.metadata().clone(),
            ..GgufWriter::default()
        };
        let bytes = p.bytes();
        let mut covered: Vec<(u64, u64)> = Vec::new();
        for t in &file.tensors()[p.tensor_range()] {
            let data = file.try_tensor_data(t).ok_or_else(|| {
                write_err(format!(
                    "tensor '{}' has no data (header-only file)",
                    t.name
                ))
            })?;
            w.names.insert(t.name.clone());
            w.tensors.push(WriterTensor {
                name: t.name.clone(),
                dims: t.dims.clone(),
                ty: t.ty,
                data: Cow::Borrowed(data),
                offset: Some(t.offset),
            });
            if t.n_bytes > 0 {
                covered.push((t.file_offset, t.file_offset + t.n_bytes));
            }
        }
        covered.sort_unstable();
        let mut filler = Vec::new();
        let mut pos = p.header_len();
        for (start, end) in covered.into_iter().chain([(p.file_len(), p.file_len())]) {
            if start > pos {
                filler.push((pos, &bytes[pos as usize..start as usize]));
            }
            pos = pos.max(end);
        }
        w.layout = Some(Layout {
            header_len: p.header_len(),
            file_len: p.file_len(),
            filler,
        });
        Ok(w)
    }

    /// GGUF version to write (2 or 3; the layouts are the same for little-endian files).
    pub fn set_version(&mut self, version: u32) -> Result<(), GgufError> {
        if !matches!(version, 2 | 3) {
            return Err(write_err(format!("version {version} (only 2 and 3)")));
        }
        self.version = version;
        Ok(())
    }

    /// Sets a metadata key (a new key goes last; an existing one keeps its place).
    pub fn add_metadata(&mut self, key: impl Into<String>, value: impl Into<Value>) {
        self.metadata.insert(key, value);
    }

    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    pub fn metadata_mut(&mut self) -> &mut Metadata {
        &mut self.metadata
    }

    /// Adds a tensor, placed after the previous ones at the next aligned offset. `dims` is in
    /// ggml order (`dims[0]` = row length); `data` must be exactly the tensor's size.
    pub fn add_tensor(
        &mut self,
        name: impl Into<String>,
        dims: &[u64],
        ty: GgmlType,
        data: impl Into<Cow<'a, [u8]>>,
    ) -> Result<(), GgufError> {
        let name = name.into();
        let data = data.into();
        if self.names.contains(&name) {
            return Err(write_err(format!("duplicate tensor name '{name}'")));
        }
        if ty.is_turbo() {
            return Err(write_err(format!(
                "tensor '{name}': {ty} is an in-memory KV type and has no GGUF type id"
            )));
        }
        if dims.len() > MAX_DIMS as usize {
            return Err(write_err(format!(
                "tensor '{name}' has {} dimensions (at most {MAX_DIMS})",
                dims.len()
            )));
        }
        let row = dims.first().copied().unwrap_or(1);
        let n_bytes = dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .filter(|_| row % ty.block_size() as u64 == 0)
            .and_then(|n| ty.bytes_for(n))
            .ok_or_else(|| {
                write_err(format!(
                    "tensor '{name}' shape {dims:?} is not a whole number of {ty} blocks per row"
                ))
            })?;
        if n_bytes != data.len() as u64 {
            return Err(write_err(format!(
                "tensor '{name}' {ty} {dims:?} needs {n_bytes} bytes, got {}",
                data.len()
            )));
        }
        self.names.insert(name.clone());
        self.tensors.push(WriterTensor {
            name,
            dims: dims.to_vec(),
            ty,
            data,
            offset: None,
        });
        Ok(())
    }

    fn alignment(&self) -> Result<u64, GgufError> {
        match self.metadata.get(ALIGNMENT_KEY) {
            None => Ok(DEFAULT_ALIGNMENT),
            Some(Value::U32(a)) if *a != 0 && a.is_power_of_two() => Ok((*a).into()),
            Some(v) => Err(write_err(format!(
                "{ALIGNMENT_KEY} must be a non-zero power-of-two u32, is {v:?}"
            ))),
        }
    }

    /// Each tensor's data-section offset: explicit ones as given, the others packed after the
    /// furthest end so far, each start aligned.
    fn offsets(&self, alignment: u64) -> Result<Vec<u64>, GgufError> {
        let mut end = 0u64;
        let mut out = Vec::with_capacity(self.tensors.len());
        for t in &self.tensors {
            let offset = match t.offset {
                Some(o) => o,
                None => end.div_ceil(alignment) * alignment,
            };
            if offset % alignment != 0 {
                return Err(write_err(format!(
                    "tensor '{}' offset {offset} is not a multiple of the alignment {alignment}",
                    t.name
                )));
            }
            let t_end = offset.checked_add(t.data.len() as u64).ok_or_else(|| {
                write_err(format!("tensor '{}' offset {offset} overflows", t.name))
            })?;
            end = end.max(t_end);
            out.push(offset);
        }
        Ok(out)
    }

    fn header_bytes(&self, offsets: &[u64]) -> Vec<u8> {
        let mut h = Vec::new();
        h.extend_from_slice(&MAGIC);
        h.extend_from_slice(&self.version.to_le_bytes());
        h.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        h.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (key, value) in self.metadata.iter() {
            put_str(&mut h, key);
            h.extend_from_slice(&value.value_type().id().to_le_bytes());
            put_value(&mut h, value);
        }
        for (t, offset) in self.tensors.iter().zip(offsets) {
            put_str(&mut h, &t.name);
            h.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                h.extend_from_slice(&d.to_le_bytes());
            }
            h.extend_from_slice(&t.ty.id().to_le_bytes());
            h.extend_from_slice(&offset.to_le_bytes());
        }
        h
    }

    /// Writes the file to `out`; returns the number of bytes written.
    pub fn write_to(&self, out: &mut impl Write) -> Result<u64, GgufError> {
        let io = |e: std::io::Error| GgufError::new(ErrorKind::Io(e), None);
        let alignment = self.alignment()?;
        let offsets = self.offsets(alignment)?;
        let header = self.header_bytes(&offsets);
        let header_len = header.len() as u64;
        let data_offset = header_len.div_ceil(alignment) * alignment;

        // Everything after the header as (absolute start, bytes), in file order.
        let mut pieces: Vec<(u64, &[u8])> = self
            .tensors
            .iter()
            .zip(&offsets)
            .map(|(t, &o)| (data_offset + o, &t.data[..]))
            .collect();
        let tensor_end = pieces.iter().map(|(s, b)| s + b.len() as u64).max();
        // New files end padded to the alignment, like llama.cpp and the Python writer write
        // them (a file without tensors ends with the header's padding).
        let mut file_len = tensor_end.unwrap_or(data_offset).div_ceil(alignment) * alignment;
        match &self.layout {
            Some(l) if l.header_len == header_len => {
                pieces.extend(l.filler.iter().copied());
                file_len = l.file_len.max(tensor_end.unwrap_or(0));
            }
            _ => {}
        }
        // Empty tensors occupy no bytes (the reader lets them sit anywhere, even inside
        // another tensor's data), so they take no part in the layout.
        pieces.retain(|(_, bytes)| !bytes.is_empty());
        pieces.sort_by_key(|&(start, _)| start);
        for w in pieces.windows(2) {
            if w[0].0 + w[0].1.len() as u64 > w[1].0 {
                return Err(write_err(format!(
                    "tensor data overlaps at byte {} (explicit offsets collide)",
                    w[1].0
                )));
            }
        }

        out.write_all(&header).map_err(io)?;
        let mut pos = header_len;
        for (start, bytes) in pieces {
            write_zeros(out, start - pos).map_err(io)?;
            out.write_all(bytes).map_err(io)?;
            pos = start + bytes.len() as u64;
        }
        write_zeros(out, file_len.saturating_sub(pos)).map_err(io)?;
        Ok(file_len.max(pos))
    }

    /// The whole file in memory.
    pub fn to_bytes(&self) -> Result<Vec<u8>, GgufError> {
        let mut v = Vec::new();
        self.write_to(&mut v)?;
        Ok(v)
    }

    /// Writes the file to `path` (created or truncated).
    pub fn write_file(&self, path: impl AsRef<Path>) -> Result<u64, GgufError> {
        let path = path.as_ref();
        let with_path = |e: GgufError| e.with_path(path);
        let file =
            File::create(path).map_err(|e| with_path(GgufError::new(ErrorKind::Io(e), None)))?;
        let mut out = BufWriter::new(file);
        let n = self.write_to(&mut out).map_err(with_path)?;
        out.flush()
            .map_err(|e| with_path(GgufError::new(ErrorKind::Io(e), None)))?;
        Ok(n)
    }

    /// Writes a split model the way gguf-split and the Python `gguf` writer do:
    /// `<prefix>-0000i-of-0000N.gguf` with at most `max_tensors` tensors each; the first part
    /// holds all metadata, every part gets `split.no` (u16), `split.count` (u16) and
    /// `split.tensors.count` (i32) appended. Returns the paths written.
    pub fn write_split(
        &self,
        prefix: impl AsRef<Path>,
        max_tensors: usize,
    ) -> Result<Vec<PathBuf>, GgufError> {
        if max_tensors == 0 {
            return Err(write_err("split with 0 tensors per part".into()));
        }
        let chunks: Vec<&[WriterTensor<'a>]> = self.tensors.chunks(max_tensors).collect();
        let count = chunks.len().max(1);
        let count16 = u16::try_from(count)
            .map_err(|_| write_err(format!("{count} parts (at most 65535)")))?;
        let total = i32::try_from(self.tensors.len())
            .map_err(|_| write_err(format!("{} tensors (at most i32::MAX)", self.tensors.len())))?;
        let mut paths = Vec::with_capacity(count);
        for no in 0..count {
            let mut part = GgufWriter {
                version: self.version,
                ..GgufWriter::default()
            };
            if no == 0 {
                part.metadata = self.metadata.clone();
            } else if let Some(a) = self.metadata.get(ALIGNMENT_KEY) {
                // Later parts must use the same alignment to be laid out like the first.
                part.metadata.insert(ALIGNMENT_KEY, a.clone());
            }
            part.metadata.insert(SPLIT_NO, no as u16);
            part.metadata.insert(SPLIT_COUNT, count16);
            part.metadata.insert(SPLIT_TENSORS_COUNT, total);
            for t in chunks.get(no).copied().unwrap_or(&[]) {
                part.add_tensor(t.name.clone(), &t.dims, t.ty, Cow::Borrowed(&t.data[..]))?;
            }
            let path = split_path(prefix.as_ref(), no, count);
            part.write_file(&path)?;
            paths.push(path);
        }
        Ok(paths)
    }
}

fn write_zeros(out: &mut impl Write, mut n: u64) -> std::io::Result<()> {
    const ZEROS: [u8; 4096] = [0; 4096];
    while n > 0 {
        let k = n.min(ZEROS.len() as u64) as usize;
        out.write_all(&ZEROS[..k])?;
        n -= k as u64;
    }
    Ok(())
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
        Value::Bool(x) => h.push(*x as u8),
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
    macro_rules! each_le {
        ($v:expr) => {
            for x in $v {
                h.extend_from_slice(&x.to_le_bytes());
            }
        };
    }
    match a {
        Array::U8(v) => h.extend_from_slice(v),
        Array::I8(v) => each_le!(v),
        Array::U16(v) => each_le!(v),
        Array::I16(v) => each_le!(v),
        Array::U32(v) => each_le!(v),
        Array::I32(v) => each_le!(v),
        Array::F32(v) => each_le!(v),
        Array::Bool(v) => h.extend(v.iter().map(|&b| b as u8)),
        Array::String(v) => v.iter().for_each(|s| put_str(h, s)),
        Array::Array(v) => v.iter().for_each(|inner| put_array(h, inner)),
        Array::U64(v) => each_le!(v),
        Array::I64(v) => each_le!(v),
        Array::F64(v) => each_le!(v),
    }
}
