//! How many threads to use by default: the physical cores, and on big.LITTLE systems only
//! the performance cores (the little ones slow a synchronised matmul down to their pace).

use std::collections::BTreeSet;
use std::fs;

/// Physical performance cores of this machine (at least 1).
pub fn default_threads() -> usize {
    physical_performance_cores()
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Reads Linux's CPU topology: cores with the highest `cpu_capacity`, counted once per
/// (package, core) pair so that SMT siblings count once. `None` where sysfs is missing.
fn physical_performance_cores() -> Option<usize> {
    let online = fs::read_to_string("/sys/devices/system/cpu/online").ok()?;
    let read = |cpu: usize, file: &str| -> Option<u64> {
        fs::read_to_string(format!("/sys/devices/system/cpu/cpu{cpu}/{file}"))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    let cpus = parse_cpu_list(online.trim())?;
    let capacity = |cpu| read(cpu, "cpu_capacity").unwrap_or(0);
    let best = cpus.iter().map(|&c| capacity(c)).max()?;
    let cores: BTreeSet<(u64, u64)> = cpus
        .iter()
        .filter(|&&c| capacity(c) == best)
        .map(|&c| {
            (
                read(c, "topology/physical_package_id").unwrap_or(0),
                read(c, "topology/core_id").unwrap_or(c as u64),
            )
        })
        .collect();
    (!cores.is_empty()).then_some(cores.len())
}

/// Parses a sysfs CPU list such as `0-3,6,8-9`.
fn parse_cpu_list(s: &str) -> Option<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => cpus.extend(a.parse::<usize>().ok()?..=b.parse::<usize>().ok()?),
            None => cpus.push(part.parse().ok()?),
        }
    }
    Some(cpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-3,6,8-9"), Some(vec![0, 1, 2, 3, 6, 8, 9]));
        assert_eq!(parse_cpu_list("0"), Some(vec![0]));
        assert_eq!(parse_cpu_list("x"), None);
    }

    #[test]
    fn at_least_one_thread() {
        assert!(default_threads() >= 1);
    }
}
