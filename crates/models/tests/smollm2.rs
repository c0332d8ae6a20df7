//! SmolLM2-135M-Instruct (llama arch, Q4_1) against llama.cpp's reference numbers (ASSETS.md).

mod common;

use common::*;
use formats::GgmlType;
use models::RunConfig;

const MODEL: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// "The capital of France is" (no BOS: add_bos_token = false).
const PROMPT: [u32; 5] = [504, 3575, 282, 4649, 314];

fn cfg(tk: GgmlType, tv: GgmlType) -> RunConfig {
    RunConfig {
        n_ctx: 256,
        n_ubatch: 64,
        n_batch: 64,
        type_k: tk,
        type_v: tv,
        ..RunConfig::default()
    }
}

#[test]
fn first_token_logprobs_match_llama_cpp() {
    let Some(path) = model_path(MODEL) else {
        return;
    };
    let mut m = load(&path, cfg(GgmlType::F32, GgmlType::F32), 2);
    m.forward(0, &PROMPT, false).unwrap();
    let lp = log_softmax(m.logits(0).unwrap());
    // llama.cpp: ' Paris' -0.259, ' the' -2.765, ' London' -4.295. Both engines quantize
    // activations to 8 bits, and on this model that alone is a noise floor of ~0.1 nat for
    // the less likely tokens: in the float64 reference (tests/reference_forward.py --q8),
    // scaling the activations by 1 + 1e-6 before rounding moves ' the' by 0.13 nat and
    // ' London' by 0.12. So ' Paris' gets 0.15 nat, the others 0.15 + 0.08 per nat of
    // improbability (the golden test's rule).
    for (id, want) in [(7042usize, -0.259f64), (260, -2.765), (4528, -4.295)] {
        eprintln!("token {id}: {:.4} (llama.cpp {want})", lp[id]);
        assert!(
            (lp[id] - want).abs() < 0.15 + 0.08 * (want.abs() - 0.259),
            "token {id}: log-prob {} vs llama.cpp {want}",
            lp[id]
        );
    }
    // ' Paris' and ' the' lead; ' London' is among the next two (a token llama.cpp does not
    // list sits within 0.15 nat of it, and float summation order alone swaps such pairs).
    let mut order: Vec<usize> = (0..lp.len()).collect();
    order.sort_by(|&a, &b| lp[b].total_cmp(&lp[a]));
    assert_eq!(&order[..2], &[7042, 260]);
    assert!(order[2..4].contains(&4528), "top 4: {:?}", &order[..4]);
}

#[test]
fn greedy_continuation_begins_paris() {
    let Some(path) = model_path(MODEL) else {
        return;
    };
    let mut m = load(&path, cfg(GgmlType::F16, GgmlType::F16), 2);
    let out = greedy(&mut m, &PROMPT, 5);
    // llama.cpp: " Paris.\n\nThe United States ..." = " Paris" "." "\n" "\n" "The".
    assert_eq!(out, vec![7042, 30, 198, 198, 504], "{out:?}");
}
