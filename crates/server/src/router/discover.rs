//! `--models-dir DIR`: every GGUF model in a directory becomes a router entry.
//!
//! A `.gguf` file directly in DIR is named by its file stem. A subdirectory holding GGUF files
//! is one model named by the subdirectory (a split model's parts, or a model with companion
//! files); its first file in name order is loaded. Parts after the first of a split model
//! (`-0000N-of-0000M.gguf`, N > 1) are never models of their own.

use std::path::{Path, PathBuf};

fn is_gguf(p: &Path) -> bool {
    p.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
}

/// True for `name-0000N-of-0000M.gguf` with N > 1.
fn is_later_split_part(p: &Path) -> bool {
    let Some(stem) = p.file_stem().and_then(|s| s.to_str()) else {
        return false;
    };
    let parts: Vec<&str> = stem.rsplitn(3, '-').collect();
    // rsplitn gives ["0000M", "of", "name-0000N"] for "name-0000N-of-0000M".
    if parts.len() < 3 || parts[1] != "of" {
        return false;
    }
    let Some(n) = parts[2].rsplit('-').next() else {
        return false;
    };
    n.len() == 5 && n.parse::<u32>().is_ok_and(|n| n > 1) && parts[0].parse::<u32>().is_ok()
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let rd = std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut out: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    out.sort();
    Ok(out)
}

/// `(name, path)` of every model in `dir`.
pub fn models_in(dir: &Path) -> Result<Vec<(String, PathBuf)>, String> {
    let mut out = Vec::new();
    for p in sorted_entries(dir)? {
        if p.is_dir() {
            let first = sorted_entries(&p)?
                .into_iter()
                .find(|f| f.is_file() && is_gguf(f) && !is_later_split_part(f));
            if let (Some(f), Some(name)) = (first, p.file_name().and_then(|n| n.to_str())) {
                out.push((name.to_string(), f));
            }
        } else if is_gguf(&p) && !is_later_split_part(&p) {
            if let Some(stem) = p.file_stem().and_then(|s| s.to_str()) {
                out.push((stem.to_string(), p.clone()));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_parts() {
        assert!(is_later_split_part(Path::new("m-00002-of-00003.gguf")));
        assert!(!is_later_split_part(Path::new("m-00001-of-00003.gguf")));
        assert!(!is_later_split_part(Path::new("model.gguf")));
        assert!(!is_later_split_part(Path::new("a-of-b.gguf")));
    }

    #[test]
    fn finds_files_and_directories() {
        let dir = std::env::temp_dir().join(format!("turbine-discover-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("big")).unwrap();
        for f in [
            "small.gguf",
            "notes.txt",
            "split-00001-of-00002.gguf",
            "split-00002-of-00002.gguf",
            "big/big-00001-of-00002.gguf",
            "big/big-00002-of-00002.gguf",
        ] {
            std::fs::write(dir.join(f), b"").unwrap();
        }
        let found = models_in(&dir).unwrap();
        let names: Vec<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, vec!["big", "small", "split-00001-of-00002"]);
        assert!(found[0].1.ends_with("big/big-00001-of-00002.gguf"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
