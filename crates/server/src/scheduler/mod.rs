//! Continuous batching on a dedicated engine thread.
//!
//! HTTP handlers [`EngineHandle::submit`] a [`GenRequest`] over a channel and read [`Event`]s
//! back from their own channel. The engine thread runs steps: admit waiting requests into free
//! slots, drop the ones whose client is gone (freeing their cache at once), run one decode row
//! for every sequence that has a sampled token, then spend at most one ubatch (`-ub`) of
//! tokens on prompt prefill, split across prefilling sequences in arrival order. So a long
//! prompt is prefilled a chunk per step while the other clients keep decoding.
//!
//! A finished request leaves its tokens in its slot's KV cache. The next request goes to the
//! idle slot that shares the longest prefix with its prompt (see [`prefix`]), keeps that
//! prefix and evaluates only the rest, as llama-server does with `cache_prompt`. Idle slots'
//! caches are given up, least recently used first, when a step needs their pages; a
//! cancelled or failed request's cache is dropped at once.

pub mod chunking;
mod logprobs;
pub mod prefix;
pub mod request;
pub mod runner;
mod sequence;
pub mod stop;

use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::metrics::EngineMetrics;
use prefix::SlotCache;
pub use request::{
    CancelFlag, CancelOnDrop, Event, FinishReason, GenParams, GenRequest, Logprobs, TokenLogprob,
    Usage,
};
pub use runner::{Chunk, ModelRunner, Runner, TokenText};
use sequence::{Phase, Sequence};

/// Engine settings that are not the model's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EngineOptions {
    /// A request goes to the idle slot whose cache shares the longest prompt prefix, if that
    /// is more than this fraction of the prompt (`--slot-prompt-similarity`; 0: least
    /// recently used slot always).
    pub slot_prompt_similarity: f32,
}

impl Default for EngineOptions {
    fn default() -> EngineOptions {
        EngineOptions {
            slot_prompt_similarity: 0.1,
        }
    }
}

enum Msg {
    Submit(GenRequest),
    /// Stop admitting; let running requests finish until `deadline`, then end them with
    /// an error that says `why` (the server is shutting down, the model is unloaded).
    Shutdown {
        deadline: Instant,
        why: String,
    },
}

/// What `GET /slots` shows of one slot.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct SlotInfo {
    pub id: usize,
    pub n_ctx: usize,
    pub is_processing: bool,
    /// `idle`, `prefill` or `decode`.
    pub state: &'static str,
    pub n_prompt_tokens: usize,
    pub n_decoded: usize,
    /// Tokens the slot holds in the KV cache.
    pub n_cached: usize,
}

/// State the engine thread publishes for HTTP handlers.
pub struct EngineShared {
    pub metrics: EngineMetrics,
    pub slots: Mutex<Vec<SlotInfo>>,
}

/// Shape of the engine, fixed at load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EngineShape {
    pub n_slots: usize,
    pub slot_capacity: usize,
    pub n_vocab: usize,
}

pub struct EngineHandle {
    tx: Mutex<Sender<Msg>>,
    shared: Arc<EngineShared>,
    shape: EngineShape,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl EngineHandle {
    /// Starts the engine thread that owns `runner`.
    pub fn spawn<R: Runner + Send + 'static>(
        runner: R,
        vocab: Arc<dyn TokenText>,
        name: &str,
        options: EngineOptions,
    ) -> std::io::Result<EngineHandle> {
        let shape = EngineShape {
            n_slots: runner.n_slots(),
            slot_capacity: runner.slot_capacity(),
            n_vocab: runner.n_vocab(),
        };
        let shared = Arc::new(EngineShared {
            metrics: EngineMetrics::default(),
            slots: Mutex::new(Vec::new()),
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let mut engine = Engine::new(runner, vocab, Arc::clone(&shared), rx, options);
        engine.publish();
        let thread = std::thread::Builder::new()
            .name(format!("engine-{name}"))
            .spawn(move || engine.run())?;
        Ok(EngineHandle {
            tx: Mutex::new(tx),
            shared,
            shape,
            thread: Mutex::new(Some(thread)),
        })
    }

    pub fn shape(&self) -> EngineShape {
        self.shape
    }

    pub fn shared(&self) -> &EngineShared {
        &self.shared
    }

    pub fn slots(&self) -> Vec<SlotInfo> {
        self.shared
            .slots
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// Queues a request; fails only if the engine has stopped.
    pub fn submit(&self, req: GenRequest) -> Result<(), String> {
        let tx = self.tx.lock().map_err(|_| "engine lock poisoned")?;
        tx.send(Msg::Submit(req))
            .map_err(|_| "the model's engine has stopped".to_string())
    }

    /// Asks the engine to stop: running requests may finish within `grace`, then are ended
    /// with an error that starts with `why`; queued ones are refused at once.
    pub fn shutdown(&self, grace: Duration, why: &str) {
        if let Ok(tx) = self.tx.lock() {
            let _ = tx.send(Msg::Shutdown {
                deadline: Instant::now() + grace,
                why: why.to_string(),
            });
        }
    }

    /// Waits for the engine thread to end (after [`shutdown`](Self::shutdown)); the runner,
    /// and with it the model's memory, is freed when this returns.
    pub fn join(&self) {
        let handle = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

struct Engine<R: Runner> {
    runner: R,
    vocab: Arc<dyn TokenText>,
    shared: Arc<EngineShared>,
    rx: Receiver<Msg>,
    waiting: VecDeque<GenRequest>,
    /// Indexed by slot.
    slots: Vec<Option<Sequence>>,
    /// What each idle slot holds from its last request (indexed by slot).
    caches: Vec<SlotCache>,
    options: EngineOptions,
    /// Counts finished requests, to order slots by last use.
    tick: u64,
    next_order: u64,
    shutdown: Option<Instant>,
    /// Why the engine is stopping, for the errors of the requests it ends.
    why: String,
    /// The channel closed: no handle can submit any more.
    orphaned: bool,
}

impl<R: Runner> Engine<R> {
    fn new(
        runner: R,
        vocab: Arc<dyn TokenText>,
        shared: Arc<EngineShared>,
        rx: Receiver<Msg>,
        options: EngineOptions,
    ) -> Engine<R> {
        let slots = (0..runner.n_slots()).map(|_| None).collect();
        Engine {
            caches: vec![SlotCache::default(); runner.n_slots()],
            runner,
            vocab,
            shared,
            rx,
            waiting: VecDeque::new(),
            slots,
            options,
            tick: 0,
            next_order: 0,
            shutdown: None,
            why: String::new(),
            orphaned: false,
        }
    }

    fn active(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }

    fn run(mut self) {
        loop {
            self.intake();
            if let Some(deadline) = self.shutdown {
                if self.active() == 0 || Instant::now() >= deadline {
                    let msg = format!("{}; the request was not finished", self.why);
                    self.end_all(&msg);
                    break;
                }
            } else if self.orphaned && self.active() == 0 && self.waiting.is_empty() {
                break;
            }
            self.drop_abandoned();
            self.admit();
            self.step();
            self.publish();
        }
        self.publish();
    }

    /// Takes new messages; blocks while there is nothing to do.
    fn intake(&mut self) {
        let idle = self.active() == 0 && self.waiting.is_empty();
        if idle && self.shutdown.is_none() && !self.orphaned {
            // Wake now and then so a cancelled queued request is noticed even when idle.
            match self.rx.recv_timeout(Duration::from_millis(500)) {
                Ok(msg) => self.on_msg(msg),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => self.orphaned = true,
            }
        }
        loop {
            match self.rx.try_recv() {
                Ok(msg) => self.on_msg(msg),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    self.orphaned = true;
                    break;
                }
            }
        }
    }

    fn on_msg(&mut self, msg: Msg) {
        match msg {
            Msg::Submit(req) => {
                if self.shutdown.is_some() {
                    let _ = req
                        .events
                        .send(Event::Error(format!("{}; request refused", self.why)));
                    self.shared
                        .metrics
                        .requests_failed
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                } else {
                    self.waiting.push_back(req);
                }
            }
            Msg::Shutdown { deadline, why } => {
                self.shutdown = Some(self.shutdown.map_or(deadline, |d| d.min(deadline)));
                if self.why.is_empty() {
                    self.why = why;
                }
                for req in self.waiting.drain(..) {
                    let _ = req
                        .events
                        .send(Event::Error(format!("{}; request refused", self.why)));
                }
            }
        }
    }

    /// Ends the slot's request and drops everything the slot holds (cancelled or failed
    /// requests: their pages return at once).
    fn free_slot(&mut self, slot: usize) {
        self.slots[slot] = None;
        self.clear_cache(slot);
    }

    fn clear_cache(&mut self, slot: usize) {
        self.caches[slot].clear();
        if let Err(e) = self.runner.clear(slot) {
            eprintln!("engine: clearing slot {slot} failed: {e}");
        }
    }

    /// Ends the slot's finished request, keeping its tokens cached for the next request.
    fn retire_slot(&mut self, slot: usize) {
        let Some(seq) = self.slots[slot].take() else {
            return;
        };
        let held = self.runner.cached(slot);
        let mut tokens = seq.tokens;
        if held > tokens.len() {
            // The cache holds rows the engine cannot name: nothing can be reused.
            self.clear_cache(slot);
            return;
        }
        tokens.truncate(held);
        self.tick += 1;
        self.caches[slot] = SlotCache {
            tokens,
            prompt_rows: seq.n_prompt.min(held),
            last_used: self.tick,
        };
    }

    /// Gives up idle slots' caches, least recently used first, until `need` pages are free
    /// (or no idle cache is left).
    fn make_room(&mut self, need: usize) {
        while self.runner.pages_free() < need {
            let victim = (0..self.slots.len())
                .filter(|&s| self.slots[s].is_none() && self.runner.cached(s) > 0)
                .min_by_key(|&s| self.caches[s].last_used);
            let Some(slot) = victim else {
                return;
            };
            self.clear_cache(slot);
            self.shared
                .metrics
                .idle_caches_evicted
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    fn drop_abandoned(&mut self) {
        use std::sync::atomic::Ordering::Relaxed;
        let before = self.waiting.len();
        self.waiting
            .retain(|r| !r.cancel.is_cancelled() && !r.events.is_closed());
        let dropped = (before - self.waiting.len()) as u64;
        self.shared
            .metrics
            .requests_cancelled
            .fetch_add(dropped, Relaxed);
        for slot in 0..self.slots.len() {
            if self.slots[slot].as_ref().is_some_and(|s| s.is_abandoned()) {
                self.free_slot(slot);
                self.shared.metrics.requests_cancelled.fetch_add(1, Relaxed);
            }
        }
    }

    fn admit(&mut self) {
        use std::sync::atomic::Ordering::Relaxed;
        if self.shutdown.is_some() {
            return;
        }
        let n_vocab = self.runner.n_vocab();
        loop {
            let idle: Vec<usize> = (0..self.slots.len())
                .filter(|&s| self.slots[s].is_none())
                .collect();
            if idle.is_empty() {
                break;
            }
            let Some(req) = self.waiting.pop_front() else {
                break;
            };
            let similarity = if req.params.cache_prompt {
                self.options.slot_prompt_similarity
            } else {
                0.0
            };
            let Some(slot) = prefix::pick_slot(&self.caches, &idle, &req.prompt, similarity) else {
                break;
            };
            let keep = self.reusable(slot, &req);
            if self.runner.cached(slot) > keep {
                if let Err(e) = self.runner.truncate(slot, keep) {
                    eprintln!("engine: truncating slot {slot} failed: {e}");
                }
            }
            let keep = if self.runner.cached(slot) == keep {
                keep
            } else {
                self.clear_cache(slot);
                0
            };
            self.caches[slot].clear();
            let m = &self.shared.metrics;
            m.prompt_tokens
                .fetch_add(req.prompt.len().saturating_sub(keep) as u64, Relaxed);
            m.prompt_tokens_cached.fetch_add(keep as u64, Relaxed);
            m.queue_wait.observe(req.arrived.elapsed().as_secs_f64());
            self.slots[slot] = Some(Sequence::new(req, slot, self.next_order, n_vocab, keep));
            self.next_order += 1;
        }
    }

    /// Tokens of `slot`'s cache that `req` may keep.
    fn reusable(&self, slot: usize, req: &GenRequest) -> usize {
        let cache = &self.caches[slot];
        let cached = self.runner.cached(slot);
        if !req.params.cache_prompt || cached != cache.tokens.len() {
            return 0;
        }
        let common = prefix::common_prefix(&cache.tokens, &req.prompt);
        self.runner
            .reusable(cached, common, cache.prompt_rows, req.prompt.len())
            .min(common)
            .min(req.prompt.len().saturating_sub(1))
    }

    /// One forward pass over every decoding sequence's next token plus prompt chunks.
    ///
    /// Prompt tokens per step are capped at one ubatch (`-ub`), so a long prompt is
    /// prefilled a chunk per step while the others keep decoding. A prompt is always cut at
    /// the same places (every `max_chunk` tokens from its start, also when a cached prefix
    /// is kept), whatever else runs: a request's output must not depend on its neighbours.
    /// Chunks that do not fit the pass's rows beside the decode rows run in a pass of their
    /// own in the same step.
    fn step(&mut self) {
        let max_chunk = self.runner.max_chunk().max(1);
        let max_rows = self.runner.max_rows().max(1);
        // (slot, first prompt token, tokens, is the prompt's last chunk)
        let mut plan: Vec<(usize, usize, usize, bool)> = Vec::new();
        let mut decode: Vec<(usize, u32)> = Vec::new();
        let mut prefill: Vec<(u64, usize, usize)> = Vec::new();
        for s in self.slots.iter().flatten() {
            match s.phase {
                Phase::Decode { next } => decode.push((s.slot, next)),
                Phase::Prefill { done } => prefill.push((s.order, s.slot, done)),
            }
        }
        prefill.sort_unstable();
        let mut budget = max_chunk;
        for &(_, slot, done) in &prefill {
            let Some(seq) = self.slots[slot].as_ref() else {
                continue;
            };
            let n = seq.n_prompt.min((done / max_chunk + 1) * max_chunk) - done;
            if n > budget {
                continue;
            }
            budget -= n;
            plan.push((slot, done, n, done + n == seq.n_prompt));
        }
        // Pass 1: decode rows and the prompt chunks that fit beside them.
        let mut rows = decode.len();
        let mut first: Vec<(usize, usize, usize, bool)> = Vec::new();
        let mut later: Vec<(usize, usize, usize, bool)> = Vec::new();
        for p in plan {
            if rows + p.2 <= max_rows {
                rows += p.2;
                first.push(p);
            } else {
                later.push(p);
            }
        }
        let page = self.runner.page_tokens().max(1);
        let grow = |slot: usize, n: usize| {
            let held = self.runner.cached(slot);
            (held + n).div_ceil(page) - held.div_ceil(page)
        };
        let need: usize = decode.iter().map(|&(slot, _)| grow(slot, 1)).sum::<usize>()
            + first
                .iter()
                .chain(&later)
                .map(|p| grow(p.0, p.2))
                .sum::<usize>();
        self.make_room(need);
        self.run_pass(&decode, &first);
        for p in later {
            self.run_pass(&[], &[p]);
        }
    }

    /// Runs one forward pass and turns its logits into tokens for the clients.
    fn run_pass(&mut self, decode: &[(usize, u32)], prompt: &[(usize, usize, usize, bool)]) {
        if decode.is_empty() && prompt.is_empty() {
            return;
        }
        // The pass owns copies of its tokens, so sequences can be updated from inside it.
        let mut tokens: Vec<Vec<u32>> = decode.iter().map(|&(_, t)| vec![t]).collect();
        let mut slots_of: Vec<usize> = decode.iter().map(|&(slot, _)| slot).collect();
        // For a prompt chunk that is not the last: the prompt position after it.
        let mut next_done: Vec<Option<usize>> = vec![None; decode.len()];
        for &(slot, from, n, last) in prompt {
            let Some(seq) = self.slots[slot].as_ref() else {
                continue;
            };
            tokens.push(seq.req.prompt[from..from + n].to_vec());
            slots_of.push(slot);
            next_done.push((!last).then_some(from + n));
        }
        let chunks: Vec<Chunk<'_>> = tokens
            .iter()
            .zip(&slots_of)
            .zip(&next_done)
            .map(|((t, &slot), done)| Chunk {
                slot,
                tokens: t,
                logits: done.is_none(),
            })
            .collect();
        let capacity = self.runner.slot_capacity();
        let vocab = Arc::clone(&self.vocab);
        let slots = &mut self.slots;
        let mut results: Vec<(usize, Result<Option<sequence::TokenOutcome>, String>)> =
            Vec::with_capacity(chunks.len());
        self.runner.run(&chunks, &mut |i, row| {
            let slot = slots_of[i];
            let Some(seq) = slots[slot].as_mut() else {
                return;
            };
            let r = match (row, next_done[i]) {
                (Err(e), _) => Err(e),
                (Ok(_), Some(done)) => {
                    seq.phase = Phase::Prefill { done };
                    Ok(None)
                }
                (Ok(logits), None) => Ok(Some(seq.on_logits(
                    logits,
                    vocab.as_ref(),
                    capacity,
                    Instant::now(),
                ))),
            };
            results.push((slot, r));
        });
        for (slot, r) in results {
            match r {
                Ok(Some(outcome)) => self.finish_token(slot, outcome),
                Ok(None) => {}
                Err(e) => self.fail(slot, format!("forward pass failed: {e}")),
            }
        }
    }

    fn finish_token(&mut self, slot: usize, outcome: sequence::TokenOutcome) {
        use std::sync::atomic::Ordering::Relaxed;
        let m = &self.shared.metrics;
        m.generated_tokens.fetch_add(1, Relaxed);
        if let Some(t) = outcome.ttft {
            m.ttft.observe(t);
        }
        if let Some(t) = outcome.prompt_eval {
            m.prompt_eval.observe(t);
        }
        if let Some(t) = outcome.itl {
            m.itl.observe(t);
        }
        if outcome.finished {
            m.requests_finished.fetch_add(1, Relaxed);
            self.retire_slot(slot);
        }
    }

    fn fail(&mut self, slot: usize, message: String) {
        if let Some(seq) = self.slots[slot].as_mut() {
            seq.fail(message);
        }
        self.shared
            .metrics
            .requests_failed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.free_slot(slot);
    }

    fn end_all(&mut self, message: &str) {
        for slot in 0..self.slots.len() {
            if self.slots[slot].is_some() {
                self.fail(slot, message.to_string());
            }
        }
        for req in self.waiting.drain(..) {
            let _ = req.events.send(Event::Error(message.to_string()));
        }
    }

    /// Slot table and gauges for `/slots` and `/metrics`.
    fn publish(&mut self) {
        use std::sync::atomic::Ordering::Relaxed;
        let capacity = self.runner.slot_capacity();
        let page = self.runner.page_tokens().max(1);
        let mut cells = 0;
        let mut pages = 0;
        let mut infos = Vec::with_capacity(self.slots.len());
        for (id, s) in self.slots.iter().enumerate() {
            let cached = self.runner.cached(id);
            cells += cached;
            pages += cached.div_ceil(page);
            infos.push(match s {
                None => SlotInfo {
                    id,
                    n_ctx: capacity,
                    state: "idle",
                    n_cached: cached,
                    ..SlotInfo::default()
                },
                Some(seq) => SlotInfo {
                    id,
                    n_ctx: capacity,
                    is_processing: true,
                    state: match seq.phase {
                        Phase::Prefill { .. } => "prefill",
                        Phase::Decode { .. } => "decode",
                    },
                    n_prompt_tokens: seq.n_prompt,
                    n_decoded: seq.n_generated,
                    n_cached: cached,
                },
            });
        }
        let m = &self.shared.metrics;
        m.processing.store(self.active() as u64, Relaxed);
        m.waiting.store(self.waiting.len() as u64, Relaxed);
        m.kv_cells_used.store(cells as u64, Relaxed);
        m.kv_cells_total
            .store((capacity * self.slots.len()) as u64, Relaxed);
        m.kv_pages_used.store(pages as u64, Relaxed);
        m.kv_pages_total
            .store(self.runner.pages_total() as u64, Relaxed);
        if let Ok(mut s) = self.shared.slots.lock() {
            *s = infos;
        }
    }
}

#[cfg(test)]
mod tests;
