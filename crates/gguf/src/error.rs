//! Errors: one line each, naming what is wrong, where (byte offset) and in which file.

use std::fmt;
use std::path::PathBuf;

use crate::value::ValueType;

/// A GGUF file could not be read (or written). `Display` is one line:
/// `<path>: at byte <offset>: <what is wrong>`.
#[derive(Debug)]
pub struct GgufError {
    /// The file, when the error came from one (not for `from_bytes`).
    pub path: Option<PathBuf>,
    /// Byte offset in the file where the bad field starts, when known.
    pub offset: Option<u64>,
    pub kind: ErrorKind,
}

impl GgufError {
    pub(crate) fn new(kind: ErrorKind, offset: Option<u64>) -> GgufError {
        GgufError {
            path: None,
            offset,
            kind,
        }
    }

    pub(crate) fn at(offset: u64, kind: ErrorKind) -> GgufError {
        GgufError::new(kind, Some(offset))
    }

    pub(crate) fn with_path(mut self, path: impl Into<PathBuf>) -> GgufError {
        if self.path.is_none() {
            self.path = Some(path.into());
        }
        self
    }

    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }
}

impl fmt::Display for GgufError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(path) = &self.path {
            write!(f, "{}: ", path.display())?;
        }
        if let Some(offset) = self.offset {
            write!(f, "at byte {offset}: ")?;
        }
        write!(f, "{}", self.kind)
    }
}

impl std::error::Error for GgufError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ErrorKind::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// What went wrong. Names and keys from the file are printed escaped (`\n`, `\u{1b}`), so a
/// hostile file cannot break the one-line message or send control codes to a terminal. Strings name the field (`"key of metadata entry 3"`, `"tensor 'x'"`).
#[derive(Debug, thiserror::Error)]
pub enum ErrorKind {
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a GGUF file: magic is {0:02x?}, expected \"GGUF\"")]
    BadMagic([u8; 4]),
    #[error("unsupported GGUF version {0} (turbine reads versions 2 and 3)")]
    UnsupportedVersion(u32),
    #[error("big-endian GGUF (version field {0:#010x}) is not supported")]
    BigEndian(u32),
    #[error("file truncated in {what}: needs {need} bytes, {have} left")]
    Truncated { what: String, need: u64, have: u64 },
    #[error("{what} count {count} cannot fit in the {have} bytes left in the file")]
    CountTooLarge { what: String, count: u64, have: u64 },
    #[error("{what} is not valid UTF-8")]
    InvalidUtf8 { what: String },
    #[error("{what} has unknown value type id {id}")]
    UnknownValueType { what: String, id: u32 },
    #[error("{what} is a bool with byte value {value} (must be 0 or 1)")]
    InvalidBool { what: String, value: u8 },
    #[error("{what} nests arrays deeper than {max} levels")]
    ArrayTooDeep { what: String, max: usize },
    #[error("duplicate metadata key '{n}'", n = .0.escape_debug())]
    DuplicateKey(String),
    #[error("general.alignment must be a u32, found {0:?}")]
    AlignmentType(ValueType),
    #[error("general.alignment is {0}, must be a non-zero power of two")]
    BadAlignment(u64),
    #[error("tensor '{n}' has {n_dims} dimensions (at most {max})", n = .name.escape_debug())]
    TooManyDims { name: String, n_dims: u32, max: u32 },
    #[error("tensor '{n}' has dimension {dim} = {value}, larger than i64::MAX", n = .name.escape_debug())]
    DimTooLarge {
        name: String,
        dim: usize,
        value: u64,
    },
    #[error("tensor '{n}' element count (product of {dims:?}) overflows", n = .name.escape_debug())]
    ShapeOverflow { name: String, dims: Vec<u64> },
    #[error("tensor '{n}' has unknown ggml type id {id}", n = .name.escape_debug())]
    UnknownTensorType { name: String, id: u32 },
    #[error("tensor '{n}' row length {row} is not a multiple of {ty}'s block size {block}", n = .name.escape_debug())]
    PartialBlock {
        name: String,
        ty: formats::GgmlType,
        row: u64,
        block: u64,
    },
    #[error("tensor '{n}' data offset {offset} is not a multiple of the alignment {alignment}", n = .name.escape_debug())]
    MisalignedOffset {
        name: String,
        offset: u64,
        alignment: u64,
    },
    #[error("tensor '{n}' data [{start}, {end}) lies outside the file ({file_len} bytes)", n = .name.escape_debug())]
    DataOutOfFile {
        name: String,
        start: u64,
        end: u64,
        file_len: u64,
    },
    #[error("tensor '{n}' data offset {offset} + size overflows", n = .name.escape_debug())]
    DataOffsetOverflow { name: String, offset: u64 },
    #[error("duplicate tensor name '{n}'", n = .0.escape_debug())]
    DuplicateTensor(String),
    #[error("tensor '{ea}' data [{a_start}, {a_end}) overlaps tensor '{eb}' data starting at {b_start}", ea = .a.escape_debug(), eb = .b.escape_debug())]
    OverlappingTensors {
        a: String,
        a_start: u64,
        a_end: u64,
        b: String,
        b_start: u64,
    },
    #[error("split: {0}")]
    Split(String),
    #[error("cannot write: {0}")]
    Write(String),
}
