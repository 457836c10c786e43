//! How many threads to use by default: the physical cores, and on big.LITTLE systems only
//! the performance cores (the little ones slow a synchronised matmul down to their pace).

use std::collections::BTreeSet;
use std::fs;

/// Physical performance cores this process may run on (at least 1), and no more threads than
/// its CPU quota allows: in a container limited to 2 CPUs of a 64-core host, or under
/// `taskset -c 0-3`, a thread per host core would take turns on the allowed ones.
pub fn default_threads() -> usize {
    let allowed = std::thread::available_parallelism().map_or(1, |n| n.get());
    physical_performance_cores().map_or(allowed, |cores| cores.min(allowed))
}

/// Reads Linux's CPU topology for the CPUs this process may run on (online and in its
/// affinity mask). `None` where sysfs is missing.
fn physical_performance_cores() -> Option<usize> {
    let online = parse_cpu_list(fs::read_to_string("/sys/devices/system/cpu/online").ok()?.trim())?;
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let allowed = status
        .lines()
        .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
        .and_then(|list| parse_cpu_list(list.trim()));
    let cpus: Vec<usize> = match allowed {
        Some(allowed) => online.into_iter().filter(|c| allowed.contains(c)).collect(),
        None => online,
    };
    performance_cores(&cpus, |cpu, file| {
        fs::read_to_string(format!("/sys/devices/system/cpu/cpu{cpu}/{file}"))
            .ok()?
            .trim()
            .parse()
            .ok()
    })
}

/// Of `cpus`, the cores with the highest `cpu_capacity` (the big ones of a big.LITTLE system;
/// 0 where the file is missing, as on x86), counted once per (package, core) pair so that SMT
/// siblings count once. `read(cpu, file)` reads a number under `/sys/devices/system/cpu/cpuN/`.
fn performance_cores(cpus: &[usize], read: impl Fn(usize, &str) -> Option<u64>) -> Option<usize> {
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

    /// A fake sysfs: `capacity[cpu]` (0 = no file) and `core[cpu]`, one package.
    fn topology<'a>(capacity: &'a [u64], core: &'a [u64]) -> impl Fn(usize, &str) -> Option<u64> + 'a {
        move |cpu, file| match file {
            "cpu_capacity" => Some(capacity[cpu]).filter(|&c| c > 0),
            "topology/core_id" => Some(core[cpu]),
            _ => Some(0),
        }
    }

    #[test]
    fn big_cores_of_the_allowed_cpus() {
        // A Pi-5-like little cluster (cpus 0-3) beside a big one (4-7).
        let (capacity, core) = (
            [446, 446, 446, 446, 1024, 1024, 1024, 1024],
            [0, 1, 2, 3, 0, 1, 2, 3],
        );
        let fake = topology(&capacity, &core);
        let all: Vec<usize> = (0..8).collect();
        assert_eq!(performance_cores(&all, &fake), Some(4));
        assert_eq!(performance_cores(&[4, 6], &fake), Some(2));
        // Pinned to little cores only: they are the best this process has.
        assert_eq!(performance_cores(&[0, 1, 2], &fake), Some(3));
        assert_eq!(performance_cores(&[], &fake), None);
    }

    #[test]
    fn smt_siblings_count_once() {
        // x86: no capacity files; cpus n and n + 4 are one core's two threads.
        let (capacity, core) = ([0; 8], [0, 1, 2, 3, 0, 1, 2, 3]);
        let fake = topology(&capacity, &core);
        assert_eq!(performance_cores(&(0..8).collect::<Vec<_>>(), &fake), Some(4));
        assert_eq!(performance_cores(&[1, 5], &fake), Some(1));
    }

    #[test]
    fn at_least_one_thread() {
        assert!(default_threads() >= 1);
    }
}
