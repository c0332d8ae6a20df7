//! Random tensor contents, generated directly in each type's block layout.
//!
//! For the common types the quantized codes are drawn uniformly at random and the block scales
//! set so the dequantized values have mean ≈ 0 and the requested standard deviation; nothing is
//! quantized, so gigabytes take seconds. Other block types are drawn as floats and quantized
//! with `formats::quantize` (slow, fine for small tensors).

use formats::{GgmlType, QK_K};
use half::{bf16, f16};

use crate::error::SynthError;
use crate::rng::Rng;
use crate::tensors::Init;

/// Standard deviation of a code uniform over `0..n`: √((n² − 1) / 12).
fn uniform_code_std(n: u32) -> f32 {
    (((n * n - 1) as f32) / 12.0).sqrt()
}

fn put_f16(out: &mut [u8], at: usize, x: f32) {
    out[at..at + 2].copy_from_slice(&f16::from_f32(x).to_le_bytes());
}

/// True if `ty`'s blocks are generated directly (no quantizer pass).
pub fn is_direct(ty: GgmlType) -> bool {
    use GgmlType::*;
    matches!(
        ty,
        F32 | F16 | Bf16 | Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 | Q2K | Q4K | Q5K | Q6K
    )
}

/// Fills `out` (a whole number of `ty` blocks) with values drawn by `init`.
pub fn fill(ty: GgmlType, init: Init, rng: &mut Rng, out: &mut [u8]) -> Result<(), SynthError> {
    let bb = ty.block_bytes();
    if bb == 0 || !out.len().is_multiple_of(bb) {
        return Err(SynthError::Input(format!(
            "{} bytes are not whole {ty} blocks",
            out.len()
        )));
    }
    let sigma = match init {
        Init::Random { sigma } => sigma,
        // Constants and uniform ranges only appear on f32 tensors; other types draw them too.
        _ => return fill_floats(ty, init, rng, out),
    };
    match ty {
        GgmlType::F32 | GgmlType::F16 | GgmlType::Bf16 => fill_floats(ty, init, rng, out),
        GgmlType::Q8_0 => {
            // x = d·q, q uniform in -127..=127.
            let d = sigma / uniform_code_std(255);
            for b in out.chunks_exact_mut(bb) {
                put_f16(b, 0, d);
                rng.fill_bytes(&mut b[2..]);
                for q in &mut b[2..] {
                    if *q == 0x80 {
                        *q = 0x81;
                    }
                }
            }
            Ok(())
        }
        GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q5_1 => {
            // q4_0: d·(q−8); q5_0: d·(q−16); q4_1, q5_1: d·q + m with m = −d·mean(q). Codes
            // (qs, and the fifth bits qh) are random bytes.
            let levels = if matches!(ty, GgmlType::Q4_0 | GgmlType::Q4_1) {
                16
            } else {
                32
            };
            let has_min = matches!(ty, GgmlType::Q4_1 | GgmlType::Q5_1);
            let d = sigma / uniform_code_std(levels);
            for b in out.chunks_exact_mut(bb) {
                put_f16(b, 0, d);
                let mut at = 2;
                if has_min {
                    put_f16(b, 2, -d * (levels - 1) as f32 / 2.0);
                    at = 4;
                }
                rng.fill_bytes(&mut b[at..]);
            }
            Ok(())
        }
        GgmlType::Q2K => {
            // 16 sub-blocks: x = d·sc·q − dmin·m, q in 0..4. With dmin = 1.5·d and m = sc the
            // sub-block mean d·sc·1.5 cancels.
            let d = sigma / (11.5 * uniform_code_std(4));
            for b in out.chunks_exact_mut(bb) {
                for s in &mut b[..QK_K / 16] {
                    let sc = rng.range(8, 15) as u8;
                    *s = sc | (sc << 4);
                }
                rng.fill_bytes(&mut b[QK_K / 16..QK_K / 16 + QK_K / 4]);
                let at = QK_K / 16 + QK_K / 4;
                put_f16(b, at, d);
                put_f16(b, at + 2, 1.5 * d);
            }
            Ok(())
        }
        GgmlType::Q4K | GgmlType::Q5K => {
            // 8 sub-blocks of 32: x = d·sc·q − dmin·m with 6-bit sc, m. dmin = k·d and
            // m = round(sc·mean(q)/k) centre each sub-block.
            let (levels, k) = if ty == GgmlType::Q4K {
                (16u32, 8.0f32)
            } else {
                (32, 16.0)
            };
            let mean_q = (levels - 1) as f32 / 2.0;
            let d = sigma / (47.5 * uniform_code_std(levels));
            for b in out.chunks_exact_mut(bb) {
                put_f16(b, 0, d);
                put_f16(b, 2, k * d);
                let mut sc = [0u8; 8];
                let mut m = [0u8; 8];
                for j in 0..8 {
                    sc[j] = rng.range(32, 63) as u8;
                    m[j] = ((sc[j] as f32 * mean_q / k).round() as u8).min(63);
                }
                pack_scales_k4(&sc, &m, &mut b[4..16]);
                rng.fill_bytes(&mut b[16..]);
            }
            Ok(())
        }
        GgmlType::Q6K => {
            // 16 sub-blocks of 16: x = d·sc·(q − 32), q in 0..64, sc a signed byte.
            let d = sigma / (47.5 * uniform_code_std(64));
            for b in out.chunks_exact_mut(bb) {
                rng.fill_bytes(&mut b[..QK_K / 2 + QK_K / 4]);
                let at = QK_K / 2 + QK_K / 4;
                for s in &mut b[at..at + QK_K / 16] {
                    *s = rng.range(32, 63) as u8;
                }
                put_f16(b, at + QK_K / 16, d);
            }
            Ok(())
        }
        _ => {
            // No direct recipe: draw floats and quantize them.
            let n = out.len() / bb * ty.block_size();
            let xs: Vec<f32> = (0..n).map(|_| rng.normal() * sigma).collect();
            formats::quantize(ty, &xs, out)?;
            Ok(())
        }
    }
}

/// Packs eight 6-bit scales and mins the way q4_K / q5_K store them in 12 bytes: sub-blocks
/// 0–3 in the low 6 bits of bytes 0–3 (scales) and 4–7 (mins); sub-blocks 4–7 as low nibbles in
/// bytes 8–11 and their top 2 bits in the top bits of bytes 0–7.
fn pack_scales_k4(sc: &[u8; 8], m: &[u8; 8], out: &mut [u8]) {
    for j in 0..4 {
        out[j] = sc[j] | ((sc[j + 4] >> 4) << 6);
        out[j + 4] = m[j] | ((m[j + 4] >> 4) << 6);
        out[j + 8] = (sc[j + 4] & 0xF) | ((m[j + 4] & 0xF) << 4);
    }
}

/// Float values for any type: f32/f16/bf16 written directly, others quantized.
fn fill_floats(ty: GgmlType, init: Init, rng: &mut Rng, out: &mut [u8]) -> Result<(), SynthError> {
    let mut draw = move || match init {
        Init::Random { sigma } => rng.normal() * sigma,
        Init::Const(c) => c,
        Init::Uniform { lo, hi } => lo + (hi - lo) * rng.uniform(),
    };
    match ty {
        GgmlType::F32 => out
            .chunks_exact_mut(4)
            .for_each(|c| c.copy_from_slice(&draw().to_le_bytes())),
        GgmlType::F16 => out
            .chunks_exact_mut(2)
            .for_each(|c| c.copy_from_slice(&f16::from_f32(draw()).to_le_bytes())),
        GgmlType::Bf16 => out
            .chunks_exact_mut(2)
            .for_each(|c| c.copy_from_slice(&bf16::from_f32(draw()).to_le_bytes())),
        _ => {
            let n = out.len() / ty.block_bytes() * ty.block_size();
            let xs: Vec<f32> = (0..n).map(|_| draw()).collect();
            formats::quantize(ty, &xs, out)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Dequantizes with the reference (ggml-exact) dequantizer and checks the statistics.
    fn stats(ty: GgmlType, sigma: f32) -> (f32, f32) {
        let n_blocks = 256;
        let mut buf = vec![0u8; n_blocks * ty.block_bytes()];
        fill(ty, Init::Random { sigma }, &mut Rng::new(3, 1, 0), &mut buf).unwrap();
        let mut xs = vec![0f32; n_blocks * ty.block_size()];
        formats::dequantize(ty, &buf, &mut xs).unwrap();
        assert!(xs.iter().all(|x| x.is_finite()), "{ty}");
        let n = xs.len() as f32;
        let mean = xs.iter().sum::<f32>() / n;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / n;
        (mean, var.sqrt())
    }

    #[test]
    fn direct_blocks_dequantize_to_the_requested_spread() {
        for ty in [
            GgmlType::F32,
            GgmlType::F16,
            GgmlType::Bf16,
            GgmlType::Q4_0,
            GgmlType::Q4_1,
            GgmlType::Q5_0,
            GgmlType::Q5_1,
            GgmlType::Q8_0,
            GgmlType::Q2K,
            GgmlType::Q4K,
            GgmlType::Q5K,
            GgmlType::Q6K,
            // Through the quantizer.
            GgmlType::Q3K,
            GgmlType::Iq4Nl,
        ] {
            for sigma in [1.0f32, 0.01] {
                let (mean, std) = stats(ty, sigma);
                assert!(
                    (std / sigma - 1.0).abs() < 0.12,
                    "{ty} σ={sigma}: std {std}"
                );
                // q4_0's codes are centred on 8, not 7.5: a mean of −0.11σ.
                assert!(mean.abs() < 0.15 * sigma, "{ty} σ={sigma}: mean {mean}");
            }
        }
    }

    #[test]
    fn constants_and_ranges() {
        let mut buf = vec![0u8; 64];
        fill(
            GgmlType::F32,
            Init::Const(1.0),
            &mut Rng::new(0, 0, 0),
            &mut buf,
        )
        .unwrap();
        assert!(buf
            .chunks(4)
            .all(|c| f32::from_le_bytes(c.try_into().unwrap()) == 1.0));
        let u = Init::Uniform { lo: -8.0, hi: -1.0 };
        fill(GgmlType::F32, u, &mut Rng::new(0, 0, 0), &mut buf).unwrap();
        assert!(buf.chunks(4).all(|c| {
            let x = f32::from_le_bytes(c.try_into().unwrap());
            (-8.0..-1.0).contains(&x)
        }));
        let e = fill(
            GgmlType::Q4K,
            Init::Const(0.0),
            &mut Rng::new(0, 0, 0),
            &mut buf,
        );
        assert!(e.is_err());
    }
}
