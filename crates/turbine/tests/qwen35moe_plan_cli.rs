//! The memory scenario end to end: `turbine synth --header-only` writes the
//! Qwen3.5-35B-A3B (qwen35moe) header, and `turbine plan` with llama-server's exact flags
//! (`-c 65536 -ub 512 -np 1 -fa on -ctk q8_0 -ctv turbo4`) shows the KV of the 10 attention
//! layers only, the DeltaNet state as context, and compute well under the reference build's
//! 489 MiB, unchanged from `-c 8192` to `-c 262144`.

use std::path::PathBuf;
use std::process::Command;

fn turbine(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_turbine"))
        .args(args)
        .output()
        .expect("run turbine");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "turbine {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// MiB column of the table row whose first three columns are `CPU <role> <name>`.
fn mib(table: &str, role: &str, name: &str) -> f64 {
    table
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 5 && f[0] == "CPU" && f[1] == role && f[2] == name)
                .then(|| f[4].parse::<f64>().expect("MiB column"))
        })
        .unwrap_or_else(|| panic!("no row {role} {name} in\n{table}"))
}

#[test]
fn qwen35moe_35b_a3b_plan_from_header() {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("qwen35moe-35b-a3b.header.gguf");
    let p = path.to_str().expect("utf-8 path");
    turbine(&[
        "synth",
        "--arch",
        "qwen35moe",
        "--shape",
        "35b-a3b",
        "--type",
        "q4_K",
        "--header-only",
        "-o",
        p,
    ]);
    let plan = |c: &str| {
        turbine(&[
            "plan", "-m", p, "-c", c, "-ub", "512", "-np", "1", "-fa", "on", "-ctk", "q8_0",
            "-ctv", "turbo4", "-t", "16",
        ])
    };
    let t = plan("65536");
    let kv = mib(&t, "context", "kv");
    let rec = mib(&t, "context", "recurrent");
    let compute = mib(&t, "compute", "(total)");
    eprintln!("KV {kv} MiB, recurrent {rec} MiB, compute {compute} MiB");
    // 10 layers × 65536 × 2 heads × (272 B q8_0 K + 132 B turbo4 V) = 505.0 MiB.
    assert!((505.0..505.1).contains(&kv), "kv {kv} MiB");
    // 30 layers × (3 × 8192 + 32 × 128 × 128) × 4 B = 62.81 MiB.
    assert!((62.8..62.82).contains(&rec), "recurrent {rec} MiB");
    assert!(compute < 489.0, "compute {compute} MiB");
    for c in ["8192", "262144"] {
        let other = mib(&plan(c), "compute", "(total)");
        assert_eq!(other, compute, "compute at -c {c}");
    }
}
