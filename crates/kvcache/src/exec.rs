//! The parallel-for the attention kernel runs on, supplied by the caller.
//!
//! The kernel splits its work into independent items and runs each one single-threaded, so any
//! thread pool can drive it: the CPU backend's own pool, rayon, or none. Each item is told which
//! worker runs it, so it can use that worker's slice of the caller's workspace without locks.

/// Runs numbered work items, possibly in parallel.
///
/// # Safety
///
/// Callers hand each worker index its own slice of a shared buffer, trusting that:
/// - `run(n, f)` calls `f(item, worker)` exactly once for every `item` in `0..n`, and returns
///   only after every call has returned;
/// - every `worker` is `< self.n_workers()`;
/// - no two calls with the same `worker` run at the same time.
pub unsafe trait Executor: Sync {
    /// Upper bound (exclusive) of the worker indices `run` passes.
    fn n_workers(&self) -> usize;

    /// Calls `f(item, worker)` for every item in `0..n_items`.
    fn run(&self, n_items: usize, f: &(dyn Fn(usize, usize) + Sync));
}

/// Runs every item on the calling thread, in order, as worker 0.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sequential;

// SAFETY: one worker, items run one after another on the caller's thread.
unsafe impl Executor for Sequential {
    fn n_workers(&self) -> usize {
        1
    }

    fn run(&self, n_items: usize, f: &(dyn Fn(usize, usize) + Sync)) {
        for item in 0..n_items {
            f(item, 0);
        }
    }
}

/// Runs items on a rayon thread pool; the worker index is the pool thread's index.
pub struct RayonExecutor<'a> {
    pool: &'a rayon::ThreadPool,
}

impl<'a> RayonExecutor<'a> {
    pub fn new(pool: &'a rayon::ThreadPool) -> RayonExecutor<'a> {
        RayonExecutor { pool }
    }
}

// SAFETY: `install` runs the parallel iterator entirely on the pool's threads and returns when
// it is done; a pool thread runs one closure at a time, and its index is unique in the pool and
// below `current_num_threads()`.
unsafe impl Executor for RayonExecutor<'_> {
    fn n_workers(&self) -> usize {
        self.pool.current_num_threads()
    }

    fn run(&self, n_items: usize, f: &(dyn Fn(usize, usize) + Sync)) {
        use rayon::prelude::*;
        self.pool.install(|| {
            (0..n_items).into_par_iter().for_each(|item| {
                // Inside `install` every closure runs on a thread of this pool.
                let worker =
                    rayon::current_thread_index().expect("rayon closure running outside its pool");
                f(item, worker);
            })
        });
    }
}
