//! Runs the KV cache's attention work items on the CPU kernels' thread pool, so one pool (one
//! set of spinning workers) serves every op.

use std::sync::atomic::{AtomicUsize, Ordering};

use cpu::ThreadPool;
use kvcache::Executor;

pub struct PoolExecutor<'a>(pub &'a ThreadPool);

// SAFETY: `ThreadPool::run_dynamic` calls the closure at most once per thread, always on the
// caller (index 0), each call with a distinct `idx` below `n_threads()`, and returns after all
// calls returned; each call pulls items from a shared counter until none is left, so every
// item runs exactly once (the caller's call alone drains it if no worker joins), and a worker
// index is used by one thread at a time. Nested or on one thread there is one call, index 0.
unsafe impl Executor for PoolExecutor<'_> {
    fn n_workers(&self) -> usize {
        self.0.n_threads()
    }

    fn run(&self, n_items: usize, f: &(dyn Fn(usize, usize) + Sync)) {
        if n_items == 0 {
            return;
        }
        let next = AtomicUsize::new(0);
        self.0.run_dynamic(|idx| loop {
            let item = next.fetch_add(1, Ordering::Relaxed);
            if item >= n_items {
                break;
            }
            f(item, idx);
        });
    }
}
