//! The server batches every step's sequences into one forward pass only when that pass gives
//! each sequence exactly the logits it gets alone (`--batching auto`, the default, probes it at
//! load). This checks, on the real default model and the CPU backend with two threads, that
//! the probe passes (so the default batches) and that several decode rows plus a prompt chunk
//! in one pass match their solo logits bit for bit over a few steps.

use formats::GgmlType;
use models::{BatchRow, Model};
use server::scheduler::runner::probe_batch_invariance;
use turbine_core::cpu::CpuBackend;

mod support;

fn load(path: &std::path::Path, n_seq: usize) -> Model<CpuBackend> {
    support::load(path, n_seq, GgmlType::F16, GgmlType::F16)
}

#[test]
fn load_time_probe_finds_the_batched_pass_exact() {
    let Some(path) = support::model_path() else {
        return;
    };
    let mut m = load(&path, 4);
    let probe = probe_batch_invariance(&mut m).expect("probe");
    assert_eq!(probe.max_abs_diff, 0.0, "{probe:?}");
}

#[test]
fn decode_rows_and_a_prompt_chunk_match_their_solo_logits() {
    let Some(path) = support::model_path() else {
        return;
    };
    let mut m = load(&path, 4);
    let prompts: [Vec<u32>; 4] = [
        vec![504, 3575, 282, 4649, 314],
        vec![1, 2, 3],
        (40..61).collect(),
        vec![7],
    ];
    // Sequence 3 gets a 9-token prompt chunk in the batch, the others one decode token.
    let chunk: Vec<u32> = (900..909).collect();
    for (s, p) in prompts.iter().enumerate() {
        m.forward(s, p, false).expect("prompt");
    }
    for step in 0..3u32 {
        let next = |s: usize| -> Vec<u32> {
            if s == 3 {
                chunk.iter().map(|t| t + step).collect()
            } else {
                vec![30 + step + s as u32]
            }
        };
        let lens: Vec<usize> = (0..4).map(|s| m.seq_len(s)).collect();
        let mut alone = Vec::new();
        for (s, &len) in lens.iter().enumerate() {
            m.forward(s, &next(s), false).expect("solo");
            alone.push(m.logits(0).expect("logits").to_vec());
            m.truncate(s, len).expect("truncate");
        }
        let batch: Vec<BatchRow> = (0..4)
            .flat_map(|s| {
                let toks = next(s);
                let last = toks.len() - 1;
                toks.into_iter()
                    .enumerate()
                    .map(move |(j, token)| BatchRow {
                        seq: s,
                        token,
                        logits: j == last,
                    })
            })
            .collect();
        m.forward_batch(&batch).expect("batch");
        for (s, want) in alone.iter().enumerate() {
            let got = m.logits(s).expect("logits");
            let same = got
                .iter()
                .zip(want)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(
                same,
                "step {step}: sequence {s}'s logits differ in the batch"
            );
        }
    }
}
