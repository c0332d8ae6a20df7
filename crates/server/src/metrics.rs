//! Prometheus metrics, kept in atomics so the engine thread and HTTP handlers update them
//! without locks, and rendered in the text exposition format by `GET /metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Latency buckets in seconds: fine at the low end (per-token latency on a GPU is a few ms)
/// up to a minute (time to first token behind a long queue).
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 60.0,
];

pub struct Histogram {
    /// Observations at most `LATENCY_BUCKETS[i]` (non-cumulative; summed when rendered).
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    /// Sum in nanoseconds, so it can live in an integer atomic.
    sum_ns: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub fn observe(&self, seconds: f64) {
        let seconds = seconds.max(0.0);
        if let Some(i) = LATENCY_BUCKETS.iter().position(|&b| seconds <= b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ns
            .fetch_add((seconds * 1e9) as u64, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, b) in LATENCY_BUCKETS.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cumulative}");
        }
        let count = self.count();
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
}

/// Metrics of one loaded model, written by its engine thread.
#[derive(Default)]
pub struct EngineMetrics {
    /// Prompt tokens evaluated (those taken from a slot's cache are counted apart).
    pub prompt_tokens: AtomicU64,
    pub prompt_tokens_cached: AtomicU64,
    /// Idle slots' caches given up to make room for running requests.
    pub idle_caches_evicted: AtomicU64,
    pub generated_tokens: AtomicU64,
    pub requests_finished: AtomicU64,
    pub requests_cancelled: AtomicU64,
    pub requests_failed: AtomicU64,
    pub ttft: Histogram,
    pub itl: Histogram,
    /// Arrival to getting a slot.
    pub queue_wait: Histogram,
    /// Getting a slot to the first token (prompt evaluation, beside other requests' steps).
    pub prompt_eval: Histogram,
    pub processing: AtomicU64,
    pub waiting: AtomicU64,
    pub kv_cells_used: AtomicU64,
    pub kv_cells_total: AtomicU64,
    pub kv_pages_used: AtomicU64,
    pub kv_pages_total: AtomicU64,
}

/// Planned bytes of one model on one device in one role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryLine {
    pub device: String,
    pub role: &'static str,
    pub bytes: u64,
}

/// Counters of the HTTP layer: requests by route and status.
#[derive(Default)]
pub struct HttpMetrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
}

impl HttpMetrics {
    pub fn record(&self, route: &str, status: u16) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((route.to_string(), status)).or_insert(0) += 1;
        }
    }

    pub fn count(&self, route: &str, status: u16) -> u64 {
        self.requests
            .lock()
            .ok()
            .and_then(|m| m.get(&(route.to_string(), status)).copied())
            .unwrap_or(0)
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Builds the exposition text: HTTP counters, then each model's engine metrics and memory.
pub struct Exposition {
    out: String,
}

struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
}

const FAMILIES: &[Family] = &[
    Family {
        name: "turbine_prompt_tokens_total",
        kind: "counter",
        help: "Prompt tokens evaluated.",
    },
    Family {
        name: "turbine_prompt_tokens_cached_total",
        kind: "counter",
        help: "Prompt tokens taken from a slot's cache instead of evaluated.",
    },
    Family {
        name: "turbine_idle_caches_evicted_total",
        kind: "counter",
        help: "Idle slots' prompt caches given up to make room for running requests.",
    },
    Family {
        name: "turbine_generated_tokens_total",
        kind: "counter",
        help: "Tokens generated.",
    },
    Family {
        name: "turbine_requests_finished_total",
        kind: "counter",
        help: "Generations that ran to a finish reason.",
    },
    Family {
        name: "turbine_requests_cancelled_total",
        kind: "counter",
        help: "Generations cancelled because the client went away or timed out.",
    },
    Family {
        name: "turbine_requests_failed_total",
        kind: "counter",
        help: "Generations ended by an engine error, shutdown or unload.",
    },
    Family {
        name: "turbine_requests_processing",
        kind: "gauge",
        help: "Requests holding a slot.",
    },
    Family {
        name: "turbine_requests_waiting",
        kind: "gauge",
        help: "Requests waiting for a slot.",
    },
    Family {
        name: "turbine_kv_cells_used",
        kind: "gauge",
        help: "KV cache cells (tokens) held by slots, running or keeping a prompt cache.",
    },
    Family {
        name: "turbine_kv_cells_total",
        kind: "gauge",
        help: "KV cache cells (tokens) in all slots.",
    },
    Family {
        name: "turbine_kv_pages_used",
        kind: "gauge",
        help: "KV cache pages held by slots, running or keeping a prompt cache.",
    },
    Family {
        name: "turbine_kv_pages_free",
        kind: "gauge",
        help: "KV cache pages free.",
    },
];

impl Exposition {
    pub fn new(http: &HttpMetrics) -> Exposition {
        let mut out = String::new();
        out.push_str("# HELP turbine_http_requests_total HTTP requests by route and status.\n");
        out.push_str("# TYPE turbine_http_requests_total counter\n");
        if let Ok(m) = http.requests.lock() {
            for ((route, status), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "turbine_http_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                    escape(route)
                );
            }
        }
        Exposition { out }
    }

    /// Adds the engine metrics and planned memory of each loaded model.
    pub fn models(mut self, models: &[(String, &EngineMetrics, Vec<MemoryLine>)]) -> Exposition {
        let value = |m: &EngineMetrics, name: &str| -> u64 {
            let a = match name {
                "turbine_prompt_tokens_total" => &m.prompt_tokens,
                "turbine_prompt_tokens_cached_total" => &m.prompt_tokens_cached,
                "turbine_idle_caches_evicted_total" => &m.idle_caches_evicted,
                "turbine_generated_tokens_total" => &m.generated_tokens,
                "turbine_requests_finished_total" => &m.requests_finished,
                "turbine_requests_cancelled_total" => &m.requests_cancelled,
                "turbine_requests_failed_total" => &m.requests_failed,
                "turbine_requests_processing" => &m.processing,
                "turbine_requests_waiting" => &m.waiting,
                "turbine_kv_cells_used" => &m.kv_cells_used,
                "turbine_kv_cells_total" => &m.kv_cells_total,
                "turbine_kv_pages_used" => &m.kv_pages_used,
                _ => {
                    let total = m.kv_pages_total.load(Ordering::Relaxed);
                    let used = m.kv_pages_used.load(Ordering::Relaxed);
                    return total.saturating_sub(used);
                }
            };
            a.load(Ordering::Relaxed)
        };
        for f in FAMILIES {
            let _ = writeln!(self.out, "# HELP {} {}", f.name, f.help);
            let _ = writeln!(self.out, "# TYPE {} {}", f.name, f.kind);
            for (model, m, _) in models {
                let _ = writeln!(
                    self.out,
                    "{}{{model=\"{}\"}} {}",
                    f.name,
                    escape(model),
                    value(m, f.name)
                );
            }
        }
        type Pick = fn(&EngineMetrics) -> &Histogram;
        let histograms: [(&str, &str, Pick); 4] = [
            (
                "turbine_time_to_first_token_seconds",
                "Time from request arrival to its first generated token.",
                |m| &m.ttft,
            ),
            (
                "turbine_inter_token_latency_seconds",
                "Time between consecutive tokens of one request.",
                |m| &m.itl,
            ),
            (
                "turbine_queue_wait_seconds",
                "Time from request arrival until it gets a slot.",
                |m| &m.queue_wait,
            ),
            (
                "turbine_prompt_eval_seconds",
                "Time from getting a slot to the first generated token.",
                |m| &m.prompt_eval,
            ),
        ];
        for (name, help, pick) in histograms {
            let _ = writeln!(self.out, "# HELP {name} {help}");
            let _ = writeln!(self.out, "# TYPE {name} histogram");
            for (model, m, _) in models {
                pick(m).render(&mut self.out, name, &format!("model=\"{}\"", escape(model)));
            }
        }
        self.out.push_str(
            "# HELP turbine_memory_bytes Bytes held per device and role, from the memory plan.\n",
        );
        self.out.push_str("# TYPE turbine_memory_bytes gauge\n");
        for (model, _, lines) in models {
            for l in lines {
                let _ = writeln!(
                    self.out,
                    "turbine_memory_bytes{{model=\"{}\",device=\"{}\",role=\"{}\"}} {}",
                    escape(model),
                    escape(&l.device),
                    l.role,
                    l.bytes
                );
            }
        }
        self
    }

    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::default();
        h.observe(0.003);
        h.observe(0.2);
        h.observe(100.0);
        let mut s = String::new();
        h.render(&mut s, "x", "model=\"m\"");
        assert!(s.contains("x_bucket{model=\"m\",le=\"0.001\"} 0\n"));
        assert!(s.contains("x_bucket{model=\"m\",le=\"0.005\"} 1\n"));
        assert!(s.contains("x_bucket{model=\"m\",le=\"0.25\"} 2\n"));
        assert!(s.contains("x_bucket{model=\"m\",le=\"60\"} 2\n"));
        assert!(s.contains("x_bucket{model=\"m\",le=\"+Inf\"} 3\n"));
        assert!(s.contains("x_count{model=\"m\"} 3\n"));
    }

    #[test]
    fn exposition_has_every_family_per_model() {
        let http = HttpMetrics::default();
        http.record("/v1/chat/completions", 200);
        http.record("/v1/chat/completions", 200);
        let m = EngineMetrics::default();
        m.kv_pages_total.store(10, Ordering::Relaxed);
        m.kv_pages_used.store(3, Ordering::Relaxed);
        let mem = vec![MemoryLine {
            device: "CPU".into(),
            role: "model",
            bytes: 42,
        }];
        let text = Exposition::new(&http)
            .models(&[("a\"b".into(), &m, mem)])
            .finish();
        assert!(text.contains(
            "turbine_http_requests_total{route=\"/v1/chat/completions\",status=\"200\"} 2"
        ));
        assert!(text.contains("turbine_kv_pages_free{model=\"a\\\"b\"} 7"));
        assert!(text
            .contains("turbine_memory_bytes{model=\"a\\\"b\",device=\"CPU\",role=\"model\"} 42"));
        for f in FAMILIES {
            assert!(text.contains(&format!("# TYPE {} {}", f.name, f.kind)));
        }
    }
}
