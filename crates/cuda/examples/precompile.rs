//! Fills a kernel cache directory with the cubins of every module and every (K, V) attention
//! pair for one architecture, so a machine with the same NVRTC version starts without
//! compiling. Needs libnvrtc only (no GPU).
//!
//! `cargo run --release -p turbine-cuda --example precompile -- DIR [MAJOR MINOR]` (default 9 0).

use std::path::PathBuf;

use turbine_cuda::compile::{self, ATTENTION, PLAIN_MODULES};
use turbine_cuda::kv::KV_TYPES;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(dir) = args.first().map(PathBuf::from) else {
        eprintln!("usage: precompile DIR [MAJOR MINOR]");
        std::process::exit(2);
    };
    let arch = (
        args.get(1).and_then(|a| a.parse().ok()).unwrap_or(9),
        args.get(2).and_then(|a| a.parse().ok()).unwrap_or(0),
    );
    if !compile::nvrtc_present() {
        eprintln!("libnvrtc not found");
        std::process::exit(1);
    }
    let mut jobs: Vec<Vec<(&str, String)>> = Vec::new();
    for &k in &KV_TYPES {
        for &v in &KV_TYPES {
            jobs.push(vec![("KT", k.id().to_string()), ("VT", v.id().to_string())]);
        }
    }
    for m in PLAIN_MODULES {
        if let Err(e) = compile::cubin_cached(Some(&dir), &m, &[], arch) {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = jobs.len().div_ceil(threads);
    let failed = std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .chunks(chunk)
            .map(|part| {
                let dir = dir.clone();
                s.spawn(move || {
                    part.iter()
                        .filter(|d| {
                            compile::cubin_cached(Some(&dir), &ATTENTION, d, arch)
                                .map_err(|e| eprintln!("{e}"))
                                .is_err()
                        })
                        .count()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(1))
            .sum::<usize>()
    });
    println!(
        "{} modules + {} attention pairs for sm_{}{} in {}, {failed} failed",
        PLAIN_MODULES.len(),
        jobs.len(),
        arch.0,
        arch.1,
        dir.display()
    );
    if failed > 0 {
        std::process::exit(1);
    }
}
