//! Fuzz the GGUF reader: any input must parse or fail with an error, never panic or read out
//! of bounds; an accepted file must expose in-bounds tensor data and be reproduced byte for
//! byte by the writer.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match gguf::GgufFile::from_bytes(data.to_vec()) {
        Ok(file) => {
            for t in file.tensors() {
                assert_eq!(file.tensor_data(t).len() as u64, t.n_bytes);
                assert!(file.tensor(&t.name).is_some());
            }
            let md = file.metadata();
            for key in md.keys() {
                let _ = (md.get_str(key), md.get_i64(key), md.get_f32(key));
            }
            let copy = gguf::GgufWriter::from_file(&file)
                .and_then(|w| w.to_bytes())
                .expect("an accepted file can be written back");
            assert!(copy == data, "round trip changed the bytes");
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "multi-line error: {msg}");
        }
    }
    // Header-only parsing takes the other branch for data bounds.
    let _ = gguf::GgufFile::from_bytes_header_only(data.to_vec());
});
