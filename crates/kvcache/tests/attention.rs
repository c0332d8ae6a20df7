//! The attention kernel against the f64 reference over the cache's decoded contents.

mod common;

use common::*;
use kvcache::{KernelPath, KvType, RayonExecutor, Sequential, ALL_KV_TYPES};

/// Relative-plus-absolute tolerance (see `max_err`): the kernel works in f32 and, for turbo,
/// in the rotated domain; the reference in f64 after an f32 inverse rotation.
const TOL: f64 = 2e-4;

thread_local! {
    /// A 3-worker pool: with few query rows the kernel splits the key range (split-K) and
    /// merges, so this exercises the merge pass.
    static POOL: rayon::ThreadPool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
}

/// Every kernel path, sequential and on 3 workers, against the reference.
fn check(s: &Scenario) {
    let b = build(s);
    let want = reference(&b, s.window);
    POOL.with(|pool| {
        let par = RayonExecutor::new(pool);
        for path in paths() {
            for (exec, name) in [(&Sequential as &dyn kvcache::Executor, "1 worker"), (&par, "3 workers")] {
                let got = run_kernel_on(&b.cache, &b, exec, path);
                let (err, at) = max_err(&got, &want);
                assert!(
                    err < TOL,
                    "{path:?} {name}: K {} V {} dk {} dv {} nkv {} group {} page {} window {:?}: error {err:.3e} at {at} (got {}, want {})",
                    s.k_type,
                    s.v_type,
                    s.head_dim_k,
                    s.head_dim_v,
                    s.n_kv_heads,
                    s.group,
                    s.page_size,
                    s.window,
                    got[at],
                    want[at]
                );
            }
        }
    });
}

#[test]
fn every_type_pair() {
    for k in ALL_KV_TYPES {
        for v in ALL_KV_TYPES {
            let mut s = Scenario::new(k, v, 64);
            s.seed = (k.block_bytes() * 131 + v.block_bytes()) as u64;
            check(&s);
        }
    }
}

/// Turbo heads narrower than a group, packed (heads sharing a rotation group, an odd head
/// alone) and padded, with K and V packed differently.
#[test]
fn packed_and_padded_turbo_heads() {
    for (k, v) in [
        (KvType::Turbo3, KvType::Turbo3),
        (KvType::Q8_0, KvType::Turbo4),
        (KvType::Turbo2, KvType::F16),
    ] {
        for (hd, nkv) in [(64, 1), (64, 3), (32, 5), (64, 4)] {
            for pack in [false, true] {
                let mut s = Scenario::new(k, v, hd);
                s.n_kv_heads = nkv;
                s.pack = pack;
                s.seed = (hd + nkv) as u64;
                check(&s);
            }
        }
    }
}

#[test]
fn head_sizes() {
    for ty in ALL_KV_TYPES {
        for hd in [64, 96, 128, 256] {
            for other in [KvType::F32, ty] {
                let mut s = Scenario::new(ty, other, hd);
                s.seq_lens = vec![19, 40];
                check(&s);
                let mut s = Scenario::new(other, ty, hd);
                s.seq_lens = vec![33];
                check(&s);
            }
        }
    }
    // Head sizes that are not a multiple of 32: float and turbo types (80 pads to 128).
    for ty in [
        KvType::F32,
        KvType::F16,
        KvType::Bf16,
        KvType::Turbo2,
        KvType::Turbo3,
        KvType::Turbo4,
    ] {
        for hd in [80, 72, 200] {
            check(&Scenario::new(ty, KvType::Turbo3, hd));
            check(&Scenario::new(KvType::Turbo4, ty, hd));
            check(&Scenario::new(ty, KvType::F16, hd));
        }
    }
}

#[test]
fn different_k_and_v_head_sizes() {
    for (k, v) in [
        (KvType::Turbo3, KvType::Q8_0),
        (KvType::F16, KvType::Turbo4),
        (KvType::Q4_0, KvType::F32),
    ] {
        let mut s = Scenario::new(k, v, 192);
        s.head_dim_v = 128;
        check(&s);
        let mut s = Scenario::new(k, v, 64);
        s.head_dim_v = 256;
        check(&s);
    }
}

#[test]
fn gqa_ratios() {
    for (k, v) in [
        (KvType::F32, KvType::F32),
        (KvType::Q8_0, KvType::F16),
        (KvType::Turbo3, KvType::Turbo4),
    ] {
        for group in 1..=8 {
            for nkv in [1, 3] {
                let mut s = Scenario::new(k, v, 64);
                s.group = group;
                s.n_kv_heads = nkv;
                s.seed = (group * 10 + nkv) as u64;
                check(&s);
            }
        }
    }
}

#[test]
fn lengths_and_pages() {
    for (k, v) in [
        (KvType::F16, KvType::F16),
        (KvType::Q4_1, KvType::Q5_0),
        (KvType::Turbo2, KvType::Turbo3),
        (KvType::Turbo4, KvType::Q8_0),
    ] {
        // (page size, sequence lengths): one key; one partial page; exactly one page; many
        // pages with a partial last one; pages larger than a chunk; one-token pages.
        for (page, lens) in [
            (16, vec![1]),
            (16, vec![1, 1, 2]),
            (16, vec![11]),
            (16, vec![16, 32]),
            (8, vec![61, 3, 45]),
            (256, vec![300, 100]),
            (1, vec![9, 4]),
            (100, vec![250]),
        ] {
            let mut s = Scenario::new(k, v, 128);
            s.page_size = page;
            s.n_pages = lens.iter().map(|l: &usize| l.div_ceil(page)).sum();
            s.seq_lens = lens;
            s.rows_per_seq = 11;
            check(&s);
        }
    }
}

#[test]
fn many_sequences_interleaved_in_the_pool() {
    for (k, v) in [
        (KvType::Q8_0, KvType::Q8_0),
        (KvType::Turbo3, KvType::F16),
        (KvType::Iq4Nl, KvType::Turbo2),
    ] {
        let mut s = Scenario::new(k, v, 64);
        s.seq_lens = vec![23, 50, 1, 17, 33];
        s.page_size = 4;
        s.round = 3;
        s.n_pages = s.seq_lens.iter().map(|l| l.div_ceil(4)).sum();
        s.rows_per_seq = 7;
        check(&s);
    }
}

#[test]
fn sliding_window() {
    for (k, v) in [
        (KvType::F32, KvType::F32),
        (KvType::Q5_1, KvType::Bf16),
        (KvType::Turbo4, KvType::Turbo3),
    ] {
        // Windows: smaller than a page, not page-aligned, larger than the sequence, 1.
        for window in [1, 5, 13, 16, 40, 1000] {
            let mut s = Scenario::new(k, v, 64);
            s.page_size = 8;
            s.n_pages = 20;
            s.seq_lens = vec![70, 29];
            s.rows_per_seq = 12;
            s.window = Some(window);
            check(&s);
        }
    }
}

#[test]
fn peaky_and_flat_softmax() {
    for q_scale in [0.0, 0.01, 1.0, 8.0, 30.0] {
        for (k, v) in [
            (KvType::F32, KvType::F32),
            (KvType::Turbo3, KvType::Turbo3),
            (KvType::Q4_0, KvType::Q4_0),
        ] {
            let mut s = Scenario::new(k, v, 128);
            s.q_scale = q_scale;
            s.seq_lens = vec![90];
            s.page_size = 32;
            s.n_pages = 3;
            s.rows_per_seq = 9;
            check(&s);
        }
    }
}

/// The same executor gives the same bits every time (no races, fixed split points), and
/// 4 workers (split-K) give exactly the bits of one.
#[test]
fn parallel_is_deterministic_and_agrees() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(4)
        .build()
        .unwrap();
    let exec = RayonExecutor::new(&pool);
    for (k, v) in [
        (KvType::F16, KvType::Q8_0),
        (KvType::Turbo3, KvType::Turbo4),
    ] {
        let mut s = Scenario::new(k, v, 128);
        s.seq_lens = vec![700, 450, 12];
        s.n_pages = 80;
        s.rows_per_seq = 1;
        s.extra_row = false;
        let b = build(&s);
        let one = run_sequential(&b);
        let many = run_kernel(&b, &exec);
        let again = run_kernel(&b, &exec);
        assert_eq!(
            many.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            again.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
        assert_eq!(
            many.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            one.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            "{k}/{v}: split-K differs from one pass"
        );
    }
}

/// The AVX2 path agrees with the scalar path (the reference for every SIMD path).
#[test]
fn avx2_agrees_with_scalar() {
    if !KernelPath::Avx2.is_available() {
        eprintln!("skipped: this CPU lacks AVX2/FMA/F16C");
        return;
    }
    for k in ALL_KV_TYPES {
        for v in [KvType::F32, KvType::Q4_1, KvType::Turbo2, k] {
            let mut s = Scenario::new(k, v, 128);
            s.seq_lens = vec![150, 70];
            s.n_pages = 16;
            s.rows_per_seq = 10;
            let b = build(&s);
            let scalar = run_kernel_on(&b.cache, &b, &Sequential, KernelPath::Scalar);
            let avx2 = run_kernel_on(&b.cache, &b, &Sequential, KernelPath::Avx2);
            let (err, at) = max_err(&avx2, &scalar.iter().map(|&x| x as f64).collect::<Vec<_>>());
            assert!(
                err < 2e-5,
                "{k}/{v}: AVX2 differs from scalar by {err} at {at}"
            );
        }
    }
}

/// An f16 cache gives nearly the f32 cache's attention.
#[test]
fn f16_close_to_f32() {
    for hd in [64, 128] {
        let s32 = {
            let mut s = Scenario::new(KvType::F32, KvType::F32, hd);
            s.seq_lens = vec![80, 33];
            s.n_pages = 10;
            s
        };
        let mut s16 = s32.clone();
        s16.k_type = KvType::F16;
        s16.v_type = KvType::F16;
        let a = run_sequential(&build(&s32));
        let b = run_sequential(&build(&s16));
        let worst = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 5e-3, "head {hd}: f16 vs f32 differ by {worst}");
        assert!(worst > 0.0, "f16 rounding must show somewhere");
    }
}

/// Attention over a turbo K (rotated queries, table lookups) equals attention over an f32 K
/// holding the turbo rows decoded and rotated back; likewise for V.
#[test]
fn turbo_equals_its_inverse_rotated_reconstruction() {
    use kvcache::{KvCache, TokenPos};
    for ty in [KvType::Turbo2, KvType::Turbo3, KvType::Turbo4] {
        for hd in [64, 128, 192] {
            let mut s = Scenario::new(ty, ty, hd);
            s.seq_lens = vec![50, 20];
            s.n_pages = 6;
            let b = build(&s);
            // An f32 cache with the reconstructed rows at the same positions.
            let mut plain = s.clone();
            plain.k_type = KvType::F32;
            plain.v_type = KvType::F32;
            let mut cache = KvCache::new(&plain.config()).unwrap();
            let nkv = s.n_kv_heads;
            for (seq, &len) in s.seq_lens.iter().enumerate() {
                cache.reserve(seq, len).unwrap();
                for layer in [1, LAYER] {
                    for pos in 0..len {
                        let mut k = Vec::new();
                        let mut v = Vec::new();
                        for h in 0..nkv {
                            let kb = b.cache.k_head(layer, seq, pos, h).unwrap();
                            let vb = b.cache.v_head(layer, seq, pos, h).unwrap();
                            let (ko, vo) =
                                (b.cache.layout().k_place(h).1, b.cache.layout().v_place(h).1);
                            k.extend(reference_head(ty, kb, hd, ko).iter().map(|&x| x as f32));
                            v.extend(reference_head(ty, vb, hd, vo).iter().map(|&x| x as f32));
                        }
                        cache
                            .write(layer, &[TokenPos { seq, pos }], &k, &v)
                            .unwrap();
                    }
                }
            }
            let turbo = run_sequential(&b);
            let recon = run_kernel_on(&cache, &b, &Sequential, KernelPath::best());
            let worst = turbo
                .iter()
                .zip(&recon)
                .map(|(x, y)| (x - y).abs() / (1.0 + y.abs()))
                .fold(0.0f32, f32::max);
            assert!(worst < 1e-4, "{ty} head {hd}: {worst}");
        }
    }
}

/// Decode-shaped calls (one row per sequence) on long contexts: with more workers than units
/// the key range is split and merged (split-K).
#[test]
fn long_context_decode_split_k() {
    for (k, v) in [
        (KvType::F16, KvType::F16),
        (KvType::Q8_0, KvType::Turbo4),
        (KvType::Turbo3, KvType::Q4_0),
    ] {
        for window in [None, Some(300)] {
            let mut s = Scenario::new(k, v, 128);
            s.seq_lens = vec![1000, 400, 129];
            s.page_size = 64;
            s.n_pages = 16 + 7 + 3;
            s.round = 100;
            s.rows_per_seq = 1;
            s.window = window;
            check(&s);
        }
    }
}

/// Sliding layers kept in per-sequence rings (pages reused) against the f64 reference.
#[test]
fn sliding_window_ring() {
    for (k, v) in [(KvType::F16, KvType::F16), (KvType::Q8_0, KvType::Turbo3)] {
        for (window, page, round) in [(5, 4, 3), (13, 8, 7), (40, 8, 12), (64, 64, 64)] {
            let mut s = Scenario::new(k, v, 64);
            s.page_size = page;
            s.n_pages = 60;
            s.seq_lens = vec![150, 47, 3];
            s.round = round;
            s.rows_per_seq = round;
            s.extra_row = false;
            s.window = Some(window);
            s.ring_batch = Some(round);
            check(&s);
        }
    }
}

/// A model-like run (prefill in batches, then decode steps, attention after every write) on
/// a ring layer gives exactly the outputs of the same layer kept in shared pages, with less
/// memory; a batch longer than the ring allows is refused, not answered from evicted rows.
#[test]
fn ring_layer_equals_paged_layer() {
    use kvcache::{KvCache, KvError, LayerKind, TokenPos};
    let (window, max_batch, page) = (20, 16, 8);
    let mut ring = Scenario::new(KvType::Q4_0, KvType::Turbo4, 64);
    ring.page_size = page;
    ring.n_pages = 40;
    ring.seq_lens = vec![0, 0];
    ring.window = Some(window);
    ring.ring_batch = Some(max_batch);
    let mut paged = ring.clone();
    paged.ring_batch = None;
    let mut a = KvCache::new(&ring.config()).unwrap();
    let mut b = KvCache::new(&paged.config()).unwrap();
    assert!(a.allocated_bytes() < b.allocated_bytes());
    assert!(matches!(
        ring.config().layers[LAYER],
        LayerKind::SlidingRing { .. }
    ));
    let mut rng = Rng::new(11);
    let n_heads = ring.n_heads();
    let mut len = [0usize; 2];
    // Batches: prompts of 16+16+5 and 9 tokens, then single-token steps.
    let plan: Vec<(usize, usize)> = vec![(0, 16), (1, 9), (0, 16), (0, 5)]
        .into_iter()
        .chain((0..30).map(|i| (i % 2, 1)))
        .collect();
    for (seq, n) in plan {
        let tokens: Vec<TokenPos> = (len[seq]..len[seq] + n)
            .map(|pos| TokenPos { seq, pos })
            .collect();
        len[seq] += n;
        a.reserve(seq, len[seq]).unwrap();
        b.reserve(seq, len[seq]).unwrap();
        for layer in [1, LAYER] {
            let k = rng.normals(n * 2 * 64, 1.0);
            let v = rng.normals(n * 2 * 64, 1.0);
            a.write(layer, &tokens, &k, &v).unwrap();
            b.write(layer, &tokens, &k, &v).unwrap();
        }
        let q = rng.normals(n * n_heads * 64, 1.0);
        let built = |cache: KvCache, q: Vec<f32>| Built {
            cache,
            tokens: tokens.clone(),
            q,
            scale: 0.125,
            n_heads,
        };
        let ba = built(a, q.clone());
        let bb = built(b, q);
        for path in paths() {
            let oa = run_kernel_on(&ba.cache, &ba, &Sequential, path);
            let ob = run_kernel_on(&bb.cache, &bb, &Sequential, path);
            assert_eq!(
                oa.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                ob.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                "{path:?} seq {seq} at {}",
                len[seq]
            );
        }
        a = ba.cache;
        b = bb.cache;
    }
    // Sequence 0 is at 52; its ring has ⌈(20 + 16 − 1) / 8⌉ + 1 = 6 pages and holds pages
    // 1..=6 (positions 8..56). A batch of 30 (pages up to 10) evicts everything below 40,
    // which its first row (window from 33) needs.
    assert_eq!(a.evicted_below(LAYER, 0).unwrap(), 8);
    let tokens: Vec<TokenPos> = (52..82).map(|pos| TokenPos { seq: 0, pos }).collect();
    a.reserve(0, 82).unwrap();
    let k = rng.normals(30 * 2 * 64, 1.0);
    a.write(LAYER, &tokens, &k, &k).unwrap();
    let bad = Built {
        cache: a,
        tokens: tokens[..1].to_vec(),
        q: rng.normals(n_heads * 64, 1.0),
        scale: 0.125,
        n_heads,
    };
    let shape = kvcache::AttentionShape::for_layout(bad.cache.layout(), n_heads, 1, 1);
    let mut ws = vec![0.0; kvcache::attention_workspace_floats(&shape).unwrap()];
    let mut out = vec![0.0; n_heads * 64];
    let e = bad
        .cache
        .attend(
            &kvcache::AttentionInput {
                layer: LAYER,
                tokens: &bad.tokens,
                q: &bad.q,
                n_heads,
                scale: 0.125,
            },
            &mut out,
            &Sequential,
            &mut ws,
        )
        .unwrap_err();
    assert!(
        matches!(
            e,
            KvError::Evicted {
                pos: 33,
                floor: 40,
                ..
            }
        ),
        "{e}"
    );
    // Rolling back past the eviction floor cannot be answered either; freeing resets.
    let mut a = bad.cache;
    a.truncate(0, 40).unwrap();
    assert!(a.k_head(LAYER, 0, 39, 0).is_err());
    a.free_sequence(0).unwrap();
    assert_eq!(a.evicted_below(LAYER, 0).unwrap(), 0);
}

/// Exact f64 attention of one query row over float keys and values (one head).
fn exact_attention(q: &[f32], keys: &[Vec<f32>], values: &[Vec<f32>], scale: f64) -> Vec<f64> {
    let s: Vec<f64> = keys
        .iter()
        .map(|k| {
            q.iter()
                .zip(k)
                .map(|(&a, &b)| a as f64 * b as f64)
                .sum::<f64>()
                * scale
        })
        .collect();
    let m = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let w: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
    let sum: f64 = w.iter().sum();
    let mut out = vec![0.0; values[0].len()];
    for (wi, v) in w.iter().zip(values) {
        for (o, x) in out.iter_mut().zip(v) {
            *o += wi / sum * *x as f64;
        }
    }
    out
}

/// Turbo K stores keys minus their sequence's mean (softmax cannot tell): keys sharing a
/// large common offset come out as accurate as keys without it. Without centering the
/// offset would multiply the turbo error of every score by about its size.
#[test]
fn turbo_keys_with_a_common_offset_are_centered() {
    use kvcache::{AttentionInput, KvCache, TokenPos};
    let (n, dim) = (48usize, 64usize);
    for ty in [KvType::Turbo4, KvType::Turbo3] {
        let mut errs = Vec::new();
        for offset in [0.0f32, 8.0] {
            let mut s = Scenario::new(ty, KvType::F32, dim);
            s.n_kv_heads = 1;
            s.group = 1;
            s.seq_lens = vec![n];
            let mut cache = KvCache::new(&s.config()).unwrap();
            let mut rng = Rng::new(5);
            let keys: Vec<Vec<f32>> = (0..n)
                .map(|_| {
                    rng.normals(dim, 1.0)
                        .iter()
                        .enumerate()
                        .map(|(j, x)| x + offset * (1.0 + (j as f32 * 0.3).sin()))
                        .collect()
                })
                .collect();
            let values: Vec<Vec<f32>> = (0..n).map(|_| rng.normals(dim, 1.0)).collect();
            let tokens: Vec<TokenPos> = (0..n).map(|pos| TokenPos { seq: 0, pos }).collect();
            cache.reserve(0, n).unwrap();
            let k: Vec<f32> = keys.concat();
            let v: Vec<f32> = values.concat();
            cache.write(LAYER, &tokens, &k, &v).unwrap();
            let q = rng.normals(dim, 2.0);
            let mut out = vec![0.0f32; dim];
            let last = [TokenPos { seq: 0, pos: n - 1 }];
            let input = AttentionInput {
                layer: LAYER,
                tokens: &last,
                q: &q,
                n_heads: 1,
                scale: 0.125,
            };
            let shape = kvcache::AttentionShape::for_layout(cache.layout(), 1, 1, 1);
            let mut ws = vec![0.0f32; kvcache::attention_workspace_floats(&shape).unwrap()];
            cache
                .attend(&input, &mut out, &Sequential, &mut ws)
                .unwrap();
            let want = exact_attention(&q, &keys, &values, 0.125);
            let err: f64 = out
                .iter()
                .zip(&want)
                .map(|(&g, w)| (g as f64 - w).powi(2))
                .sum::<f64>()
                .sqrt();
            errs.push(err);
        }
        assert!(
            errs[1] < 1.5 * errs[0] + 1e-3,
            "{ty}: error {:.4} with a common key offset vs {:.4} without",
            errs[1],
            errs[0]
        );
    }
}

/// Each row of a batch gets exactly the bits it gets alone (no split-K: one worker), on every
/// path, for 64-wide turbo heads packed two to a group (the pair units) and a mixed pair.
#[test]
fn rows_alone_match_the_batch_bit_for_bit() {
    for (k, v) in [
        (KvType::Turbo4, KvType::Turbo4),
        (KvType::Turbo3, KvType::Turbo3),
        (KvType::Q8_0, KvType::Turbo4),
        (KvType::F16, KvType::F16),
    ] {
        let mut s = Scenario::new(k, v, 64);
        s.n_kv_heads = 3;
        s.group = 3;
        s.pack = true;
        s.seq_lens = vec![300, 90, 40];
        s.n_pages = 40;
        s.rows_per_seq = 2;
        let b = build(&s);
        let dv = s.head_dim_v * b.n_heads;
        for path in paths() {
            let batch = run_kernel_on(&b.cache, &b, &Sequential, path);
            let alone = rows_alone(&b, &Sequential, path);
            for (i, (got, want)) in alone.chunks(dv).zip(batch.chunks(dv)).enumerate() {
                assert!(
                    got.iter()
                        .zip(want)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{k}/{v} {path:?}: row {i} alone differs from the batch"
                );
            }
        }
    }
}

/// Runs each row of `b` alone on `exec` and `path`.
fn rows_alone(b: &Built, exec: &dyn kvcache::Executor, path: KernelPath) -> Vec<f32> {
    let dv = b.cache.config().head_dim_v * b.n_heads;
    let dq = b.cache.config().head_dim_k * b.n_heads;
    let mut all = Vec::new();
    for (i, t) in b.tokens.iter().enumerate() {
        let one = kvcache::AttentionShape {
            path,
            ..kvcache::AttentionShape::for_layout(b.cache.layout(), b.n_heads, 1, exec.n_workers())
        };
        let mut ws = vec![f32::NAN; kvcache::attention_workspace_floats(&one).unwrap()];
        let mut out = vec![f32::NAN; dv];
        let input = kvcache::AttentionInput {
            layer: LAYER,
            tokens: std::slice::from_ref(t),
            q: &b.q[i * dq..(i + 1) * dq],
            n_heads: b.n_heads,
            scale: b.scale,
        };
        b.cache
            .attend_on(path, &input, &mut out, exec, &mut ws)
            .unwrap();
        all.extend_from_slice(&out);
    }
    all
}

fn bits(x: &[f32]) -> Vec<u32> {
    x.iter().map(|v| v.to_bits()).collect()
}

/// SmolLM2's shape (3 KV heads of 64, 9 query heads) on contexts of several segments: a row
/// gets the same bits on 1, 2, 3 or 4 workers (split-K by segment or not), alone or in its
/// batch, on every path, with and without a window; and stays within tolerance of the f64
/// reference.
#[test]
fn split_k_bits_do_not_depend_on_workers_or_batch() {
    let pools: Vec<rayon::ThreadPool> = [2, 3, 4]
        .iter()
        .map(|&n| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .unwrap()
        })
        .collect();
    for (k, v) in [
        (KvType::F16, KvType::F16),
        (KvType::Q8_0, KvType::Turbo4),
        (KvType::Turbo4, KvType::Turbo4),
        (KvType::Turbo3, KvType::Turbo3),
        (KvType::Turbo2, KvType::Turbo2),
    ] {
        for window in [None, Some(700)] {
            let mut s = Scenario::new(k, v, 64);
            s.n_kv_heads = 3;
            s.group = 3;
            s.seq_lens = vec![1800, 1100, 530];
            s.page_size = 64;
            s.n_pages = 29 + 18 + 9;
            s.round = 100;
            s.rows_per_seq = 1;
            s.window = window;
            let b = build(&s);
            let want = reference(&b, window);
            for path in paths() {
                let one = run_kernel_on(&b.cache, &b, &Sequential, path);
                let (err, at) = max_err(&one, &want);
                assert!(
                    err < TOL,
                    "{k}/{v} {path:?} {window:?}: error {err:.3e} at {at}"
                );
                for pool in &pools {
                    let exec = RayonExecutor::new(pool);
                    let n = pool.current_num_threads();
                    let batch = run_kernel_on(&b.cache, &b, &exec, path);
                    assert!(
                        bits(&batch) == bits(&one),
                        "{k}/{v} {path:?} {window:?}: the batch on {n} workers differs from 1"
                    );
                    let alone = rows_alone(&b, &exec, path);
                    assert!(
                        bits(&alone) == bits(&one),
                        "{k}/{v} {path:?} {window:?}: rows alone on {n} workers differ from the batch"
                    );
                }
            }
        }
    }
}

/// Rows on both sides of the position where segments double (8192 keys): a prefill-like run
/// of rows whose segment lengths differ gives each row its solo bits, split or not.
#[test]
fn segment_length_change_inside_a_run() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let exec = RayonExecutor::new(&pool);
    let mut s = Scenario::new(KvType::Q8_0, KvType::Turbo3, 64);
    s.n_kv_heads = 1;
    s.group = 2;
    s.seq_lens = vec![8200];
    s.page_size = 256;
    s.n_pages = 33;
    s.round = 1000;
    s.rows_per_seq = 12;
    let b = build(&s);
    let want = reference(&b, None);
    let path = KernelPath::best();
    let batch = run_kernel_on(&b.cache, &b, &Sequential, path);
    let (err, at) = max_err(&batch, &want);
    assert!(err < TOL, "error {err:.3e} at {at}");
    assert!(bits(&rows_alone(&b, &exec, path)) == bits(&batch));
    assert!(bits(&rows_alone(&b, &Sequential, path)) == bits(&batch));
    assert!(bits(&run_kernel_on(&b.cache, &b, &exec, path)) == bits(&batch));
}
