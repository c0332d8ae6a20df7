//! `TURBINE_CUDA_PROFILE=1`: device time per operation, measured with CUDA events around each
//! launch (no host synchronisation, so the stream runs as it does unprofiled, apart from the
//! events themselves), and the host time spent issuing launches. Comparing the two tells whether
//! a forward pass is bound by the GPU or by the host feeding it kernels.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use cudarc::driver::{sys as drv_sys, CudaContext, CudaEvent, CudaStream};
use turbine_core::CoreError;

use crate::device::cuda_err;

#[derive(Default)]
pub struct OpProfile {
    /// Launches whose events have not been read yet: (op, start, end).
    pending: Vec<(String, CudaEvent, CudaEvent)>,
    /// Events already read, reused so a long run does not create millions of them.
    spare: Vec<CudaEvent>,
    /// Per op: launches, device seconds.
    ops: HashMap<String, (u64, f64)>,
    /// Host seconds spent inside launch calls (argument packing + cuLaunchKernel).
    host_launch_s: f64,
    launches: u64,
    /// First launch since the last report: wall time of the measured span.
    since: Option<Instant>,
}

impl OpProfile {
    fn event(&mut self, ctx: &Arc<CudaContext>) -> Result<CudaEvent, CoreError> {
        match self.spare.pop() {
            Some(e) => Ok(e),
            None => ctx
                .new_event(Some(drv_sys::CUevent_flags::CU_EVENT_DEFAULT))
                .map_err(|e| cuda_err("profile event", e)),
        }
    }

    /// Runs `launch` between two recorded events and notes its host time.
    pub fn around<F>(
        &mut self,
        ctx: &Arc<CudaContext>,
        stream: &CudaStream,
        op: &str,
        launch: F,
    ) -> Result<(), CoreError>
    where
        F: FnOnce() -> Result<(), CoreError>,
    {
        let start = self.event(ctx)?;
        let end = self.event(ctx)?;
        self.since.get_or_insert_with(Instant::now);
        start.record(stream).map_err(|e| cuda_err(op, e))?;
        let t0 = Instant::now();
        launch()?;
        self.host_launch_s += t0.elapsed().as_secs_f64();
        self.launches += 1;
        end.record(stream).map_err(|e| cuda_err(op, e))?;
        self.pending.push((op.to_string(), start, end));
        Ok(())
    }

    /// The table of device time per op since the last report (largest first), with the host
    /// launch time and the wall time of the span; clears it.
    pub fn report(&mut self) -> Result<String, CoreError> {
        for (op, start, end) in std::mem::take(&mut self.pending) {
            let ms = start
                .elapsed_ms(&end)
                .map_err(|e| cuda_err("profile elapsed", e))?;
            let e = self.ops.entry(op).or_insert((0, 0.0));
            e.0 += 1;
            e.1 += ms as f64 * 1e-3;
            self.spare.push(start);
            self.spare.push(end);
        }
        let wall = self.since.take().map_or(0.0, |t| t.elapsed().as_secs_f64());
        let mut ops: Vec<_> = self.ops.drain().collect();
        ops.sort_by(|a, b| b.1 .1.total_cmp(&a.1 .1));
        let total: f64 = ops.iter().map(|o| o.1 .1).sum();
        let mut s = format!(
            "{:<28} {:>9} {:>11} {:>9} {:>6}\n",
            "op", "calls", "device ms", "us/call", "%"
        );
        for (name, (n, t)) in ops {
            s.push_str(&format!(
                "{name:<28} {n:>9} {:>11.2} {:>9.2} {:>6.1}\n",
                t * 1e3,
                t * 1e6 / n.max(1) as f64,
                100.0 * t / total.max(1e-12)
            ));
        }
        s.push_str(&format!(
            "device busy {:.2} ms of {:.2} ms wall; host issued {} launches in {:.2} ms ({:.2} us each)\n",
            total * 1e3,
            wall * 1e3,
            self.launches,
            self.host_launch_s * 1e3,
            self.host_launch_s * 1e6 / self.launches.max(1) as f64
        ));
        self.host_launch_s = 0.0;
        self.launches = 0;
        Ok(s)
    }
}
