//! Writes small, valid GGUF files into a directory as seeds for the reader's fuzz target
//! (`fuzz/seed.sh`): every value type, nested and empty arrays, several alignments, tensor
//! types and layouts, a split pair, and v2.

use std::path::PathBuf;

use formats::GgmlType;
use gguf::{Array, GgufWriter};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or("usage: make_fuzz_seeds DIR")?,
    );
    std::fs::create_dir_all(&dir)?;
    let mut n = 0;
    let mut save = |name: &str, w: &GgufWriter<'_>| -> Result<(), Box<dyn std::error::Error>> {
        w.write_file(dir.join(format!("seed-{name}.gguf")))?;
        n += 1;
        Ok(())
    };

    save("empty", &GgufWriter::new())?;

    let mut all = GgufWriter::new();
    all.add_metadata("general.architecture", "llama");
    all.add_metadata("u8", 1u8);
    all.add_metadata("i8", -1i8);
    all.add_metadata("u16", 2u16);
    all.add_metadata("i16", -2i16);
    all.add_metadata("u32", 3u32);
    all.add_metadata("i32", -3i32);
    all.add_metadata("f32", 0.5f32);
    all.add_metadata("bool", true);
    all.add_metadata("str", "hello");
    all.add_metadata("u64", 4u64);
    all.add_metadata("i64", -4i64);
    all.add_metadata("f64", 0.25f64);
    all.add_metadata("a.str", Array::String(vec!["a".into(), "bc".into()]));
    all.add_metadata("a.i32", Array::I32(vec![1, 2, 3]));
    all.add_metadata("a.f32", Array::F32(vec![1.0, -1.0]));
    all.add_metadata("a.bool", Array::Bool(vec![true, false]));
    all.add_metadata("a.u64", Array::U64(vec![9]));
    all.add_metadata("a.empty", Array::U8(vec![]));
    all.add_metadata(
        "a.nested",
        Array::Array(vec![
            Array::I16(vec![1]),
            Array::Array(vec![Array::F64(vec![2.0])]),
        ]),
    );
    save("all-types", &all)?;

    let tensors = |w: &mut GgufWriter<'_>| -> Result<(), gguf::GgufError> {
        w.add_tensor("f32", &[4, 2], GgmlType::F32, vec![1u8; 32])?;
        w.add_tensor("f16", &[3], GgmlType::F16, vec![2u8; 6])?;
        w.add_tensor("q4_0", &[32, 2], GgmlType::Q4_0, vec![3u8; 36])?;
        w.add_tensor("q8_0", &[32], GgmlType::Q8_0, vec![4u8; 34])?;
        w.add_tensor("q4_k", &[256], GgmlType::Q4K, vec![5u8; 144])?;
        w.add_tensor("empty", &[0, 4], GgmlType::F32, vec![])?;
        w.add_tensor("scalar", &[], GgmlType::I32, vec![6u8; 4])
    };
    let mut t = GgufWriter::new();
    t.add_metadata("general.architecture", "llama");
    tensors(&mut t)?;
    save("tensors", &t)?;

    for align in [1u32, 8, 64] {
        let mut w = GgufWriter::new();
        w.add_metadata("general.alignment", align);
        tensors(&mut w)?;
        save(&format!("align{align}"), &w)?;
    }

    let mut v2 = GgufWriter::new();
    v2.set_version(2)?;
    v2.add_metadata("k", "v");
    v2.add_tensor("x", &[2, 2, 2, 2], GgmlType::F32, vec![7u8; 64])?;
    save("v2-4d", &v2)?;

    let mut split = GgufWriter::new();
    split.add_metadata("split.no", 0u16);
    split.add_metadata("split.count", 2u16);
    split.add_metadata("split.tensors.count", 2i32);
    split.add_tensor("a", &[1], GgmlType::F32, vec![0u8; 4])?;
    save("split-part", &split)?;

    println!("wrote {n} seeds to {}", dir.display());
    Ok(())
}
