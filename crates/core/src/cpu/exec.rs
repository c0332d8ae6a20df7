//! Runs the KV cache's attention work items on the CPU kernels' thread pool, so one pool (one
//! set of spinning workers) serves every op.

use std::sync::atomic::{AtomicUsize, Ordering};

use cpu::ThreadPool;
use kvcache::Executor;

pub struct PoolExecutor<'a>(pub &'a ThreadPool);

// SAFETY: `ThreadPool::run` calls the closure once per thread with a distinct `idx` below
// `n_threads()` and returns after all calls returned; each thread pulls items from a shared
// counter, so every item runs exactly once, and a worker index is used by one thread at a time.
// When `run` falls back to one inline call (nested or one thread) there is one worker, 0.
unsafe impl Executor for PoolExecutor<'_> {
    fn n_workers(&self) -> usize {
        self.0.n_threads()
    }

    fn run(&self, n_items: usize, f: &(dyn Fn(usize, usize) + Sync)) {
        if n_items == 0 {
            return;
        }
        let next = AtomicUsize::new(0);
        self.0.run(|idx, _n| loop {
            let item = next.fetch_add(1, Ordering::Relaxed);
            if item >= n_items {
                break;
            }
            f(item, idx);
        });
    }
}
