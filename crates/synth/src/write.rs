//! Writes the file: the header, then every tensor's data in fixed-size chunks generated and
//! written in parallel at their final offsets. Each chunk's bytes depend only on (seed,
//! tensor, chunk), so the file is the same for any number of threads.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use rayon::prelude::*;

use crate::blocks;
use crate::error::SynthError;
use crate::header::Layout;
use crate::rng::Rng;
use crate::tensors::TensorSpec;

/// Target bytes per generated piece (rounded down to whole blocks).
const CHUNK_BYTES: u64 = 4 << 20;

struct Piece {
    tensor: usize,
    index: u64,
    at: u64,
    len: usize,
}

fn pieces(tensors: &[TensorSpec], layout: &Layout) -> Vec<Piece> {
    let mut out = Vec::new();
    for (i, t) in tensors.iter().enumerate() {
        let bb = t.ty.block_bytes() as u64;
        let chunk = (CHUNK_BYTES / bb).max(1) * bb;
        let total = t.n_bytes();
        let mut done = 0;
        let mut index = 0;
        while done < total {
            let len = chunk.min(total - done);
            out.push(Piece {
                tensor: i,
                index,
                at: layout.offsets[i] + done,
                len: len as usize,
            });
            done += len;
            index += 1;
        }
    }
    out
}

#[cfg(unix)]
fn write_at(file: &File, buf: &[u8], at: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, buf, at)
}

#[cfg(windows)]
fn write_at(file: &File, mut buf: &[u8], mut at: u64) -> std::io::Result<()> {
    while !buf.is_empty() {
        let n = std::os::windows::fs::FileExt::seek_write(file, buf, at)?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        buf = &buf[n..];
        at += n as u64;
    }
    Ok(())
}

/// Writes header and (unless `header_only`) data to `path`. Returns the file length.
pub fn write_file(
    path: &Path,
    layout: &Layout,
    tensors: &[TensorSpec],
    seed: u64,
    header_only: bool,
) -> Result<u64, SynthError> {
    let io = |source: std::io::Error| SynthError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::create(path).map_err(io)?;
    file.write_all(&layout.header).map_err(io)?;
    if header_only {
        return Ok(layout.header.len() as u64);
    }
    // Padding and alignment gaps read as zeros.
    file.set_len(layout.file_len).map_err(io)?;
    pieces(tensors, layout)
        .par_iter()
        .try_for_each_init(Vec::new, |buf: &mut Vec<u8>, p| {
            let t = &tensors[p.tensor];
            buf.resize(p.len, 0);
            let mut rng = Rng::new(seed, p.tensor as u64, p.index);
            blocks::fill(t.ty, t.init, &mut rng, buf)?;
            write_at(&file, buf, p.at).map_err(io)
        })?;
    file.sync_data().map_err(io)?;
    Ok(layout.file_len)
}
