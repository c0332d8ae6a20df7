//! Split models: written by our writer and by the Python `gguf` package, opened from the first
//! part with all tensors resolved to their own file; broken splits give clear errors.

mod common;

use std::path::{Path, PathBuf};

use formats::GgmlType;
use gguf::{GgufFile, GgufWriter};

/// A model with `n` small f32 tensors whose bytes identify them.
fn model(n: usize) -> GgufWriter<'static> {
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", "llama");
    w.add_metadata("llama.block_count", n as u32);
    for i in 0..n {
        let data: Vec<u8> = (0..4 * (i + 1)).map(|j| (i * 31 + j) as u8).collect();
        w.add_tensor(format!("t{i}"), &[i as u64 + 1], GgmlType::F32, data)
            .unwrap();
    }
    w
}

fn expected_data(i: usize) -> Vec<u8> {
    (0..4 * (i + 1)).map(|j| (i * 31 + j) as u8).collect()
}

#[test]
fn our_split_opens_from_the_first_part() {
    let dir = common::temp_dir("split-ours");
    let paths = model(7).write_split(dir.join("m"), 3).unwrap();
    let names: Vec<String> = paths
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "m-00001-of-00003.gguf",
            "m-00002-of-00003.gguf",
            "m-00003-of-00003.gguf"
        ]
    );
    let f = GgufFile::open(&paths[0]).unwrap();
    assert_eq!(f.parts().len(), 3);
    assert_eq!(f.tensors().len(), 7);
    assert_eq!(f.metadata().get_str("general.architecture"), Some("llama"));
    assert_eq!(f.metadata().get_u32("split.count"), Some(3));
    for (i, t) in f.tensors().iter().enumerate() {
        assert_eq!(t.name, format!("t{i}"));
        assert_eq!(t.part, i / 3);
        assert_eq!(f.tensor_data(t), expected_data(i));
    }
    assert_eq!(f.parts()[1].metadata().get_u32("split.no"), Some(1));
    assert_eq!(f.parts()[2].tensor_range(), 6..7);
    // Every part round-trips byte for byte.
    for (no, p) in paths.iter().enumerate() {
        let bytes = GgufWriter::from_part(&f, no).unwrap().to_bytes().unwrap();
        assert!(bytes == std::fs::read(p).unwrap(), "part {no}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn python_split_opens_like_the_unsplit_model() {
    let Some(py) = common::python() else {
        return;
    };
    let dir = common::temp_dir("split-python");
    let script = r#"
import sys, numpy as np, gguf
def make(path, **kw):
    w = gguf.GGUFWriter(path, "llama", **kw)
    w.add_uint32("llama.block_count", 5)
    w.add_array("tokenizer.ggml.tokens", ["a", "b"])
    for i in range(5):
        w.add_tensor(f"t{i}", (np.arange(8 * (i + 1), dtype=np.float32) + 100 * i).reshape(i + 1, 8))
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
make(sys.argv[1] + "/whole.gguf")
make(sys.argv[1] + "/split.gguf", split_max_tensors=2)
"#;
    common::run_python(&py, script, &[dir.to_str().unwrap()]);
    let whole = GgufFile::open(dir.join("whole.gguf")).unwrap();
    let split = GgufFile::open(dir.join("split-00001-of-00003.gguf")).unwrap();
    assert_eq!(split.parts().len(), 3);
    assert_eq!(split.tensors().len(), whole.tensors().len());
    for (a, b) in whole.tensors().iter().zip(split.tensors()) {
        assert_eq!((&a.name, &a.dims, a.ty), (&b.name, &b.dims, b.ty));
        assert_eq!(whole.tensor_data(a), split.tensor_data(b), "{}", a.name);
    }
    assert_eq!(split.tensor("t4").unwrap().part, 2);
    for (k, v) in whole.metadata().iter() {
        assert_eq!(split.metadata().get(k), Some(v), "{k}");
    }
    // Our writer's split of the same content is byte-identical to Python's.
    let ours = GgufWriter::from_file(&whole).unwrap();
    let mut fresh = GgufWriter::new();
    for (k, v) in ours.metadata().iter() {
        fresh.add_metadata(k, v.clone());
    }
    for t in whole.tensors() {
        fresh
            .add_tensor(t.name.clone(), &t.dims, t.ty, whole.tensor_data(t))
            .unwrap();
    }
    let paths = fresh.write_split(dir.join("ours"), 2).unwrap();
    for (no, p) in paths.iter().enumerate() {
        let theirs = dir.join(format!("split-{:05}-of-00003.gguf", no + 1));
        assert!(
            std::fs::read(p).unwrap() == std::fs::read(&theirs).unwrap(),
            "part {no} differs from Python's"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

fn open_err(path: &Path) -> String {
    match GgufFile::open(path) {
        Ok(_) => panic!("{} opened", path.display()),
        Err(e) => e.to_string(),
    }
}

fn write_parts(dir: &Path, parts: &[GgufWriter<'_>]) -> Vec<PathBuf> {
    parts
        .iter()
        .enumerate()
        .map(|(no, w)| {
            let p = gguf::split::split_path(&dir.join("m"), no, parts.len());
            w.write_file(&p).unwrap();
            p
        })
        .collect()
}

fn part(no: u16, count: u16, total: i32, tensors: &[&str]) -> GgufWriter<'static> {
    let mut w = GgufWriter::new();
    w.add_metadata("split.no", no);
    w.add_metadata("split.count", count);
    w.add_metadata("split.tensors.count", total);
    for t in tensors {
        w.add_tensor(*t, &[1], GgmlType::F32, vec![0u8; 4]).unwrap();
    }
    w
}

#[test]
fn broken_splits_give_clear_errors() {
    let dir = common::temp_dir("split-broken");
    let paths = model(4).write_split(dir.join("m"), 2).unwrap();

    let msg = open_err(&paths[1]);
    assert!(
        msg.contains("part 2 of 2") && msg.contains("open the first part"),
        "{msg}"
    );

    std::fs::remove_file(&paths[1]).unwrap();
    let msg = open_err(&paths[0]);
    assert!(
        msg.contains("m-00002-of-00002.gguf") && msg.contains("I/O error"),
        "{msg}"
    );

    // A renamed first part cannot find its siblings.
    let renamed = dir.join("renamed.gguf");
    std::fs::copy(&paths[0], &renamed).unwrap();
    let msg = open_err(&renamed);
    assert!(msg.contains("-00001-of-00002.gguf"), "{msg}");

    for f in std::fs::read_dir(&dir).unwrap() {
        std::fs::remove_file(f.unwrap().path()).unwrap();
    }
    let p = write_parts(&dir, &[part(0, 2, 2, &["a"]), part(0, 2, 2, &["b"])]);
    let msg = open_err(&p[0]);
    assert!(msg.contains("expected part 2 of 2"), "{msg}");

    let p = write_parts(&dir, &[part(0, 2, 5, &["a"]), part(1, 2, 5, &["b"])]);
    let msg = open_err(&p[0]);
    assert!(
        msg.contains("'split.tensors.count' is 5, but the parts hold 2"),
        "{msg}"
    );

    let p = write_parts(&dir, &[part(0, 2, 2, &["a"]), part(1, 2, 2, &["a"])]);
    let msg = open_err(&p[0]);
    assert!(msg.contains("duplicate tensor name 'a'"), "{msg}");

    let p = write_parts(&dir, &[part(0, 2, 2, &["a"]), part(1, 2, 2, &["b"])]);
    let f = GgufFile::open(&p[0]).unwrap();
    assert_eq!(f.tensors().len(), 2);
    let _ = std::fs::remove_dir_all(dir);
}
