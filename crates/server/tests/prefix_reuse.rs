//! The server keeps a finished request's tokens in its slot and, for the next request, keeps
//! the prefix the runner allows ([`Runner::reusable`]), truncates the rest and evaluates only
//! the remainder. That is only right if the prompt then gets exactly the logits a cold
//! prefill gives, also when the kept prefix has rows written by decode steps. Checked on the
//! real model, through the runner the scheduler drives, for plain and turbo KV types.

mod support;

use formats::GgmlType;
use server::scheduler::chunking::{probe_chunk_invariance, probe_is_conclusive};
use server::scheduler::{Chunk, ModelRunner, Runner};
use turbine_core::cpu::CpuBackend;

/// The ubatch of [`support::load`].
const UB: usize = 32;

/// Appends `tokens` to `slot` cut as the scheduler cuts a prompt (at multiples of [`UB`]
/// from position 0), one chunk per pass; returns the last token's logits.
fn prefill(r: &mut ModelRunner<CpuBackend>, slot: usize, tokens: &[u32]) -> Vec<f32> {
    let mut logits = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let pos = r.cached(slot);
        let n = ((pos / UB + 1) * UB - pos).min(tokens.len() - i);
        let chunk = Chunk {
            slot,
            tokens: &tokens[i..i + n],
            logits: i + n == tokens.len(),
        };
        r.run(&[chunk], &mut |_, row| {
            let row = row.expect("forward");
            if !row.is_empty() {
                logits = row.to_vec();
            }
        });
        i += n;
    }
    logits
}

fn tokens(seed: u32, n: usize) -> Vec<u32> {
    (0..n as u32)
        .map(|i| 100 + (seed * 7919 + i * 104_729) % 40_000)
        .collect()
}

/// Slot 1 runs a first prompt (a 45-token "system prompt" and a question), decodes six
/// tokens, then takes a second prompt that repeats the first, three of the decoded tokens and
/// a new question. Returns (whether the pass is chunk invariant, kept tokens, whether the
/// second prompt's logits equal slot 0's cold prefill of it bit for bit).
fn second_prompt_after_reuse(type_k: GgmlType, type_v: GgmlType) -> Option<(bool, usize, bool)> {
    let path = support::model_path()?;
    let mut model = support::load(&path, 2, type_k, type_v);
    let invariant =
        probe_is_conclusive(type_k, type_v) && probe_chunk_invariance(&mut model).expect("probe");
    let mut r = ModelRunner::new(model, true, 256).with_chunk_invariance(invariant);
    let first: Vec<u32> = [tokens(1, 45), tokens(2, 20)].concat();
    let decoded = tokens(3, 6);
    let second: Vec<u32> = [first.clone(), decoded[..3].to_vec(), tokens(4, 30)].concat();

    let cold = prefill(&mut r, 0, &second);

    prefill(&mut r, 1, &first);
    for &t in &decoded {
        let step = Chunk {
            slot: 1,
            tokens: &[t],
            logits: true,
        };
        r.run(&[step], &mut |_, row| assert!(row.is_ok()));
    }
    let held = [first.clone(), decoded].concat();
    assert_eq!(r.cached(1), held.len());
    let common = held.iter().zip(&second).take_while(|(a, b)| a == b).count();
    assert_eq!(common, first.len() + 3);
    let keep = r.reusable(held.len(), common, first.len(), second.len());
    r.truncate(1, keep).expect("truncate");
    let warm = prefill(&mut r, 1, &second[keep..]);
    let same = cold.len() == warm.len()
        && cold
            .iter()
            .zip(&warm)
            .all(|(a, b)| a.to_bits() == b.to_bits());
    Some((invariant, keep, same))
}

#[test]
fn a_kept_prefix_gives_the_cold_logits_for_every_kv_type() {
    for (k, v) in [
        (GgmlType::F16, GgmlType::F16),
        (GgmlType::Turbo4, GgmlType::Turbo4),
        (GgmlType::Q8_0, GgmlType::Turbo4),
    ] {
        let Some((invariant, keep, same)) = second_prompt_after_reuse(k, v) else {
            return;
        };
        eprintln!("{k:?}/{v:?}: chunk invariant {invariant}, kept {keep}");
        // Chunk invariant: the first prompt and three rows written by decode steps; else two
        // whole chunks of the first prompt's rows.
        assert_eq!(keep, if invariant { 68 } else { 2 * UB }, "{k:?}/{v:?}");
        assert!(same, "{k:?}/{v:?}: the logits differ from a cold prefill");
    }
}

#[test]
fn the_probe_finds_a_turbo_key_center_makes_chunking_matter() {
    let Some(path) = support::model_path() else {
        return;
    };
    // A turbo K's center is the mean of the sequence's first chunk of at least 8 keys: one
    // token at a time gives none.
    let mut m = support::load(&path, 1, GgmlType::Turbo4, GgmlType::Q8_0);
    assert!(!probe_chunk_invariance(&mut m).expect("probe"));
    assert_eq!(m.seq_len(0), 0, "the probe leaves the slot empty");
}
