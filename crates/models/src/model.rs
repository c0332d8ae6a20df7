//! A loaded model: hyperparameters, resident weights, the KV cache and the planned buffers,
//! all allocated from one [`MemoryPlan`].

use std::sync::Arc;

use gguf::GgufFile;
use turbine_core::{Backend, BufferSpec, MemoryPlan, Role, TokenPos};

use crate::config::RunConfig;
use crate::error::{ModelError, Result};
use crate::forward::{forward, Activations, Step};
use crate::hparams::HParams;
use crate::plan::{kv_spec, names, plan_memory};
use crate::weights::Weights;

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
        };
        let max_rows = cfg.max_rows();
        let positions: Vec<i32> = Vec::with_capacity(max_rows);
        let rows: Vec<TokenPos> = Vec::with_capacity(max_rows);
        for (name, bytes) in [
            (names::POSITIONS, positions.capacity() * 4),
            (
                names::ROWS,
                rows.capacity() * std::mem::size_of::<TokenPos>(),
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

    /// Forgets the cached tokens of `seq` from position `from` on.
    pub fn truncate(&mut self, seq: usize, from: usize) -> Result<()> {
        let len = self
            .seq_lens
            .get_mut(seq)
            .ok_or_else(|| ModelError::Config(format!("sequence {seq} out of range")))?;
        self.backend.kv_truncate(&mut self.kv, seq, from)?;
        *len = (*len).min(from);
        Ok(())
    }

    /// Appends `tokens` (at most `n_ubatch`) to `seq` and runs them. Afterwards
    /// [`Model::logits`] holds the last token's logits, or every token's with `logits_all`.
    pub fn forward(&mut self, seq: usize, tokens: &[u32], logits_all: bool) -> Result<()> {
        let n = tokens.len();
        if n == 0 {
            return Err(ModelError::Config("forward: no tokens".into()));
        }
        if n > self.cfg.n_ubatch.max(self.cfg.n_seq) {
            return Err(ModelError::Config(format!(
                "forward: {n} tokens exceed the ubatch of {} (split the batch)",
                self.cfg.n_ubatch
            )));
        }
        if logits_all && n > self.cfg.max_output_rows() {
            return Err(ModelError::Config(format!(
                "forward: all-token logits for {n} rows, planned for {} (plan with logits_all)",
                self.cfg.max_output_rows()
            )));
        }
        let pos0 = self.seq_len(seq);
        if seq >= self.cfg.n_seq {
            return Err(ModelError::Config(format!(
                "sequence {seq} out of range (-np {})",
                self.cfg.n_seq
            )));
        }
        if pos0 + n > self.seq_capacity() {
            return Err(ModelError::Config(format!(
                "context full: sequence {seq} holds {pos0} tokens, {n} more exceed its {} (raise -c)",
                self.seq_capacity()
            )));
        }
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= self.hp.n_vocab) {
            return Err(ModelError::Config(format!(
                "token id {bad} outside the vocabulary of {}",
                self.hp.n_vocab
            )));
        }
        self.positions.clear();
        self.positions.extend((pos0..pos0 + n).map(|p| p as i32));
        self.rows.clear();
        self.rows
            .extend((pos0..pos0 + n).map(|pos| TokenPos { seq, pos }));
        self.backend.kv_reserve(&mut self.kv, seq, pos0 + n)?;
        let step = Step {
            tokens,
            rows: &self.rows,
            positions: &self.positions,
            logits_all,
        };
        let result = forward(
            self.backend.as_ref(),
            &self.hp,
            &self.weights,
            &mut self.act,
            &mut self.kv,
            &step,
        );
        if let Err(e) = result {
            // Whatever was written for these positions is not part of the sequence.
            let _ = self.backend.kv_truncate(&mut self.kv, seq, pos0);
            return Err(e);
        }
        self.seq_lens[seq] = pos0 + n;
        self.logit_rows = if logits_all { n } else { 1 };
        if let Some(host) = self.host_logits.as_mut() {
            let len = self.logit_rows * self.hp.n_vocab;
            self.backend.read(&self.act.logits, 0, &mut host[..len])?;
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
