//! Bit-exact comparison against the `gguf` Python package (`gguf.quants`), an implementation
//! independent of ggml's C code, on fresh random data every run (the seed is printed; set
//! `TURBINE_TEST_SEED` to replay one).
//!
//! Quantize: every type `gguf.quants` can quantize. Dequantize: every type it can decode that
//! turbine decodes, on random block bytes (scale fields replaced by random finite f16 values,
//! so no NaN payloads need comparing).

mod common;

use std::mem::offset_of;
use std::path::{Path, PathBuf};
use std::process::Command;

use formats::blocks::*;
use formats::{dequantize, quantize, GgmlType};

const ROWS: usize = 16;
const ROW_LEN: usize = 512;

/// Types `gguf.quants` quantizes that turbine quantizes too.
const QUANTIZE_TYPES: &[GgmlType] = &[
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::Bf16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Mxfp4,
    GgmlType::Tq1_0,
    GgmlType::Tq2_0,
];

/// Types `gguf.quants` dequantizes that turbine dequantizes too, with the byte offsets of each
/// block's f16 scale fields.
fn dequantize_types() -> Vec<(GgmlType, Vec<usize>)> {
    vec![
        (GgmlType::F32, vec![]),
        (GgmlType::F16, vec![0]),
        (GgmlType::Bf16, vec![]),
        (GgmlType::Q4_0, vec![offset_of!(BlockQ4_0, d)]),
        (
            GgmlType::Q4_1,
            vec![offset_of!(BlockQ4_1, d), offset_of!(BlockQ4_1, m)],
        ),
        (GgmlType::Q5_0, vec![offset_of!(BlockQ5_0, d)]),
        (
            GgmlType::Q5_1,
            vec![offset_of!(BlockQ5_1, d), offset_of!(BlockQ5_1, m)],
        ),
        (GgmlType::Q8_0, vec![offset_of!(BlockQ8_0, d)]),
        (
            GgmlType::Q2K,
            vec![offset_of!(BlockQ2K, d), offset_of!(BlockQ2K, dmin)],
        ),
        (GgmlType::Q3K, vec![offset_of!(BlockQ3K, d)]),
        (
            GgmlType::Q4K,
            vec![offset_of!(BlockQ4K, d), offset_of!(BlockQ4K, dmin)],
        ),
        (
            GgmlType::Q5K,
            vec![offset_of!(BlockQ5K, d), offset_of!(BlockQ5K, dmin)],
        ),
        (GgmlType::Q6K, vec![offset_of!(BlockQ6K, d)]),
        (GgmlType::Iq4Nl, vec![offset_of!(BlockIq4Nl, d)]),
        (GgmlType::Iq4Xs, vec![offset_of!(BlockIq4Xs, d)]),
        (GgmlType::Mxfp4, vec![]),
        (GgmlType::Tq1_0, vec![offset_of!(BlockTq1_0, d)]),
        (GgmlType::Tq2_0, vec![offset_of!(BlockTq2_0, d)]),
    ]
}

/// Rows of varied character: Gaussian at scales from 1e-4 to 1e4, outliers, a zero row, a
/// constant row, a row of one sign, uniform noise.
fn random_input(rng: &mut common::Rng) -> Vec<f32> {
    let mut x = Vec::with_capacity(ROWS * ROW_LEN);
    for row in 0..ROWS {
        let scale = 10f64.powf(rng.uniform() * 8.0 - 4.0);
        for j in 0..ROW_LEN {
            let v = match row {
                0 => 0.0,
                1 => scale,
                2 => rng.normal().abs() * scale,
                3 => (rng.uniform() * 2.0 - 1.0) * scale,
                4 if j % 37 == 0 => rng.normal() * scale * 100.0,
                _ => rng.normal() * scale,
            };
            x.push(v as f32);
        }
    }
    x
}

/// A random finite f16 of moderate magnitude (2^-14 .. 2^8), either sign.
fn random_f16(rng: &mut common::Rng) -> [u8; 2] {
    let bits = rng.next_u64();
    let sign = ((bits & 1) as u16) << 15;
    let exponent = (1 + (bits >> 1) % 22) as u16; // biased 1..=22
    let mantissa = ((bits >> 8) & 0x3ff) as u16;
    (sign | (exponent << 10) | mantissa).to_le_bytes()
}

fn random_blocks(rng: &mut common::Rng, ty: GgmlType, f16_fields: &[usize]) -> Vec<u8> {
    let n_bytes = ROWS * ROW_LEN / ty.block_size() * ty.block_bytes();
    match ty {
        // Random finite values (random bit patterns would include NaNs).
        GgmlType::F32 | GgmlType::Bf16 => {
            let x: Vec<f32> = (0..ROWS * ROW_LEN)
                .map(|_| (rng.normal() * 10f64.powf(rng.uniform() * 20.0 - 10.0)) as f32)
                .collect();
            let mut out = vec![0u8; n_bytes];
            quantize(ty, &x, &mut out).unwrap();
            out
        }
        _ => {
            let mut out: Vec<u8> = (0..n_bytes).map(|_| rng.next_u64() as u8).collect();
            for block in out.chunks_exact_mut(ty.block_bytes()) {
                for &off in f16_fields {
                    block[off..off + 2].copy_from_slice(&random_f16(rng));
                }
            }
            out
        }
    }
}

struct Job {
    ty: GgmlType,
    mode: &'static str,
    input: PathBuf,
    output: PathBuf,
}

fn run_python(python: &Path, dir: &Path, jobs: &[Job]) {
    let jobs_file = dir.join("jobs.txt");
    let lines: String = jobs
        .iter()
        .map(|j| {
            format!(
                "{} {} {} {} {}\n",
                j.mode,
                j.ty.name(),
                ROWS,
                j.input.display(),
                j.output.display()
            )
        })
        .collect();
    std::fs::write(&jobs_file, lines).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/gguf_quants.py");
    let out = Command::new(python)
        .arg(&script)
        .arg(&jobs_file)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", python.display()));
    assert!(
        out.status.success(),
        "{} failed:\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn matches_gguf_python_on_fresh_random_data() {
    let Some(python) = common::python() else {
        return;
    };
    let seed = common::Rng::fresh_seed();
    eprintln!("gguf_python: seed {seed} (replay with TURBINE_TEST_SEED={seed})");
    let mut rng = common::Rng::new(seed);

    let dir = std::env::temp_dir().join(format!(
        "turbine-formats-gguf-{}-{seed}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();

    let input = random_input(&mut rng);
    let input_path = dir.join("input.f32");
    std::fs::write(&input_path, common::f32s_to_bytes(&input)).unwrap();

    let mut jobs = Vec::new();
    for &ty in QUANTIZE_TYPES {
        jobs.push(Job {
            ty,
            mode: "quantize",
            input: input_path.clone(),
            output: dir.join(format!("{}.q.bin", ty.name())),
        });
    }
    let mut blocks = Vec::new();
    for (ty, f16_fields) in dequantize_types() {
        let bytes = random_blocks(&mut rng, ty, &f16_fields);
        let path = dir.join(format!("{}.blocks.bin", ty.name()));
        std::fs::write(&path, &bytes).unwrap();
        blocks.push(bytes);
        jobs.push(Job {
            ty,
            mode: "dequantize",
            input: path,
            output: dir.join(format!("{}.dq.f32", ty.name())),
        });
    }
    run_python(&python, &dir, &jobs);

    let mut failures = Vec::new();
    let mut blocks = blocks.into_iter();
    for job in &jobs {
        let reference = common::read(&job.output);
        match job.mode {
            "quantize" => {
                let mut got = vec![0u8; job.ty.bytes_for(input.len() as u64).unwrap() as usize];
                quantize(job.ty, &input, &mut got).unwrap();
                if got != reference {
                    let bb = job.ty.block_bytes();
                    let i = got
                        .chunks(bb)
                        .zip(reference.chunks(bb))
                        .position(|(a, b)| a != b);
                    failures.push(format!(
                        "quantize {}: block {i:?} differs (lengths {} / {})",
                        job.ty,
                        got.len(),
                        reference.len()
                    ));
                }
            }
            _ => {
                let bytes = blocks.next().unwrap();
                let mut got = vec![0.0f32; ROWS * ROW_LEN];
                dequantize(job.ty, &bytes, &mut got).unwrap();
                let want = common::f32s_from_bytes(&reference);
                if let Some(i) = (0..got.len())
                    .find(|&i| want.get(i).map(|w| w.to_bits()) != Some(got[i].to_bits()))
                {
                    failures.push(format!(
                        "dequantize {}: value {i}: turbine {:e}, gguf {:?}",
                        job.ty,
                        got[i],
                        want.get(i)
                    ));
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(failures.is_empty(), "seed {seed}:\n{}", failures.join("\n"));
    eprintln!(
        "gguf_python: {} quantize and {} dequantize comparisons bit-exact",
        QUANTIZE_TYPES.len(),
        jobs.len() - QUANTIZE_TYPES.len()
    );
}
