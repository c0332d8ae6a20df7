//! `turbine synth`: random-weight GGUF models of real architectures and shapes, loadable by
//! turbine and llama.cpp, so speed and memory can be measured on real shapes where no real
//! model can be copied.
//!
//! - [`shapes`]: architectures and named shapes (Qwen3-8B, Qwen3.5-35B-A3B, ...).
//! - [`tensors`]: each architecture's tensor table, with llama.cpp's names and layouts.
//! - [`metadata`], [`vocab`]: the GGUF keys, and a tokenizer (built in or copied).
//! - [`blocks`]: random quantized blocks generated directly, with well-scaled values.
//! - [`header`], `write`: the file, streamed in parallel pieces.

pub mod blocks;
pub mod error;
pub mod header;
pub mod metadata;
mod rng;
pub mod shapes;
pub mod tensors;
pub mod vocab;
mod write;

use std::path::PathBuf;
use std::time::Instant;

use formats::GgmlType;

pub use error::SynthError;
pub use shapes::{shape, shape_names, Arch, Shape, ALL_ARCHES};
pub use tensors::{tensor_table, TensorSpec};

/// What to write.
#[derive(Clone, Debug)]
pub struct Options {
    pub arch: Arch,
    pub shape: Shape,
    /// Type of the weight matrices (norms, biases and routers stay f32).
    pub ty: GgmlType,
    pub seed: u64,
    pub output: PathBuf,
    /// Header only (tensor infos and metadata, no data): for `turbine plan`.
    pub header_only: bool,
    /// Copy `tokenizer.*` from this GGUF instead of building a vocabulary.
    pub vocab: Option<PathBuf>,
}

/// What was written.
#[derive(Clone, Debug)]
pub struct Report {
    pub arch: Arch,
    pub shape: Shape,
    pub n_tensors: usize,
    pub n_params: u64,
    /// Bytes of tensor data (whether or not written).
    pub data_bytes: u64,
    /// Bytes written to the file.
    pub file_bytes: u64,
    pub seconds: f64,
    /// (type, tensors, bytes) per tensor type.
    pub by_type: Vec<(GgmlType, usize, u64)>,
}

/// Builds the header for `opts` and writes the file.
pub fn synthesize(opts: &Options) -> Result<Report, SynthError> {
    let start = Instant::now();
    check_type(opts.ty)?;
    let mut shape = opts.shape.clone();
    let mut tok = gguf::Metadata::new();
    match &opts.vocab {
        Some(path) => shape.n_vocab = vocab::copy_vocab(&mut tok, path, shape.n_vocab)?,
        None => {
            let pre = if opts.arch.is_qwen() {
                "qwen2"
            } else {
                "default"
            };
            vocab::default_vocab(&mut tok, shape.n_vocab, pre)?;
        }
    }
    let mut md = metadata::model_metadata(opts.arch, &shape, opts.ty, opts.seed);
    for (k, v) in tok.iter() {
        md.insert(k, v.clone());
    }
    let tensors = tensor_table(opts.arch, &shape, opts.ty);
    let layout = header::layout(&md, &tensors);
    let file_bytes =
        write::write_file(&opts.output, &layout, &tensors, opts.seed, opts.header_only)?;
    let mut by_type: Vec<(GgmlType, usize, u64)> = Vec::new();
    for t in &tensors {
        match by_type.iter_mut().find(|(ty, _, _)| *ty == t.ty) {
            Some(e) => {
                e.1 += 1;
                e.2 += t.n_bytes();
            }
            None => by_type.push((t.ty, 1, t.n_bytes())),
        }
    }
    Ok(Report {
        arch: opts.arch,
        n_tensors: tensors.len(),
        n_params: tensors.iter().map(|t| t.n_elements()).sum(),
        data_bytes: tensors.iter().map(|t| t.n_bytes()).sum(),
        file_bytes,
        seconds: start.elapsed().as_secs_f64(),
        by_type,
        shape,
    })
}

/// Weight types a model file can hold and this crate can fill.
fn check_type(ty: GgmlType) -> Result<(), SynthError> {
    let storable = !ty.is_turbo()
        && !matches!(
            ty,
            GgmlType::Q8_1
                | GgmlType::Q8K
                | GgmlType::I8
                | GgmlType::I16
                | GgmlType::I32
                | GgmlType::I64
                | GgmlType::F64
        );
    if storable && (blocks::is_direct(ty) || formats::can_quantize(ty)) {
        Ok(())
    } else {
        Err(SynthError::Input(format!(
            "--type {ty}: not a weight type synth can generate"
        )))
    }
}
