//! How much memory a device has and has free, for the breakdown line.

/// Total and currently free bytes of one device, as the operating system or driver reports them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceMemory {
    pub total: u64,
    pub free: u64,
}

/// Bytes to whole MiB, rounded down like llama.cpp's breakdown line.
pub fn mib(bytes: u64) -> u64 {
    bytes / (1024 * 1024)
}

/// Host memory from `/proc/meminfo`: `MemTotal` and `MemAvailable` (what the kernel says can be
/// allocated without swapping, page cache included). `None` where that file is missing or odd.
pub fn host_memory() -> Option<DeviceMemory> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_meminfo(&text)
}

/// Parses the `MemTotal:` and `MemAvailable:` lines (values in kB).
pub fn parse_meminfo(text: &str) -> Option<DeviceMemory> {
    let field = |key: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(key))?;
        let kb: u64 = line[key.len()..].split_whitespace().next()?.parse().ok()?;
        kb.checked_mul(1024)
    };
    Some(DeviceMemory {
        total: field("MemTotal:")?,
        free: field("MemAvailable:")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_meminfo() {
        let text = "MemTotal:       24684000 kB\nMemFree:  1 kB\nMemAvailable:   23000000 kB\n";
        let m = parse_meminfo(text).unwrap();
        assert_eq!(m.total, 24684000 * 1024);
        assert_eq!(m.free, 23000000 * 1024);
        assert!(parse_meminfo("MemTotal: 5 kB\n").is_none());
    }
}
