//! Every allocation a backend makes, recorded so a test (or `run --check-plan`) can prove that
//! what was allocated is exactly what the plan said.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::plan::{MemoryPlan, Role};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllocationRecord {
    /// The plan buffer this allocation belongs to.
    pub name: String,
    pub device: String,
    pub role: Role,
    pub bytes: u64,
}

/// Append-only log shared by a backend and whoever checks it.
#[derive(Debug, Default)]
pub struct AllocationLog {
    records: Mutex<Vec<AllocationRecord>>,
}

impl AllocationLog {
    pub fn new() -> AllocationLog {
        AllocationLog::default()
    }

    pub fn record(&self, name: &str, device: &str, role: Role, bytes: u64) {
        let rec = AllocationRecord {
            name: name.to_string(),
            device: device.to_string(),
            role,
            bytes,
        };
        // A poisoned lock only means another thread panicked while pushing; the data is a
        // plain Vec and still usable.
        match self.records.lock() {
            Ok(mut v) => v.push(rec),
            Err(poisoned) => poisoned.into_inner().push(rec),
        }
    }

    pub fn records(&self) -> Vec<AllocationRecord> {
        match self.records.lock() {
            Ok(v) => v.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn total_bytes(&self) -> u64 {
        self.records().iter().map(|r| r.bytes).sum()
    }

    /// Compares allocations, summed per buffer name, with the plan. Every planned buffer must
    /// have been allocated with exactly its planned size, on its device and role, and nothing
    /// unplanned may have been allocated. Returns one line per difference.
    pub fn compare(&self, plan: &MemoryPlan) -> Result<(), Vec<String>> {
        let mut allocated: BTreeMap<String, (String, Role, u64)> = BTreeMap::new();
        for r in self.records() {
            let e = allocated
                .entry(r.name.clone())
                .or_insert((r.device.clone(), r.role, 0));
            e.2 += r.bytes;
            if e.0 != r.device || e.1 != r.role {
                e.0 = format!("{} + {}", e.0, r.device);
            }
        }
        let mut problems = Vec::new();
        for spec in plan.buffers() {
            match allocated.remove(&spec.name) {
                None if spec.bytes == 0 => {}
                None => problems.push(format!(
                    "`{}`: planned {} bytes, never allocated",
                    spec.name, spec.bytes
                )),
                Some((device, role, bytes)) => {
                    if bytes != spec.bytes || device != spec.device || role != spec.role {
                        problems.push(format!(
                            "`{}`: planned {} bytes ({} on {}), allocated {} bytes ({} on {})",
                            spec.name,
                            spec.bytes,
                            spec.role.name(),
                            spec.device,
                            bytes,
                            role.name(),
                            device
                        ));
                    }
                }
            }
        }
        for (name, (_, _, bytes)) in allocated {
            problems.push(format!(
                "`{name}`: allocated {bytes} bytes, not in the plan"
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_finds_every_difference() {
        let mut plan = MemoryPlan::new();
        plan.add("a", "CPU", Role::Compute, 10, "").unwrap();
        plan.add("b", "CPU", Role::Context, 20, "").unwrap();
        let log = AllocationLog::new();
        log.record("a", "CPU", Role::Compute, 4);
        log.record("a", "CPU", Role::Compute, 6);
        log.record("b", "CPU", Role::Context, 20);
        assert!(log.compare(&plan).is_ok());
        log.record("c", "CPU", Role::Compute, 1);
        log.record("b", "CPU", Role::Context, 1);
        let errs = log.compare(&plan).unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
    }
}
