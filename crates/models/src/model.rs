//! A loaded model: hyperparameters, resident weights, the KV cache and the planned buffers,
//! all allocated from one [`MemoryPlan`].

use std::sync::Arc;

use gguf::GgufFile;
use turbine_core::{Backend, BufferSpec, MemoryPlan, Role, TokenPos};

use crate::config::RunConfig;
use crate::error::{ModelError, Result};
use crate::forward::{forward, Activations, ExtraActivations, Step};
use crate::hparams::HParams;
use crate::plan::{kv_spec, names, plan_memory};
use crate::weights::Weights;

/// One row of a batch for [`Model::forward_batch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchRow {
    pub seq: usize,
    pub token: u32,
    /// Compute this row's logits (at most one per sequence, on its last row).
    pub logits: bool,
}

pub struct Model<B: Backend> {
    backend: Arc<B>,
    hp: HParams,
    cfg: RunConfig,
    plan: MemoryPlan,
    weights: Weights<B::Weight>,
    act: Activations<B::Buffer>,
    kv: B::KvCache,
    /// Host positions of the current step (planned: `host.positions`).
    positions: Vec<i32>,
    /// (sequence, position) of each row of the current step (planned: `host.rows`).
    rows: Vec<TokenPos>,
    /// Token ids of the current step in row order (planned: `host.ids`).
    ids: Vec<u32>,
    /// Sequence lengths after the current step, and a flag per sequence (planned:
    /// `host.seqs`).
    seq_next: Vec<usize>,
    seq_flags: Vec<bool>,
    /// Host copy of the logits where the backend's memory is not host memory.
    host_logits: Option<Vec<f32>>,
    /// Logit rows of the last forward pass.
    logit_rows: usize,
    /// Tokens cached per sequence.
    seq_lens: Vec<usize>,
}

fn planned<'a>(plan: &'a MemoryPlan, name: &str) -> Result<&'a BufferSpec> {
    plan.get(name)
        .ok_or_else(|| ModelError::Config(format!("memory plan has no buffer `{name}`")))
}

impl<B: Backend> Model<B> {
    /// Plans, then allocates exactly the plan: weights, KV cache, activations.
    pub fn load(backend: Arc<B>, file: Arc<GgufFile>, cfg: RunConfig) -> Result<Model<B>> {
        let cfg = cfg.validated()?;
        let hp = HParams::from_gguf(&file)?;
        let plan = plan_memory(backend.as_ref(), &file, &hp, &cfg)?;
        Model::load_planned(backend, file, hp, cfg, plan)
    }

    /// Allocates the model's buffers as `plan` sizes them. `plan` must come from
    /// [`plan_memory`] for the same file, hyperparameters and configuration (a caller such as
    /// the engine may have added buffers of its own).
    pub fn load_planned(
        backend: Arc<B>,
        file: Arc<GgufFile>,
        hp: HParams,
        cfg: RunConfig,
        plan: MemoryPlan,
    ) -> Result<Model<B>> {
        let cfg = cfg.validated()?;
        let b = backend.as_ref();
        let weights = Weights::load(b, &file, &hp)?;
        let kv = b.alloc_kv(planned(&plan, names::KV)?, &kv_spec(&hp, &cfg))?;
        let alloc = |name: &str| -> Result<B::Buffer> { Ok(b.alloc(planned(&plan, name)?)?) };
        let act = Activations {
            x: alloc(names::X)?,
            xn: alloc(names::XN)?,
            q: alloc(names::Q)?,
            k: alloc(names::K)?,
            v: alloc(names::V)?,
            attn: alloc(names::ATTN)?,
            gate: alloc(names::GATE)?,
            up: alloc(names::UP)?,
            logits: alloc(names::LOGITS)?,
            scratch: alloc(names::MATMUL_SCRATCH)?,
            workspace: alloc(names::ATTN_WORKSPACE)?,
            extra: {
                let opt = |name: &str| -> Result<Option<B::Buffer>> {
                    match plan.get(name) {
                        Some(spec) => Ok(Some(b.alloc(spec)?)),
                        None => Ok(None),
                    }
                };
                ExtraActivations {
                    qg: opt(names::QG)?,
                    attn_gate: opt(names::ATTN_GATE)?,
                    ssm_qkv: opt(names::SSM_QKV)?,
                    ssm_z: opt(names::SSM_Z)?,
                    ssm_alpha: opt(names::SSM_ALPHA)?,
                    ssm_beta: opt(names::SSM_BETA)?,
                    ssm_out: opt(names::SSM_OUT)?,
                    router: opt(names::ROUTER)?,
                    shexp_gate: opt(names::SHEXP_GATE)?,
                    moe_workspace: opt(names::MOE_WORKSPACE)?,
                    recurrent: opt(names::RECURRENT)?,
                }
            },
        };
        let max_rows = cfg.max_rows();
        let positions: Vec<i32> = Vec::with_capacity(max_rows);
        let rows: Vec<TokenPos> = Vec::with_capacity(max_rows);
        let ids: Vec<u32> = Vec::with_capacity(max_rows);
        let seq_next: Vec<usize> = vec![0; cfg.n_seq];
        let seq_flags: Vec<bool> = vec![false; cfg.n_seq];
        for (name, bytes) in [
            (names::POSITIONS, positions.capacity() * 4),
            (
                names::ROWS,
                rows.capacity() * std::mem::size_of::<TokenPos>(),
            ),
            (names::IDS, ids.capacity() * 4),
            (
                names::SEQS,
                seq_next.capacity() * std::mem::size_of::<usize>() + seq_flags.capacity(),
            ),
        ] {
            let spec = planned(&plan, name)?;
            b.allocation_log()
                .record(&spec.name, &spec.device, Role::Compute, bytes as u64);
        }
        let host_logits = match plan.get(names::HOST_LOGITS) {
            Some(spec) => {
                let v: Vec<f32> = vec![0.0; cfg.max_output_rows() * hp.n_vocab];
                b.allocation_log().record(
                    &spec.name,
                    &spec.device,
                    Role::Compute,
                    (v.capacity() * 4) as u64,
                );
                Some(v)
            }
            None => None,
        };
        Ok(Model {
            seq_lens: vec![0; cfg.n_seq],
            backend,
            hp,
            cfg,
            plan,
            weights,
            act,
            kv,
            positions,
            rows,
            ids,
            seq_next,
            seq_flags,
            host_logits,
            logit_rows: 0,
        })
    }

    pub fn hparams(&self) -> &HParams {
        &self.hp
    }

    pub fn config(&self) -> &RunConfig {
        &self.cfg
    }

    pub fn plan(&self) -> &MemoryPlan {
        &self.plan
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Tokens cached for `seq`.
    pub fn seq_len(&self, seq: usize) -> usize {
        self.seq_lens.get(seq).copied().unwrap_or(0)
    }

    /// Tokens one sequence can hold.
    pub fn seq_capacity(&self) -> usize {
        self.cfg.n_ctx / self.cfg.n_seq
    }

    /// True if [`Model::truncate`] can keep a prefix: not for models with recurrent layers,
    /// whose state summarises the whole sequence (those can only be cleared, `from == 0`, or
    /// kept whole).
    pub fn can_truncate_prefix(&self) -> bool {
        self.hp.ssm.is_none()
    }

    /// Forgets the cached tokens of `seq` from position `from` on.
    pub fn truncate(&mut self, seq: usize, from: usize) -> Result<()> {
        let len = *self
            .seq_lens
            .get(seq)
            .ok_or_else(|| ModelError::Config(format!("sequence {seq} out of range")))?;
        if let Some(dn) = self.hp.delta_net(self.cfg.n_seq) {
            if from > 0 && from < len {
                return Err(ModelError::Config(format!(
                    "sequence {seq}: a recurrent model cannot rewind from {len} to {from} tokens \
                     (only clear it, or keep it whole)"
                )));
            }
            if from == 0 {
                if let Some(state) = self.act.extra.recurrent.as_mut() {
                    self.backend.recurrent_reset(&dn, state, seq)?;
                }
            }
        }
        self.backend.kv_truncate(&mut self.kv, seq, from)?;
        self.seq_lens[seq] = len.min(from);
        Ok(())
    }

    /// Appends `tokens` (at most `n_ubatch`) to `seq` and runs them. Afterwards
    /// [`Model::logits`] holds the last token's logits, or every token's with `logits_all`.
    pub fn forward(&mut self, seq: usize, tokens: &[u32], logits_all: bool) -> Result<()> {
        let n = tokens.len();
        self.check_rows(n, if logits_all { n } else { 1 })?;
        self.check_seq(seq)?;
        let pos0 = self.seq_lens[seq];
        self.ids.clear();
        self.rows.clear();
        self.positions.clear();
        for (i, &t) in tokens.iter().enumerate() {
            self.push_row(seq, pos0 + i, t)?;
        }
        self.seq_next.copy_from_slice(&self.seq_lens);
        self.seq_next[seq] = pos0 + n;
        self.run(if logits_all { n } else { 1 })
    }

    /// Runs one token for each row of `batch`, rows of any sequences (several rows of one
    /// sequence are consecutive positions, in order). Weights are read once for the whole
    /// batch. Afterwards [`Model::logits`]`(i)` holds the logits of the `i`-th row that asked
    /// for them, in batch order.
    pub fn forward_batch(&mut self, batch: &[BatchRow]) -> Result<()> {
        let n_out = batch.iter().filter(|r| r.logits).count();
        self.check_rows(batch.len(), n_out)?;
        for r in batch {
            self.check_seq(r.seq)?;
        }
        self.seq_next.copy_from_slice(&self.seq_lens);
        self.ids.clear();
        self.rows.clear();
        self.positions.clear();
        // Rows without logits first, then the rows with logits, so those are one contiguous
        // range at the end (the output head runs on them alone). A sequence's logit row is its
        // last in the batch, so each sequence's rows stay in position order.
        for want_logits in [false, true] {
            for r in batch.iter().filter(|r| r.logits == want_logits) {
                let pos = self.seq_next[r.seq];
                self.push_row(r.seq, pos, r.token)?;
                self.seq_next[r.seq] = pos + 1;
            }
        }
        // The order above is only valid if no row of a sequence follows its logit row.
        let mut seen_logits = std::mem::take(&mut self.seq_flags);
        seen_logits.fill(false);
        let mut bad = None;
        for r in batch {
            if seen_logits[r.seq] {
                bad = Some(r.seq);
            }
            seen_logits[r.seq] |= r.logits;
        }
        self.seq_flags = seen_logits;
        if let Some(seq) = bad {
            return Err(ModelError::Config(format!(
                "forward_batch: sequence {seq} has rows after its logits row"
            )));
        }
        self.run(n_out)
    }

    fn check_rows(&self, n: usize, n_out: usize) -> Result<()> {
        if n == 0 {
            return Err(ModelError::Config("forward: no tokens".into()));
        }
        if n > self.cfg.max_rows() {
            return Err(ModelError::Config(format!(
                "forward: {n} tokens exceed the ubatch of {} (split the batch)",
                self.cfg.max_rows()
            )));
        }
        if n_out > self.cfg.max_output_rows() {
            return Err(ModelError::Config(format!(
                "forward: logits for {n_out} rows, planned for {} (plan with logits_all)",
                self.cfg.max_output_rows()
            )));
        }
        Ok(())
    }

    fn check_seq(&self, seq: usize) -> Result<()> {
        if seq >= self.cfg.n_seq {
            return Err(ModelError::Config(format!(
                "sequence {seq} out of range (-np {})",
                self.cfg.n_seq
            )));
        }
        Ok(())
    }

    /// Appends one row to the step's host buffers after checking token and capacity.
    fn push_row(&mut self, seq: usize, pos: usize, token: u32) -> Result<()> {
        if token as usize >= self.hp.n_vocab {
            return Err(ModelError::Config(format!(
                "token id {token} outside the vocabulary of {}",
                self.hp.n_vocab
            )));
        }
        if pos >= self.seq_capacity() {
            return Err(ModelError::Config(format!(
                "context full: sequence {seq} cannot hold more than {} tokens (raise -c)",
                self.seq_capacity()
            )));
        }
        self.ids.push(token);
        self.rows.push(TokenPos { seq, pos });
        self.positions.push(pos as i32);
        Ok(())
    }

    /// Runs the prepared rows (`ids`, `rows`, `positions`; the last `n_out` produce logits)
    /// and commits `seq_next` as the new sequence lengths.
    fn run(&mut self, n_out: usize) -> Result<()> {
        let b = self.backend.as_ref();
        let mut result = Ok(());
        let mut forward_ran = false;
        for seq in 0..self.seq_next.len() {
            if self.seq_next[seq] > self.seq_lens[seq] {
                if let Err(e) = b.kv_reserve(&mut self.kv, seq, self.seq_next[seq]) {
                    result = Err(e.into());
                    break;
                }
            }
        }
        if result.is_ok() {
            let step = Step {
                tokens: &self.ids,
                rows: &self.rows,
                positions: &self.positions,
                n_out,
                n_seq: self.cfg.n_seq,
            };
            forward_ran = true;
            result = forward(
                b,
                &self.hp,
                &self.weights,
                &mut self.act,
                &mut self.kv,
                &step,
            );
        }
        if let Err(e) = result {
            // Whatever was reserved or written for these positions is not part of the
            // sequences. A recurrent state may already have absorbed some of the rows and
            // cannot be rewound: those sequences are cleared instead.
            let recurrent = self.hp.delta_net(self.cfg.n_seq).filter(|_| forward_ran);
            for seq in 0..self.seq_next.len() {
                if self.seq_next[seq] > self.seq_lens[seq] {
                    match (&recurrent, self.act.extra.recurrent.as_mut()) {
                        (Some(dn), Some(state)) => {
                            let _ = b.recurrent_reset(dn, state, seq);
                            let _ = b.kv_truncate(&mut self.kv, seq, 0);
                            self.seq_lens[seq] = 0;
                        }
                        _ => {
                            let _ = b.kv_truncate(&mut self.kv, seq, self.seq_lens[seq]);
                        }
                    }
                }
            }
            self.logit_rows = 0;
            return Err(e);
        }
        self.seq_lens.copy_from_slice(&self.seq_next);
        self.logit_rows = n_out;
        if let Some(host) = self.host_logits.as_mut() {
            let len = n_out * self.hp.n_vocab;
            b.read(&self.act.logits, 0, &mut host[..len])?;
        }
        Ok(())
    }

    /// Rows of logits the last forward pass produced.
    pub fn logit_rows(&self) -> usize {
        self.logit_rows
    }

    /// Logits of row `row` of the last forward pass.
    pub fn logits(&self, row: usize) -> Result<&[f32]> {
        if row >= self.logit_rows {
            return Err(ModelError::Config(format!(
                "logits row {row} of {}",
                self.logit_rows
            )));
        }
        let v = self.hp.n_vocab;
        let all = match &self.host_logits {
            Some(h) => h.as_slice(),
            None => self
                .backend
                .host_f32(&self.act.logits)
                .ok_or_else(|| ModelError::Config("backend logits are not host-visible".into()))?,
        };
        all.get(row * v..(row + 1) * v)
            .ok_or_else(|| ModelError::Config("logits buffer too small".into()))
    }
}
