//! A persistent thread pool with scoped, low-latency parallel-for.
//!
//! Decode calls the pool hundreds of times per token, each job lasting tens of microseconds, so
//! starting threads (or going through a general work-stealing scheduler) per call costs too
//! much. The pool keeps `n_threads - 1` workers; the calling thread is worker 0. A job is
//! published by writing it into a shared slot and then the job's epoch (with an "open" bit)
//! into one atomic state word. Idle workers spin on that word for a short while (so
//! back-to-back jobs start within a few hundred nanoseconds), yielding the CPU now and then,
//! and then park on a condition variable (so an idle server burns no CPU).
//!
//! Two kinds of job:
//! - [`ThreadPool::run`]: `f(idx, n)` runs exactly once on every thread (static splits).
//! - [`ThreadPool::run_dynamic`] (and [`ThreadPool::run_columns`] / [`ThreadPool::run_chunks`]
//!   built on it): the threads claim pieces of work from a shared counter, and when the
//!   caller has run out of pieces it *closes* the job: a worker that has not joined by then
//!   never does. On a loaded machine (more runnable threads than cores) a worker may not get
//!   a core for milliseconds; the caller then does all the work itself instead of waiting,
//!   so `-t 2` degrades towards `-t 1` speed instead of collapsing.
//!
//! Closures may borrow from the caller's stack: a run does not return, not even by unwinding,
//! until no worker can touch the closure any more (every worker that joined has left). That
//! is the whole soundness argument for erasing the closure's lifetime, and it lives in
//! [`WaitGuard`] and the join protocol of `Shared::worker_loop`.

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
/// ops of one decode step, short enough that an idle pool stops using CPU almost at once and
/// that spinning workers take little from other processes on a busy machine.
const SPIN_BEFORE_PARK: Duration = Duration::from_micros(100);

/// Spin iterations between `yield_now` calls while an idle worker spins: if another thread
/// wants this core (a loaded machine), it gets it instead of watching us spin.
const SPINS_PER_YIELD: u32 = 256;

thread_local! {
    /// True on pool workers and on a caller while it is inside a run: a nested run then runs
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
    // SAFETY: a run stores a pointer to its `F` here and keeps it alive until no worker can
    // call it any more (see `WaitGuard`).
    let f = unsafe { &*(data as *const F) };
    f(idx, n)
}

/// The state word: the job's epoch shifted left by one, low bit set while the job is open.
const OPEN: usize = 1;

struct Shared {
    n_threads: usize,
    /// `epoch << 1 | open`. A new job stores a new epoch with the open bit (after writing
    /// `job`); a dynamic job clears the bit when the caller has run out of work.
    state: AtomicUsize,
    /// The current job. Written by a run only while no worker can read it: before the state
    /// store that publishes it, and after every worker that joined the previous job has left.
    job: UnsafeCell<Option<JobRef>>,
    /// Workers between joining (incremented before checking the state) and leaving.
    inside: AtomicUsize,
    /// Workers that have run the current job (a static run waits for all of them).
    ran: AtomicUsize,
    worker_panicked: AtomicBool,
    shutdown: AtomicBool,
    sleepers: AtomicUsize,
    sleep_lock: Mutex<()>,
    wake: Condvar,
    /// Workers whose thread has started (see [`ThreadPool::new`]).
    started: AtomicUsize,
}

// SAFETY: the only non-Sync field is `job`, and access to it is ordered by the state/inside
// protocol described on the fields: one writer while no reader can exist, readers only after
// a SeqCst load of the state word that the writer stored after writing the slot.
unsafe impl Sync for Shared {}
// SAFETY: `JobRef` holds a pointer to a `Sync` closure that outlives every use (see above).
unsafe impl Send for Shared {}

impl Shared {
    /// Waits (spin with occasional yields, then park) until the epoch differs from `seen`;
    /// returns the new epoch.
    fn wait_new_epoch(&self, seen: usize) -> usize {
        let start = Instant::now();
        let mut spins = 0u32;
        loop {
            let e = self.state.load(Ordering::Acquire) >> 1;
            if e != seen {
                return e;
            }
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(SPINS_PER_YIELD) {
                if start.elapsed() > SPIN_BEFORE_PARK {
                    break;
                }
                std::thread::yield_now();
            }
        }
        let mut guard = self.sleep_lock.lock().unwrap_or_else(|p| p.into_inner());
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        loop {
            let e = self.state.load(Ordering::SeqCst) >> 1;
            if e != seen {
                self.sleepers.fetch_sub(1, Ordering::SeqCst);
                return e;
            }
            guard = self.wake.wait(guard).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn worker_loop(&self, idx: usize) {
        INSIDE_POOL.with(|c| c.set(true));
        self.started.fetch_add(1, Ordering::SeqCst);
        let mut seen = 0usize;
        loop {
            seen = self.wait_new_epoch(seen);
            if self.shutdown.load(Ordering::Acquire) {
                return;
            }
            // Join, then check that the job we woke for is still the current one and open.
            // The caller closes a job and then waits for `inside == 0` (all SeqCst): if we
            // see it open, the caller sees us inside and waits until we leave.
            self.inside.fetch_add(1, Ordering::SeqCst);
            if self.state.load(Ordering::SeqCst) == (seen << 1) | OPEN {
                // SAFETY: the state store we just observed was made after `job` was written,
                // and the slot is not rewritten before we leave (`inside` drops to 0).
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
                self.ran.fetch_add(1, Ordering::AcqRel);
            }
            self.inside.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Spins (with yields after a while) until `done()`.
fn wait_until(done: impl Fn() -> bool) {
    let mut spins = 0u32;
    while !done() {
        spins = spins.wrapping_add(1);
        if spins < 4096 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

/// Ends a run, also while unwinding from a panic in the caller's own share of the work: a
/// static job waits until every worker has run it, a dynamic one is closed to workers that
/// have not joined; then it waits until every worker that joined has left. The closure must
/// outlive all uses.
struct WaitGuard<'a> {
    shared: &'a Shared,
    epoch: usize,
    dynamic: bool,
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        let s = self.shared;
        if self.dynamic {
            s.state.store(self.epoch << 1, Ordering::SeqCst);
        } else {
            wait_until(|| s.ran.load(Ordering::Acquire) == s.n_threads - 1);
        }
        wait_until(|| s.inside.load(Ordering::SeqCst) == 0);
    }
}

/// A persistent pool of `n_threads` threads (the caller counts as one).
pub struct ThreadPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    /// Serializes runs from different threads sharing the pool.
    run_lock: Mutex<()>,
}

impl ThreadPool {
    /// Starts `n_threads - 1` workers (`n_threads` of 0 is treated as 1).
    pub fn new(n_threads: usize) -> Result<ThreadPool, CpuError> {
        let n_threads = n_threads.max(1);
        let shared = Arc::new(Shared {
            n_threads,
            state: AtomicUsize::new(0),
            job: UnsafeCell::new(None),
            inside: AtomicUsize::new(0),
            ran: AtomicUsize::new(0),
            worker_panicked: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            sleep_lock: Mutex::new(()),
            wake: Condvar::new(),
            started: AtomicUsize::new(0),
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
        // A new thread's own start-up (its name, its stack guard) runs on that thread whenever
        // it is first scheduled; on a loaded machine that can be in the middle of a later
        // forward pass. Waiting for it here keeps those allocations in the constructor, so a
        // pass after warm-up allocates nothing.
        wait_until(|| shared.started.load(Ordering::SeqCst) == n_threads - 1);
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
        self.run_job(f, false);
    }

    /// Calls `f(thread_idx)` on the calling thread (`thread_idx` 0) and on every worker that
    /// is free to join before the caller's own call returns (each with its own
    /// `thread_idx < n_threads`, at most once); returns when every call has returned. `f`
    /// must share its work through its own counter: claim pieces until none is left. Workers
    /// that are busy or not scheduled are simply not waited for, which keeps a loaded machine
    /// from stalling every op on a thread that has no core.
    pub fn run_dynamic<F: Fn(usize) + Sync>(&self, f: F) {
        self.run_job(|idx, _| f(idx), true);
    }

    fn run_job<F: Fn(usize, usize) + Sync>(&self, f: F, dynamic: bool) {
        let n = self.shared.n_threads;
        if n == 1 || INSIDE_POOL.with(|c| c.get()) {
            f(0, 1);
            return;
        }
        let _serial = self.run_lock.lock().unwrap_or_else(|p| p.into_inner());
        let s = &*self.shared;
        let epoch = (s.state.load(Ordering::Relaxed) >> 1).wrapping_add(1);
        // SAFETY: no worker reads `job` now: the previous run waited until every worker that
        // joined it had left, and a worker joining late sees a closed or older state and
        // leaves without reading; workers read the slot only after the state store below.
        unsafe {
            *s.job.get() = Some(JobRef {
                data: &f as *const F as *const (),
                call: call_job::<F>,
            });
        }
        s.worker_panicked.store(false, Ordering::Relaxed);
        s.ran.store(0, Ordering::Relaxed);
        // From here until `guard` is dropped, workers may call `f`.
        let guard = WaitGuard {
            shared: s,
            epoch,
            dynamic,
        };
        s.state.store((epoch << 1) | OPEN, Ordering::SeqCst);
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
    /// into contiguous column ranges (boundaries multiples of `align`) that the threads claim
    /// one at a time, and calls `f(cols, &mut part)` for each, where `part` gives exclusive
    /// access to those columns of every row. Each range goes to exactly one call; the
    /// ranges are several per thread so a thread that gets no core for a while holds up
    /// little (see [`ThreadPool::run_dynamic`]).
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
        let n_pieces = pieces_for(row_len, align, self.n_threads());
        let next = AtomicUsize::new(0);
        self.run_dynamic(|_| loop {
            let piece = next.fetch_add(1, Ordering::Relaxed);
            if piece >= n_pieces {
                return;
            }
            let cols = split_range(row_len, piece, n_pieces, align);
            if cols.is_empty() {
                continue;
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

    /// Splits `out` into `out.len() / chunk` chunks and calls `f(first_chunk_index, run)` on
    /// contiguous runs of whole chunks, each chunk in exactly one call (claimed by the
    /// threads as in [`ThreadPool::run_columns`]).
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

/// Pieces a dynamic split of `len` (in units of `align`) uses on `n_threads` threads: four
/// per thread, so a late thread costs at most about a quarter of its share, never more pieces
/// than units.
fn pieces_for(len: usize, align: usize, n_threads: usize) -> usize {
    let units = len.div_ceil(align.max(1));
    if n_threads <= 1 {
        1
    } else {
        (4 * n_threads).min(units).max(1)
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        let s = &*self.shared;
        s.shutdown.store(true, Ordering::Release);
        // A new epoch, closed: workers wake, see `shutdown` and return.
        let epoch = (s.state.load(Ordering::Relaxed) >> 1).wrapping_add(1);
        s.state.store(epoch << 1, Ordering::SeqCst);
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
    fn dynamic_runs_do_every_piece_once_between_static_runs() {
        for n in 1..5 {
            let pool = ThreadPool::new(n).unwrap();
            for round in 0..300 {
                let items = 1 + round % 37;
                let hits: Vec<AtomicU64> = (0..items).map(|_| AtomicU64::new(0)).collect();
                let next = AtomicUsize::new(0);
                let seen_idx: Vec<AtomicU64> = (0..n).map(|_| AtomicU64::new(0)).collect();
                pool.run_dynamic(|idx| {
                    seen_idx[idx].fetch_add(1, Ordering::Relaxed);
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= items {
                            break;
                        }
                        hits[i].fetch_add(1, Ordering::Relaxed);
                    }
                });
                assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
                // The caller always takes part; no thread index is used twice.
                assert_eq!(seen_idx[0].load(Ordering::Relaxed), 1);
                assert!(seen_idx.iter().all(|c| c.load(Ordering::Relaxed) <= 1));
                // A static run still reaches every thread exactly once.
                let count = AtomicU64::new(0);
                pool.run(|_, nt| {
                    assert_eq!(nt, n);
                    count.fetch_add(1, Ordering::Relaxed);
                });
                assert_eq!(count.load(Ordering::Relaxed), n as u64);
            }
        }
    }

    #[test]
    fn dynamic_run_does_not_wait_for_a_worker_that_has_not_joined() {
        // The worker is parked, and the job is shorter than its wake-up: the caller usually
        // does every piece alone; whether the worker joins or not, each piece is done once.
        let pool = ThreadPool::new(2).unwrap();
        std::thread::sleep(SPIN_BEFORE_PARK * 5);
        let mut out = vec![0u32; 1000];
        pool.run_chunks(&mut out, 10, |first, run| {
            for (k, v) in run.iter_mut().enumerate() {
                *v += (first * 10 + k) as u32;
            }
        });
        assert!(out.iter().enumerate().all(|(i, v)| *v == i as u32));
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
