//! Scheduler tests on a fake model whose logits depend only on a sequence's own cached tokens,
//! so a request's output must not depend on what else is running.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use engine::SamplerParams;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use super::*;

const VOCAB: usize = 16;
const LETTERS: &[u8] = b"-abcdefghijklmno";

/// One forward pass: (slot, tokens) of each chunk.
type Call = Vec<(usize, usize)>;

struct Fake {
    capacity: usize,
    chunk: usize,
    rows: usize,
    cache: Vec<Vec<u32>>,
    logits: Vec<f32>,
    log: Arc<Mutex<Vec<Call>>>,
    /// Token 0 (end of generation) wins once a sequence holds this many tokens.
    eog_at: Option<usize>,
    step_delay: Duration,
    /// A KV pool smaller than every slot at capacity (pages of 4 tokens): a step that needs
    /// more pages than are free fails, as the real cache does.
    pool_pages: Option<usize>,
    /// Tokens evaluated per slot (all passes), to see what a cached prefix saved.
    evaluated: Arc<Mutex<Vec<usize>>>,
}

impl Fake {
    fn new(slots: usize, capacity: usize, chunk: usize) -> Fake {
        Fake {
            capacity,
            chunk,
            rows: 2 * chunk,
            cache: vec![Vec::new(); slots],
            logits: vec![0.0; VOCAB],
            log: Arc::new(Mutex::new(Vec::new())),
            eog_at: None,
            step_delay: Duration::ZERO,
            pool_pages: None,
            evaluated: Arc::new(Mutex::new(vec![0; slots])),
        }
    }

    fn fill_logits(&mut self, slot: usize) {
        let seq = &self.cache[slot];
        let mut h: u64 = 1469598103934665603;
        for &t in seq {
            h = (h ^ t as u64).wrapping_mul(1099511628211);
        }
        for (i, l) in self.logits.iter_mut().enumerate() {
            let x = h.wrapping_add(i as u64).wrapping_mul(0x9E3779B97F4A7C15) >> 40;
            *l = (x % 1000) as f32 / 100.0;
        }
        self.logits[0] = match self.eog_at {
            Some(n) if seq.len() >= n => 100.0,
            _ => -100.0,
        };
    }
}

impl Runner for Fake {
    fn n_vocab(&self) -> usize {
        VOCAB
    }
    fn n_slots(&self) -> usize {
        self.cache.len()
    }
    fn slot_capacity(&self) -> usize {
        self.capacity
    }
    fn max_chunk(&self) -> usize {
        self.chunk
    }
    fn cached(&self, slot: usize) -> usize {
        self.cache[slot].len()
    }
    fn max_rows(&self) -> usize {
        self.rows
    }
    fn prefill(&mut self, slot: usize, tokens: &[u32]) -> runner::RowResult<'_> {
        assert!(
            tokens.len() <= self.chunk,
            "chunk of {} tokens",
            tokens.len()
        );
        if self.cache[slot].len() + tokens.len() > self.capacity {
            return Err("context full".into());
        }
        let grow = (self.cache[slot].len() + tokens.len()).div_ceil(4)
            - self.cache[slot].len().div_ceil(4);
        if grow > self.pages_free() {
            return Err("out of KV pages".into());
        }
        self.evaluated.lock().unwrap()[slot] += tokens.len();
        self.cache[slot].extend_from_slice(tokens);
        self.fill_logits(slot);
        Ok(&self.logits)
    }
    fn run(&mut self, chunks: &[Chunk<'_>], out: &mut dyn FnMut(usize, runner::RowResult<'_>)) {
        std::thread::sleep(self.step_delay);
        let rows: usize = chunks.iter().map(|c| c.tokens.len()).sum();
        assert!(rows <= self.rows, "{rows} rows in one pass");
        let mut seen = std::collections::HashSet::new();
        assert!(
            chunks.iter().all(|c| seen.insert(c.slot)),
            "a slot twice in one pass"
        );
        self.log
            .lock()
            .unwrap()
            .push(chunks.iter().map(|c| (c.slot, c.tokens.len())).collect());
        for (i, c) in chunks.iter().enumerate() {
            match self.prefill(c.slot, c.tokens) {
                Ok(l) if c.logits => out(i, Ok(l)),
                Ok(_) => out(i, Ok(&[])),
                Err(e) => out(i, Err(e)),
            }
        }
    }
    fn truncate(&mut self, slot: usize, keep: usize) -> Result<(), String> {
        self.cache[slot].truncate(keep);
        Ok(())
    }
    fn page_tokens(&self) -> usize {
        4
    }
    fn pages_total(&self) -> usize {
        self.pool_pages
            .unwrap_or_else(|| self.capacity.div_ceil(4) * self.cache.len())
    }
}

struct Letters;
impl TokenText for Letters {
    fn piece(&self, id: u32) -> &[u8] {
        if id == 0 {
            return b"";
        }
        &LETTERS[id as usize..id as usize + 1]
    }
    fn is_end_of_generation(&self, id: u32) -> bool {
        id == 0
    }
}

fn greedy(max_tokens: usize) -> GenParams {
    GenParams {
        sampling: SamplerParams::greedy(),
        max_tokens: Some(max_tokens),
        ..GenParams::default()
    }
}

fn submit(
    h: &EngineHandle,
    prompt: &[u32],
    params: GenParams,
) -> (UnboundedReceiver<Event>, CancelFlag) {
    let (tx, rx) = unbounded_channel();
    let cancel = CancelFlag::new();
    h.submit(GenRequest {
        prompt: prompt.to_vec(),
        params,
        events: tx,
        cancel: cancel.clone(),
        arrived: Instant::now(),
    })
    .unwrap();
    (rx, cancel)
}

#[derive(Debug, PartialEq)]
struct Outcome {
    text: String,
    ids: Vec<u32>,
    reason: Option<FinishReason>,
    usage: Usage,
    error: Option<String>,
}

fn collect(mut rx: UnboundedReceiver<Event>) -> Outcome {
    let mut o = Outcome {
        text: String::new(),
        ids: Vec::new(),
        reason: None,
        usage: Usage::default(),
        error: None,
    };
    while let Some(ev) = rx.blocking_recv() {
        match ev {
            Event::Token { id, text, .. } => {
                o.ids.push(id);
                o.text.push_str(&text);
            }
            Event::Done {
                text,
                reason,
                usage,
            } => {
                o.text.push_str(&text);
                o.reason = Some(reason);
                o.usage = usage;
                break;
            }
            Event::Error(e) => {
                o.error = Some(e);
                break;
            }
        }
    }
    o
}

fn spawn(fake: Fake) -> EngineHandle {
    EngineHandle::spawn(fake, Arc::new(Letters), "test", EngineOptions::default()).unwrap()
}

fn wait_until(mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "condition not reached"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn one_request_runs_to_max_tokens() {
    let h = spawn(Fake::new(2, 64, 8));
    let (rx, _c) = submit(&h, &[3, 4, 5], greedy(6));
    let o = collect(rx);
    assert_eq!(o.reason, Some(FinishReason::Length));
    assert_eq!(o.ids.len(), 6);
    assert_eq!(o.text.len(), 6);
    assert_eq!(
        o.usage,
        Usage {
            prompt_tokens: 3,
            completion_tokens: 6,
            cached_tokens: 0,
        }
    );
    // The slot keeps what it evaluated: the prompt and every generated token but the last.
    wait_until(|| {
        let s = h.slots();
        s.iter().all(|s| !s.is_processing) && s.iter().map(|s| s.n_cached).sum::<usize>() == 8
    });
    let m = &h.shared().metrics;
    assert_eq!(
        m.generated_tokens
            .load(std::sync::atomic::Ordering::Relaxed),
        6
    );
    assert_eq!(m.ttft.count(), 1);
    assert_eq!(m.itl.count(), 5);
}

#[test]
fn concurrent_requests_match_their_solo_runs() {
    let prompts: Vec<Vec<u32>> = (0..10u32)
        .map(|i| {
            (0..(3 + i * 7 % 20))
                .map(|j| 1 + (i * 5 + j) % 15)
                .collect()
        })
        .collect();
    let solo: Vec<Outcome> = prompts
        .iter()
        .map(|p| {
            let h = spawn(Fake::new(1, 64, 8));
            collect(submit(&h, p, greedy(12)).0)
        })
        .collect();
    let fake = Fake::new(3, 64, 8);
    let log = Arc::clone(&fake.log);
    let h = spawn(fake);
    let rxs: Vec<_> = prompts.iter().map(|p| submit(&h, p, greedy(12))).collect();
    let mut reused = 0;
    for (i, (rx, _c)) in rxs.into_iter().enumerate() {
        let mut o = collect(rx);
        // Some prompts share a prefix with an earlier one left in its slot: same output.
        reused += o.usage.cached_tokens;
        o.usage.cached_tokens = 0;
        assert_eq!(o, solo[i], "request {i}");
    }
    assert!(reused > 0, "no prompt prefix was reused");
    // Passes ran the three slots' decode rows together.
    let log = log.lock().unwrap();
    assert!(log
        .iter()
        .any(|c| c.len() == 3 && c.iter().all(|&(_, n)| n == 1)));
}

#[test]
fn long_prompt_is_prefilled_in_chunks_between_decode_steps() {
    let mut fake = Fake::new(2, 256, 8);
    fake.step_delay = Duration::from_millis(1);
    let log = Arc::clone(&fake.log);
    let h = spawn(fake);
    let (short_rx, _a) = submit(&h, &[1, 2], greedy(40));
    // Let the short request start decoding first.
    wait_until(|| h.slots().iter().any(|s| s.state == "decode"));
    let long: Vec<u32> = (0..100).map(|i| 1 + i % 15).collect();
    let (long_rx, _b) = submit(&h, &long, greedy(2));
    let long_out = collect(long_rx);
    assert_eq!(long_out.reason, Some(FinishReason::Length));
    collect(short_rx);
    let log = log.lock().unwrap();
    // 100 tokens in chunks of 8: 13 passes prefill the long prompt, and in each the short
    // request decodes beside it (one pass holds 16 rows).
    let long_passes: Vec<&Call> = log
        .iter()
        .filter(|c| c.iter().any(|&(slot, n)| slot == 1 && n > 1))
        .collect();
    assert_eq!(long_passes.len(), 13, "{log:?}");
    for p in long_passes {
        assert!(
            p.contains(&(0, 1)),
            "no decode beside the prefill chunk: {p:?}"
        );
    }
}

#[test]
fn chunks_that_do_not_fit_beside_decode_rows_run_in_their_own_pass() {
    let mut fake = Fake::new(2, 256, 8);
    fake.rows = 8;
    fake.step_delay = Duration::from_millis(1);
    let log = Arc::clone(&fake.log);
    let h = spawn(fake);
    let (short_rx, _a) = submit(&h, &[1, 2], greedy(30));
    wait_until(|| h.slots().iter().any(|s| s.state == "decode"));
    let (long_rx, _b) = submit(&h, &[5; 24], greedy(2));
    assert_eq!(collect(long_rx).reason, Some(FinishReason::Length));
    collect(short_rx);
    let log = log.lock().unwrap();
    assert_eq!(
        log.iter().filter(|c| c.as_slice() == [(1, 8)]).count(),
        3,
        "{log:?}"
    );
}

#[test]
fn cancelled_request_frees_its_slot_and_others_continue() {
    let mut fake = Fake::new(2, 4096, 8);
    fake.step_delay = Duration::from_millis(2);
    let h = spawn(fake);
    let (mut rx_a, cancel_a) = submit(&h, &[1, 2, 3], greedy(100_000));
    let (rx_b, _cb) = submit(&h, &[4, 5], greedy(50));
    // A has produced tokens; then its client goes away.
    for _ in 0..5 {
        assert!(matches!(rx_a.blocking_recv(), Some(Event::Token { .. })));
    }
    cancel_a.cancel();
    drop(rx_a);
    wait_until(|| {
        let s = h.slots();
        s.len() == 2 && s.iter().filter(|s| s.is_processing).count() <= 1
    });
    let b = collect(rx_b);
    assert_eq!(b.reason, Some(FinishReason::Length));
    // A's slot (0, the first free) holds nothing; B's keeps its 2 + 49 evaluated tokens.
    wait_until(|| {
        let s = h.slots();
        s[0].n_cached == 0 && s[1].n_cached == 51 && !s[1].is_processing
    });
    let m = &h.shared().metrics;
    assert_eq!(
        m.requests_cancelled
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    wait_until(|| m.kv_cells_used.load(std::sync::atomic::Ordering::Relaxed) == 51);
    assert_eq!(
        m.kv_pages_used.load(std::sync::atomic::Ordering::Relaxed),
        51usize.div_ceil(4) as u64
    );
}

#[test]
fn dropping_the_receiver_alone_cancels() {
    let mut fake = Fake::new(1, 1 << 20, 8);
    fake.step_delay = Duration::from_millis(1);
    let h = spawn(fake);
    let (rx, _c) = submit(&h, &[1], greedy(1_000_000));
    wait_until(|| h.slots()[0].n_decoded > 3);
    drop(rx);
    wait_until(|| !h.slots()[0].is_processing && h.slots()[0].n_cached == 0);
}

#[test]
fn queued_requests_wait_for_a_free_slot() {
    let h = spawn(Fake::new(1, 64, 8));
    let rxs: Vec<_> = (0..4).map(|i| submit(&h, &[1 + i], greedy(5))).collect();
    for (rx, _c) in rxs {
        let o = collect(rx);
        assert_eq!(o.ids.len(), 5);
    }
}

#[test]
fn end_of_generation_stops_without_emitting_it() {
    let mut fake = Fake::new(1, 64, 8);
    fake.eog_at = Some(6);
    let h = spawn(fake);
    let o = collect(submit(&h, &[1, 2, 3], greedy(50)).0);
    assert_eq!(o.reason, Some(FinishReason::Stop));
    // 3 prompt tokens, then tokens until the cache holds 6: 3 fed + 1 more sampled.
    assert!(o.ids.iter().all(|&t| t != 0));
    assert_eq!(o.usage.completion_tokens, o.ids.len() + 1);
}

#[test]
fn full_slot_ends_with_length() {
    let h = spawn(Fake::new(1, 10, 8));
    let o = collect(submit(&h, &[1, 2, 3, 4], greedy(1000)).0);
    assert_eq!(o.reason, Some(FinishReason::Length));
    // The slot holds 10 tokens: 4 prompt + 6 fed, plus the last sampled token.
    assert_eq!(o.ids.len(), 7);
    assert!(o.error.is_none());
}

#[test]
fn stop_string_cuts_the_text() {
    let h = spawn(Fake::new(1, 64, 8));
    let free = collect(submit(&h, &[7, 8], greedy(12)).0);
    // Stop at the text of generated tokens 4..6: the output is the text before it.
    let stop = free.text[4..6].to_string();
    let cut = free.text.find(&stop).unwrap();
    let params = GenParams {
        stop: vec![stop.clone()],
        ..greedy(12)
    };
    let o = collect(submit(&h, &[7, 8], params).0);
    assert_eq!(o.reason, Some(FinishReason::Stop));
    assert_eq!(o.text, free.text[..cut], "stop {stop:?} in {:?}", free.text);
}

#[test]
fn logprobs_come_with_tokens() {
    let h = spawn(Fake::new(1, 64, 8));
    let params = GenParams {
        logprobs: Some(3),
        ..greedy(3)
    };
    let (mut rx, _c) = submit(&h, &[1], params);
    let Some(Event::Token { id, logprobs, .. }) = rx.blocking_recv() else {
        panic!("no token");
    };
    let lp = logprobs.unwrap();
    assert_eq!(lp.chosen.id, id);
    assert_eq!(lp.top.len(), 3);
    // Greedy picks the most likely token.
    assert_eq!(lp.top[0].id, id);
    assert!(lp.top[0].logprob >= lp.top[1].logprob);
}

#[test]
fn shutdown_ends_running_and_refuses_new() {
    let mut fake = Fake::new(1, 1 << 20, 8);
    fake.step_delay = Duration::from_millis(1);
    let h = spawn(fake);
    let (rx, _c) = submit(&h, &[1], greedy(1_000_000));
    let (queued, _q) = submit(&h, &[2], greedy(5));
    wait_until(|| h.slots()[0].n_decoded > 2);
    h.shutdown(Duration::from_millis(50), "the server is shutting down");
    h.join();
    let o = collect(rx);
    assert!(o.error.unwrap().contains("shutting down"));
    assert!(collect(queued).error.is_some());
    assert!(h
        .submit(GenRequest {
            prompt: vec![1],
            params: greedy(1),
            events: unbounded_channel().0,
            cancel: CancelFlag::new(),
            arrived: Instant::now(),
        })
        .is_err());
}

#[test]
fn shutdown_lets_short_requests_finish() {
    let mut fake = Fake::new(1, 64, 8);
    fake.step_delay = Duration::from_millis(5);
    let h = spawn(fake);
    let (rx, _c) = submit(&h, &[1], greedy(20));
    wait_until(|| h.slots()[0].is_processing);
    h.shutdown(Duration::from_secs(10), "the server is shutting down");
    let o = collect(rx);
    assert_eq!(o.reason, Some(FinishReason::Length));
    h.join();
}

#[test]
fn prompts_are_cut_at_the_same_places_whatever_runs_beside_them() {
    let fake = Fake::new(3, 256, 8);
    let log = Arc::clone(&fake.log);
    let h = spawn(fake);
    let lens = [20usize, 13, 7];
    // Distinct tokens: no prompt can take another's cached prefix.
    let rxs: Vec<_> = lens
        .iter()
        .enumerate()
        .map(|(i, &n)| submit(&h, &vec![3 + i as u32; n], greedy(2)))
        .collect();
    for (rx, _c) in rxs {
        collect(rx);
    }
    let log = log.lock().unwrap();
    for (slot, &n) in lens.iter().enumerate() {
        // This slot's chunks in order, until they add up to its prompt.
        let mut chunks = Vec::new();
        let mut total = 0;
        for &(s, k) in log.iter().flatten() {
            if s == slot && total < n {
                chunks.push(k);
                total += k;
            }
        }
        let solo: Vec<usize> = (0..n).step_by(8).map(|i| (n - i).min(8)).collect();
        assert_eq!(chunks, solo, "slot {slot}: {log:?}");
    }
}

fn prompt(prefix: &[u32], rest: &[u32]) -> Vec<u32> {
    prefix.iter().chain(rest).copied().collect()
}

/// A 30-token prefix (three chunks of 8 and a piece), as a system prompt would be.
fn system() -> Vec<u32> {
    (0..30).map(|i| 1 + (i * 7) % 15).collect()
}

#[test]
fn a_shared_prefix_is_reused_and_the_output_is_the_cold_output() {
    let second = prompt(&system(), &[9, 4, 2]);
    let cold = collect(submit(&spawn(Fake::new(1, 128, 8)), &second, greedy(10)).0);
    assert_eq!(cold.usage.cached_tokens, 0);

    let fake = Fake::new(1, 128, 8);
    let evaluated = Arc::clone(&fake.evaluated);
    let log = Arc::clone(&fake.log);
    let h = spawn(fake);
    let first = collect(submit(&h, &prompt(&system(), &[3, 3]), greedy(10)).0);
    assert_eq!(first.usage.cached_tokens, 0);
    let before = evaluated.lock().unwrap()[0];
    let n_log = log.lock().unwrap().len();
    let warm = collect(submit(&h, &second, greedy(10)).0);
    assert_eq!(warm.usage.cached_tokens, 30);
    assert_eq!(warm.usage.prompt_tokens, 33);
    assert_eq!((&warm.text, &warm.ids), (&cold.text, &cold.ids));
    // Only the 3 new prompt tokens and the 9 fed generated tokens were evaluated, and the
    // prompt was cut where a cold prefill cuts it (positions 30..32, then 32..33).
    assert_eq!(evaluated.lock().unwrap()[0] - before, 3 + 9);
    let log = log.lock().unwrap();
    assert_eq!(log[n_log][..], [(0, 2)], "{log:?}");
    assert_eq!(log[n_log + 1][..], [(0, 1)], "{log:?}");
    let m = &h.shared().metrics;
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(m.prompt_tokens_cached.load(Relaxed), 30);
    assert_eq!(m.prompt_tokens.load(Relaxed), 32 + 3);
}

#[test]
fn a_prompt_cached_whole_evaluates_its_last_token_again() {
    let p = prompt(&system(), &[5]);
    let h = spawn(Fake::new(1, 128, 8));
    let a = collect(submit(&h, &p, greedy(6)).0);
    let b = collect(submit(&h, &p, greedy(6)).0);
    assert_eq!(b.usage.cached_tokens, p.len() - 1);
    assert_eq!((a.text, a.ids), (b.text, b.ids));
}

#[test]
fn cache_prompt_false_evaluates_the_whole_prompt() {
    let fake = Fake::new(1, 128, 8);
    let evaluated = Arc::clone(&fake.evaluated);
    let h = spawn(fake);
    let p = prompt(&system(), &[5]);
    let a = collect(submit(&h, &p, greedy(4)).0);
    let before = evaluated.lock().unwrap()[0];
    let params = GenParams {
        cache_prompt: false,
        ..greedy(4)
    };
    let b = collect(submit(&h, &p, params).0);
    assert_eq!(b.usage.cached_tokens, 0);
    assert_eq!(evaluated.lock().unwrap()[0] - before, p.len() + 3);
    assert_eq!(a.ids, b.ids);
}

#[test]
fn a_request_goes_to_the_slot_holding_its_prefix_not_the_least_recently_used() {
    let mut fake = Fake::new(2, 128, 8);
    fake.step_delay = Duration::from_millis(1);
    let h = spawn(fake);
    let other: Vec<u32> = (0..20).map(|i| 1 + (i * 4) % 15).collect();
    // Slot 0 runs `other` and finishes first; slot 1 runs the system prompt and finishes
    // last, so slot 0 is the least recently used.
    let (rx0, _a) = submit(&h, &prompt(&other, &[1]), greedy(2));
    let (rx1, _b) = submit(&h, &prompt(&system(), &[2]), greedy(12));
    collect(rx0);
    collect(rx1);
    wait_until(|| {
        let s = h.slots();
        (s[0].n_cached, s[1].n_cached) == (22, 42)
    });
    let o = collect(submit(&h, &prompt(&system(), &[4, 4]), greedy(2)).0);
    assert_eq!(o.usage.cached_tokens, 30);
    // A prompt sharing less than 10% with every cache goes to the least recently used slot
    // (slot 0) and keeps what it shares (one token here).
    let q = collect(submit(&h, &prompt(&[other[0]], &system()), greedy(2)).0);
    assert_eq!(q.usage.cached_tokens, 1);
    wait_until(|| h.slots()[0].n_cached == 32 && !h.slots()[0].is_processing);
}

#[test]
fn page_pressure_gives_up_idle_caches_instead_of_failing() {
    // 2 slots of 64 tokens over a pool of 20 pages (80 tokens).
    let mut fake = Fake::new(2, 64, 8);
    fake.pool_pages = Some(20);
    let h = spawn(fake);
    let a = collect(submit(&h, &prompt(&system(), &[1; 10]), greedy(10)).0);
    assert!(a.error.is_none());
    // Slot 0 keeps 49 tokens (13 pages); the next request (slot 1, never used) needs 15.
    wait_until(|| h.slots()[0].n_cached == 49);
    let other: Vec<u32> = (0..40).map(|i| 1 + (i * 4) % 15).collect();
    let b = collect(submit(&h, &other, greedy(20)).0);
    assert_eq!((b.error, b.reason), (None, Some(FinishReason::Length)));
    assert_eq!(b.ids.len(), 20);
    wait_until(|| {
        let s = h.slots();
        (s[0].n_cached, s[1].n_cached) == (0, 59)
    });
    let m = &h.shared().metrics;
    assert_eq!(
        m.idle_caches_evicted
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}
