//! The memory plan: every buffer the engine will hold, per device, sized by formulas before
//! anything is allocated.
//!
//! The plan is data, not policy: the model crate computes the buffers from the GGUF header,
//! the run configuration and the backend's workspace formulas; this module stores them, sums
//! them per device and role, and prints them.

use std::fmt::Write as _;

use crate::memory::{mib, DeviceMemory};

/// What a buffer holds, in llama.cpp's breakdown terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Weights.
    Model,
    /// KV cache and recurrent state.
    Context,
    /// Activations and kernel workspaces.
    Compute,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Model => "model",
            Role::Context => "context",
            Role::Compute => "compute",
        }
    }
}

/// One planned buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BufferSpec {
    /// Unique within the plan (`"act.x"`, `"kv"`, `"weights"`); allocations are matched by it.
    pub name: String,
    /// The device name the buffer lives on (`"CPU"`, `"CUDA0"`).
    pub device: String,
    pub role: Role,
    pub bytes: u64,
    /// How `bytes` was computed, for the table (`"512 rows × 576 × 4 B"`).
    pub formula: String,
}

/// All buffers of one engine configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryPlan {
    buffers: Vec<BufferSpec>,
    /// Free-form lines printed under the table (shape classes, what grows with context).
    pub notes: Vec<String>,
}

impl MemoryPlan {
    pub fn new() -> MemoryPlan {
        MemoryPlan::default()
    }

    /// Adds a buffer. A name used twice is a bug in the planner, reported as an error so the
    /// caller can name the configuration that caused it.
    pub fn add(
        &mut self,
        name: impl Into<String>,
        device: impl Into<String>,
        role: Role,
        bytes: u64,
        formula: impl Into<String>,
    ) -> Result<(), crate::CoreError> {
        let name = name.into();
        if self.get(&name).is_some() {
            return Err(crate::CoreError::Shape(format!(
                "memory plan: buffer `{name}` planned twice"
            )));
        }
        self.buffers.push(BufferSpec {
            name,
            device: device.into(),
            role,
            bytes,
            formula: formula.into(),
        });
        Ok(())
    }

    pub fn buffers(&self) -> &[BufferSpec] {
        &self.buffers
    }

    pub fn get(&self, name: &str) -> Option<&BufferSpec> {
        self.buffers.iter().find(|b| b.name == name)
    }

    /// Device names in order of first appearance.
    pub fn devices(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for b in &self.buffers {
            if !out.contains(&b.device.as_str()) {
                out.push(&b.device);
            }
        }
        out
    }

    /// Bytes of `role` on `device`.
    pub fn role_bytes(&self, device: &str, role: Role) -> u64 {
        self.buffers
            .iter()
            .filter(|b| b.device == device && b.role == role)
            .map(|b| b.bytes)
            .sum()
    }

    /// All bytes on `device`.
    pub fn device_bytes(&self, device: &str) -> u64 {
        self.buffers
            .iter()
            .filter(|b| b.device == device)
            .map(|b| b.bytes)
            .sum()
    }

    /// The llama.cpp-style line, in MiB:
    /// `CPU | 24031 = 20000 free + (4031 = 3700 model + 200 context + 131 compute) + 0 unaccounted`.
    ///
    /// `label` names the device (`"CPU"`, `"CUDA0 (NVIDIA H100 80GB HBM3)"`). `mem` is its total
    /// and free memory at the time of printing; without it only the self part is printed.
    /// Unaccounted is what is neither free nor ours (other processes, runtime) and can be
    /// negative when `free` was measured before our buffers were touched.
    pub fn breakdown_line(&self, device: &str, label: &str, mem: Option<&DeviceMemory>) -> String {
        let model = mib(self.role_bytes(device, Role::Model));
        let context = mib(self.role_bytes(device, Role::Context));
        let compute = mib(self.role_bytes(device, Role::Compute));
        let own = model + context + compute;
        let parts = format!("({own} = {model} model + {context} context + {compute} compute)");
        match mem {
            Some(m) => {
                let total = mib(m.total);
                let free = mib(m.free);
                let unaccounted = total as i64 - free as i64 - own as i64;
                format!("{label} | {total} = {free} free + {parts} + {unaccounted} unaccounted")
            }
            None => format!("{label} | {parts}"),
        }
    }

    /// A table of every buffer: device, role, size and formula, then per-role totals.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let name_w = self
            .buffers
            .iter()
            .map(|b| b.name.len())
            .max()
            .unwrap_or(4)
            .max(6);
        let _ = writeln!(
            out,
            "{:<6} {:<8} {:<name_w$} {:>12} {:>10}  formula",
            "device", "role", "buffer", "bytes", "MiB"
        );
        for b in &self.buffers {
            let _ = writeln!(
                out,
                "{:<6} {:<8} {:<name_w$} {:>12} {:>10.2}  {}",
                b.device,
                b.role.name(),
                b.name,
                b.bytes,
                b.bytes as f64 / (1024.0 * 1024.0),
                b.formula
            );
        }
        for device in self.devices() {
            for role in [Role::Model, Role::Context, Role::Compute] {
                let bytes = self.role_bytes(device, role);
                let _ = writeln!(
                    out,
                    "{:<6} {:<8} {:<name_w$} {:>12} {:>10.2}",
                    device,
                    role.name(),
                    "(total)",
                    bytes,
                    bytes as f64 / (1024.0 * 1024.0)
                );
            }
        }
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breakdown_adds_up() {
        let mut plan = MemoryPlan::new();
        let m = 1024 * 1024;
        plan.add("weights", "CPU", Role::Model, 3700 * m, "")
            .unwrap();
        plan.add("kv", "CPU", Role::Context, 200 * m, "").unwrap();
        plan.add("act", "CPU", Role::Compute, 131 * m + 5, "")
            .unwrap();
        assert!(plan.add("kv", "CPU", Role::Context, 1, "").is_err());
        let mem = DeviceMemory {
            total: 24031 * m,
            free: 20000 * m,
        };
        assert_eq!(
            plan.breakdown_line("CPU", "CPU", Some(&mem)),
            "CPU | 24031 = 20000 free + (4031 = 3700 model + 200 context + 131 compute) + 0 unaccounted"
        );
        assert_eq!(plan.device_bytes("CPU"), 4031 * m + 5);
        assert!(plan.table().contains("weights"));
    }
}
