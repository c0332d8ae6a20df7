//! The memory plan is what gets allocated, and compute memory does not grow with context.

use std::path::PathBuf;
use std::sync::Arc;

use engine::{plan_engine, Generator, SamplerParams};
use formats::GgmlType;
use gguf::GgufFile;
use models::{context_growth_allowance, HParams, Model, RunConfig};
use turbine_core::cpu::CpuBackend;
use turbine_core::{Backend, MemoryPlan, Role};

const MODELS: [&str; 3] = [
    "SmolLM2-135M-Instruct.Q4_1.gguf",
    "qwen2.5-coder-0.5b-instruct.gguf",
    "gemma-3-270m-q4_k_m.gguf",
];

fn model_path(file: &str) -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../models")
        .join(file);
    if p.exists() {
        return Some(p);
    }
    if std::env::var("TURBINE_REQUIRE_ASSETS").as_deref() == Ok("1") {
        panic!("{} missing: run scripts/fetch-models.sh", p.display());
    }
    eprintln!(
        "skipped: {} missing; run scripts/fetch-models.sh",
        p.display()
    );
    None
}

fn cfg(n_ctx: usize, n_ubatch: usize, tk: GgmlType, tv: GgmlType) -> RunConfig {
    RunConfig {
        n_ctx,
        n_batch: n_ubatch,
        n_ubatch,
        n_seq: 1,
        type_k: tk,
        type_v: tv,
        logits_all: false,
    }
}

#[test]
fn allocated_equals_planned() {
    let configs = [
        cfg(512, 64, GgmlType::F16, GgmlType::F16),
        cfg(1000, 32, GgmlType::Q8_0, GgmlType::Turbo3),
        cfg(300, 7, GgmlType::Turbo4, GgmlType::Q4_0),
    ];
    for file in MODELS {
        let Some(path) = model_path(file) else {
            continue;
        };
        let gguf = Arc::new(GgufFile::open(&path).unwrap());
        let hp = HParams::from_gguf(&gguf).unwrap();
        for c in &configs {
            let backend = Arc::new(CpuBackend::new(2).unwrap());
            let plan = plan_engine(backend.as_ref(), &gguf, &hp, c).unwrap();
            let model = Model::load_planned(
                backend.clone(),
                gguf.clone(),
                hp.clone(),
                c.clone(),
                plan.clone(),
            )
            .unwrap();
            let mut g = Generator::new(model, SamplerParams::greedy());
            let log = backend.allocation_log();
            if let Err(p) = log.compare(&plan) {
                panic!("{file} {c:?}: {}", p.join("; "));
            }
            // Running allocates nothing more.
            let before = log.records().len();
            g.generate(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 3, |_| false, |_| true)
                .unwrap();
            assert_eq!(
                log.records().len(),
                before,
                "{file}: allocation during generation"
            );
            assert_eq!(
                log.total_bytes(),
                plan.buffers().iter().map(|b| b.bytes).sum::<u64>()
            );
        }
    }
}

fn role(plan: &MemoryPlan, r: Role) -> u64 {
    plan.role_bytes("CPU", r)
}

#[test]
fn plan_needs_only_the_header() {
    for file in MODELS {
        let Some(path) = model_path(file) else {
            continue;
        };
        let full = GgufFile::open(&path).unwrap();
        let header = GgufFile::open_header_only(&path).unwrap();
        let b = CpuBackend::new(2).unwrap();
        let c = cfg(2048, 256, GgmlType::Q8_0, GgmlType::Turbo4);
        let p1 = plan_engine(&b, &full, &HParams::from_gguf(&full).unwrap(), &c).unwrap();
        let p2 = plan_engine(&b, &header, &HParams::from_gguf(&header).unwrap(), &c).unwrap();
        assert_eq!(p1, p2);
    }
}

#[test]
fn compute_does_not_grow_with_context() {
    for file in MODELS {
        let Some(path) = model_path(file) else {
            continue;
        };
        let gguf = GgufFile::open_header_only(&path).unwrap();
        let hp = HParams::from_gguf(&gguf).unwrap();
        let b = CpuBackend::new(2).unwrap();
        for (tk, tv) in [
            (GgmlType::F16, GgmlType::F16),
            (GgmlType::Q8_0, GgmlType::Turbo3),
            (GgmlType::Turbo4, GgmlType::Turbo4),
        ] {
            let small = plan_engine(&b, &gguf, &hp, &cfg(4096, 512, tk, tv)).unwrap();
            let large = plan_engine(&b, &gguf, &hp, &cfg(65536, 512, tk, tv)).unwrap();
            let growth = role(&large, Role::Compute) as i64 - role(&small, Role::Compute) as i64;
            let allowed = context_growth_allowance(&hp, 4096, 65536) as i64;
            eprintln!(
                "{file} K {} V {}: compute {} -> {} bytes, context {} -> {} bytes",
                tk.name(),
                tv.name(),
                role(&small, Role::Compute),
                role(&large, Role::Compute),
                role(&small, Role::Context),
                role(&large, Role::Context)
            );
            assert!(
                growth <= allowed,
                "{file}: compute grew by {growth} bytes from -c 4096 to 65536 (allowed {allowed})"
            );
            // The context is what grows: 16× the cells, 16× the cache (bookkeeping aside).
            // Turbo K adds a key center per (sequence, layer, KV head value), which does not
            // grow with -c: take it out of both sides.
            let centers = if tk.is_turbo() {
                (hp.n_layer * hp.n_head_kv * hp.head_dim_k * 4) as f64
            } else {
                0.0
            };
            let ratio = (role(&large, Role::Context) as f64 - centers)
                / (role(&small, Role::Context) as f64 - centers);
            assert!((ratio - 16.0).abs() < 0.01, "{file}: context ratio {ratio}");
        }
    }
}

#[test]
fn shape_classes_take_the_max_not_the_sum() {
    let Some(path) = model_path(MODELS[0]) else {
        return;
    };
    let gguf = GgufFile::open_header_only(&path).unwrap();
    let hp = HParams::from_gguf(&gguf).unwrap();
    let b = CpuBackend::new(2).unwrap();
    let one = cfg(4096, 512, GgmlType::F16, GgmlType::F16);
    let four = RunConfig {
        n_seq: 4,
        ..one.clone()
    };
    let p1 = plan_engine(&b, &gguf, &hp, &one).unwrap();
    let p4 = plan_engine(&b, &gguf, &hp, &four).unwrap();
    // Decoding 4 sequences adds 3 rows of logits and 3 sequences of batch bookkeeping; every
    // other compute buffer is sized by the 512-row prefill class, which already covers 4
    // decode rows.
    let extra = role(&p4, Role::Compute) - role(&p1, Role::Compute);
    let seqs = p4.get("host.seqs").unwrap().bytes - p1.get("host.seqs").unwrap().bytes;
    assert_eq!(extra, 3 * hp.n_vocab as u64 * 4 + seqs);
    assert!(seqs <= 3 * 16);
    // Activations are sized for 512 rows, not 512 + 4.
    assert_eq!(p4.get("act.x").unwrap().bytes, 512 * hp.n_embd as u64 * 4);
}
