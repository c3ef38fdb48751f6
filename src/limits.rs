//! What this machine can hold. Sizes (N, Nc, instances, trials, steps) are checked against these
//! limits before any work starts, so that a mistyped size fails at once with the key, the value
//! and the limit, instead of training a teacher first or running out of memory an hour later.

/// Largest N: the engines index N x N matrices with 32-bit words (N² < 2^32).
pub const MAX_NEURONS: usize = 65_536;

/// Largest instance count of a study or benchmark: validation chips are drawn from instance
/// index 2^30 on, so test chips must stay below it.
pub const MAX_INSTANCES: u64 = 1 << 30;

/// Bytes of memory available to this process now (`MemAvailable` of `/proc/meminfo`), or `None`
/// where that is not known (then only the fixed limits are checked).
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib.saturating_mul(1024))
}

/// `bytes` as a short readable size.
pub fn fmt_bytes(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// An error message when `bytes` (what `what` needs, named by the setting `key = value`) exceed
/// the memory `available` (`None`: unknown, no check).
pub fn check_memory(
    key: &str,
    value: impl std::fmt::Display,
    what: &str,
    bytes: f64,
    available: Option<u64>,
) -> Result<(), String> {
    match available {
        Some(av) if bytes > av as f64 => Err(format!(
            "{key} = {value}: {what} need about {}, and this machine has {} available",
            fmt_bytes(bytes),
            fmt_bytes(av as f64)
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_beyond_the_available_is_an_error_naming_key_value_and_limit() {
        let e = check_memory(
            "snn.n",
            40_000,
            "the weights",
            3.0 * 1024f64.powi(3),
            Some(1 << 30),
        )
        .unwrap_err();
        assert!(e.contains("snn.n = 40000"), "{e}");
        assert!(e.contains("3.0 GiB") && e.contains("1.0 GiB"), "{e}");
        assert!(check_memory("k", 1, "x", 10.0, Some(100)).is_ok());
        assert!(check_memory("k", 1, "x", 1e30, None).is_ok());
    }

    #[test]
    fn this_machine_reports_its_memory() {
        if std::path::Path::new("/proc/meminfo").exists() {
            let m = available_memory().expect("MemAvailable");
            assert!(m > 1 << 20, "{m}");
        }
    }
}
