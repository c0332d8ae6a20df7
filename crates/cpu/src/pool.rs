//! A persistent thread pool with scoped, low-latency parallel-for.
//!
//! Decode calls the pool hundreds of times per token, each job lasting tens of microseconds, so
//! starting threads (or going through a general work-stealing scheduler) per call costs too
//! much. The pool keeps `n_threads - 1` workers; the calling thread is worker 0. A job is
//! published by writing it into a shared slot and bumping an epoch counter. Idle workers spin on
//! the epoch for a short while (so back-to-back jobs start within a few hundred nanoseconds)
//! and then park on a condition variable (so an idle server burns no CPU).
//!
//! Closures may borrow from the caller's stack: [`ThreadPool::run`] does not return, not even by
//! unwinding, until every worker has finished with the closure. That is the whole soundness
//! argument for erasing the closure's lifetime, and it lives in [`WaitGuard`].

use std::cell::{Cell, UnsafeCell};
use std::marker::PhantomData;
use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::CpuError;

/// How long an idle worker spins before it parks. Long enough to bridge the gap between two
/// ops of one decode step, short enough that an idle pool stops using CPU almost at once.
const SPIN_BEFORE_PARK: Duration = Duration::from_micros(300);

thread_local! {
    /// True on pool workers and on a caller while it is inside `run`: a nested `run` then runs
    /// the closure inline instead of deadlocking on the pool.
    static INSIDE_POOL: Cell<bool> = const { Cell::new(false) };
}

/// A type-erased reference to the closure of the current job.
#[derive(Clone, Copy)]
struct JobRef {
    data: *const (),
    call: unsafe fn(*const (), usize, usize),
}

/// Calls the closure behind `data` (which must point to a live `F`).
unsafe fn call_job<F: Fn(usize, usize) + Sync>(data: *const (), idx: usize, n: usize) {
    // SAFETY: `run` stores a pointer to its `F` here and keeps it alive until all workers
    // have returned from this call (see `WaitGuard`).
    let f = unsafe { &*(data as *const F) };
    f(idx, n)
}

struct Shared {
    n_threads: usize,
    /// Incremented once per job; workers run a job when they see a new value.
    epoch: AtomicUsize,
    /// The current job. Written by `run` only while no worker is reading it (before the epoch
    /// bump, after `remaining` reached zero).
    job: UnsafeCell<Option<JobRef>>,
    /// Workers that have not yet finished the current job.
    remaining: AtomicUsize,
    worker_panicked: AtomicBool,
    shutdown: AtomicBool,
    sleepers: AtomicUsize,
    sleep_lock: Mutex<()>,
    wake: Condvar,
}

// SAFETY: the only non-Sync field is `job`, and access to it is ordered by the epoch/remaining
// protocol described on the field: one writer while no reader exists, readers only after an
// acquire load of the epoch that the writer released.
unsafe impl Sync for Shared {}
// SAFETY: `JobRef` holds a pointer to a `Sync` closure that outlives every use (see above).
unsafe impl Send for Shared {}

impl Shared {
    /// Waits (spin, then park) until the epoch differs from `seen`; returns the new epoch.
    fn wait_new_epoch(&self, seen: usize) -> usize {
        let start = Instant::now();
        let mut spins = 0u32;
        loop {
            let e = self.epoch.load(Ordering::Acquire);
            if e != seen {
                return e;
            }
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(64) && start.elapsed() > SPIN_BEFORE_PARK {
                break;
            }
        }
        let mut guard = self.sleep_lock.lock().unwrap_or_else(|p| p.into_inner());
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        loop {
            let e = self.epoch.load(Ordering::SeqCst);
            if e != seen {
                self.sleepers.fetch_sub(1, Ordering::SeqCst);
                return e;
            }
            guard = self.wake.wait(guard).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn worker_loop(&self, idx: usize) {
        INSIDE_POOL.with(|c| c.set(true));
        let mut seen = 0usize;
        loop {
            seen = self.wait_new_epoch(seen);
            if self.shutdown.load(Ordering::Acquire) {
                return;
            }
            // SAFETY: the epoch we acquired was released by `run` after it wrote `job`, and
            // `run` will not write it again before we decrement `remaining` below.
            let job = unsafe { *self.job.get() };
            if let Some(job) = job {
                // SAFETY: `job.data` points to the live closure `job.call` was made for.
                let result = catch_unwind(AssertUnwindSafe(|| unsafe {
                    (job.call)(job.data, idx, self.n_threads)
                }));
                if result.is_err() {
                    self.worker_panicked.store(true, Ordering::Release);
                }
            }
            self.remaining.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Blocks until every worker has finished the current job, also while unwinding from a panic
/// in the caller's own share of the work: the closure must outlive all uses.
struct WaitGuard<'a>(&'a Shared);

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        let mut spins = 0u32;
        while self.0.remaining.load(Ordering::Acquire) != 0 {
            spins = spins.wrapping_add(1);
            if spins < 4096 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }
}

/// A persistent pool of `n_threads` threads (the caller counts as one).
pub struct ThreadPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    /// Serializes `run` calls from different threads sharing the pool.
    run_lock: Mutex<()>,
}

impl ThreadPool {
    /// Starts `n_threads - 1` workers (`n_threads` of 0 is treated as 1).
    pub fn new(n_threads: usize) -> Result<ThreadPool, CpuError> {
        let n_threads = n_threads.max(1);
        let shared = Arc::new(Shared {
            n_threads,
            epoch: AtomicUsize::new(0),
            job: UnsafeCell::new(None),
            remaining: AtomicUsize::new(0),
            worker_panicked: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            sleep_lock: Mutex::new(()),
            wake: Condvar::new(),
        });
        let mut pool = ThreadPool {
            shared: shared.clone(),
            workers: Vec::with_capacity(n_threads - 1),
            run_lock: Mutex::new(()),
        };
        for idx in 1..n_threads {
            let s = shared.clone();
            let handle = std::thread::Builder::new()
                .name(format!("turbine-cpu-{idx}"))
                .spawn(move || s.worker_loop(idx))
                .map_err(|e| CpuError::ThreadSpawn {
                    index: idx,
                    reason: e.to_string(),
                })?;
            // On error above, `pool` drops and shuts down the workers started so far.
            pool.workers.push(handle);
        }
        Ok(pool)
    }

    /// Number of threads a job is split over (workers plus the caller).
    pub fn n_threads(&self) -> usize {
        self.shared.n_threads
    }

    /// Calls `f(thread_idx, n_threads)` once on every thread, `thread_idx` in `0..n_threads`,
    /// and returns when all calls have returned. `f` may borrow local data.
    ///
    /// Called from inside a job (nested), or on a one-thread pool, it runs `f(0, 1)` inline, so
    /// closures must split their work by the `n_threads` they are given, not by
    /// [`ThreadPool::n_threads`]. A panic in any call is re-raised here after all calls ended.
    pub fn run<F: Fn(usize, usize) + Sync>(&self, f: F) {
        let n = self.shared.n_threads;
        if n == 1 || INSIDE_POOL.with(|c| c.get()) {
            f(0, 1);
            return;
        }
        let _serial = self.run_lock.lock().unwrap_or_else(|p| p.into_inner());
        let s = &*self.shared;
        // SAFETY: no worker reads `job` now: the previous `run` waited for `remaining == 0`
        // (acquire), and workers only read it after seeing the epoch bump below.
        unsafe {
            *s.job.get() = Some(JobRef {
                data: &f as *const F as *const (),
                call: call_job::<F>,
            });
        }
        s.worker_panicked.store(false, Ordering::Relaxed);
        s.remaining.store(n - 1, Ordering::Relaxed);
        // From here until `guard` is dropped, workers may call `f`.
        let guard = WaitGuard(s);
        s.epoch.fetch_add(1, Ordering::SeqCst);
        if s.sleepers.load(Ordering::SeqCst) > 0 {
            let _l = s.sleep_lock.lock().unwrap_or_else(|p| p.into_inner());
            s.wake.notify_all();
        }
        INSIDE_POOL.with(|c| c.set(true));
        let mine = catch_unwind(AssertUnwindSafe(|| f(0, n)));
        INSIDE_POOL.with(|c| c.set(false));
        drop(guard);
        if let Err(payload) = mine {
            std::panic::resume_unwind(payload);
        }
        if s.worker_panicked.load(Ordering::Acquire) {
            panic!("thread pool: a worker panicked while running a job");
        }
    }

    /// Splits the columns of a row-major matrix `out` (`out.len() / row_len` rows of `row_len`)
    /// into one contiguous column range per thread (boundaries multiples of `align`) and calls
    /// `f(cols, &mut part)` on each thread, where `part` gives that thread exclusive access to
    /// its columns of every row. Threads with an empty range are not called.
    ///
    /// Matmul uses it to split weight rows over threads while every token's output row is
    /// written by all threads.
    pub fn run_columns<T, F>(&self, out: &mut [T], row_len: usize, align: usize, f: F)
    where
        T: Send,
        F: Fn(Range<usize>, &mut ColumnPart<'_, T>) + Sync,
    {
        assert!(
            row_len > 0 && out.len().is_multiple_of(row_len),
            "run_columns: bad row length"
        );
        let n_rows = out.len() / row_len;
        let base = SendPtr(out.as_mut_ptr());
        self.run(|idx, n| {
            let cols = split_range(row_len, idx, n, align);
            if cols.is_empty() {
                return;
            }
            let mut part = ColumnPart {
                base: base.get(),
                row_len,
                n_rows,
                cols: cols.clone(),
                _borrow: PhantomData,
            };
            f(cols, &mut part);
        });
    }

    /// Splits `out` into `out.len() / chunk` chunks, gives each thread a contiguous run of
    /// whole chunks, and calls `f(first_chunk_index, run)` on each thread with a non-empty run.
    pub fn run_chunks<T, F>(&self, out: &mut [T], chunk: usize, f: F)
    where
        T: Send,
        F: Fn(usize, &mut [T]) + Sync,
    {
        assert!(
            chunk > 0 && out.len().is_multiple_of(chunk),
            "run_chunks: bad chunk length"
        );
        if out.is_empty() {
            return;
        }
        let n_chunks = out.len() / chunk;
        self.run_columns(out, n_chunks * chunk, chunk, |cols, part| {
            f(cols.start / chunk, part.row_mut(0));
        });
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        let s = &*self.shared;
        s.shutdown.store(true, Ordering::Release);
        s.epoch.fetch_add(1, Ordering::SeqCst);
        {
            let _l = s.sleep_lock.lock().unwrap_or_else(|p| p.into_inner());
            s.wake.notify_all();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

struct SendPtr<T>(*mut T);

impl<T> Clone for SendPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// A method (not field access) so closures capture the whole `Sync` wrapper.
    fn get(self) -> *mut T {
        self.0
    }
}
// SAFETY: used only to hand the base pointer of a `&mut [T]` (T: Send) to the threads of one
// `run`, each of which touches a disjoint set of elements (see `ColumnPart`).
unsafe impl<T: Send> Send for SendPtr<T> {}
// SAFETY: as above; the pointer itself is only copied, never used to create overlapping borrows.
unsafe impl<T: Send> Sync for SendPtr<T> {}

/// One thread's columns of a row-major matrix borrowed mutably by [`ThreadPool::run_columns`].
pub struct ColumnPart<'a, T> {
    base: *mut T,
    row_len: usize,
    n_rows: usize,
    cols: Range<usize>,
    _borrow: PhantomData<&'a mut [T]>,
}

impl<T> ColumnPart<'_, T> {
    /// This thread's columns.
    pub fn cols(&self) -> Range<usize> {
        self.cols.clone()
    }

    /// Number of rows of the whole matrix.
    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    /// This thread's columns of row `row` (panics if `row >= n_rows`).
    pub fn row_mut(&mut self, row: usize) -> &mut [T] {
        assert!(
            row < self.n_rows,
            "ColumnPart: row {row} out of {}",
            self.n_rows
        );
        // SAFETY: `base` is the start of a live `&mut [T]` of `n_rows * row_len` elements
        // borrowed for `'a`; `row * row_len + cols` lies inside it. Column ranges of different
        // threads are disjoint (`split_range`), and this `&mut self` borrow prevents two live
        // slices from the same part, so no element is reachable through two references.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.base.add(row * self.row_len + self.cols.start),
                self.cols.len(),
            )
        }
    }
}

/// The `idx`-th of `n` contiguous, nearly equal parts of `0..len`, boundaries rounded to
/// multiples of `align` (the last part takes the remainder).
pub fn split_range(len: usize, idx: usize, n: usize, align: usize) -> Range<usize> {
    let align = align.max(1);
    let units = len.div_ceil(align);
    let n = n.max(1);
    let start = (units * idx / n * align).min(len);
    let end = (units * (idx + 1) / n * align).min(len);
    start..end
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn split_range_covers_everything_once() {
        for len in [0, 1, 5, 16, 17, 100, 576, 1000] {
            for n in 1..6 {
                for align in [1, 4, 16] {
                    let mut next = 0;
                    for i in 0..n {
                        let r = split_range(len, i, n, align);
                        assert_eq!(r.start, next, "len {len} n {n} align {align}");
                        assert!(r.end >= r.start);
                        if r.end != len {
                            assert_eq!(r.end % align, 0);
                        }
                        next = r.end;
                    }
                    assert_eq!(next, len);
                }
            }
        }
    }

    #[test]
    fn run_calls_every_thread_once_and_borrows_locals() {
        for n in 1..5 {
            let pool = ThreadPool::new(n).unwrap();
            let hits: Vec<AtomicU64> = (0..n).map(|_| AtomicU64::new(0)).collect();
            for _ in 0..200 {
                pool.run(|i, nt| {
                    assert_eq!(nt, n);
                    hits[i].fetch_add(1, Ordering::Relaxed);
                });
            }
            for h in &hits {
                assert_eq!(h.load(Ordering::Relaxed), 200);
            }
        }
    }

    #[test]
    fn run_columns_writes_disjoint_parts() {
        let pool = ThreadPool::new(3).unwrap();
        let rows = 5;
        let cols = 37;
        let mut out = vec![0u32; rows * cols];
        pool.run_columns(&mut out, cols, 4, |range, part| {
            for r in 0..part.n_rows() {
                let row = part.row_mut(r);
                for (k, v) in row.iter_mut().enumerate() {
                    *v += (r * cols + range.start + k) as u32;
                }
            }
        });
        for (i, v) in out.iter().enumerate() {
            assert_eq!(*v, i as u32);
        }
        let mut flat = vec![0usize; 40];
        pool.run_chunks(&mut flat, 8, |first, run| {
            for (k, v) in run.iter_mut().enumerate() {
                *v = first * 8 + k;
            }
        });
        assert!(flat.iter().enumerate().all(|(i, v)| i == *v));
    }

    #[test]
    fn nested_run_is_inline() {
        let pool = ThreadPool::new(2).unwrap();
        let count = AtomicU64::new(0);
        pool.run(|_, _| {
            pool.run(|i, n| {
                assert_eq!((i, n), (0, 1));
                count.fetch_add(1, Ordering::Relaxed);
            });
        });
        assert_eq!(count.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn worker_panic_is_reraised_and_pool_survives() {
        let pool = ThreadPool::new(2).unwrap();
        let r = catch_unwind(AssertUnwindSafe(|| {
            pool.run(|i, _| {
                if i == 1 {
                    panic!("boom");
                }
            })
        }));
        assert!(r.is_err());
        let r = catch_unwind(AssertUnwindSafe(|| {
            pool.run(|i, _| {
                if i == 0 {
                    panic!("boom on caller");
                }
            })
        }));
        assert!(r.is_err());
        let count = AtomicU64::new(0);
        pool.run(|_, _| {
            count.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(count.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn parked_workers_wake_up() {
        let pool = ThreadPool::new(2).unwrap();
        std::thread::sleep(SPIN_BEFORE_PARK * 10);
        let count = AtomicU64::new(0);
        pool.run(|_, _| {
            count.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(count.load(Ordering::Relaxed), 2);
    }
}
