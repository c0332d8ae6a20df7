//! The gated delta rule over a run of prompt rows in chunks (the WY / UT-transform form).
//!
//! Per value head, with state `S` (`d_k × d_v`, key index first), per-token log-decay
//! `g_t ≤ 0`, write strength `β_t`, unit key `k_t`, scaled unit query `q_t` and value `v_t`,
//! the recurrence of `deltanet::delta_rule` is
//!
//! ```text
//! S'_t = e^{g_t} S_{t-1};  δ_t = β_t (v_t − S'_tᵀ k_t);  S_t = S'_t + k_t δ_tᵀ;  o_t = S_tᵀ q_t.
//! ```
//!
//! Inside a chunk of `L ≤ CHUNK` rows that starts from `S_0`, let `Γ_t = g_1 + … + g_t`. Then
//! `S'_t = e^{Γ_t} S_0 + Σ_{s<t} e^{Γ_t − Γ_s} k_s δ_sᵀ`, so the deltas solve the unit lower
//! triangular system
//!
//! ```text
//! δ_t + Σ_{s<t} β_t e^{Γ_t − Γ_s} (k_t · k_s) δ_s = β_t (v_t − e^{Γ_t} S_0ᵀ k_t)
//! ```
//!
//! (the `(I + A)⁻¹` of the reference implementations, applied by forward substitution), and
//!
//! ```text
//! o_t = e^{Γ_t} S_0ᵀ q_t + Σ_{s≤t} e^{Γ_t − Γ_s} (q_t · k_s) δ_s
//! S_L = e^{Γ_L} S_0 + Σ_s e^{Γ_L − Γ_s} k_s δ_sᵀ.
//! ```
//!
//! The state is read once and written once per chunk instead of twice per row, and the bulk of
//! the work (`[K; Q] S_0`, the intra-chunk product and the state update) is dense matrix
//! products. Decay factors are formed as `e^{Γ_t − Γ_s}` with `s ≤ t`, never as a ratio of two
//! exponentials, so they stay in (0, 1] however long the chunk.

/// Rows per chunk, as in the reference implementations.
pub const CHUNK: usize = 64;

/// Buffers for one chunk of one value head: the caller fills each row's unit key, scaled unit
/// query, value (`row_mut`) and gates (`set_gates`), then `run` advances the state.
pub struct ChunkWorkspace {
    dk: usize,
    dv: usize,
    /// `[K; Q]`: `rows` key rows, then `rows` query rows (so `[K; Q] S_0` is one product).
    kq: Vec<f32>,
    /// Values, overwritten by the deltas.
    v: Vec<f32>,
    /// `[K; Q] S_0`.
    y: Vec<f32>,
    /// Output rows.
    o: Vec<f32>,
    /// `[K; Q] Kᵀ` (`2 rows × rows`), turned into the causal coefficients.
    m: Vec<f32>,
    /// Keys transposed (`d_k × rows`), then decay-weighted for the state update.
    kt: Vec<f32>,
    /// Packed rows of the left operand of [`gemm_acc`].
    pack: Vec<[f32; MR]>,
    /// Cumulative log-decay `Γ_t`.
    gam: Vec<f32>,
    beta: Vec<f32>,
    rows: usize,
}

impl ChunkWorkspace {
    pub fn new(dk: usize, dv: usize) -> ChunkWorkspace {
        ChunkWorkspace {
            dk,
            dv,
            kq: vec![0.0; 2 * CHUNK * dk],
            v: vec![0.0; CHUNK * dv],
            y: vec![0.0; 2 * CHUNK * dv],
            o: vec![0.0; CHUNK * dv],
            m: vec![0.0; 2 * CHUNK * CHUNK],
            kt: vec![0.0; dk * CHUNK],
            pack: vec![[0.0; MR]; dk.max(CHUNK)],
            gam: vec![0.0; CHUNK],
            beta: vec![0.0; CHUNK],
            rows: 0,
        }
    }

    /// True when the workspace was made for these head sizes.
    pub fn fits(&self, dk: usize, dv: usize) -> bool {
        self.dk == dk && self.dv == dv
    }

    /// Starts a chunk of `rows` (1..=CHUNK) rows.
    pub fn begin(&mut self, rows: usize) {
        debug_assert!(rows > 0 && rows <= CHUNK);
        self.rows = rows;
    }

    /// Row `t`'s key (unit), query (unit and scaled) and value buffers to fill.
    pub fn row_mut(&mut self, t: usize) -> (&mut [f32], &mut [f32], &mut [f32]) {
        let (dk, dv, l) = (self.dk, self.dv, self.rows);
        let (ks, qs) = self.kq.split_at_mut(l * dk);
        (
            &mut ks[t * dk..(t + 1) * dk],
            &mut qs[t * dk..(t + 1) * dk],
            &mut self.v[t * dv..(t + 1) * dv],
        )
    }

    /// Row `t`'s log-decay `g_t` (≤ 0) and write strength `β_t`.
    pub fn set_gates(&mut self, t: usize, log_decay: f32, beta: f32) {
        self.gam[t] = log_decay;
        self.beta[t] = beta;
    }

    /// Row `t`'s output after [`ChunkWorkspace::run`].
    pub fn out_row(&self, t: usize) -> &[f32] {
        &self.o[t * self.dv..(t + 1) * self.dv]
    }

    /// Runs the chunk from state `s` (`d_k × d_v`), leaving the state after its last row in
    /// `s` and the outputs in [`ChunkWorkspace::out_row`]. `avx2` asks for the same code
    /// compiled for AVX2 with fused multiply-adds (taken only if the CPU has them).
    pub fn run(&mut self, s: &mut [f32], avx2: bool) {
        #[cfg(target_arch = "x86_64")]
        if avx2 && is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: the features were just detected.
            unsafe { run_avx2(self, s) };
            return;
        }
        let _ = avx2;
        run_chunk::<false>(self, s);
    }
}

/// # Safety
/// The CPU supports AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn run_avx2(w: &mut ChunkWorkspace, s: &mut [f32]) {
    run_chunk::<true>(w, s);
}

/// `a b + c`, fused where the caller is compiled with FMA (a library call otherwise, so only
/// then).
#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

#[inline(always)]
fn run_chunk<const FMA: bool>(w: &mut ChunkWorkspace, s: &mut [f32]) {
    let (dk, dv, l) = (w.dk, w.dv, w.rows);
    assert!(s.len() >= dk * dv && l <= CHUNK && l > 0);
    // Γ_t, the running sum of log-decays.
    for t in 1..l {
        w.gam[t] += w.gam[t - 1];
    }
    let gam = &w.gam[..l];
    let beta = &w.beta[..l];
    let kq = &w.kq[..2 * l * dk];
    let kk = &kq[..l * dk];

    // Kᵀ (d_k × rows), then [K; Q] S_0 and [K; Q] Kᵀ as two products.
    let kt = &mut w.kt[..dk * l];
    for (s_, krow) in kk.chunks_exact(dk).enumerate() {
        for (i, &ki) in krow.iter().enumerate() {
            kt[i * l + s_] = ki;
        }
    }
    let y = &mut w.y[..2 * l * dv];
    y.fill(0.0);
    gemm_acc::<FMA>(&mut w.pack, 2 * l, dv, dk, kq, dk, s, dv, y, dv);
    let g = &mut w.m[..2 * l * l];
    g.fill(0.0);
    let (gk, gq) = g.split_at_mut(l * l);
    // Only s ≤ t is used: each block of MR rows stops at the column block holding its
    // diagonal (what it computes beyond the diagonal is masked to zero below).
    for t0 in (0..l).step_by(MR) {
        let rows = MR.min(l - t0);
        let cols = l.min((t0 + rows).div_ceil(NR) * NR);
        let (kr, qr) = (&kk[t0 * dk..], &kq[(l + t0) * dk..]);
        gemm_acc::<FMA>(
            &mut w.pack,
            rows,
            cols,
            dk,
            kr,
            dk,
            kt,
            l,
            &mut gk[t0 * l..],
            l,
        );
        gemm_acc::<FMA>(
            &mut w.pack,
            rows,
            cols,
            dk,
            qr,
            dk,
            kt,
            l,
            &mut gq[t0 * l..],
            l,
        );
    }
    let (yk, yq) = y.split_at(l * dv);

    // Causal coefficients: gk[t][s] = β_t e^{Γ_t − Γ_s} (k_t · k_s) for s < t (the strictly
    // lower A of (I + A)), gq[t][s] = e^{Γ_t − Γ_s} (q_t · k_s) for s ≤ t; zero elsewhere.
    for t in 0..l {
        for s_ in 0..l {
            let idx = t * l + s_;
            if s_ <= t {
                let d = (gam[t] - gam[s_]).exp();
                gk[idx] = if s_ < t { beta[t] * d * gk[idx] } else { 0.0 };
                gq[idx] *= d;
            } else {
                gk[idx] = 0.0;
                gq[idx] = 0.0;
            }
        }
    }

    // Deltas by forward substitution, in place of the values:
    // δ_t = β_t (v_t − e^{Γ_t} yk_t) − Σ_{s<t} gk[t][s] δ_s, the sum kept in registers per
    // block of columns.
    let v = &mut w.v[..l * dv];
    for t in 0..l {
        let (done, rest) = v.split_at_mut(t * dv);
        let d = &mut rest[..dv];
        let yk_t = &yk[t * dv..(t + 1) * dv];
        let (bt, et) = (beta[t], gam[t].exp());
        let coef = &gk[t * l..t * l + t];
        let mut j = 0;
        while j + NR <= dv {
            let mut acc = [0.0f32; NR];
            for (c, prev) in coef.iter().zip(done.chunks_exact(dv)) {
                let src: &[f32; NR] = prev[j..j + NR].try_into().expect("NR columns");
                for (a, &x) in acc.iter_mut().zip(src) {
                    *a = madd::<FMA>(*c, x, *a);
                }
            }
            for ((dj, &yj), &a) in d[j..j + NR].iter_mut().zip(&yk_t[j..j + NR]).zip(&acc) {
                *dj = bt * (*dj - et * yj) - a;
            }
            j += NR;
        }
        for jj in j..dv {
            let a: f32 = coef
                .iter()
                .zip(done.chunks_exact(dv))
                .fold(0.0, |a, (c, prev)| madd::<FMA>(*c, prev[jj], a));
            d[jj] = bt * (d[jj] - et * yk_t[jj]) - a;
        }
    }

    // o_t = e^{Γ_t} yq_t + Σ_{s≤t} gq[t][s] δ_s.
    let o = &mut w.o[..l * dv];
    for t in 0..l {
        let et = gam[t].exp();
        for (oj, &yj) in o[t * dv..(t + 1) * dv]
            .iter_mut()
            .zip(&yq[t * dv..(t + 1) * dv])
        {
            *oj = et * yj;
        }
    }
    // Row t needs δ_s for s ≤ t only: each block of MR rows contracts over its prefix.
    for t0 in (0..l).step_by(MR) {
        let rows = MR.min(l - t0);
        let depth = t0 + rows;
        gemm_acc::<FMA>(
            &mut w.pack,
            rows,
            dv,
            depth,
            &gq[t0 * l..],
            l,
            v,
            dv,
            &mut o[t0 * dv..],
            dv,
        );
    }

    // S_L = e^{Γ_L} S_0 + K'ᵀ Δ with K'_s = e^{Γ_L − Γ_s} k_s.
    let gl = gam[l - 1];
    let mut f = [0.0f32; CHUNK];
    for (fs, &gs) in f.iter_mut().zip(gam) {
        *fs = (gl - gs).exp();
    }
    for row in kt.chunks_exact_mut(l) {
        for (x, &fs) in row.iter_mut().zip(&f[..l]) {
            *x *= fs;
        }
    }
    let el = gl.exp();
    let s = &mut s[..dk * dv];
    for x in s.iter_mut() {
        *x *= el;
    }
    gemm_acc::<FMA>(&mut w.pack, dk, dv, l, kt, l, v, dv, s, dv);
}

/// Rows and columns of one register block of [`gemm_acc`].
const MR: usize = 4;
const NR: usize = 16;

/// `c[m × n] += a[m × k] · b[k × n]`, all row-major with leading dimensions `lda`, `ldb`,
/// `ldc`. Each block of `MR` rows of `a` is first packed column by column into `pack` (`≥ k`);
/// blocks of `MR × NR` accumulators then stay in registers over the whole `k` loop, so each
/// loaded row of `b` feeds `MR` rows.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn gemm_acc<const FMA: bool>(
    pack: &mut [[f32; MR]],
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
) {
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    assert!(k <= pack.len() && a.len() >= (m - 1) * lda + k && b.len() >= (k - 1) * ldb + n);
    assert!(c.len() >= (m - 1) * ldc + n);
    let bp = b.as_ptr();
    let mut i = 0;
    while i + MR <= m {
        let pk = &mut pack[..k];
        for (p, col) in pk.iter_mut().enumerate() {
            for (r, x) in col.iter_mut().enumerate() {
                *x = a[(i + r) * lda + p];
            }
        }
        let pk = &pack[..k];
        let mut j = 0;
        while j + NR <= n {
            let mut acc = [[0.0f32; NR]; MR];
            for (p, ap) in pk.iter().enumerate() {
                // SAFETY: p < k and j + NR ≤ n, so the NR floats at p·ldb + j lie within
                // (k − 1)·ldb + n ≤ b.len() (asserted above); read_unaligned needs no alignment.
                let brow: [f32; NR] =
                    unsafe { std::ptr::read_unaligned(bp.add(p * ldb + j).cast::<[f32; NR]>()) };
                for (accr, &av) in acc.iter_mut().zip(ap) {
                    for (x, &bx) in accr.iter_mut().zip(&brow) {
                        *x = madd::<FMA>(av, bx, *x);
                    }
                }
            }
            for (r, accr) in acc.iter().enumerate() {
                let crow = &mut c[(i + r) * ldc + j..(i + r) * ldc + j + NR];
                for (x, &ax) in crow.iter_mut().zip(accr) {
                    *x += ax;
                }
            }
            j += NR;
        }
        if j < n {
            gemm_edge::<FMA>(i..i + MR, j..n, k, a, lda, b, ldb, c, ldc);
        }
        i += MR;
    }
    if i < m {
        gemm_edge::<FMA>(i..m, 0..n, k, a, lda, b, ldb, c, ldc);
    }
}

/// The rows / columns left over by the register blocks of [`gemm_acc`], one row at a time.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn gemm_edge<const FMA: bool>(
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
    k: usize,
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
) {
    for i in rows {
        let crow = &mut c[i * ldc + cols.start..i * ldc + cols.end];
        for p in 0..k {
            let av = a[i * lda + p];
            let brow = &b[p * ldb + cols.start..p * ldb + cols.end];
            for (x, &bx) in crow.iter_mut().zip(brow) {
                *x = madd::<FMA>(av, bx, *x);
            }
        }
    }
}
