//! `--mlock`: keep a model's weights resident in RAM.
//!
//! The CPU backend reads weights straight from the memory-mapped GGUF file, so locking the
//! mapping locks the weights. The lock ends when the mapping is unmapped (the model is
//! unloaded); no explicit unlock is needed, and none is attempted (the address could be
//! reused by then).

use gguf::GgufFile;

/// What was locked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockedRegion {
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum MlockError {
    #[error(
        "cannot lock {want_mib} MiB of weights in RAM: the memory-lock limit (RLIMIT_MEMLOCK) is {limit}; raise it (`ulimit -l unlimited`, or LimitMEMLOCK= in a systemd unit) or run without --mlock"
    )]
    OverLimit { want_mib: u64, limit: String },
    #[error("cannot lock {want_mib} MiB of weights in RAM: {reason}")]
    Failed { want_mib: u64, reason: String },
}

/// RLIMIT_MEMLOCK's soft limit in bytes (`None`: unlimited).
pub fn memlock_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit struct through a valid pointer.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) };
    if rc != 0 || lim.rlim_cur == libc::RLIM_INFINITY {
        return None;
    }
    // rlim_t is u64 on Linux but not on every target.
    #[allow(clippy::unnecessary_cast)]
    Some(lim.rlim_cur as u64)
}

fn describe_limit(limit: Option<u64>) -> String {
    match limit {
        None => "unlimited".into(),
        Some(b) if b < 1 << 20 => format!("{} KiB", b / 1024),
        Some(b) => format!("{} MiB", b >> 20),
    }
}

/// Locks every file of the model in RAM.
pub fn lock_weights(file: &GgufFile) -> Result<LockedRegion, MlockError> {
    let total: u64 = file.parts().iter().map(|p| p.bytes().len() as u64).sum();
    let want_mib = total.div_ceil(1 << 20);
    let limit = memlock_limit();
    for part in file.parts() {
        let bytes = part.bytes();
        if bytes.is_empty() {
            continue;
        }
        // SAFETY: the range is one live mapping (or allocation) owned by `file`; mlock only
        // changes residency, never contents.
        let rc = unsafe { libc::mlock(bytes.as_ptr().cast(), bytes.len()) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            return Err(match err.raw_os_error() {
                Some(libc::ENOMEM) | Some(libc::EPERM) | Some(libc::EAGAIN) => {
                    MlockError::OverLimit {
                        want_mib,
                        limit: describe_limit(limit),
                    }
                }
                _ => MlockError::Failed {
                    want_mib,
                    reason: err.to_string(),
                },
            });
        }
    }
    Ok(LockedRegion { bytes: total })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_is_described() {
        assert_eq!(describe_limit(None), "unlimited");
        assert_eq!(describe_limit(Some(8 << 20)), "8 MiB");
        assert_eq!(describe_limit(Some(65536)), "64 KiB");
    }

    #[test]
    fn over_limit_message_names_the_fix() {
        let e = MlockError::OverLimit {
            want_mib: 100,
            limit: "8 MiB".into(),
        };
        let s = e.to_string();
        assert!(s.contains("100 MiB") && s.contains("8 MiB") && s.contains("ulimit -l"));
    }
}
