//! What the machine offers: memory available for a new allocation and the number of CPUs, so
//! that sizes which cannot fit are refused with a clear error before anything is allocated.

use crate::error::{Error, Result};

/// Bytes of memory the kernel reports as available for new allocations (`MemAvailable` in
/// `/proc/meminfo`); `None` where that is unknown (not Linux, or unreadable).
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb.saturating_mul(1024))
}

/// `bytes` in GiB with two decimals.
pub fn gib(bytes: u64) -> String {
    format!("{:.2} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// An error when `bytes` (for `what`, which says what to lower) exceed the available memory.
/// Where the available memory is unknown only absurd sizes (beyond 2^48 bytes) are refused.
pub fn check_fits(bytes: u64, what: &str) -> Result<()> {
    let limit = available_memory().unwrap_or(1 << 48);
    if bytes > limit {
        return Err(Error::TooLarge(format!("{what} needs {} of memory but {} is available", gib(bytes), gib(limit))));
    }
    Ok(())
}

/// Logical CPUs (1 when unknown).
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The thread count for `--threads n`: at least 1 (0 is an error), at most the logical CPUs
/// (more threads only compete for the same cores); the second value says when `n` was lowered.
pub fn thread_count(n: usize) -> Result<(usize, bool)> {
    if n == 0 {
        return Err(Error::Setting("--threads: expected at least 1, found 0".into()));
    }
    let max = cpus();
    Ok((n.min(max), n > max))
}
