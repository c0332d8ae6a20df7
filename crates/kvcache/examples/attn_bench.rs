//! Times the attention kernel per K/V type pair, single-threaded or on a rayon pool.
//!
//! `cargo run --release -p kvcache --example attn_bench -- [threads] [head_dim] [ctx]`
//!
//! Decode: one query row at position ctx−1 (all heads); prefill: 512 causal rows ending at
//! ctx−1. GB/s counts the K and V bytes of the pages read once per KV head (what a decode
//! step must stream from memory). With one thread the times are this thread's on-CPU time, so
//! other load on the machine does not inflate them; with several, the fastest repetition's
//! wall time (load only slows a repetition down; decode runs 20, prefill one).
//! An optional fourth argument keeps only pairs with that type name (`all` for every pair, `K/V`
//! for one pair), a
//! fifth sets the heads (`9/3`: 9 query heads, 3 KV heads), a sixth `decode` skips prefill. "write us/tok" is the
//! time to quantize and store one token's K and V rows (one layer), in batches of 512.

use std::time::Instant;

use kvcache::{
    attention_workspace_floats, AttentionInput, AttentionShape, Executor, KvCache, KvConfig,
    KvType, LayerKind, RayonExecutor, Sequential, TokenPos,
};

/// Nanoseconds this thread has spent on a CPU: with other processes competing for the cores,
/// this, not the wall clock, measures the kernel.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec we pass.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn main() {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let filter = raw.get(3).cloned();
    let args: Vec<usize> = raw
        .iter()
        .take(3)
        .map(|a| a.parse().expect("numeric arguments"))
        .collect();
    let threads = args.first().copied().unwrap_or(1);
    let head_dim = args.get(1).copied().unwrap_or(64);
    let ctx = args.get(2).copied().unwrap_or(4096);
    // Fifth argument `H/KV` (e.g. `9/3` for SmolLM2): query and KV heads; sixth `decode`:
    // time decode only (for instruction counts under callgrind).
    let (n_heads, nkv) = raw
        .get(4)
        .and_then(|s| s.split_once('/'))
        .map(|(h, kv)| (h.parse().expect("heads"), kv.parse().expect("KV heads")))
        .unwrap_or((16, 2));
    let decode_only = raw.get(5).is_some_and(|s| s == "decode");
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool");
    let rayon_exec = RayonExecutor::new(&pool);
    let exec: &dyn Executor = if threads == 1 {
        &Sequential
    } else {
        &rayon_exec
    };
    println!("threads {threads}, {n_heads} heads / {nkv} KV heads of {head_dim}, context {ctx}");
    println!(
        "{:>7} {:>7} | {:>10} {:>8} | {:>12} {:>10} | {:>12}",
        "K", "V", "decode us", "GB/s", "prefill ms", "rows/s", "write us/tok"
    );
    let pairs = [
        (KvType::F32, KvType::F32),
        (KvType::F16, KvType::F16),
        (KvType::Bf16, KvType::Bf16),
        (KvType::Q8_0, KvType::Q8_0),
        (KvType::Q4_0, KvType::Q4_0),
        (KvType::Q5_1, KvType::Q5_1),
        (KvType::Iq4Nl, KvType::Iq4Nl),
        (KvType::Q8_0, KvType::Turbo4),
        (KvType::Turbo4, KvType::Turbo4),
        (KvType::Turbo3, KvType::Turbo3),
        (KvType::Turbo2, KvType::Turbo2),
    ];
    for (k, v) in pairs {
        if let Some(f) = &filter {
            let keep = match f.split_once('/') {
                // `K/V`: exactly that pair.
                Some((fk, fv)) => k.name() == fk && v.name() == fv,
                None => f == "all" || k.name() == f || v.name() == f,
            };
            if !keep {
                continue;
            }
        }
        let cfg = KvConfig {
            layers: vec![LayerKind::Full],
            n_kv_heads: nkv,
            head_dim_k: head_dim,
            head_dim_v: head_dim,
            k_type: k,
            v_type: v,
            page_size: 256,
            n_pages: ctx.div_ceil(256),
            max_seqs: 1,
            pack_turbo_heads: true,
            center_turbo_keys: true,
        };
        let mut cache = KvCache::new(&cfg).expect("cache");
        cache.reserve(0, ctx).expect("reserve");
        let mut state = 1u64;
        let mut rnd = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        };
        let mut write_secs = 0.0;
        for start in (0..ctx).step_by(512) {
            let end = (start + 512).min(ctx);
            let tokens: Vec<TokenPos> = (start..end).map(|pos| TokenPos { seq: 0, pos }).collect();
            let kv: Vec<f32> = (0..tokens.len() * nkv * head_dim).map(|_| rnd()).collect();
            let (t, c) = (Instant::now(), thread_cpu_ns());
            cache.write_with(0, &tokens, &kv, &kv, exec).expect("write");
            write_secs += if threads == 1 {
                (thread_cpu_ns() - c) as f64 * 1e-9
            } else {
                t.elapsed().as_secs_f64()
            };
        }
        let write_us_per_token = write_secs * 1e6 / ctx as f64;
        let kv_bytes =
            cache.layout().data_bytes as f64 * ctx as f64 / (cfg.n_pages * cfg.page_size) as f64;

        let run = |rows: usize, reps: usize| -> f64 {
            let tokens: Vec<TokenPos> = (ctx - rows..ctx)
                .map(|pos| TokenPos { seq: 0, pos })
                .collect();
            let q: Vec<f32> = (0..rows * n_heads * head_dim)
                .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
                .collect();
            let mut out = vec![0.0f32; rows * n_heads * head_dim];
            let shape = AttentionShape::for_layout(cache.layout(), n_heads, rows, exec.n_workers());
            let mut ws = vec![0.0f32; attention_workspace_floats(&shape).expect("ws")];
            let input = AttentionInput {
                layer: 0,
                tokens: &tokens,
                q: &q,
                n_heads,
                scale: 0.125,
            };
            cache
                .attend(&input, &mut out, exec, &mut ws)
                .expect("attend");
            let c = thread_cpu_ns();
            let mut fastest = f64::INFINITY;
            for _ in 0..reps {
                let t = Instant::now();
                cache
                    .attend(&input, &mut out, exec, &mut ws)
                    .expect("attend");
                fastest = fastest.min(t.elapsed().as_secs_f64());
            }
            let cpu = (thread_cpu_ns() - c) as f64 * 1e-9;
            // Single-threaded: on-CPU time of this thread (mean); otherwise the fastest wall
            // time (other load only ever slows a repetition down).
            if threads == 1 && cpu > 0.0 {
                cpu / reps as f64
            } else {
                fastest
            }
        };
        let decode = run(1, 20);
        let prefill_rows = 512.min(ctx);
        let prefill = if decode_only {
            f64::NAN
        } else {
            run(prefill_rows, 1)
        };
        println!(
            "{:>7} {:>7} | {:>10.1} {:>8.2} | {:>12.1} {:>10.0} | {:>12.2}",
            k.name(),
            v.name(),
            decode * 1e6,
            kv_bytes / decode / 1e9,
            prefill * 1e3,
            prefill_rows as f64 / prefill,
            write_us_per_token
        );
    }
}
