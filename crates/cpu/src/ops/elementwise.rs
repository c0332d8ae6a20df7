//! Element-wise arithmetic with row broadcasting: `y` may be as long as `x` or one row that
//! repeats over `x` (a bias or a per-channel weight).

use super::for_row_runs;
use crate::context::Cpu;
use crate::error::CpuError;

fn check_broadcast(op: &'static str, x: usize, y: usize) -> Result<(), CpuError> {
    if y == 0 || !x.is_multiple_of(y) {
        return Err(CpuError::BadArgument {
            op,
            what: format!("operand of {y} values does not tile the input of {x} values"),
        });
    }
    Ok(())
}

fn binary(
    cpu: &Cpu,
    op: &'static str,
    x: &mut [f32],
    y: &[f32],
    f: fn(f32, f32) -> f32,
) -> Result<(), CpuError> {
    check_broadcast(op, x.len(), y.len())?;
    let n = y.len();
    if n == x.len() {
        for_row_runs(cpu, x, 1, |first, run| {
            for (a, &b) in run.iter_mut().zip(&y[first..]) {
                *a = f(*a, b);
            }
        });
    } else {
        for_row_runs(cpu, x, n, |_, run| {
            for row in run.chunks_exact_mut(n) {
                for (a, &b) in row.iter_mut().zip(y) {
                    *a = f(*a, b);
                }
            }
        });
    }
    Ok(())
}

/// `x ← x + y` (residual add, bias add).
pub fn add_inplace(cpu: &Cpu, x: &mut [f32], y: &[f32]) -> Result<(), CpuError> {
    binary(cpu, "add", x, y, |a, b| a + b)
}

/// `x ← x · y` (element-wise or per-channel scale).
pub fn mul_inplace(cpu: &Cpu, x: &mut [f32], y: &[f32]) -> Result<(), CpuError> {
    binary(cpu, "mul", x, y, |a, b| a * b)
}

/// `x ← s · x`.
pub fn scale_inplace(cpu: &Cpu, x: &mut [f32], s: f32) {
    for_row_runs(cpu, x, 1, |_, run| run.iter_mut().for_each(|v| *v *= s));
}

/// `out ← a + b` for equal-length slices.
pub fn add(cpu: &Cpu, a: &[f32], b: &[f32], out: &mut [f32]) -> Result<(), CpuError> {
    crate::error::check_len("add", "second operand length", b.len(), a.len())?;
    crate::error::check_len("add", "output length", out.len(), a.len())?;
    for_row_runs(cpu, out, 1, |first, run| {
        for (k, o) in run.iter_mut().enumerate() {
            *o = a[first + k] + b[first + k];
        }
    });
    Ok(())
}
