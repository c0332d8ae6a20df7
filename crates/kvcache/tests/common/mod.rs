//! Shared test helpers: a seeded RNG, a scenario builder that fills a cache the way a model
//! would (mixed-sequence batches, interleaved pages), and the f64 reference attention.
//!
//! The reference reads the cache's stored bytes and decodes them with `formats::dequantize`
//! (plus `formats::turbo::rotate_inverse` for turbo types), never with this crate's decoders,
//! then runs a plain two-pass softmax in f64.

#![allow(dead_code)]

use formats::turbo::{rotate_inverse, QK_TURBO};
use kvcache::{
    attention_workspace_floats, AttentionInput, AttentionShape, Executor, KernelPath, KvCache,
    KvConfig, KvType, LayerKind, Sequential, TokenPos,
};

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    pub fn next_u64(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f32 {
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
    }

    pub fn normals(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.normal() * scale).collect()
    }
}

#[derive(Clone, Debug)]
pub struct Scenario {
    pub k_type: KvType,
    pub v_type: KvType,
    pub head_dim_k: usize,
    pub head_dim_v: usize,
    pub n_kv_heads: usize,
    /// Query heads per KV head.
    pub group: usize,
    pub page_size: usize,
    pub n_pages: usize,
    pub window: Option<usize>,
    /// With a window: keep the layer in a per-sequence ring for batches of this many rows
    /// (`LayerKind::SlidingRing`) instead of the shared pages.
    pub ring_batch: Option<usize>,
    /// Tokens written per sequence; sequence `s` gets `seq_lens[s]`.
    pub seq_lens: Vec<usize>,
    /// Tokens each sequence adds per write round (rounds interleave the sequences' pages).
    pub round: usize,
    /// Query rows per sequence, at its last positions (prefill-like); plus one random earlier
    /// position per sequence when `extra_row` is set.
    pub rows_per_seq: usize,
    pub extra_row: bool,
    /// Multiplies the random queries: larger means peakier softmax.
    pub q_scale: f32,
    pub seed: u64,
    /// Turbo heads narrower than 128 share rotation groups (`KvConfig::pack_turbo_heads`).
    pub pack: bool,
}

impl Scenario {
    pub fn new(k_type: KvType, v_type: KvType, head_dim: usize) -> Scenario {
        Scenario {
            k_type,
            v_type,
            head_dim_k: head_dim,
            head_dim_v: head_dim,
            n_kv_heads: 2,
            group: 2,
            page_size: 16,
            n_pages: 16,
            window: None,
            ring_batch: None,
            seq_lens: vec![37, 21],
            round: 9, // at least MIN_CENTER_ROWS: turbo K sequences get centered
            rows_per_seq: 3,
            extra_row: true,
            q_scale: 2.0,
            seed: 1,
            pack: true,
        }
    }

    pub fn n_heads(&self) -> usize {
        self.n_kv_heads * self.group
    }

    pub fn config(&self) -> KvConfig {
        let kind = match (self.window, self.ring_batch) {
            (Some(window), Some(max_batch)) => LayerKind::SlidingRing { window, max_batch },
            (Some(window), None) => LayerKind::Sliding { window },
            (None, _) => LayerKind::Full,
        };
        KvConfig {
            // Layer 0 is uncached so the tested layer's storage does not start at offset 0.
            layers: vec![LayerKind::Uncached, LayerKind::Full, kind],
            n_kv_heads: self.n_kv_heads,
            head_dim_k: self.head_dim_k,
            head_dim_v: self.head_dim_v,
            k_type: self.k_type,
            v_type: self.v_type,
            page_size: self.page_size,
            n_pages: self.n_pages,
            max_seqs: self.seq_lens.len(),
            pack_turbo_heads: self.pack,
            center_turbo_keys: true,
        }
    }
}

/// The layer the scenarios test (layer 1 gets other data, to catch cross-layer addressing).
pub const LAYER: usize = 2;

/// A filled cache and the query batch to run on it.
pub struct Built {
    pub cache: KvCache,
    pub tokens: Vec<TokenPos>,
    pub q: Vec<f32>,
    pub scale: f32,
    pub n_heads: usize,
}

/// Fills a cache: in rounds, each sequence reserves and writes its next `round` tokens, all
/// sequences in one mixed `write` call per layer. Returns the cache and a query batch whose
/// rows mix sequences.
pub fn build(s: &Scenario) -> Built {
    build_with(s, |cfg| KvCache::new(cfg).unwrap())
}

pub fn build_with(s: &Scenario, make: impl FnOnce(&KvConfig) -> KvCache) -> Built {
    let mut rng = Rng::new(s.seed);
    let cfg = s.config();
    let mut cache = make(&cfg);
    let nkv = s.n_kv_heads;
    let mut done = vec![0usize; s.seq_lens.len()];
    loop {
        let mut tokens = Vec::new();
        for (seq, &len) in s.seq_lens.iter().enumerate() {
            let end = (done[seq] + s.round).min(len);
            if end > done[seq] {
                cache.reserve(seq, end).unwrap();
            }
            for pos in done[seq]..end {
                tokens.push(TokenPos { seq, pos });
            }
            done[seq] = end;
        }
        if tokens.is_empty() {
            break;
        }
        for layer in [1, LAYER] {
            let k = rng.normals(tokens.len() * nkv * s.head_dim_k, 1.0);
            // V with a per-dimension offset, so a wrong row or head shows in the mean.
            let mut v = rng.normals(tokens.len() * nkv * s.head_dim_v, 1.0);
            for (i, x) in v.iter_mut().enumerate() {
                *x += ((i % s.head_dim_v) as f32 * 0.37).sin();
            }
            cache.write(layer, &tokens, &k, &v).unwrap();
        }
    }

    let mut tokens = Vec::new();
    for (seq, &len) in s.seq_lens.iter().enumerate() {
        if s.extra_row && len > 1 {
            tokens.push(TokenPos {
                seq,
                pos: rng.below(len - 1),
            });
        }
    }
    // Prefill-like runs, interleaved by sequence in chunks of 5 rows so tiles hold mixed runs.
    let mut starts: Vec<usize> = s
        .seq_lens
        .iter()
        .map(|&len| len.saturating_sub(s.rows_per_seq))
        .collect();
    loop {
        let mut any = false;
        for (seq, &len) in s.seq_lens.iter().enumerate() {
            let end = (starts[seq] + 5).min(len);
            for pos in starts[seq]..end {
                tokens.push(TokenPos { seq, pos });
                any = true;
            }
            starts[seq] = end;
        }
        if !any {
            break;
        }
    }
    let n_heads = s.n_heads();
    let q = rng.normals(tokens.len() * n_heads * s.head_dim_k, s.q_scale);
    Built {
        cache,
        tokens,
        q,
        scale: 1.0 / (s.head_dim_k as f32).sqrt(),
        n_heads,
    }
}

/// Runs the kernel on a built scenario (best path).
pub fn run_kernel(b: &Built, exec: &dyn Executor) -> Vec<f32> {
    run_kernel_on(&b.cache, b, exec, KernelPath::best())
}

/// Runs the kernel over `cache` with `b`'s queries on `path`.
pub fn run_kernel_on(
    cache: &KvCache,
    b: &Built,
    exec: &dyn Executor,
    path: KernelPath,
) -> Vec<f32> {
    let cfg = cache.config();
    let shape = AttentionShape {
        path,
        ..AttentionShape::for_layout(cache.layout(), b.n_heads, b.tokens.len(), exec.n_workers())
    };
    // NaN-filled, so any read of unwritten workspace or any unwritten output shows.
    let mut ws = vec![f32::NAN; attention_workspace_floats(&shape).unwrap()];
    let mut out = vec![f32::NAN; b.tokens.len() * b.n_heads * cfg.head_dim_v];
    cache
        .attend_on(
            path,
            &AttentionInput {
                layer: LAYER,
                tokens: &b.tokens,
                q: &b.q,
                n_heads: b.n_heads,
                scale: b.scale,
            },
            &mut out,
            exec,
            &mut ws,
        )
        .unwrap();
    out
}

pub fn run_sequential(b: &Built) -> Vec<f32> {
    run_kernel(b, &Sequential)
}

/// The kernel paths this CPU can run (always Scalar; Avx2 where supported).
pub fn paths() -> Vec<KernelPath> {
    [KernelPath::Scalar, KernelPath::Avx2]
        .into_iter()
        .filter(|p| p.is_available())
        .collect()
}

/// One stored row, decoded by `formats` and brought back to the original domain; the head's
/// `head_dim` values from `offset` (its place in a packed row).
pub fn reference_head(ty: KvType, bytes: &[u8], head_dim: usize, offset: usize) -> Vec<f64> {
    let padded = ty.padded_head_dim(head_dim).unwrap();
    let mut v = vec![0.0f32; padded];
    formats::dequantize(ty.ggml(), bytes, &mut v).unwrap();
    if ty.is_turbo() {
        for g in v.chunks_exact_mut(QK_TURBO) {
            rotate_inverse(g.try_into().unwrap());
        }
    }
    v[offset..offset + head_dim]
        .iter()
        .map(|&x| x as f64)
        .collect()
}

/// f64 attention over the cache's decoded contents.
pub fn reference(b: &Built, window: Option<usize>) -> Vec<f64> {
    let cache = &b.cache;
    let cfg = cache.config();
    let (dk, dv) = (cfg.head_dim_k, cfg.head_dim_v);
    let group = b.n_heads / cfg.n_kv_heads;
    let mut out = vec![0.0f64; b.tokens.len() * b.n_heads * dv];
    for (r, t) in b.tokens.iter().enumerate() {
        let lo = window.map_or(0, |w| (t.pos + 1).saturating_sub(w));
        for h in 0..b.n_heads {
            let kvh = h / group;
            let q = &b.q[(r * b.n_heads + h) * dk..][..dk];
            let mut scores = Vec::new();
            for p in lo..=t.pos {
                let bytes = cache.k_head(LAYER, t.seq, p, kvh).unwrap();
                let k = reference_head(cfg.k_type, bytes, dk, cache.layout().k_place(kvh).1);
                let s: f64 = q.iter().zip(&k).map(|(&a, &b)| a as f64 * b).sum();
                scores.push(s * b.scale as f64);
            }
            let m = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let w: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
            let sum: f64 = w.iter().sum();
            let o = &mut out[(r * b.n_heads + h) * dv..][..dv];
            for (i, p) in (lo..=t.pos).enumerate() {
                let bytes = cache.v_head(LAYER, t.seq, p, kvh).unwrap();
                let v = reference_head(cfg.v_type, bytes, dv, cache.layout().v_place(kvh).1);
                for (o, x) in o.iter_mut().zip(&v) {
                    *o += w[i] / sum * x;
                }
            }
        }
    }
    out
}

/// Largest |got − want| / (1 + |want|) and where it is.
pub fn max_err(got: &[f32], want: &[f64]) -> (f64, usize) {
    assert_eq!(got.len(), want.len());
    let mut worst = (0.0f64, 0usize);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let e = if g.is_finite() {
            (g as f64 - w).abs() / (1.0 + w.abs())
        } else {
            f64::INFINITY
        };
        if e > worst.0 {
            worst = (e, i);
        }
    }
    worst
}
