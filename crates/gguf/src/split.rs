//! Split models: `name-00001-of-0000N.gguf` ... `name-0000N-of-0000N.gguf`, as llama.cpp's
//! `gguf-split` and the Python `gguf` writer produce them. Every part carries `split.no`
//! (0-based), `split.count` and `split.tensors.count`; the first part also holds the model's
//! metadata.

use std::path::{Path, PathBuf};

use crate::error::{ErrorKind, GgufError};
use crate::value::Metadata;

pub const SPLIT_NO: &str = "split.no";
pub const SPLIT_COUNT: &str = "split.count";
pub const SPLIT_TENSORS_COUNT: &str = "split.tensors.count";

/// File name of part `no` (0-based) of `count`: `<prefix>-<no+1:05>-of-<count:05>.gguf`.
pub fn split_path(prefix: &Path, no: usize, count: usize) -> PathBuf {
    let mut name = prefix.as_os_str().to_owned();
    name.push(format!("-{:05}-of-{:05}.gguf", no + 1, count));
    PathBuf::from(name)
}

/// The prefix of a split part's path, if its name ends in `-<no+1:05>-of-<count:05>.gguf`.
pub fn split_prefix(path: &Path, no: usize, count: usize) -> Option<PathBuf> {
    let s = path.to_str()?;
    let suffix = format!("-{:05}-of-{:05}.gguf", no + 1, count);
    s.strip_suffix(&suffix).map(PathBuf::from)
}

fn err(path: &Path, msg: String) -> GgufError {
    GgufError::new(ErrorKind::Split(msg), None).with_path(path)
}

/// A split key as a count, whatever integer type the writer used.
fn split_key(path: &Path, md: &Metadata, key: &str) -> Result<Option<u64>, GgufError> {
    match md.get(key) {
        None => Ok(None),
        Some(v) => match v.as_i128().and_then(|n| u64::try_from(n).ok()) {
            Some(n) => Ok(Some(n)),
            None => Err(err(
                path,
                format!("'{key}' is {v:?}, expected a non-negative integer"),
            )),
        },
    }
}

/// Paths of the parts after the first, from the first part's metadata; empty for a
/// single-file model.
pub(crate) fn other_part_paths(path: &Path, md: &Metadata) -> Result<Vec<PathBuf>, GgufError> {
    let count = match split_key(path, md, SPLIT_COUNT)? {
        None | Some(0) | Some(1) => return Ok(Vec::new()),
        Some(n) => n,
    };
    // gguf-split stores the count as u16; anything larger is not a real split.
    if count > u16::MAX as u64 {
        return Err(err(
            path,
            format!("'{SPLIT_COUNT}' is {count}, at most 65535 parts"),
        ));
    }
    let count = count as usize;
    let no = split_key(path, md, SPLIT_NO)?.unwrap_or(0);
    if no != 0 {
        return Err(err(
            path,
            format!(
                "this is part {} of {count} of a split model; open the first part (-00001-of-{count:05}.gguf)",
                no + 1
            ),
        ));
    }
    let prefix = split_prefix(path, 0, count).ok_or_else(|| {
        err(
            path,
            format!(
                "'{SPLIT_COUNT}' is {count}, but the file name does not end in -00001-of-{count:05}.gguf, so the other parts cannot be found"
            ),
        )
    })?;
    Ok((1..count)
        .map(|no| split_path(&prefix, no, count))
        .collect())
}

/// Part `no` must say it is part `no` of the same count as the first part.
pub(crate) fn check_part(
    path: &Path,
    md: &Metadata,
    no: usize,
    first: &Metadata,
) -> Result<(), GgufError> {
    let count = split_key(path, first, SPLIT_COUNT)?;
    let part_no = split_key(path, md, SPLIT_NO)?;
    let part_count = split_key(path, md, SPLIT_COUNT)?;
    if part_no != Some(no as u64) || part_count != count {
        return Err(err(
            path,
            format!(
                "expected part {} of {} ('{SPLIT_NO}' = {no}), found '{SPLIT_NO}' = {part_no:?}, '{SPLIT_COUNT}' = {part_count:?}",
                no + 1,
                count.unwrap_or(0)
            ),
        ));
    }
    Ok(())
}

/// `split.tensors.count`, if present, must equal the tensors found in all parts.
pub(crate) fn check_tensor_count(
    path: &Path,
    md: &Metadata,
    found: usize,
) -> Result<(), GgufError> {
    match split_key(path, md, SPLIT_TENSORS_COUNT)? {
        Some(n) if n != found as u64 => Err(err(
            path,
            format!("'{SPLIT_TENSORS_COUNT}' is {n}, but the parts hold {found} tensors"),
        )),
        _ => Ok(()),
    }
}
