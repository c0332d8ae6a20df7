//! Shared helpers for the formats integration tests: locating test assets (with the team's
//! skip-or-fail rule), reading little-endian f32 files, and a small seeded RNG.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// True when CI demands every asset: a missing one is then a failure, not a skip.
pub fn assets_required() -> bool {
    std::env::var("TURBINE_REQUIRE_ASSETS").is_ok_and(|v| v == "1")
}

/// Prints the skip message and returns `None`, or panics if assets are required.
pub fn skip<T>(what: &str, hint: &str) -> Option<T> {
    if assets_required() {
        panic!("{what} is missing and TURBINE_REQUIRE_ASSETS=1 ({hint})");
    }
    eprintln!("skipped: {what} not found ({hint})");
    None
}

/// `$TURBINE_TESTDATA/quant-ref` or `<workspace root>/../shared/testdata/quant-ref`.
pub fn quant_ref_dir() -> Option<PathBuf> {
    let base = match std::env::var_os("TURBINE_TESTDATA") {
        Some(dir) => PathBuf::from(dir),
        None => workspace_root().join("../shared/testdata"),
    };
    let dir = base.join("quant-ref");
    if dir.join("input.f32").is_file() {
        Some(dir)
    } else {
        skip(
            &format!("reference vectors {}", dir.display()),
            "set TURBINE_TESTDATA to the shared testdata directory",
        )
    }
}

/// `$TURBINE_PYTHON` or `<workspace root>/.venv/bin/python`.
pub fn python() -> Option<PathBuf> {
    let py = match std::env::var_os("TURBINE_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => workspace_root().join(".venv/bin/python"),
    };
    if py.is_file() {
        Some(py)
    } else {
        skip(
            &format!("python {}", py.display()),
            "create the venv: run scripts/fetch-models.sh",
        )
    }
}

pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

pub fn f32s_from_bytes(bytes: &[u8]) -> Vec<f32> {
    assert_eq!(bytes.len() % 4, 0);
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

pub fn f32s_to_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

pub fn read_f32(path: &Path) -> Vec<f32> {
    f32s_from_bytes(&read(path))
}

/// SplitMix64: small, seedable, good enough for test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// A seed from the clock, so every run sees fresh data (the test prints it).
    pub fn fresh_seed() -> u64 {
        if let Ok(s) = std::env::var("TURBINE_TEST_SEED") {
            if let Ok(s) = s.parse() {
                return s;
            }
        }
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x5eed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}
