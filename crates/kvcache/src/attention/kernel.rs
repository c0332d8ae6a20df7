//! One work item of the attention kernel, generic over the row operations, the fold of
//! segment states, and the split-K merge.

use formats::turbo::{rotate, rotate_inverse, QK_TURBO};

use super::half::{self, HALF};
use super::ops::{RowOps, Scalar, KB};
use super::{segment_len, AttentionInput, CHUNK, MAX_VECS};
use crate::cache::KvCache;
use crate::codec::{turbo_centroids, turbo_indices};
use crate::types::KvType;

/// A raw pointer the work items share; each item touches only its own disjoint part.
#[derive(Clone, Copy)]
pub(crate) struct SharedMut(pub(crate) *mut f32);
// SAFETY: items write disjoint ranges: the output rows (row, head) of their unit, and the
// partial results of their (unit, split); the per-worker scratch is exclusive by the Executor
// contract.
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}

impl SharedMut {
    /// The pointer. A method, so closures capture the whole (Sync) wrapper, not its field.
    pub(crate) fn ptr(self) -> *mut f32 {
        self.0
    }
}

/// Everything a work item reads, and where it writes.
pub(crate) struct Job<'a> {
    pub(crate) cache: &'a KvCache,
    pub(crate) input: &'a AttentionInput<'a>,
    pub(crate) layer_off: usize,
    pub(crate) window: Option<usize>,
    /// Query heads per KV head.
    pub(crate) group: usize,
    /// KV heads per unit (see `Plan`).
    pub(crate) kv_per_unit: usize,
    /// Query heads per unit, head chunks per KV head, rows per tile, splits per unit.
    pub(crate) plan_heads: usize,
    pub(crate) head_chunks: usize,
    pub(crate) tile: usize,
    pub(crate) splits: usize,
    pub(crate) pk: usize,
    pub(crate) pv: usize,
    pub(crate) table_len: usize,
    /// Score / accumulate 64-wide turbo heads in half-group form (see `half`).
    pub(crate) fold_k: bool,
    pub(crate) fold_v: bool,
    /// The kernel path's order of folded K / V values (`RowOps::fold_order`; `None`: natural).
    pub(crate) k_order: Option<&'static [u8; HALF]>,
    pub(crate) v_order: Option<&'static [u8; HALF]>,
    /// `tokens × n_heads × head_dim_v` output.
    pub(crate) out: SharedMut,
    /// Split-K partial results: per (unit, split, query vector) `[max, sum, acc(pv)]`.
    pub(crate) partials: SharedMut,
}

/// How one side (K or V) of a unit's stored rows is decoded.
struct Side<'a> {
    ty: KvType,
    /// Folded to 64-value halves (see `half`).
    fold: bool,
    /// The unit's two KV heads share each stored row: decode it once, fold it both ways.
    pair: bool,
    row_bytes: usize,
    /// Floats per decoded row.
    pitch: usize,
    /// Fold signs of each slot, in the path's fold order.
    signs: &'a [[f32; HALF]; 2],
}

/// Decodes `nb` consecutive stored rows of each slot, starting at `bases[s]` in `data`, into
/// slot `s`'s block of `KB × pitch` floats in `buf`, once per row for a shared pair, and the
/// factor each row's scores and weights take (`RowOps::decode_fold_rows`) into `scales[s]`.
/// The block's rows past `nb` become zeros: they are scored or weighted and then masked, so
/// they must be finite.
#[inline(always)]
unsafe fn decode_slots<O: RowOps>(
    side: &Side,
    data: &[u8],
    bases: &[usize],
    nb: usize,
    buf: &mut [f32],
    scales: &mut [[f32; KB]; 2],
) {
    let (ty, rb, pitch) = (side.ty, side.row_bytes, side.pitch);
    let block = KB * pitch;
    if side.pair {
        let (first, second) = buf.split_at_mut(block);
        let src = &data[bases[0]..];
        let signs = &side.signs[0];
        O::decode_fold_pair_rows(ty, src, rb, nb, first, second, pitch, signs, &mut scales[0]);
        scales[1] = scales[0];
    } else {
        for (s, &base) in bases.iter().enumerate() {
            let dst = &mut buf[s * block..(s + 1) * block];
            if side.fold {
                let (signs, scales) = (&side.signs[s], &mut scales[s]);
                O::decode_fold_rows(ty, &data[base..], rb, nb, dst, pitch, signs, scales);
            } else {
                O::decode_rows(ty, &data[base..], rb, nb, dst, pitch);
                scales[s] = [1.0; KB];
            }
        }
    }
    for s in 0..bases.len() {
        buf[s * block + nb * pitch..(s + 1) * block].fill(0.0);
    }
}

/// Folds a segment's softmax state (max `m`, sum `s`, unnormalized output `acc`) into a
/// running total `[max, sum, output…]`: the total becomes the state of both key ranges
/// together. An empty state (sum 0: no key) changes nothing; folding into an empty total
/// copies. The only place states are combined, so a row folded inside one item and one merged
/// from split-K partials get the same bits (see the module docs of `attention`).
fn fold_state(total: &mut [f32], m: f32, s: f32, acc: &[f32]) {
    if s == 0.0 {
        return;
    }
    let (head, tacc) = total.split_at_mut(2);
    let (tm, ts) = (head[0], head[1]);
    if ts == 0.0 {
        head.copy_from_slice(&[m, s]);
        tacc.copy_from_slice(acc);
        return;
    }
    let mx = tm.max(m);
    let (wt, ws) = ((tm - mx).exp(), (m - mx).exp());
    for (t, &a) in tacc.iter_mut().zip(acc) {
        *t = *t * wt + a * ws;
    }
    head.copy_from_slice(&[mx, ts * wt + s * ws]);
}

/// The rows, heads and KV heads of one unit.
struct Unit {
    r0: usize,
    r1: usize,
    h0: usize,
    h1: usize,
    /// KV heads `kv0..kv1` (one, or a pair that shares decoded groups).
    kv0: usize,
    kv1: usize,
}

impl Job<'_> {
    fn unit(&self, unit: usize) -> Unit {
        let nkv = self.cache.config().n_kv_heads;
        let kv_units = nkv.div_ceil(self.kv_per_unit);
        let hc = unit % self.head_chunks;
        let kv0 = (unit / self.head_chunks) % kv_units * self.kv_per_unit;
        let kv1 = (kv0 + self.kv_per_unit).min(nkv);
        let tile = unit / self.head_chunks / kv_units;
        let r0 = tile * self.tile;
        let h0 = kv0 * self.group + hc * self.plan_heads;
        Unit {
            r0,
            r1: (r0 + self.tile).min(self.input.tokens.len()),
            h0,
            h1: (h0 + self.plan_heads).min(kv1 * self.group),
            kv0,
            kv1,
        }
    }

    /// How the K side (`keys`) or the V side of a unit is decoded.
    fn side<'a>(&self, keys: bool, pair: bool, signs: &'a [[f32; HALF]; 2]) -> Side<'a> {
        let layout = self.cache.layout();
        let c = &layout.config;
        let (ty, fold, row_bytes, pitch) = if keys {
            (c.k_type, self.fold_k, layout.k_head_bytes, self.pk)
        } else {
            (c.v_type, self.fold_v, layout.v_head_bytes, self.pv)
        };
        Side {
            ty,
            fold,
            pair,
            row_bytes,
            pitch,
            signs,
        }
    }

    fn vecs(&self) -> usize {
        self.tile * self.plan_heads
    }

    /// The partial result slot of (unit, split, vector `v` of the unit).
    ///
    /// # Safety
    /// The caller must hold no other reference to the same slot. Each (unit, split) is written
    /// by one item, and read only by the merge of `unit` after every item has finished.
    #[allow(clippy::mut_from_ref)]
    unsafe fn partial(&self, unit: usize, split: usize, v: usize) -> &mut [f32] {
        let len = self.pv + 2;
        let at = ((unit * self.splits + split) * self.vecs() + v) * len;
        // SAFETY: inside the split-K region (sized by `Plan::split_floats`).
        std::slice::from_raw_parts_mut(self.partials.ptr().add(at), len)
    }

    /// Normalizes an accumulated row, undoes a turbo V rotation, and writes it out.
    fn finish(&self, row: usize, head: usize, acc: &mut [f32], sum: f32) {
        let inv = 1.0 / sum;
        for a in acc.iter_mut() {
            *a *= inv;
        }
        // A packed V row holds several heads: this head's values start at `off`.
        let mut off = self.cache.layout().v_place(head / self.group).1;
        if self.fold_v {
            if let Some(order) = self.v_order {
                half::unpermute(acc, order);
            }
            half::unrotate_output(acc, off);
            off = 0;
        } else if self.cache.config().v_type.is_turbo() {
            for group in acc.chunks_exact_mut(QK_TURBO) {
                let group: &mut [f32; QK_TURBO] = group.try_into().expect("128-value group");
                rotate_inverse(group);
            }
        }
        let dv = self.cache.config().head_dim_v;
        let at = (row * self.input.n_heads + head) * dv;
        // SAFETY: (row, head) belongs to exactly one unit, and is written once: by its item
        // (no splits) or by its merge.
        let dst = unsafe { std::slice::from_raw_parts_mut(self.out.ptr().add(at), dv) };
        dst.copy_from_slice(&acc[off..off + dv]);
    }

    pub(crate) fn run_scalar(&self, unit: usize, split: usize, scratch: &mut [f32]) {
        // SAFETY: the scalar operations need no CPU features.
        unsafe { self.run::<Scalar>(unit, split, scratch) }
    }

    /// # Safety
    /// The CPU must support AVX2, FMA and F16C.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) unsafe fn run_avx2(&self, unit: usize, split: usize, scratch: &mut [f32]) {
        self.run::<super::avx2::Avx2>(unit, split, scratch)
    }

    /// Runs (unit, split): every run of same-sequence rows with the same segment length in
    /// the unit's tile separately.
    #[inline(always)]
    unsafe fn run<O: RowOps>(&self, unit: usize, split: usize, scratch: &mut [f32]) {
        let u = self.unit(unit);
        let tokens = self.input.tokens;
        let mut a = u.r0;
        while a < u.r1 {
            let seq = tokens[a].seq;
            let seg = segment_len(tokens[a].pos);
            let mut b = a + 1;
            while b < u.r1 && tokens[b].seq == seq && segment_len(tokens[b].pos) == seg {
                b += 1;
            }
            self.run_rows::<O>(unit, split, &u, a, b, scratch);
            a = b;
        }
    }

    /// Attention of rows `a..b` (one sequence, one segment length) × heads `u.h0..u.h1`: over
    /// all their keys, segment by segment, or (split-K) over segment `split` only, into its
    /// partial results.
    #[inline(always)]
    unsafe fn run_rows<O: RowOps>(
        &self,
        unit: usize,
        split: usize,
        u: &Unit,
        a: usize,
        b: usize,
        scratch: &mut [f32],
    ) {
        let cache = self.cache;
        let layout = cache.layout();
        let c = &layout.config;
        let kty = c.k_type;
        let dk = c.head_dim_k;
        let (khb, vhb) = (layout.k_head_bytes, layout.v_head_bytes);
        let page_size = c.page_size;
        let (pk, pv, table_len) = (self.pk, self.pv, self.table_len);
        let nh = u.h1 - u.h0;
        let nr = b - a;
        let nv = nr * nh;
        let vecs = self.vecs();
        let tokens = self.input.tokens;
        let seq = tokens[a].seq;
        let data = cache.data();
        let centroids = turbo_centroids(kty);
        let nc = centroids.len();
        let table_k = kty.is_turbo() && O::TURBO_K_TABLE && !self.fold_k;
        // The unit's KV heads ("slots"): the stored row and value offset of each, per side.
        let nslots = u.kv1 - u.kv0;
        let k_place: [(usize, usize); 2] =
            std::array::from_fn(|s| layout.k_place((u.kv0 + s).min(u.kv1 - 1)));
        let v_place: [(usize, usize); 2] =
            std::array::from_fn(|s| layout.v_place((u.kv0 + s).min(u.kv1 - 1)));
        // The slot of each query vector (`v = ri · nh + hi`), computed once: divisions in the
        // per-block loops cost more than the blocks' bookkeeping.
        let mut slots = [0usize; MAX_VECS];
        for (v, s) in slots[..nv].iter_mut().enumerate() {
            *s = (u.h0 + v % nh) / self.group - u.kv0;
        }
        let slot_of = |v: usize| slots[v];
        // Two folded heads in the two halves of one stored row: decode it once for both.
        let shares_row = |fold: bool, place: &[(usize, usize); 2]| {
            fold && nslots == 2 && place[0].0 == place[1].0 && place[0].1 == 0
        };
        let (k_pair, v_pair) = (
            shares_row(self.fold_k, &k_place),
            shares_row(self.fold_v, &v_place),
        );
        // Widths of the query vectors and accumulators: 64 for folded halves.
        let qk_len = if self.fold_k { HALF } else { pk };
        let acc_len = if self.fold_v { HALF } else { pv };
        let signs = |off: usize, order: Option<&[u8; HALF]>| {
            let mut s = half::fold_signs(off);
            if let Some(order) = order {
                half::permute(&mut s, order);
            }
            s
        };
        // A pair's second head (offset 64) has the negated signs of its first: the pair
        // decoders take the first's.
        let k_signs = [
            signs(k_place[0].1, self.k_order),
            signs(k_place[1].1, self.k_order),
        ];
        let v_signs = [
            signs(v_place[0].1, self.v_order),
            signs(v_place[1].1, self.v_order),
        ];

        let (qs, rest) = scratch.split_at_mut(vecs * pk);
        let (tables, rest) = rest.split_at_mut(vecs * table_len);
        let (scores, rest) = rest.split_at_mut(vecs * CHUNK);
        // The current segment's state, and the total of the segments before it.
        let (accs, rest) = rest.split_at_mut(vecs * pv);
        let (maxes, rest) = rest.split_at_mut(vecs);
        let (sums, rest) = rest.split_at_mut(vecs);
        // Totals: per vector `[max, sum, output…]`, the layout of a split-K partial.
        let tl = pv + 2;
        let (totals, rest) = rest.split_at_mut(vecs * tl);
        // One block of decoded rows per slot.
        let (kbuf, rest) = rest.split_at_mut(self.kv_per_unit * KB * pk);
        let vbuf = &mut rest[..self.kv_per_unit * KB * pv];
        let (kb, vb) = (KB * pk, KB * pv);

        // Key range of each row, and of the run.
        let lo_of = |pos: usize| match self.window {
            Some(w) => (pos + 1).saturating_sub(w),
            None => 0,
        };
        let mut kmin = usize::MAX;
        let mut kmax = 0;
        for t in &tokens[a..b] {
            kmin = kmin.min(lo_of(t.pos));
            kmax = kmax.max(t.pos);
        }
        // Segments of this run: fixed absolute key ranges (see `segment_len`).
        let seg = segment_len(tokens[a].pos);
        let (k_start, k_end) = if self.splits == 1 {
            (kmin, kmax + 1)
        } else {
            let (s0, s1) = (split * seg, (split + 1) * seg);
            let (lo, hi) = (kmin.max(s0), (kmax + 1).min(s1));
            if lo >= hi {
                // No key of this run in this segment: empty partials (sum 0, which the merge
                // skips), without preparing any query.
                let acc_len = if self.fold_v { HALF } else { pv };
                for ri in 0..nr {
                    for hi in 0..nh {
                        let slot =
                            self.partial(unit, split, (a + ri - u.r0) * self.plan_heads + hi);
                        slot[..2].copy_from_slice(&[f32::NEG_INFINITY, 0.0]);
                        slot[2..2 + acc_len].fill(0.0);
                    }
                }
                return;
            }
            (lo, hi)
        };

        // Prepare the query vectors: scaled, padded, rotated (+ tables) for turbo K.
        for ri in 0..nr {
            for hi in 0..nh {
                let v = ri * nh + hi;
                let row = a + ri;
                let head = u.h0 + hi;
                let k_off = k_place[slot_of(v)].1;
                let q = &self.input.q[(row * self.input.n_heads + head) * dk..][..dk];
                let qp = &mut qs[v * pk..(v + 1) * pk];
                if self.fold_k {
                    for (d, s) in qp[..HALF].iter_mut().zip(q) {
                        *d = s * self.input.scale;
                    }
                    half::rotate_query(qp, k_off);
                    if let Some(order) = self.k_order {
                        half::permute(&mut qp[..HALF], order);
                    }
                } else {
                    // Zero-padded into this head's place in its (possibly shared) K row.
                    qp.fill(0.0);
                    for (d, s) in qp[k_off..k_off + dk].iter_mut().zip(q) {
                        *d = s * self.input.scale;
                    }
                }
                if kty.is_turbo() && !self.fold_k {
                    for group in qp.chunks_exact_mut(QK_TURBO) {
                        let group: &mut [f32; QK_TURBO] =
                            group.try_into().expect("128-value group");
                        rotate(group);
                    }
                }
                if table_k {
                    let table = &mut tables[v * table_len..(v + 1) * table_len];
                    for (j, &qj) in qp.iter().enumerate() {
                        for (t, &cc) in table[j * nc..(j + 1) * nc].iter_mut().zip(centroids) {
                            *t = qj * cc;
                        }
                    }
                }
                accs[v * pv..(v + 1) * pv].fill(0.0);
                maxes[v] = f32::NEG_INFINITY;
                sums[v] = 0.0;
                totals[v * tl..v * tl + 2].copy_from_slice(&[f32::NEG_INFINITY, 0.0]);
            }
        }

        let mut idx = [0u8; QK_TURBO];
        // Per slot, the factor each decoded row's scores / weights take (see `decode_slots`).
        let mut k_scales = [[1.0f32; KB]; 2];
        let mut v_scales = [[1.0f32; KB]; 2];
        // Segment by segment (one, for a split-K item): the chunks of a segment, then (one
        // item per row) fold each vector's segment state into its total and start afresh.
        // Split-K items hold one segment and leave the fold to the merge.
        let mut seg_start = k_start;
        while seg_start < k_end {
            let seg_end = ((seg_start / seg + 1) * seg).min(k_end);
            let mut t = seg_start;
            while t < seg_end {
                let slot = t % page_size;
                // Chunks start at multiples of CHUNK (and pages), so a row's chunks, and with them
                // its rescale points, do not depend on where its tile's key range starts.
                let len = (CHUNK - t % CHUNK).min(page_size - slot).min(seg_end - t);
                let page = cache.page_for(self.input.layer, seq, t);
                let kbase: [usize; 2] = std::array::from_fn(|s| {
                    layout.k_block(self.layer_off, page, k_place[s].0) + slot * khb
                });
                let vbase: [usize; 2] = std::array::from_fn(|s| {
                    layout.v_block(self.layer_off, page, v_place[s].0) + slot * vhb
                });

                // Scores of this chunk for every query vector, KB keys at a time.
                for j in (0..len).step_by(KB) {
                    let nb = KB.min(len - j);
                    if table_k {
                        for jj in j..j + nb {
                            for v in 0..nv {
                                scores[v * CHUNK + jj] = 0.0;
                            }
                            for (s, &base) in kbase[..nslots].iter().enumerate() {
                                let kbytes = &data[base + jj * khb..][..khb];
                                for (g, block) in kbytes.chunks_exact(kty.block_bytes()).enumerate()
                                {
                                    let norm = turbo_indices(kty, block, &mut idx);
                                    for v in (0..nv).filter(|&v| slot_of(v) == s) {
                                        let table = &tables[v * table_len + g * QK_TURBO * nc..];
                                        let mut sum = 0.0f32;
                                        for (e, &ix) in idx.iter().enumerate() {
                                            sum += table[e * nc + ix as usize];
                                        }
                                        scores[v * CHUNK + jj] += norm * sum;
                                    }
                                }
                            }
                        }
                    } else {
                        let bases = kbase.map(|base| base + j * khb);
                        let side = self.side(true, k_pair, &k_signs);
                        decode_slots::<O>(&side, data, &bases[..nslots], nb, kbuf, &mut k_scales);
                        for v in 0..nv {
                            let s = slot_of(v);
                            let out = &mut scores[v * CHUNK + j..v * CHUNK + j + KB];
                            O::dot_block(
                                &qs[v * pk..v * pk + qk_len],
                                &kbuf[s * kb..(s + 1) * kb],
                                pk,
                                out,
                            );
                            if self.fold_k {
                                for (o, f) in out.iter_mut().zip(&k_scales[s]) {
                                    *o *= f;
                                }
                            }
                        }
                    }
                }

                // Mask keys outside each row's [lo, pos], fold the chunk into the running max and
                // sum, and turn the scores into weights.
                for ri in 0..nr {
                    let pos = tokens[a + ri].pos;
                    let valid_from = lo_of(pos).saturating_sub(t).min(len);
                    let valid_to = (pos + 1).saturating_sub(t).min(len);
                    for hi in 0..nh {
                        let v = ri * nh + hi;
                        let s = &mut scores[v * CHUNK..v * CHUNK + len];
                        if valid_from >= valid_to {
                            s.fill(0.0);
                            continue;
                        }
                        s[..valid_from].fill(f32::NEG_INFINITY);
                        s[valid_to..].fill(f32::NEG_INFINITY);
                        let chunk_max = s[valid_from..valid_to]
                            .iter()
                            .copied()
                            .fold(f32::NEG_INFINITY, f32::max);
                        let m_new = maxes[v].max(chunk_max);
                        let alpha = (maxes[v] - m_new).exp();
                        if alpha != 1.0 {
                            O::scale(&mut accs[v * pv..v * pv + acc_len], alpha);
                            sums[v] *= alpha;
                        }
                        sums[v] += O::exp_sub_sum(s, m_new);
                        maxes[v] = m_new;
                    }
                }

                // Accumulate V, KB rows at a time, skipping blocks no vector gives weight.
                let padded_len = len.div_ceil(KB) * KB;
                for v in 0..nv {
                    scores[v * CHUNK + len..v * CHUNK + padded_len].fill(0.0);
                }
                for j in (0..len).step_by(KB) {
                    let nb = KB.min(len - j);
                    let weight = |v: usize| &scores[v * CHUNK + j..v * CHUNK + j + KB];
                    if (0..nv).all(|v| weight(v).iter().all(|&p| p == 0.0)) {
                        continue;
                    }
                    let bases = vbase.map(|base| base + j * vhb);
                    let side = self.side(false, v_pair, &v_signs);
                    decode_slots::<O>(&side, data, &bases[..nslots], nb, vbuf, &mut v_scales);
                    for v in 0..nv {
                        let p = weight(v);
                        if p.iter().any(|&x| x != 0.0) {
                            let s = slot_of(v);
                            let scaled: [f32; KB];
                            let p = if self.fold_v {
                                scaled = std::array::from_fn(|i| p[i] * v_scales[s][i]);
                                &scaled[..]
                            } else {
                                p
                            };
                            O::axpy_block(
                                &mut accs[v * pv..v * pv + acc_len],
                                p,
                                &vbuf[s * vb..(s + 1) * vb],
                                pv,
                            );
                        }
                    }
                }
                t += len;
            }
            if self.splits == 1 {
                for v in 0..nv {
                    let acc = &mut accs[v * pv..v * pv + acc_len];
                    fold_state(
                        &mut totals[v * tl..v * tl + 2 + acc_len],
                        maxes[v],
                        sums[v],
                        acc,
                    );
                    acc.fill(0.0);
                    maxes[v] = f32::NEG_INFINITY;
                    sums[v] = 0.0;
                }
            }
            seg_start = seg_end;
        }

        for ri in 0..nr {
            for hi in 0..nh {
                let v = ri * nh + hi;
                let row = a + ri;
                let head = u.h0 + hi;
                if self.splits == 1 {
                    // Every row sees at least its own key, so the sum is positive.
                    let (sum, tacc) = (totals[v * tl + 1], &mut totals[v * tl + 2..][..acc_len]);
                    self.finish(row, head, tacc, sum);
                } else {
                    let acc = &accs[v * pv..v * pv + acc_len];
                    let slot = self.partial(unit, split, (row - u.r0) * self.plan_heads + hi);
                    slot[0] = maxes[v];
                    slot[1] = sums[v];
                    slot[2..2 + acc_len].copy_from_slice(acc);
                }
            }
        }
    }

    /// Folds the split-K partial results of `unit` (one per segment, in order, with
    /// `fold_state` as a single item would) and writes its output rows.
    pub(crate) fn merge(&self, unit: usize) {
        // SAFETY (partial slots): this merge owns every slot of `unit`, and every reference
        // below is to a different split's slot.
        let u = self.unit(unit);
        let acc_len = if self.fold_v { HALF } else { self.pv };
        for row in u.r0..u.r1 {
            for head in u.h0..u.h1 {
                let v = (row - u.r0) * self.plan_heads + (head - u.h0);
                // The first partial is the total so far: folding it into an empty total would
                // copy it bit for bit.
                let total = unsafe { self.partial(unit, 0, v) };
                for s in 1..self.splits {
                    let p = unsafe { self.partial(unit, s, v) };
                    fold_state(&mut total[..2 + acc_len], p[0], p[1], &p[2..2 + acc_len]);
                }
                let (sum, tacc) = (total[1], &mut total[2..2 + acc_len]);
                // Every row sees at least its own key, so the sum is positive.
                self.finish(row, head, tacc, sum);
            }
        }
    }
}
