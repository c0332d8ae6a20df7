//! Memory accounting, sequence management and error reporting.

mod common;

use common::*;
use kvcache::{
    attention_workspace_bytes, attention_workspace_floats, AttentionInput, AttentionShape,
    KernelPath, KvCache, KvConfig, KvError, KvType, LayerKind, Sequential, TokenPos, ALL_KV_TYPES,
};

fn config(k: KvType, v: KvType, head_dim: usize) -> KvConfig {
    KvConfig {
        layers: vec![
            LayerKind::Full,
            LayerKind::Sliding { window: 512 },
            LayerKind::Uncached,
            LayerKind::Full,
        ],
        n_kv_heads: 3,
        head_dim_k: head_dim,
        head_dim_v: head_dim,
        k_type: k,
        v_type: v,
        page_size: 32,
        n_pages: KvConfig::pages_for_context(1000, 4, 32),
        max_seqs: 4,
        // Packing changes nothing for head sizes of 128 and up; 64-wide heads pair up.
        pack_turbo_heads: head_dim < 128,
        center_turbo_keys: true,
    }
}

/// The cache allocates exactly what the formula says, for every type pair.
#[test]
fn allocated_bytes_equal_the_formula() {
    for k in ALL_KV_TYPES {
        for v in ALL_KV_TYPES {
            for hd in [64, 128] {
                let cfg = config(k, v, hd);
                let need = KvCache::bytes_required(&cfg).unwrap();
                let cache = KvCache::new(&cfg).unwrap();
                assert_eq!(cache.allocated_bytes(), need, "{k}/{v} head {hd}");
                // Independent restatement: 3 cached layers × pages × tokens × bytes of the
                // 3 heads; packed 64-wide turbo heads: two share a block, the third has one.
                let heads_bytes = |t: KvType| {
                    if t.is_turbo() && hd == 64 {
                        2 * t.block_bytes()
                    } else if t.is_turbo() {
                        3 * hd.div_ceil(128) * t.block_bytes()
                    } else {
                        3 * hd / t.block_size() * t.block_bytes()
                    }
                };
                let data = 3 * cfg.n_pages * 32 * (heads_bytes(k) + heads_bytes(v));
                // Free list + page tables, reserved lengths, marks and floors per (seq, layer).
                let mut meta = 4 * (cfg.n_pages * (1 + cfg.max_seqs) + 4 + 2 * 4 * 4);
                if k.is_turbo() {
                    // Key centers: 4 sequences × 4 layers × 3 heads × hd floats, a count each.
                    meta += 4 * (4 * 4 * 3 * hd + 4);
                }
                assert_eq!(need, data + meta, "{k}/{v} head {hd}");
            }
        }
    }
}

/// A sliding layer kept in rings holds max_seqs × ring pages instead of the shared pool's.
#[test]
fn ring_layers_allocate_their_formula() {
    let mut cfg = config(KvType::Turbo3, KvType::Q8_0, 128);
    cfg.layers[1] = LayerKind::SlidingRing {
        window: 512,
        max_batch: 512,
    };
    cfg.n_pages = KvConfig::pages_for_context(32768, 4, 32);
    let need = KvCache::bytes_required(&cfg).unwrap();
    let cache = KvCache::new(&cfg).unwrap();
    assert_eq!(cache.allocated_bytes(), need);
    let l = cache.layout();
    let ring = (512 + 511usize).div_ceil(32) + 1;
    assert_eq!(l.data_bytes, (2 * cfg.n_pages + 4 * ring) * l.page_bytes);
    cfg.layers[1] = LayerKind::Sliding { window: 512 };
    assert!(KvCache::bytes_required(&cfg).unwrap() > need);
}

#[test]
fn memory_does_not_grow_while_used() {
    let cfg = config(KvType::Q8_0, KvType::Turbo3, 128);
    let mut cache = KvCache::new(&cfg).unwrap();
    let before = cache.allocated_bytes();
    let mut rng = Rng::new(5);
    for round in 0..3 {
        for seq in 0..4 {
            let n = 200 + round * 10 + seq;
            cache.reserve(seq, n).unwrap();
            let tokens: Vec<TokenPos> = (0..n).map(|pos| TokenPos { seq, pos }).collect();
            let k = rng.normals(n * 3 * 128, 1.0);
            cache.write(0, &tokens, &k, &k).unwrap();
        }
        for seq in 0..4 {
            cache.free_sequence(seq).unwrap();
        }
        assert_eq!(cache.free_pages(), cfg.n_pages);
    }
    assert_eq!(cache.allocated_bytes(), before);
}

#[test]
fn running_out_of_pages_is_a_clear_error() {
    let mut cfg = config(KvType::F16, KvType::F16, 64);
    cfg.n_pages = 4;
    let mut cache = KvCache::new(&cfg).unwrap();
    cache.reserve(0, 70).unwrap(); // 3 pages
    let e = cache.reserve(1, 64).unwrap_err();
    assert!(matches!(
        e,
        KvError::OutOfPages {
            needed: 2,
            free: 1,
            ..
        }
    ));
    assert_eq!(
        e.to_string(),
        "KV cache full: sequence 1 needs 2 more page(s) of 32 tokens to hold 64 tokens, but only 1 of 4 pages are free"
    );
    cache.truncate(0, 10).unwrap();
    cache.reserve(1, 64).unwrap();
    assert_eq!(cache.free_pages(), 1);
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let cfg = config(KvType::Q4_0, KvType::F16, 64);
    let mut cache = KvCache::new(&cfg).unwrap();
    let nkv = 3;
    let row = vec![0.5f32; nkv * 64];
    let t0 = [TokenPos { seq: 0, pos: 0 }];
    assert!(matches!(
        cache.write(0, &t0, &row, &row),
        Err(KvError::NotReserved { .. })
    ));
    cache.reserve(0, 4).unwrap();
    assert!(matches!(
        cache.write(2, &t0, &row, &row),
        Err(KvError::UncachedLayer { layer: 2 })
    ));
    assert!(matches!(
        cache.write(9, &t0, &row, &row),
        Err(KvError::BadLayer { .. })
    ));
    assert!(matches!(
        cache.write(0, &[TokenPos { seq: 7, pos: 0 }], &row, &row),
        Err(KvError::BadSequence { .. })
    ));
    assert!(matches!(
        cache.write(0, &t0, &row[1..], &row),
        Err(KvError::BadLength { .. })
    ));
    assert!(matches!(
        cache.write(0, &[TokenPos { seq: 0, pos: 2 }], &row, &row),
        Err(KvError::WriteGap { .. })
    ));
    cache.write(0, &t0, &row, &row).unwrap();

    let q = vec![0.1f32; 6 * 64];
    let mut out = vec![0.0f32; 6 * 64];
    let shape = AttentionShape::for_layout(cache.layout(), 6, 1, 1);
    let mut ws = vec![0.0f32; attention_workspace_floats(&shape).unwrap()];
    let input = |tokens: &'static [TokenPos], n_heads| AttentionInput {
        layer: 0,
        tokens,
        q: &q,
        n_heads,
        scale: 0.125,
    };
    static T0: [TokenPos; 1] = [TokenPos { seq: 0, pos: 0 }];
    static T1: [TokenPos; 1] = [TokenPos { seq: 0, pos: 1 }];
    cache
        .attend(&input(&T0, 6), &mut out, &Sequential, &mut ws)
        .unwrap();
    // One key only: the output is that V row (f16 of 0.5).
    assert!(out.iter().all(|&x| x == 0.5));
    assert!(matches!(
        cache.attend(&input(&T1, 6), &mut out, &Sequential, &mut ws),
        Err(KvError::KeysMissing { written: 1, .. })
    ));
    assert!(matches!(
        cache.attend(&input(&T0, 4), &mut out, &Sequential, &mut ws),
        Err(KvError::Shape(_))
    ));
    assert!(matches!(
        cache.attend(&input(&T0, 6), &mut out[1..], &Sequential, &mut ws),
        Err(KvError::BadLength { .. })
    ));
    let mut small = vec![0.0f32; ws.len() - 1];
    assert!(matches!(
        cache.attend(&input(&T0, 6), &mut out, &Sequential, &mut small),
        Err(KvError::Workspace { .. })
    ));
}

#[test]
fn workspace_formula() {
    let cfg = config(KvType::Turbo4, KvType::Turbo3, 96);
    let layout = kvcache::KvLayout::new(&cfg).unwrap();
    // Decode needs less than prefill; both are independent of context length.
    let decode = attention_workspace_bytes(&AttentionShape {
        path: KernelPath::Scalar,
        ..AttentionShape::for_layout(&layout, 3, 1, 1)
    })
    .unwrap();
    let prefill = attention_workspace_bytes(&AttentionShape {
        path: KernelPath::Scalar,
        ..AttentionShape::for_layout(&layout, 3, 512, 1)
    })
    .unwrap();
    assert!(decode < prefill);
    // One worker, one row, scalar path (turbo K tables), GQA group 1: query 128 + table
    // 128×16 + scores + two softmax states (segment and total: acc 128 + max + sum), then 8
    // decoded K rows and 8 V rows of 128.
    assert_eq!(
        decode,
        4 * (128 + 128 * 16 + kvcache::CHUNK + 2 * (128 + 2) + 8 * (128 + 128))
    );
    // With 16 workers: 16 scratches plus the split-K partials: fewer than 2 units per worker
    // (31), 16 segments each, one vector, (128 + 2) floats.
    let multi = attention_workspace_bytes(&AttentionShape {
        path: KernelPath::Scalar,
        ..AttentionShape::for_layout(&layout, 3, 1, 16)
    })
    .unwrap();
    assert_eq!(multi, 16 * decode + 4 * 31 * 16 * (128 + 2));
}

#[test]
fn truncate_then_rewrite_replaces_the_tail() {
    // Speculative-decoding style rollback: drop the last tokens, write different ones.
    let s = {
        let mut s = Scenario::new(KvType::Q8_0, KvType::Turbo4, 64);
        s.seq_lens = vec![30];
        s.rows_per_seq = 1;
        s.extra_row = false;
        s
    };
    let mut b = build(&s);
    b.cache.truncate(0, 20).unwrap();
    assert_eq!(b.cache.written(LAYER, 0).unwrap(), 20);
    b.cache.reserve(0, 25).unwrap();
    let mut rng = Rng::new(77);
    let tokens: Vec<TokenPos> = (20..25).map(|pos| TokenPos { seq: 0, pos }).collect();
    for layer in [1, LAYER] {
        let k = rng.normals(5 * 2 * 64, 1.0);
        let v = rng.normals(5 * 2 * 64, 1.0);
        b.cache.write(layer, &tokens, &k, &v).unwrap();
    }
    b.tokens = vec![TokenPos { seq: 0, pos: 24 }];
    b.q.truncate(b.n_heads * 64);
    let got = run_sequential(&b);
    let want = reference(&b, None);
    assert!(max_err(&got, &want).0 < 2e-4);
}

/// Writing on 4 workers stores the same bytes as writing on one, for every type; a batch that
/// rewrites a position keeps the last row.
#[test]
fn parallel_write_matches_sequential() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(4)
        .build()
        .unwrap();
    let exec = kvcache::RayonExecutor::new(&pool);
    for ty in ALL_KV_TYPES {
        let cfg = config(ty, ty, 64);
        let mut a = KvCache::new(&cfg).unwrap();
        let mut b = KvCache::new(&cfg).unwrap();
        let mut rng = Rng::new(3);
        let tokens: Vec<TokenPos> = (0..40)
            .map(|i| TokenPos {
                seq: i % 3,
                pos: i / 3,
            })
            .collect();
        let k = rng.normals(40 * 3 * 64, 1.0);
        let v = rng.normals(40 * 3 * 64, 1.0);
        for seq in 0..3 {
            a.reserve(seq, 14).unwrap();
            b.reserve(seq, 14).unwrap();
        }
        a.write(3, &tokens, &k, &v).unwrap();
        b.write_with(3, &tokens, &k, &v, &exec).unwrap();
        // A batch rewriting seq 0's position 2 twice: the second row wins.
        let again = [TokenPos { seq: 0, pos: 2 }, TokenPos { seq: 0, pos: 2 }];
        let k2 = rng.normals(2 * 3 * 64, 1.0);
        a.write(3, &again[1..], &k2[3 * 64..], &k2[3 * 64..])
            .unwrap();
        b.write_with(3, &again, &k2, &k2, &exec).unwrap();
        for t in &tokens {
            for h in 0..3 {
                assert_eq!(
                    a.k_head(3, t.seq, t.pos, h).unwrap(),
                    b.k_head(3, t.seq, t.pos, h).unwrap(),
                    "{ty} {t:?} head {h}"
                );
                assert_eq!(
                    a.v_head(3, t.seq, t.pos, h).unwrap(),
                    b.v_head(3, t.seq, t.pos, h).unwrap()
                );
            }
        }
    }
}
