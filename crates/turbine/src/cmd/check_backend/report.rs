//! Error measures of one output against its reference, and the pass/fail table.

/// How far an output is from its reference.
#[derive(Clone, Copy, Debug, Default)]
pub struct Measure {
    pub max_abs: f64,
    /// max |out − ref| / max |ref|.
    pub rel: f64,
    /// Σ (out − ref)² / Σ ref².
    pub nmse: f64,
    /// Any NaN or infinity in the output (unwritten outputs are poisoned with NaN).
    pub non_finite: bool,
}

impl Measure {
    pub fn of(out: &[f32], reference: &[f64]) -> Measure {
        Measure::of_scaled(out, reference, 0.0)
    }

    /// Like [`Measure::of`], with `rel` taken against at least `scale`: for outputs whose f32
    /// formula loses everything to cancellation when the result is near zero (GELU of a large
    /// negative input: `1 + tanh(z)`), the error is bounded by the inputs' size, not the
    /// output's.
    pub fn of_scaled(out: &[f32], reference: &[f64], scale: f64) -> Measure {
        let mut m = Measure::default();
        let (mut err2, mut ref2, mut ref_max) = (0.0f64, 0.0f64, 0.0f64);
        for (&o, &r) in out.iter().zip(reference) {
            if !o.is_finite() {
                m.non_finite = true;
                continue;
            }
            let d = (o as f64 - r).abs();
            m.max_abs = m.max_abs.max(d);
            err2 += d * d;
            ref2 += r * r;
            ref_max = ref_max.max(r.abs());
        }
        if out.len() != reference.len() {
            m.non_finite = true;
        }
        let ref_max = ref_max.max(scale);
        let ref2 = ref2.max(scale * scale * reference.len() as f64);
        m.rel = if ref_max > 0.0 {
            m.max_abs / ref_max
        } else {
            m.max_abs
        };
        m.nmse = if ref2 > 0.0 { err2 / ref2 } else { err2 };
        m
    }

    /// Within the relative tolerances, or within 1e-9 absolute (outputs whose reference is
    /// itself near zero, such as GELU of a large negative input, have no meaningful relative
    /// error).
    pub fn within(&self, rel: f64, nmse: f64) -> bool {
        !self.non_finite && (self.max_abs <= 1e-9 || (self.rel <= rel && self.nmse <= nmse))
    }
}

/// One line of the table.
pub struct Row {
    pub op: String,
    pub case: String,
    /// The numbers, or a note such as "bytes 0/1234 differ".
    pub detail: String,
    pub pass: bool,
}

#[derive(Default)]
pub struct Report {
    pub rows: Vec<Row>,
}

impl Report {
    pub fn measured(&mut self, op: &str, case: String, m: Measure, rel: f64, nmse: f64) {
        let pass = m.within(rel, nmse);
        let detail = if m.non_finite {
            "non-finite or missing output".to_string()
        } else {
            format!(
                "max_abs {:.2e}  rel {:.2e}  nmse {:.2e}",
                m.max_abs, m.rel, m.nmse
            )
        };
        self.push(op, case, detail, pass);
    }

    pub fn push(&mut self, op: &str, case: String, detail: String, pass: bool) {
        let line = Row {
            op: op.to_string(),
            case,
            detail,
            pass,
        };
        println!(
            "{:<14} {:<52} {:<44} {}",
            line.op,
            line.case,
            line.detail,
            if line.pass { "ok" } else { "FAIL" }
        );
        self.rows.push(line);
    }

    pub fn failed(&self) -> usize {
        self.rows.iter().filter(|r| !r.pass).count()
    }

    /// Per-op totals.
    pub fn summary(&self) -> String {
        let mut ops: Vec<&str> = Vec::new();
        for r in &self.rows {
            if !ops.contains(&r.op.as_str()) {
                ops.push(&r.op);
            }
        }
        let mut s = String::new();
        s.push_str(&format!("{:<14} {:>6} {:>6}\n", "op", "pass", "fail"));
        for op in ops {
            let pass = self.rows.iter().filter(|r| r.op == op && r.pass).count();
            let fail = self.rows.iter().filter(|r| r.op == op && !r.pass).count();
            s.push_str(&format!("{op:<14} {pass:>6} {fail:>6}\n"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_measured_against_the_reference() {
        let m = Measure::of(&[1.0, 2.0], &[1.0, 2.5]);
        assert!((m.max_abs - 0.5).abs() < 1e-12);
        assert!((m.rel - 0.2).abs() < 1e-12);
        assert!((m.nmse - 0.25 / 7.25).abs() < 1e-12);
        assert!(!m.within(1e-3, 1e-3));
        assert!(Measure::of(&[f32::NAN], &[1.0]).non_finite);
        assert!(Measure::of(&[1.0], &[1.0, 2.0]).non_finite);
    }

    #[test]
    fn scaled_measure_ignores_cancellation_near_zero() {
        // GELU of a large negative gate times an O(1) up value, seen on an H100: the f32 result
        // is off by 8.8e-9 absolute on a reference of 2e-6.
        let reference = [-2.0e-6f64];
        let out = [(-2.0e-6f64 + 8.8e-9) as f32];
        assert!(!Measure::of(&out, &reference).within(1e-5, 1e-10));
        assert!(Measure::of_scaled(&out, &reference, 2.0).within(1e-5, 1e-10));
    }
}
