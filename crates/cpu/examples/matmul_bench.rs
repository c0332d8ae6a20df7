//! Decode-shape matvec timing: GB/s of weight bytes read per second (and GFLOP/s, which is the
//! number that matters for prefill shapes, `--tokens N`), per weight type, kernel path and
//! thread count, plus the thread pool's dispatch latency. Each configuration reports its
//! fastest call (shared machines only ever add noise upward) and the median. With one thread
//! it also reports the calling thread's CPU time per call over the whole budget
//! (`/proc/thread-self/schedstat`, tick-based on some kernels, hence the long average), which
//! other processes on a loaded machine barely disturb.
//!
//! cargo run --release -p cpu --example matmul_bench -- [-t 1,2] [--paths scalar,avx2]
//!     [--types q4_0,q4_K] [--shapes 576x576,4096x4096] [--ms 300] [--tokens 1]

use std::time::{Duration, Instant};

use cpu::{Cpu, CpuConfig, KernelPath, WeightView};
use formats::GgmlType;

struct Args {
    threads: Vec<usize>,
    paths: Vec<KernelPath>,
    types: Vec<GgmlType>,
    shapes: Vec<(usize, usize)>,
    budget: Duration,
    tokens: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        threads: vec![1, 2],
        paths: [KernelPath::Scalar, KernelPath::Avx2, KernelPath::Avx512]
            .into_iter()
            .filter(|p| p.is_supported())
            .collect(),
        types: cpu::MATMUL_TYPES.to_vec(),
        shapes: vec![(576, 576), (1536, 576), (49152, 576), (4096, 4096)],
        budget: Duration::from_millis(300),
        tokens: 1,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let list = |s: &str| s.split(',').map(str::to_string).collect::<Vec<_>>();
    let mut i = 0;
    while i < args.len() {
        let v = args
            .get(i + 1)
            .ok_or(format!("{} needs a value", args[i]))?;
        match args[i].as_str() {
            "-t" => {
                a.threads = list(v)
                    .iter()
                    .map(|s| s.parse().map_err(|_| format!("bad thread count {s}")))
                    .collect::<Result<_, _>>()?
            }
            "--paths" => {
                a.paths = list(v)
                    .iter()
                    .map(|s| KernelPath::from_name(s).ok_or(format!("unknown path {s}")))
                    .collect::<Result<_, _>>()?
            }
            "--types" => {
                a.types = list(v)
                    .iter()
                    .map(|s| GgmlType::from_name(s).ok_or(format!("unknown type {s}")))
                    .collect::<Result<_, _>>()?
            }
            "--shapes" => {
                a.shapes = list(v)
                    .iter()
                    .map(|s| {
                        let (r, c) = s.split_once('x').ok_or(format!("bad shape {s}"))?;
                        Ok((
                            r.parse().map_err(|_| s.clone())?,
                            c.parse().map_err(|_| s.clone())?,
                        ))
                    })
                    .collect::<Result<_, String>>()?
            }
            "--ms" => a.budget = Duration::from_millis(v.parse().map_err(|_| "bad --ms")?),
            "--tokens" => a.tokens = v.parse().map_err(|_| "bad --tokens")?,
            other => return Err(format!("unknown argument {other}")),
        }
        i += 2;
    }
    Ok(a)
}

/// Weight bytes with valid, moderate scales (timing does not depend on the values, but NaN or
/// subnormal floats could).
fn weights(ty: GgmlType, rows: usize, cols: usize) -> Vec<u8> {
    let n = rows * cols;
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let vals: Vec<f32> = (0..n.min(1 << 20))
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect();
    let block_vals = vals.len() / cols * cols;
    let chunk_bytes = ty.bytes_for(block_vals as u64).unwrap() as usize;
    let mut chunk = vec![0u8; chunk_bytes];
    formats::quantize(ty, &vals[..block_vals], &mut chunk).expect("quantize");
    let total = ty.bytes_for(n as u64).unwrap() as usize;
    chunk.iter().copied().cycle().take(total).collect()
}

/// Nanoseconds the calling thread has run on a CPU (Linux), if readable.
fn thread_cpu_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    stat.split_whitespace().next()?.parse().ok()
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("matmul_bench: {e}");
            std::process::exit(2);
        }
    };
    println!(
        "CPU: {} | detected path {} | tokens per call {}",
        cpu_name(),
        KernelPath::detect(),
        args.tokens
    );
    for &t in &args.threads {
        let cpu = Cpu::new(&CpuConfig {
            n_threads: t,
            kernel_path: Some(KernelPath::Scalar),
        })
        .expect("cpu");
        let n = 20000;
        let start = Instant::now();
        for _ in 0..n {
            cpu.pool().run(|_, _| {});
        }
        println!(
            "pool dispatch, {t} threads: {:.2} us per empty run",
            start.elapsed().as_secs_f64() * 1e6 / n as f64
        );
    }
    println!(
        "{:>12} {:>7} {:>7} {:>3} {:>8} {:>9} {:>9} {:>9} {:>8} {:>8}",
        "shape", "type", "path", "t", "MB", "best us", "median us", "cpu us", "GB/s", "GFLOP/s"
    );
    for &(rows, cols) in &args.shapes {
        for &ty in &args.types {
            if cols % ty.block_size() != 0 {
                continue;
            }
            let w = weights(ty, rows, cols);
            let view = WeightView {
                ty,
                bytes: &w,
                rows,
                cols,
            };
            let x: Vec<f32> = (0..cols * args.tokens)
                .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
                .collect();
            let mut out = vec![0f32; rows * args.tokens];
            let mut scratch = vec![0u8; cpu::matmul_scratch_bytes(ty, cols, args.tokens)];
            for &path in &args.paths {
                for &t in &args.threads {
                    let cpu = match Cpu::new(&CpuConfig {
                        n_threads: t,
                        kernel_path: Some(path),
                    }) {
                        Ok(c) => c,
                        Err(e) => {
                            println!("{path}: {e}");
                            continue;
                        }
                    };
                    let mut run = || {
                        cpu::matmul(&cpu, &view, &x, args.tokens, &mut out, &mut scratch)
                            .expect("matmul")
                    };
                    run();
                    let mut times = Vec::new();
                    let start = Instant::now();
                    let cpu0 = thread_cpu_ns();
                    while start.elapsed() < args.budget || times.len() < 3 {
                        let t0 = Instant::now();
                        run();
                        times.push(t0.elapsed().as_secs_f64());
                    }
                    let cpu_per_call = match (t, cpu0, thread_cpu_ns()) {
                        (1, Some(a), Some(b)) => (b - a) as f64 * 1e-3 / times.len() as f64,
                        _ => f64::NAN,
                    };
                    times.sort_by(|a, b| a.total_cmp(b));
                    let (best, med) = (times[0], times[times.len() / 2]);
                    let flops = 2.0 * rows as f64 * cols as f64 * args.tokens as f64;
                    println!(
                        "{:>12} {:>7} {:>7} {:>3} {:>8.2} {:>9.1} {:>9.1} {:>9.1} {:>8.2} {:>8.1}",
                        format!("{rows}x{cols}"),
                        ty.name(),
                        path.name(),
                        t,
                        w.len() as f64 / 1e6,
                        best * 1e6,
                        med * 1e6,
                        cpu_per_call,
                        w.len() as f64 / best / 1e9,
                        flops / best / 1e9
                    );
                }
            }
        }
    }
}

fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}
