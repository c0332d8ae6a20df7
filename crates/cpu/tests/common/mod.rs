//! Shared helpers of the cpu integration tests: a seeded PRNG, random blocks, ggml's reference
//! vectors, and the f64 reference dot product.
#![allow(dead_code)]

use std::path::PathBuf;

use formats::GgmlType;

/// xorshift64*: deterministic, dependency-free random numbers for tests.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
    /// Roughly normal (sum of uniforms), mean 0, std ~1.
    pub fn normal(&mut self) -> f32 {
        (0..4).map(|_| self.uniform()).sum::<f32>() * 1.732 - 3.464
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
    pub fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.normal() * scale).collect()
    }
}

/// Random bytes for `n_blocks` blocks of `ty` with every f16 scale field replaced by a sane
/// finite value (random bytes would give NaN/inf/huge scales), so any bit pattern of the
/// quants is exercised but results stay comparable.
pub fn random_blocks(rng: &mut Rng, ty: GgmlType, n_values: usize) -> Vec<u8> {
    let bb = ty.block_bytes();
    let n_blocks = n_values / ty.block_size();
    let mut out = rng.bytes(n_blocks * bb);
    let put_f16 = |b: &mut [u8], off: usize, v: f32| {
        b[off..off + 2].copy_from_slice(&half::f16::from_f32(v).to_bits().to_le_bytes());
    };
    for b in out.chunks_exact_mut(bb) {
        let d = 0.001 + 0.02 * rng.uniform();
        let m = (rng.uniform() - 0.5) * 0.2;
        match ty {
            GgmlType::F32 => b.copy_from_slice(&rng.normal().to_le_bytes()),
            GgmlType::F16 => put_f16(b, 0, rng.normal()),
            GgmlType::Bf16 => {
                let v = half::bf16::from_f32(rng.normal()).to_bits();
                b.copy_from_slice(&v.to_le_bytes());
            }
            GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 | GgmlType::Iq4Nl => put_f16(b, 0, d),
            GgmlType::Q4_1 | GgmlType::Q5_1 => {
                put_f16(b, 0, d);
                put_f16(b, 2, m);
            }
            GgmlType::Q4K | GgmlType::Q5K => {
                put_f16(b, 0, d * 0.1);
                put_f16(b, 2, d * 0.05);
            }
            GgmlType::Q2K => {
                put_f16(b, 80, d * 0.3);
                put_f16(b, 82, d * 0.1);
            }
            GgmlType::Q3K => put_f16(b, 108, d * 0.2),
            GgmlType::Q6K => put_f16(b, 208, d * 0.05),
            other => panic!("random_blocks: no generator for {other}"),
        }
    }
    out
}

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// ggml's reference block vectors: `$TURBINE_TESTDATA/quant-ref`, by default
/// `<workspace root>/../shared/testdata/quant-ref` (the convention of the formats tests), or
/// `None` (after printing why) when absent and assets are not required.
pub fn quant_ref_dir() -> Option<PathBuf> {
    let base = std::env::var_os("TURBINE_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("../shared/testdata"));
    let dir = base.join("quant-ref");
    if dir.join("input.f32").is_file() {
        return Some(dir);
    }
    if std::env::var("TURBINE_REQUIRE_ASSETS").as_deref() == Ok("1") {
        panic!("{} is missing and TURBINE_REQUIRE_ASSETS=1", dir.display());
    }
    eprintln!(
        "skipped: {} not found (ggml reference vectors; set TURBINE_TESTDATA)",
        dir.display()
    );
    None
}

pub fn read_f32(path: &std::path::Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Reference dequantization: the formats crate's scalar dequantizers (checked there bit for
/// bit against ggml's own output).
pub fn dequant(ty: GgmlType, bytes: &[u8], n: usize) -> Vec<f32> {
    let mut out = vec![0f32; n];
    formats::dequantize(ty, bytes, &mut out).expect("reference dequantize");
    out
}

/// Reference quantization (formats' ports of ggml's `quantize_row_*_ref`).
pub fn reference_quantize(ty: GgmlType, x: &[f32]) -> Vec<u8> {
    let mut out = vec![0u8; ty.bytes_for(x.len() as u64).unwrap() as usize];
    formats::quantize(ty, x, &mut out).expect("reference quantize");
    out
}

/// f64 dot product of two f32 vectors.
pub fn dot_f64(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
}

/// Kernel paths this CPU can run, with a note for the ones it cannot.
pub fn available_paths() -> Vec<cpu::KernelPath> {
    let mut v = Vec::new();
    for p in [
        cpu::KernelPath::Scalar,
        cpu::KernelPath::Avx2,
        cpu::KernelPath::Avx512,
    ] {
        if p.is_supported() {
            v.push(p);
        } else {
            eprintln!("note: kernel path {p} skipped: this CPU does not support it");
        }
    }
    v
}
