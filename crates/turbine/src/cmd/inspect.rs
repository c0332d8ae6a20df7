//! `turbine inspect`: a GGUF file's version, metadata, tensor table and totals, as text or
//! JSON. Bad files fail with the reader's one-line error (problem and byte offset).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use formats::GgmlType;
use gguf::{Array, GgufFile, Metadata, TensorInfo, Value};
use serde_json::{json, Map, Value as Json};

#[derive(clap::Args)]
pub struct Args {
    /// Model file (GGUF); for a split model, its first part.
    pub model: std::path::PathBuf,
    /// Print machine-readable JSON (full metadata values) instead of the text report.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let file = GgufFile::open(&args.model)?;
    let out = if args.json {
        let mut s = serde_json::to_string_pretty(&to_json(&args.model, &file))?;
        s.push('\n');
        s
    } else {
        text_report(&args.model, &file)
    };
    print!("{out}");
    Ok(())
}

/// Per-type totals, in type-id order.
#[derive(Default)]
struct TypeTotal {
    tensors: usize,
    elements: u64,
    bytes: u64,
}

fn type_totals(tensors: &[TensorInfo]) -> BTreeMap<GgmlType, TypeTotal> {
    let mut totals: BTreeMap<GgmlType, TypeTotal> = BTreeMap::new();
    for t in tensors {
        let e = totals.entry(t.ty).or_default();
        e.tensors += 1;
        e.elements += t.n_elements();
        e.bytes += t.n_bytes;
    }
    totals
}

/// 134515008 -> "134,515,008".
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.2} {}", UNITS[unit])
    }
}

/// A string as a short quoted, escaped literal (long ones cut with their length noted).
fn short_str(s: &str, max_chars: usize) -> String {
    let n = s.chars().count();
    if n <= max_chars {
        format!("{s:?}")
    } else {
        let head: String = s.chars().take(max_chars).collect();
        format!("{head:?}... ({n} chars)")
    }
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::U8(x) => x.to_string(),
        Value::I8(x) => x.to_string(),
        Value::U16(x) => x.to_string(),
        Value::I16(x) => x.to_string(),
        Value::U32(x) => x.to_string(),
        Value::I32(x) => x.to_string(),
        Value::U64(x) => x.to_string(),
        Value::I64(x) => x.to_string(),
        Value::F32(x) => x.to_string(),
        Value::F64(x) => x.to_string(),
        Value::Bool(x) => x.to_string(),
        Value::String(s) => short_str(s, 60),
        Value::Array(a) => array_text(a),
    }
}

/// `[49152 x string] ["<|endoftext|>", "<|im_start|>", ...]`: all elements of short arrays,
/// the first few of long ones.
fn array_text(a: &Array) -> String {
    const SHOW: usize = 8;
    let ty = a.element_type().name().to_lowercase();
    let shown = if a.len() <= SHOW { a.len() } else { 3 };
    let items: Vec<String> = (0..shown)
        .filter_map(|i| a.get(i))
        .map(|v| match v {
            Value::String(s) => short_str(&s, 24),
            other => scalar_text(&other),
        })
        .collect();
    let more = if shown < a.len() { ", ..." } else { "" };
    format!("[{} x {ty}] [{}{more}]", a.len(), items.join(", "))
}

fn text_report(path: &std::path::Path, f: &GgufFile) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "file:       {}", path.display());
    let _ = writeln!(
        s,
        "file size:  {} bytes ({}){}",
        grouped(f.file_size()),
        human_bytes(f.file_size()),
        if f.parts().len() > 1 {
            format!(" in {} parts", f.parts().len())
        } else {
            String::new()
        }
    );
    let _ = writeln!(
        s,
        "GGUF:       version {}, alignment {}",
        f.version(),
        f.alignment()
    );
    if let Some(arch) = f.metadata().get_str("general.architecture") {
        let _ = writeln!(s, "arch:       {arch}");
    }
    let _ = writeln!(s, "tensors:    {}", f.tensors().len());
    let _ = writeln!(s, "parameters: {}", grouped(f.n_parameters()));

    write_metadata(&mut s, f.metadata());
    for (i, part) in f.parts().iter().enumerate().skip(1) {
        let name = part
            .path()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let _ = writeln!(s, "\npart {} ({name}):", i + 1);
        write_metadata(&mut s, part.metadata());
    }

    let _ = writeln!(s, "\ntensors ({}):", f.tensors().len());
    let name_w = f
        .tensors()
        .iter()
        .map(|t| t.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let split = f.parts().len() > 1;
    let _ = writeln!(
        s,
        "  {:<name_w$}  {:<7}  {:<22}  {:>12}  {:>12}{}",
        "name",
        "type",
        "shape",
        "offset",
        "bytes",
        if split { "  part" } else { "" }
    );
    for t in f.tensors() {
        let _ = writeln!(
            s,
            "  {:<name_w$}  {:<7}  {:<22}  {:>12}  {:>12}{}",
            t.name.escape_debug().to_string(),
            t.ty.name(),
            t.shape_string(),
            t.file_offset,
            t.n_bytes,
            if split {
                format!("  {:>4}", t.part + 1)
            } else {
                String::new()
            }
        );
    }

    let _ = writeln!(s, "\nby type:");
    let _ = writeln!(
        s,
        "  {:<7}  {:>7}  {:>15}  {:>15}",
        "type", "tensors", "parameters", "bytes"
    );
    for (ty, t) in type_totals(f.tensors()) {
        let _ = writeln!(
            s,
            "  {:<7}  {:>7}  {:>15}  {:>15}",
            ty.name(),
            t.tensors,
            grouped(t.elements),
            grouped(t.bytes)
        );
    }
    let total_bytes: u64 = f.tensors().iter().map(|t| t.n_bytes).sum();
    let _ = writeln!(
        s,
        "  {:<7}  {:>7}  {:>15}  {:>15}",
        "total",
        f.tensors().len(),
        grouped(f.n_parameters()),
        grouped(total_bytes)
    );
    s
}

fn write_metadata(s: &mut String, md: &Metadata) {
    let _ = writeln!(s, "\nmetadata ({} keys):", md.len());
    // Keys and names come from the file: escape them so control characters cannot garble
    // the report or the terminal.
    let key_w = md
        .keys()
        .map(|k| k.escape_debug().count())
        .max()
        .unwrap_or(0);
    for (k, v) in md.iter() {
        let k = k.escape_debug().to_string();
        let ty = match v {
            Value::Array(_) => "array".to_string(),
            other => other.value_type().name().to_lowercase(),
        };
        let _ = writeln!(s, "  {k:<key_w$}  {ty:<7}  {}", scalar_text(v));
    }
}

fn value_json(v: &Value) -> Json {
    match v {
        Value::U8(x) => json!(x),
        Value::I8(x) => json!(x),
        Value::U16(x) => json!(x),
        Value::I16(x) => json!(x),
        Value::U32(x) => json!(x),
        Value::I32(x) => json!(x),
        Value::U64(x) => json!(x),
        Value::I64(x) => json!(x),
        Value::F32(x) => json!(x),
        Value::F64(x) => json!(x),
        Value::Bool(x) => json!(x),
        Value::String(s) => json!(s),
        Value::Array(a) => Json::Array(
            (0..a.len())
                .filter_map(|i| a.get(i))
                .map(|v| value_json(&v))
                .collect(),
        ),
    }
}

fn array_type_json(a: &Array) -> Json {
    match a {
        Array::Array(inner) => json!({
            "type": "ARRAY",
            "elements": inner.iter().map(array_type_json).collect::<Vec<_>>(),
        }),
        other => json!(other.element_type().name()),
    }
}

fn metadata_json(md: &Metadata) -> Json {
    let entries: Vec<Json> = md
        .iter()
        .map(|(k, v)| {
            let mut e = Map::new();
            e.insert("key".into(), json!(k));
            e.insert("type".into(), json!(v.value_type().name()));
            if let Value::Array(a) = v {
                e.insert("element_type".into(), array_type_json(a));
            }
            e.insert("value".into(), value_json(v));
            Json::Object(e)
        })
        .collect();
    Json::Array(entries)
}

fn to_json(path: &std::path::Path, f: &GgufFile) -> Json {
    let parts: Vec<Json> = f
        .parts()
        .iter()
        .map(|p| {
            json!({
                "path": p.path().map(|p| p.display().to_string()),
                "file_size": p.file_len(),
                "version": p.version(),
                "alignment": p.alignment(),
                "data_offset": p.data_offset(),
                "n_tensors": p.tensor_range().len(),
                "metadata": metadata_json(p.metadata()),
            })
        })
        .collect();
    let tensors: Vec<Json> = f
        .tensors()
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "type": t.ty.name(),
                "shape": t.dims,
                "n_elements": t.n_elements(),
                "offset": t.offset,
                "file_offset": t.file_offset,
                "bytes": t.n_bytes,
                "part": t.part,
            })
        })
        .collect();
    let mut by_type = Map::new();
    for (ty, t) in type_totals(f.tensors()) {
        by_type.insert(
            ty.name().to_string(),
            json!({"tensors": t.tensors, "parameters": t.elements, "bytes": t.bytes}),
        );
    }
    json!({
        "path": path.display().to_string(),
        "file_size": f.file_size(),
        "version": f.version(),
        "alignment": f.alignment(),
        "architecture": f.metadata().get_str("general.architecture"),
        "n_tensors": f.tensors().len(),
        "n_parameters": f.n_parameters(),
        "tensor_bytes": f.tensors().iter().map(|t| t.n_bytes).sum::<u64>(),
        "bytes_per_type": by_type,
        "metadata": metadata_json(f.metadata()),
        "parts": parts,
        "tensors": tensors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_helpers() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(134_515_008), "134,515,008");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(98_362_432), "93.81 MiB");
        let a = Array::String((0..5000).map(|i| format!("t{i}")).collect());
        assert_eq!(array_text(&a), r#"[5000 x string] ["t0", "t1", "t2", ...]"#);
        assert_eq!(array_text(&Array::I32(vec![1, -2])), "[2 x int32] [1, -2]");
        assert_eq!(short_str("a\nb", 10), r#""a\nb""#);
        assert_eq!(short_str("abcdef", 3), r#""abc"... (6 chars)"#);
    }
}
