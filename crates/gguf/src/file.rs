//! [`GgufFile`]: a validated, memory-mapped GGUF model (one file or all parts of a split).

use std::collections::HashMap;
use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::error::{ErrorKind, GgufError};
use crate::parse::{parse, Header};
use crate::split;
use crate::tensor::TensorInfo;
use crate::value::Metadata;

/// The bytes of one file: mapped from disk, or owned (for [`GgufFile::from_bytes`]).
enum Storage {
    Mmap(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Storage {
    fn bytes(&self) -> &[u8] {
        match self {
            Storage::Mmap(m) => m,
            Storage::Owned(v) => v,
        }
    }
}

/// One file of a (possibly split) model.
pub struct Part {
    path: Option<PathBuf>,
    storage: Storage,
    version: u32,
    alignment: u64,
    metadata: Metadata,
    header_len: u64,
    data_offset: u64,
    tensors: Range<usize>,
}

impl Part {
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
    pub fn version(&self) -> u32 {
        self.version
    }
    pub fn alignment(&self) -> u64 {
        self.alignment
    }
    /// This file's own metadata (for parts after the first, usually only the `split.*` keys).
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }
    /// Bytes of magic, counts, metadata and tensor infos (the data section's padding excluded).
    pub fn header_len(&self) -> u64 {
        self.header_len
    }
    /// Where the data section starts (`header_len` rounded up to the alignment).
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }
    pub fn file_len(&self) -> u64 {
        self.storage.bytes().len() as u64
    }
    /// The whole file's bytes.
    pub fn bytes(&self) -> &[u8] {
        self.storage.bytes()
    }
    /// Indices into [`GgufFile::tensors`] of this file's tensors, in header order.
    pub fn tensor_range(&self) -> Range<usize> {
        self.tensors.clone()
    }
}

/// A GGUF model, validated at open: every tensor's data lies inside its file, tensor names are
/// unique, and no two tensors overlap.
pub struct GgufFile {
    parts: Vec<Part>,
    tensors: Vec<TensorInfo>,
    by_name: HashMap<String, usize>,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.parts[0].path)
            .field("version", &self.version())
            .field("parts", &self.parts.len())
            .field("metadata_keys", &self.metadata().len())
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

impl GgufFile {
    /// Opens and validates a GGUF file, memory-mapped. If it is the first part of a split model
    /// (`name-00001-of-0000N.gguf` with `split.count` = N), the other parts are opened too and
    /// [`tensors`](Self::tensors) lists the tensors of all parts.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile, GgufError> {
        Self::open_impl(path.as_ref(), true)
    }

    /// Like [`open`](Self::open), but tensor data may lie past the end of the file (files
    /// holding only a model's header, for planning). [`tensor_data`](Self::tensor_data)
    /// panics for tensors whose data is missing; use [`try_tensor_data`](Self::try_tensor_data).
    pub fn open_header_only(path: impl AsRef<Path>) -> Result<GgufFile, GgufError> {
        Self::open_impl(path.as_ref(), false)
    }

    /// Validates an in-memory GGUF file (one part; split keys are kept but other parts are
    /// not looked for).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<GgufFile, GgufError> {
        let part = make_part(None, Storage::Owned(bytes), 0, true)?;
        Self::from_parts(vec![part])
    }

    /// Like [`from_bytes`](Self::from_bytes), but tensor data may lie past the end of `bytes`
    /// (see [`open_header_only`](Self::open_header_only)).
    pub fn from_bytes_header_only(bytes: Vec<u8>) -> Result<GgufFile, GgufError> {
        let part = make_part(None, Storage::Owned(bytes), 0, false)?;
        Self::from_parts(vec![part])
    }

    fn open_impl(path: &Path, check_data: bool) -> Result<GgufFile, GgufError> {
        let (first, first_tensors) = open_part(path, 0, check_data)?;
        let mut parts = vec![(first, first_tensors)];
        for (i, part_path) in split::other_part_paths(path, &parts[0].0.metadata)?
            .into_iter()
            .enumerate()
        {
            let no = i + 1;
            let part = open_part(&part_path, no, check_data)?;
            split::check_part(&part_path, &part.0.metadata, no, &parts[0].0.metadata)?;
            parts.push(part);
        }
        let n_parts = parts.len();
        let file = Self::from_parts(parts)?;
        if n_parts > 1 {
            split::check_tensor_count(path, file.metadata(), file.tensors.len())?;
        }
        Ok(file)
    }

    fn from_parts(parts: Vec<(Part, Vec<TensorInfo>)>) -> Result<GgufFile, GgufError> {
        let mut all = Vec::new();
        let mut tensors = Vec::new();
        for (mut part, part_tensors) in parts {
            let start = tensors.len();
            tensors.extend(part_tensors);
            part.tensors = start..tensors.len();
            all.push(part);
        }
        Self::from_parts_and_tensors(all, tensors)
    }

    fn from_parts_and_tensors(
        parts: Vec<Part>,
        tensors: Vec<TensorInfo>,
    ) -> Result<GgufFile, GgufError> {
        let mut by_name = HashMap::with_capacity(tensors.len());
        for (i, t) in tensors.iter().enumerate() {
            // Names are unique within a part (checked by the parser); this catches a name
            // repeated across parts of a split.
            if by_name.insert(t.name.clone(), i).is_some() {
                let part = &parts[t.part];
                let err = GgufError::new(ErrorKind::DuplicateTensor(t.name.clone()), None);
                return Err(match part.path() {
                    Some(p) => err.with_path(p),
                    None => err,
                });
            }
        }
        Ok(GgufFile {
            parts,
            tensors,
            by_name,
        })
    }

    /// GGUF version of the (first) file: 2 or 3.
    pub fn version(&self) -> u32 {
        self.parts[0].version
    }

    /// Data alignment of the (first) file (`general.alignment`, default 32).
    pub fn alignment(&self) -> u64 {
        self.parts[0].alignment
    }

    /// The model's metadata (the first file's).
    pub fn metadata(&self) -> &Metadata {
        &self.parts[0].metadata
    }

    /// All tensors, in header order, part after part.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.by_name.get(name).map(|&i| &self.tensors[i])
    }

    /// The files this model was read from (one unless split).
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// The tensor's bytes, or `None` if they are not in the file (header-only open) or `info`
    /// does not come from this file.
    pub fn try_tensor_data(&self, info: &TensorInfo) -> Option<&[u8]> {
        let bytes = self.parts.get(info.part)?.bytes();
        let start = usize::try_from(info.file_offset).ok()?;
        let len = usize::try_from(info.n_bytes).ok()?;
        bytes.get(start..start.checked_add(len)?)
    }

    /// The tensor's bytes. Bounds were validated at open, so this cannot fail for a
    /// [`TensorInfo`] of this file opened with [`open`](Self::open) or
    /// [`from_bytes`](Self::from_bytes).
    ///
    /// # Panics
    /// If the file was opened header-only and the data is missing, or `info` comes from
    /// another file (programming errors, not bad input).
    pub fn tensor_data(&self, info: &TensorInfo) -> &[u8] {
        self.try_tensor_data(info).unwrap_or_else(|| {
            panic!(
                "tensor '{}' has no data here (file opened header-only, or TensorInfo from another file)",
                info.name
            )
        })
    }

    /// Sum of all tensors' element counts.
    pub fn n_parameters(&self) -> u64 {
        self.tensors.iter().map(|t| t.n_elements()).sum()
    }

    /// Total size of all parts in bytes.
    pub fn file_size(&self) -> u64 {
        self.parts.iter().map(|p| p.file_len()).sum()
    }
}

fn open_part(
    path: &Path,
    no: usize,
    check_data: bool,
) -> Result<(Part, Vec<TensorInfo>), GgufError> {
    let io_err = |e: std::io::Error| GgufError::new(ErrorKind::Io(e), None).with_path(path);
    let file = File::open(path).map_err(io_err)?;
    let len = file.metadata().map_err(io_err)?.len();
    let storage = if len == 0 {
        // Mapping an empty file fails on some platforms; it is simply a truncated GGUF.
        Storage::Owned(Vec::new())
    } else {
        // SAFETY: the mapping is read-only. Like every mmap-based model loader, we rely on
        // the file not being truncated or rewritten by another process while it is open.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io_err)?;
        Storage::Mmap(map)
    };
    make_part(Some(path.to_path_buf()), storage, no, check_data)
}

fn make_part(
    path: Option<PathBuf>,
    storage: Storage,
    no: usize,
    check_data: bool,
) -> Result<(Part, Vec<TensorInfo>), GgufError> {
    let header = parse(storage.bytes(), no, check_data).map_err(|e| match &path {
        Some(p) => e.with_path(p),
        None => e,
    })?;
    let Header {
        version,
        alignment,
        metadata,
        tensors,
        header_len,
        data_offset,
    } = header;
    let part = Part {
        path,
        storage,
        version,
        alignment,
        metadata,
        header_len,
        data_offset,
        tensors: 0..0,
    };
    Ok((part, tensors))
}
