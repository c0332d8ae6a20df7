//! One servable model: how to load it ([`ModelSpec`]) and what a loaded one holds
//! ([`LoadedModel`]: tokenizer, chat template, the engine thread that owns its weights and
//! cache, and the memory plan that sized them).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use backends::{BackendJob, GpuLayers};
use engine::SamplerParams;
use formats::GgmlType;
use gguf::GgufFile;
use models::{HParams, Model, RunConfig};
use text::template::ChatTemplate;
use text::tokenizer::Tokenizer;
use turbine_core::{Backend, MemoryPlan, Role};

use crate::metrics::MemoryLine;
use crate::mlock::{lock_weights, LockedRegion};
use crate::scheduler::chunking::{probe_chunk_invariance, probe_is_conclusive};
use crate::scheduler::runner::probe_batch_invariance;
use crate::scheduler::{EngineHandle, EngineOptions, ModelRunner, TokenText};

/// Whether a step's sequences share one forward pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Batching {
    /// Batch if the batched pass gives each row exactly its solo logits (probed at load).
    Auto,
    On,
    Off,
}

/// Everything needed to load one model (llama-server's per-model flags).
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSpec {
    /// The id clients use in the `model` field.
    pub name: String,
    pub path: PathBuf,
    pub n_ctx: usize,
    pub n_batch: usize,
    pub n_ubatch: usize,
    pub n_parallel: usize,
    pub type_k: GgmlType,
    pub type_v: GgmlType,
    pub threads: usize,
    /// `-ngl`: `None` or 0 runs on the CPU, a negative count or ≥ the layer count on CUDA
    /// device `main_gpu` (see the `backends` crate).
    pub n_gpu_layers: Option<i64>,
    pub main_gpu: usize,
    pub flash_attn: Option<String>,
    pub mlock: bool,
    /// Router mode: load when the server starts.
    pub load_on_startup: bool,
    /// Sampling defaults for requests that do not set a field.
    pub sampling: SamplerParams,
    pub batching: Batching,
    /// `--slot-prompt-similarity`: see [`EngineOptions`].
    pub slot_prompt_similarity: f32,
}

impl ModelSpec {
    pub fn new(name: impl Into<String>, path: impl Into<PathBuf>) -> ModelSpec {
        ModelSpec {
            name: name.into(),
            path: path.into(),
            n_ctx: 4096,
            n_batch: 2048,
            n_ubatch: 512,
            n_parallel: 1,
            type_k: GgmlType::F16,
            type_v: GgmlType::F16,
            threads: default_threads(),
            n_gpu_layers: None,
            main_gpu: 0,
            flash_attn: None,
            mlock: false,
            load_on_startup: false,
            sampling: SamplerParams::default(),
            batching: Batching::Auto,
            slot_prompt_similarity: EngineOptions::default().slot_prompt_similarity,
        }
    }

    pub fn run_config(&self) -> RunConfig {
        RunConfig {
            n_ctx: self.n_ctx,
            n_batch: self.n_batch,
            n_ubatch: self.n_ubatch,
            n_seq: self.n_parallel,
            type_k: self.type_k,
            type_v: self.type_v,
            logits_all: false,
        }
    }
}

pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Facts `/v1/models` and `/props` show.
#[derive(Clone, Debug)]
pub struct ModelMeta {
    pub arch: String,
    pub n_params: u64,
    pub size: u64,
    pub n_vocab: usize,
    pub n_ctx_train: usize,
    pub n_embd: usize,
}

pub struct LoadedModel {
    pub spec: ModelSpec,
    pub tokenizer: Arc<Tokenizer>,
    /// `None` when the GGUF has no chat template (chat requests are refused).
    pub template: Option<ChatTemplate>,
    pub engine: EngineHandle,
    /// What the server holds for this model: the model's plan plus the per-slot samplers
    /// and token histories.
    pub plan: MemoryPlan,
    /// Device label for the breakdown line.
    pub device_label: String,
    pub device: String,
    pub meta: ModelMeta,
    /// Bytes of the memory lock, if `--mlock`.
    pub locked: Option<LockedRegion>,
    /// Keeps the file mapped for the lock's lifetime (the model holds its own reference).
    _file: Arc<GgufFile>,
}

/// Names of the server's own planned buffers.
pub mod names {
    pub const SAMPLERS: &str = "server.samplers";
    pub const TOKENS: &str = "server.tokens";
}

impl LoadedModel {
    /// Opens, plans and loads the model, then starts its engine thread.
    pub fn load(spec: &ModelSpec) -> anyhow::Result<LoadedModel> {
        let path = &spec.path;
        let file = Arc::new(
            GgufFile::open(path).with_context(|| format!("cannot open {}", path.display()))?,
        );
        let locked = if spec.mlock {
            Some(lock_weights(&file).with_context(|| format!("--mlock for {}", spec.name))?)
        } else {
            None
        };
        let tokenizer = Arc::new(
            Tokenizer::from_gguf(&file)
                .with_context(|| format!("tokenizer of {}", path.display()))?,
        );
        let template = match ChatTemplate::from_gguf(&file, None) {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!(
                    "{}: no chat template ({e}); /v1/chat/completions is disabled",
                    spec.name
                );
                None
            }
        };
        let hp = HParams::from_gguf(&file).with_context(|| format!("{}", path.display()))?;
        let cfg = spec
            .run_config()
            .validated()
            .with_context(|| format!("configuration of {}", spec.name))?;
        let layers = spec.n_gpu_layers.map(GpuLayers::from_count);
        let placement = backends::placement(layers, spec.main_gpu, hp.n_layer)
            .with_context(|| format!("-ngl for {}", spec.name))?;
        let job = LoadJob {
            spec,
            file,
            locked,
            tokenizer,
            template,
            hp,
            cfg,
        };
        backends::dispatch(placement, spec.threads, job)
            .with_context(|| format!("backend for {}", spec.name))
    }

    fn breakdown_line<B: Backend>(&self, backend: &B) -> String {
        self.plan
            .breakdown_line(&self.device, &self.device_label, backend.memory().as_ref())
    }

    /// Planned bytes per device and role, for `/metrics` and `/models`.
    pub fn memory_lines(&self) -> Vec<MemoryLine> {
        let mut out = Vec::new();
        for device in self.plan.devices() {
            for role in [Role::Model, Role::Context, Role::Compute] {
                out.push(MemoryLine {
                    device: device.to_string(),
                    role: role.name(),
                    bytes: self.plan.role_bytes(device, role),
                });
            }
        }
        out
    }

    /// The breakdown without free memory: what this model holds.
    pub fn own_breakdown(&self) -> String {
        self.plan
            .devices()
            .iter()
            .map(|d| self.plan.breakdown_line(d, d, None))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Stops the engine (running requests get `grace` to finish, then end with an error
    /// starting with `why`) and waits for it, so the model's memory is freed when this
    /// returns.
    pub fn stop(&self, grace: Duration, why: &str) {
        self.engine.shutdown(grace, why);
        self.engine.join();
    }
}

/// The part of [`LoadedModel::load`] that depends on the backend `-ngl` picked: plan, load
/// the weights and cache, probe the forward pass, start the engine thread.
struct LoadJob<'a> {
    spec: &'a ModelSpec,
    file: Arc<GgufFile>,
    locked: Option<LockedRegion>,
    tokenizer: Arc<Tokenizer>,
    template: Option<ChatTemplate>,
    hp: HParams,
    cfg: RunConfig,
}

impl BackendJob for LoadJob<'_> {
    type Output = LoadedModel;

    fn run<B: Backend + 'static>(self, backend: Arc<B>) -> anyhow::Result<LoadedModel> {
        let LoadJob {
            spec,
            file,
            locked,
            tokenizer,
            template,
            hp,
            cfg,
        } = self;
        let model_plan = models::plan_memory(backend.as_ref(), &file, &hp, &cfg)
            .with_context(|| format!("memory plan of {}", spec.name))?;
        let mut plan = model_plan.clone();
        let host = backend.host_device().to_string();
        let n_slots = cfg.n_seq;
        plan.add(
            names::SAMPLERS,
            &host,
            Role::Compute,
            n_slots as u64 * engine::sampler::sampler_bytes(hp.n_vocab),
            format!("{n_slots} slots × {} vocab × 16 B", hp.n_vocab),
        )?;
        let per_slot = cfg.n_ctx / cfg.n_seq;
        plan.add(
            names::TOKENS,
            &host,
            Role::Context,
            (n_slots * per_slot) as u64 * 4,
            format!("{n_slots} slots × {per_slot} tokens × 4 B"),
        )?;
        let device = backend.device().to_string();
        let device_label = backend.label();
        let model = Model::load_planned(
            Arc::clone(&backend),
            Arc::clone(&file),
            hp.clone(),
            cfg,
            model_plan,
        )
        .with_context(|| format!("loading {}", spec.name))?;
        let meta = ModelMeta {
            arch: hp.arch_name().to_string(),
            n_params: file.n_parameters(),
            size: file.file_size(),
            n_vocab: hp.n_vocab,
            n_ctx_train: hp.n_ctx_train,
            n_embd: hp.n_embd,
        };
        let mut model = model;
        let batched = match spec.batching {
            Batching::On => true,
            Batching::Off => false,
            Batching::Auto if spec.n_parallel < 2 => true,
            Batching::Auto => {
                let probe = probe_batch_invariance(&mut model)
                    .map_err(|e| anyhow::anyhow!("{}: batch probe failed: {e}", spec.name))?;
                if probe.max_abs_diff != 0.0 {
                    eprintln!(
                        "{}: a batched forward pass changes a row's logits by up to {:.3e} ({} rows); running one sequence per pass so no output depends on the others (--batching on to batch anyway)",
                        spec.name, probe.max_abs_diff, probe.rows
                    );
                }
                probe.max_abs_diff == 0.0
            }
        };
        let chunk_invariant = probe_is_conclusive(spec.type_k, spec.type_v)
            && probe_chunk_invariance(&mut model)
                .map_err(|e| anyhow::anyhow!("{}: chunking probe failed: {e}", spec.name))?;
        if !chunk_invariant {
            eprintln!(
                "{}: the prompt cache keeps only whole -ub chunks ({} tokens) of a slot's earlier prompt: a prompt's logits may depend on how it is cut into passes (probed, or a quantized KV type), and a reused prompt must give exactly the cold prompt's output",
                spec.name, spec.n_ubatch
            );
        }
        let vocab: Arc<dyn TokenText> = Arc::clone(&tokenizer) as Arc<dyn TokenText>;
        let engine = EngineHandle::spawn(
            // Pages are the CPU cache's unit; the CUDA cache keeps each sequence's cells
            // contiguous, so there they are only the unit of the page metrics.
            ModelRunner::new(model, batched, turbine_core::cpu::PAGE_SIZE)
                .with_chunk_invariance(chunk_invariant),
            vocab,
            &spec.name,
            EngineOptions {
                slot_prompt_similarity: spec.slot_prompt_similarity,
            },
        )
        .context("cannot start the engine thread")?;
        let loaded = LoadedModel {
            spec: spec.clone(),
            tokenizer,
            template,
            engine,
            plan,
            device_label,
            device,
            meta,
            locked,
            _file: file,
        };
        eprintln!(
            "loaded {}: {}",
            spec.name,
            loaded.breakdown_line(backend.as_ref())
        );
        Ok(loaded)
    }
}
