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
    check_shape(&opts.shape)?;
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

/// Sizes that fit the u32 keys and i32 token ids of a GGUF model.
fn check_shape(s: &Shape) -> Result<(), SynthError> {
    let limits = [
        ("layers", s.n_layer, 1, 1 << 16),
        ("vocabulary size", s.n_vocab, 1, i32::MAX as usize),
    ];
    for (what, n, lo, hi) in limits {
        if !(lo..=hi).contains(&n) {
            return Err(SynthError::Input(format!(
                "{what} {n} is out of range ({lo}..={hi})"
            )));
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_sizes_and_types_are_one_line_errors() {
        let mut opts = Options {
            arch: Arch::Qwen3,
            shape: shape(Arch::Qwen3, "tiny").unwrap(),
            ty: GgmlType::Q8_1,
            seed: 0,
            output: std::env::temp_dir().join("synth-never-written.gguf"),
            header_only: true,
            vocab: None,
        };
        let e = synthesize(&opts).unwrap_err().to_string();
        assert!(e.contains("--type q8_1"), "{e}");
        opts.ty = GgmlType::Q4K;
        opts.shape.n_layer = 0;
        let e = synthesize(&opts).unwrap_err().to_string();
        assert!(e.contains("layers 0 is out of range"), "{e}");
        opts.shape.n_layer = 2;
        opts.shape.n_vocab = 100;
        let e = synthesize(&opts).unwrap_err().to_string();
        assert!(e.contains("too small for the built-in tokenizer"), "{e}");
        opts.shape.n_vocab = 512;
        opts.output = std::env::temp_dir().join("no-such-dir-synth/x.gguf");
        let e = synthesize(&opts).unwrap_err().to_string();
        assert!(e.contains("no-such-dir-synth/x.gguf"), "{e}");
    }
}
