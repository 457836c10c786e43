//! A criterion measurement of the benchmark thread's own CPU time, from Linux's
//! `/proc/thread-self/schedstat`. On a machine shared with other work, wall time counts the
//! time the thread waits for a core; CPU time does not. The kernel updates it at scheduler
//! ticks, so use flat sampling with samples of ~100 ms (a few % of resolution).

use criterion::measurement::{Measurement, ValueFormatter, WallTime};

/// Nanoseconds the calling thread has run on a CPU.
fn thread_cpu_ns() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat")
        .expect("the CPU-time measurement needs Linux's /proc/thread-self/schedstat");
    stat.split_whitespace()
        .next()
        .and_then(|ns| ns.parse().ok())
        .expect("schedstat starts with the run time in ns")
}

/// CPU time of the measuring thread, in nanoseconds (formatted like wall time).
pub struct ThreadCpuTime(WallTime);

impl Default for ThreadCpuTime {
    fn default() -> Self {
        ThreadCpuTime(WallTime)
    }
}

impl Measurement for ThreadCpuTime {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        thread_cpu_ns()
    }

    fn end(&self, start: u64) -> u64 {
        thread_cpu_ns().saturating_sub(start)
    }

    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }

    fn zero(&self) -> u64 {
        0
    }

    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        self.0.formatter()
    }
}
