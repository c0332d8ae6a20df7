//! Inputs the fuzzer (fuzz/fuzz_targets/parse.rs) once failed on, re-checked with the same
//! properties: parse or fail with a one-line error; an accepted file round-trips exactly.
//!
//! - newline-in-key.bin: a metadata key holding a newline made the error message two lines
//!   (names and keys are now escaped in messages).
//! - empty-tensor-inside-another.bin: an empty tensor whose offset lies inside another
//!   tensor's data is valid, but the writer took it for an overlap (empty tensors now take
//!   no part in the layout).

use gguf::{GgufFile, GgufWriter};

fn check(data: &[u8]) {
    match GgufFile::from_bytes(data.to_vec()) {
        Ok(file) => {
            for t in file.tensors() {
                assert_eq!(file.tensor_data(t).len() as u64, t.n_bytes);
            }
            let copy = GgufWriter::from_file(&file).unwrap().to_bytes().unwrap();
            assert!(copy == data, "round trip changed the bytes");
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(
                !msg.contains('\n') && !msg.contains('\r'),
                "multi-line error: {msg}"
            );
        }
    }
    let _ = GgufFile::from_bytes_header_only(data.to_vec());
}

#[test]
fn fuzz_regressions() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        check(&std::fs::read(&path).unwrap());
        n += 1;
    }
    assert!(n > 0);
}

#[test]
fn control_characters_in_names_are_escaped_in_errors() {
    // Key "a\nb\u{1b}[31m" with an unknown value type, then a tensor with a newline in its
    // name and an unknown type.
    let mut raw = b"GGUF".to_vec();
    raw.extend_from_slice(&3u32.to_le_bytes());
    raw.extend_from_slice(&0u64.to_le_bytes());
    raw.extend_from_slice(&1u64.to_le_bytes());
    let key = "a\nb\u{1b}[31m";
    raw.extend_from_slice(&(key.len() as u64).to_le_bytes());
    raw.extend_from_slice(key.as_bytes());
    raw.extend_from_slice(&99u32.to_le_bytes());
    raw.extend_from_slice(&[0; 16]);
    let msg = GgufFile::from_bytes(raw).unwrap_err().to_string();
    assert!(msg.contains(r"metadata 'a\nb\u{1b}[31m'"), "{msg}");
    assert!(!msg.contains('\n') && !msg.contains('\u{1b}'));

    let mut raw = b"GGUF".to_vec();
    raw.extend_from_slice(&3u32.to_le_bytes());
    raw.extend_from_slice(&1u64.to_le_bytes());
    raw.extend_from_slice(&0u64.to_le_bytes());
    let name = "x\ny";
    raw.extend_from_slice(&(name.len() as u64).to_le_bytes());
    raw.extend_from_slice(name.as_bytes());
    raw.extend_from_slice(&1u32.to_le_bytes());
    raw.extend_from_slice(&1u64.to_le_bytes());
    raw.extend_from_slice(&500u32.to_le_bytes());
    raw.extend_from_slice(&0u64.to_le_bytes());
    let msg = GgufFile::from_bytes(raw).unwrap_err().to_string();
    assert!(
        msg.contains(r"tensor 'x\ny' has unknown ggml type id 500"),
        "{msg}"
    );
}
