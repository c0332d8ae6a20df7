//! Hostile and damaged files: each gives a one-line error naming the problem and its byte
//! offset, never a panic, an out-of-bounds read or a huge allocation.

mod common;

use formats::GgmlType;
use gguf::{ErrorKind, GgufError, GgufFile, GgufWriter, MAX_ARRAY_DEPTH};

/// Builds raw GGUF bytes field by field, so tests can write what no writer would.
struct Raw(Vec<u8>);

impl Raw {
    fn header(version: u32, n_tensors: u64, n_kv: u64) -> Raw {
        let mut r = Raw(b"GGUF".to_vec());
        r.u32(version).u64(n_tensors).u64(n_kv);
        r
    }
    fn u8(&mut self, v: u8) -> &mut Raw {
        self.0.push(v);
        self
    }
    fn u32(&mut self, v: u32) -> &mut Raw {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Raw {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn bytes(&mut self, b: &[u8]) -> &mut Raw {
        self.0.extend_from_slice(b);
        self
    }
    fn str(&mut self, s: &str) -> &mut Raw {
        self.u64(s.len() as u64).bytes(s.as_bytes())
    }
    /// A metadata entry `key: u32 = v`.
    fn kv_u32(&mut self, key: &str, v: u32) -> &mut Raw {
        self.str(key).u32(4).u32(v)
    }
    fn tensor(&mut self, name: &str, dims: &[u64], ty: u32, offset: u64) -> &mut Raw {
        self.str(name).u32(dims.len() as u32);
        for &d in dims {
            self.u64(d);
        }
        self.u32(ty).u64(offset)
    }
    /// Pads to 32 and appends `n` data bytes.
    fn data(&mut self, n: usize) -> &mut Raw {
        while !self.0.len().is_multiple_of(32) {
            self.0.push(0);
        }
        self.0.extend(std::iter::repeat_n(0x11, n));
        self
    }
    fn parse(&self) -> Result<GgufFile, GgufError> {
        GgufFile::from_bytes(self.0.clone())
    }
}

/// Parses, expects an error, checks the message is one line with the byte offset `at`.
fn fails(raw: &Raw, at: u64) -> GgufError {
    let err = match raw.parse() {
        Ok(_) => panic!("parsed a bad file"),
        Err(e) => e,
    };
    let msg = err.to_string();
    assert!(!msg.contains('\n'), "multi-line error: {msg}");
    assert!(
        msg.contains(&format!("at byte {at}:")),
        "wanted offset {at}: {msg}"
    );
    err
}

#[test]
fn bad_magic() {
    let mut raw = Raw::header(3, 0, 0);
    raw.0[0] = b'X';
    let e = fails(&raw, 0);
    assert!(matches!(e.kind(), ErrorKind::BadMagic(_)), "{e}");
    assert!(e.to_string().contains("not a GGUF file"));
}

#[test]
fn unsupported_versions() {
    for v in [0, 1, 4, 99] {
        let e = fails(&Raw::header(v, 0, 0), 4);
        assert!(
            matches!(e.kind(), ErrorKind::UnsupportedVersion(x) if *x == v),
            "{e}"
        );
    }
    let e = fails(&Raw::header(3u32.swap_bytes(), 0, 0), 4);
    assert!(matches!(e.kind(), ErrorKind::BigEndian(_)), "{e}");
    assert!(Raw::header(2, 0, 0).parse().is_ok());
    assert!(Raw::header(3, 0, 0).parse().is_ok());
}

#[test]
fn empty_and_tiny_files() {
    for len in 0..24 {
        let raw = Raw(Raw::header(3, 0, 0).0[..len].to_vec());
        let e = raw.parse().expect_err("truncated header parsed");
        assert!(matches!(e.kind(), ErrorKind::Truncated { .. }), "{e}");
    }
}

#[test]
fn counts_larger_than_the_file() {
    let e = fails(&Raw::header(3, 0, u64::MAX), 16);
    assert!(matches!(e.kind(), ErrorKind::CountTooLarge { .. }), "{e}");
    let e = fails(&Raw::header(3, 1 << 40, 0), 8);
    assert!(matches!(e.kind(), ErrorKind::CountTooLarge { .. }), "{e}");
    // A string length far past the end.
    let mut raw = Raw::header(3, 0, 1);
    raw.u64(u64::MAX - 3).bytes(&[b'a'; 64]);
    let e = fails(&raw, 32); // where the string's bytes would start
    assert!(matches!(e.kind(), ErrorKind::Truncated { .. }), "{e}");
    // An array count far past the end, for fixed-size, string and array elements.
    for ety in [0u32, 6, 8, 9, 12] {
        let mut raw = Raw::header(3, 0, 1);
        raw.str("k")
            .u32(9)
            .u32(ety)
            .u64(u64::MAX / 2)
            .bytes(&[0; 64]);
        let e = fails(&raw, 24 + 9 + 4 + 4);
        assert!(matches!(e.kind(), ErrorKind::CountTooLarge { .. }), "{e}");
    }
}

#[test]
fn array_nesting_depth_is_limited() {
    let nested = |levels: usize| {
        let mut raw = Raw::header(3, 0, 1);
        raw.str("deep").u32(9);
        for _ in 1..levels {
            raw.u32(9).u64(1); // an array of one array
        }
        raw.u32(0).u64(0); // innermost: empty u8 array
        raw
    };
    assert!(nested(MAX_ARRAY_DEPTH).parse().is_ok());
    let raw = nested(MAX_ARRAY_DEPTH + 1);
    let at = 24 + 12 + 4 + (MAX_ARRAY_DEPTH as u64 - 1) * 12;
    let e = fails(&raw, at);
    assert!(matches!(e.kind(), ErrorKind::ArrayTooDeep { .. }), "{e}");
    // Far too deep must not overflow the stack either.
    assert!(nested(100_000).parse().is_err());
}

#[test]
fn bad_values() {
    let mut raw = Raw::header(3, 0, 1);
    raw.str("k").u32(13).u32(0);
    let e = fails(&raw, 24 + 9);
    assert!(
        matches!(e.kind(), ErrorKind::UnknownValueType { id: 13, .. }),
        "{e}"
    );
    let mut raw = Raw::header(3, 0, 1);
    raw.str("k").u32(9).u32(77).u64(0);
    let e = fails(&raw, 24 + 9 + 4);
    assert!(
        matches!(e.kind(), ErrorKind::UnknownValueType { id: 77, .. }),
        "{e}"
    );
    let mut raw = Raw::header(3, 0, 1);
    raw.str("k").u32(7).u8(2);
    let e = fails(&raw, 24 + 9 + 4);
    assert!(
        matches!(e.kind(), ErrorKind::InvalidBool { value: 2, .. }),
        "{e}"
    );
    let mut raw = Raw::header(3, 0, 1);
    raw.str("k").u32(9).u32(7).u64(3).bytes(&[1, 0, 5]);
    let e = fails(&raw, 24 + 9 + 16 + 2);
    assert!(
        matches!(e.kind(), ErrorKind::InvalidBool { value: 5, .. }),
        "{e}"
    );
    let mut raw = Raw::header(3, 0, 1);
    raw.u64(2).bytes(&[0xff, 0xfe]).u32(4).u32(1);
    let e = fails(&raw, 32);
    assert!(matches!(e.kind(), ErrorKind::InvalidUtf8 { .. }), "{e}");
    let mut raw = Raw::header(3, 0, 2);
    raw.kv_u32("a.b", 1).kv_u32("a.b", 2);
    let e = fails(&raw, 24 + 19);
    assert!(
        matches!(e.kind(), ErrorKind::DuplicateKey(k) if k == "a.b"),
        "{e}"
    );
}

#[test]
fn bad_alignment() {
    for a in [0u32, 3, 48, u32::MAX] {
        let mut raw = Raw::header(3, 0, 1);
        raw.kv_u32("general.alignment", a);
        let e = fails(&raw, 24 + 25 + 4);
        assert!(matches!(e.kind(), ErrorKind::BadAlignment(_)), "{e}");
    }
    let mut raw = Raw::header(3, 0, 1);
    raw.str("general.alignment").u32(10).u64(32);
    let e = fails(&raw, 24 + 25);
    assert!(matches!(e.kind(), ErrorKind::AlignmentType(_)), "{e}");
    let mut raw = Raw::header(3, 0, 1);
    raw.kv_u32("general.alignment", 1 << 31);
    assert_eq!(raw.parse().unwrap().alignment(), 1 << 31);
}

/// A valid one-tensor file: `t` f32 [8] at offset 0. Tensor info starts at byte 24.
fn one_tensor(dims: &[u64], ty: u32, offset: u64, data: usize) -> Raw {
    let mut raw = Raw::header(3, 1, 0);
    raw.tensor("t", dims, ty, offset).data(data);
    raw
}

#[test]
fn bad_tensor_infos() {
    assert!(one_tensor(&[8], 0, 0, 32).parse().is_ok());
    // n_dims is at 24 + 9.
    let e = fails(&one_tensor(&[1, 1, 1, 1, 1], 0, 0, 4), 33);
    assert!(
        matches!(e.kind(), ErrorKind::TooManyDims { n_dims: 5, .. }),
        "{e}"
    );
    let e = fails(&one_tensor(&[1 << 32, 1 << 32], 0, 0, 4), 33);
    assert!(matches!(e.kind(), ErrorKind::ShapeOverflow { .. }), "{e}");
    let e = fails(&one_tensor(&[1 << 31, 1 << 31, 4], 0, 0, 4), 33);
    assert!(matches!(e.kind(), ErrorKind::ShapeOverflow { .. }), "{e}");
    let e = fails(&one_tensor(&[u64::MAX], 0, 0, 4), 37);
    assert!(matches!(e.kind(), ErrorKind::DimTooLarge { .. }), "{e}");
    // Element count fits, byte count does not (f64: 8 bytes per element).
    let e = fails(&one_tensor(&[1 << 61], 28, 0, 4), 33);
    assert!(matches!(e.kind(), ErrorKind::ShapeOverflow { .. }), "{e}");
    for bad_ty in [4u32, 5, 31, 40, 41, 42, 43, 1000] {
        let e = fails(&one_tensor(&[8], bad_ty, 0, 32), 45);
        assert!(
            matches!(e.kind(), ErrorKind::UnknownTensorType { .. }),
            "{e}"
        );
    }
    let e = fails(&one_tensor(&[33, 2], GgmlType::Q4_0.id(), 0, 64), 33);
    assert!(
        matches!(e.kind(), ErrorKind::PartialBlock { row: 33, .. }),
        "{e}"
    );
    let e = fails(&one_tensor(&[8], 0, 16, 64), 49);
    assert!(
        matches!(e.kind(), ErrorKind::MisalignedOffset { .. }),
        "{e}"
    );
    let e = fails(&one_tensor(&[8], 0, 0, 31), 49);
    assert!(matches!(e.kind(), ErrorKind::DataOutOfFile { .. }), "{e}");
    let e = fails(&one_tensor(&[8], 0, 1 << 40, 32), 49);
    assert!(matches!(e.kind(), ErrorKind::DataOutOfFile { .. }), "{e}");
    let e = fails(&one_tensor(&[8], 0, u64::MAX - 31, 32), 49);
    assert!(
        matches!(e.kind(), ErrorKind::DataOffsetOverflow { .. }),
        "{e}"
    );
    let mut raw = Raw::header(3, 1, 0);
    raw.u64(1).u8(0xc0).u32(1).u64(8).u32(0).u64(0).data(32);
    let e = fails(&raw, 32);
    assert!(matches!(e.kind(), ErrorKind::InvalidUtf8 { .. }), "{e}");
}

#[test]
fn duplicate_and_overlapping_tensors() {
    let mut raw = Raw::header(3, 2, 0);
    raw.tensor("t", &[8], 0, 0)
        .tensor("t", &[8], 0, 32)
        .data(64);
    let e = fails(&raw, 24 + 33);
    assert!(
        matches!(e.kind(), ErrorKind::DuplicateTensor(n) if n == "t"),
        "{e}"
    );

    let mut raw = Raw::header(3, 2, 0);
    raw.tensor("a", &[16], 0, 0)
        .tensor("b", &[8], 0, 32)
        .data(64);
    let e = fails(&raw, 82); // b's data offset field
    assert!(
        matches!(e.kind(), ErrorKind::OverlappingTensors { .. }),
        "{e}"
    );
    assert!(
        e.to_string().contains("'a'") && e.to_string().contains("'b'"),
        "{e}"
    );

    // Reversed order with a gap, and an empty tensor inside another's range, are fine.
    let mut raw = Raw::header(3, 3, 0);
    raw.tensor("a", &[8], 0, 64)
        .tensor("b", &[8], 0, 0)
        .tensor("empty", &[0], 0, 64)
        .data(96);
    let f = raw.parse().unwrap();
    assert_eq!(f.tensor_data(f.tensor("a").unwrap()).len(), 32);
    let copy = GgufWriter::from_file(&f).unwrap().to_bytes().unwrap();
    assert!(
        copy == raw.0,
        "round trip with an empty tensor inside another"
    );
    assert_eq!(f.tensor_data(f.tensor("empty").unwrap()).len(), 0);
}

#[test]
fn header_only_allows_missing_data_but_not_bad_arithmetic() {
    let raw = one_tensor(&[1024], 0, 0, 0);
    assert!(raw.parse().is_err());
    let f = GgufFile::from_bytes_header_only(raw.0.clone()).unwrap();
    assert!(f.try_tensor_data(&f.tensors()[0]).is_none());
    let raw = one_tensor(&[8], 0, u64::MAX - 31, 0);
    assert!(GgufFile::from_bytes_header_only(raw.0.clone()).is_err());
}

/// A small valid file with several metadata types and tensors, from our writer.
fn sample_file() -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", "llama");
    w.add_metadata("a.u32", 7u32);
    w.add_metadata("a.arr", gguf::Array::String(vec!["x".into(), "yy".into()]));
    w.add_metadata(
        "a.nested",
        gguf::Array::Array(vec![gguf::Array::I32(vec![1, 2])]),
    );
    w.add_tensor("t0", &[32, 2], GgmlType::Q8_0, vec![3u8; 68])
        .unwrap();
    w.add_tensor("t1", &[5], GgmlType::F32, vec![4u8; 20])
        .unwrap();
    w.to_bytes().unwrap()
}

#[test]
fn every_truncation_of_a_small_file_fails_cleanly() {
    let bytes = sample_file();
    let f = GgufFile::from_bytes(bytes.clone()).unwrap();
    let data_end = f
        .tensors()
        .iter()
        .map(|t| t.file_offset + t.n_bytes)
        .max()
        .unwrap();
    for len in 0..bytes.len() {
        let r = GgufFile::from_bytes(bytes[..len].to_vec());
        if (len as u64) < data_end {
            let e = r
                .err()
                .unwrap_or_else(|| panic!("truncated to {len} parsed"));
            let msg = e.to_string();
            assert!(msg.contains("at byte") && !msg.contains('\n'), "{msg}");
        } else {
            assert!(r.is_ok(), "only trailing padding cut at {len}");
        }
    }
}

/// Tiny deterministic generator (no dependency needed for test noise).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

#[test]
fn random_corruption_of_a_small_file_never_panics() {
    let bytes = sample_file();
    let mut rng = Lcg(42);
    let mut ok = 0;
    for _ in 0..20_000 {
        let mut b = bytes.clone();
        for _ in 0..1 + rng.next() % 4 {
            let i = (rng.next() as usize) % b.len();
            b[i] = match rng.next() % 3 {
                0 => rng.next() as u8,
                1 => b[i] ^ (1 << (rng.next() % 8)),
                _ => 0xff,
            };
        }
        if let Ok(f) = GgufFile::from_bytes(b) {
            ok += 1;
            for t in f.tensors() {
                assert_eq!(f.tensor_data(t).len() as u64, t.n_bytes);
            }
        }
    }
    // Some corruptions (in tensor data, or in values) leave a valid file.
    assert!(ok > 0);
}

#[test]
fn truncated_and_corrupted_real_model_fails_cleanly() {
    let Some(path) = common::asset(common::SMOLLM) else {
        return;
    };
    let bytes = std::fs::read(&path).unwrap();
    let f = GgufFile::from_bytes(bytes.clone()).unwrap();
    let header_len = f.parts()[0].header_len() as usize;
    let data_offset = f.parts()[0].data_offset() as usize;
    let data_end = f
        .tensors()
        .iter()
        .map(|t| t.file_offset + t.n_bytes)
        .max()
        .unwrap() as usize;
    drop(f);

    // Truncation points: densely in the first KiB, spread over the header, around its end,
    // and a few in the data section.
    let mut points: Vec<usize> = (0..1024).step_by(7).collect();
    points.extend((1024..header_len).step_by(header_len / 150));
    points.extend(header_len.saturating_sub(40)..data_offset);
    points.extend((data_offset..data_end).step_by((data_end - data_offset) / 12));
    points.push(data_end - 1);
    for &len in &points {
        let e = match GgufFile::from_bytes(bytes[..len].to_vec()) {
            Ok(_) => panic!("truncated at {len} parsed"),
            Err(e) => e,
        };
        let msg = e.to_string();
        assert!(
            msg.contains("at byte") && !msg.contains('\n'),
            "{len}: {msg}"
        );
        if len < header_len {
            assert!(
                matches!(
                    e.kind(),
                    ErrorKind::Truncated { .. } | ErrorKind::CountTooLarge { .. }
                ),
                "{len}: {msg}"
            );
        } else {
            assert!(
                matches!(e.kind(), ErrorKind::DataOutOfFile { .. }),
                "{len}: {msg}"
            );
        }
    }

    // Random byte corruption of the header (header-only, so data need not be present).
    let header = &bytes[..data_offset];
    let mut rng = Lcg(7);
    for _ in 0..300 {
        let mut b = header.to_vec();
        for _ in 0..1 + rng.next() % 3 {
            let i = (rng.next() as usize) % b.len();
            b[i] = rng.next() as u8;
        }
        if let Err(e) = GgufFile::from_bytes_header_only(b) {
            assert!(!e.to_string().contains('\n'));
        }
    }
}

#[test]
fn errors_from_files_name_the_file() {
    let dir = common::temp_dir("hostile-path");
    let path = dir.join("bad.gguf");
    std::fs::write(&path, b"GGUF\x01\0\0\0").unwrap();
    let e = GgufFile::open(&path).err().unwrap();
    let msg = e.to_string();
    assert!(msg.starts_with(&path.display().to_string()), "{msg}");
    assert!(
        msg.contains("at byte 4: unsupported GGUF version 1"),
        "{msg}"
    );
    let e = GgufFile::open(dir.join("missing.gguf")).err().unwrap();
    assert!(e.to_string().contains("missing.gguf"), "{e}");
    let _ = std::fs::remove_dir_all(dir);
}
