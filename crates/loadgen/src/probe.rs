//! Looking at processes from outside: the server's resident memory from its `/metrics`,
//! and CPU time of a process (the server's, given its pid, or the load generator's own)
//! from `/proc/PID/stat`.

use anyhow::Context;
use std::time::{Duration, Instant};

/// Clock ticks per second in `/proc/*/stat` (`USER_HZ`, 100 on every Linux ABI).
const USER_HZ: f64 = 100.0;

/// The metric `connections` reads.
pub const RSS_METRIC: &str = "process_resident_memory_bytes";

/// A value of the Prometheus text exposition, by exact metric name (no labels).
pub fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// The server's resident memory in bytes, from `GET {base}/metrics`.
pub async fn server_rss(http: &reqwest::Client, base: &str) -> anyhow::Result<u64> {
    let url = format!("{base}/metrics");
    let text = http
        .get(&url)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .with_context(|| format!("GET {url}"))?
        .error_for_status()
        .with_context(|| format!("GET {url}"))?
        .text()
        .await
        .with_context(|| format!("reading {url}"))?;
    let value = metric_value(&text, RSS_METRIC)
        .with_context(|| format!("{url} does not export {RSS_METRIC}"))?;
    Ok(value.max(0.0) as u64)
}

/// Which process to read CPU time from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Process {
    /// The load generator itself.
    Current,
    /// Another process on this host.
    Pid(u32),
}

/// User plus system CPU seconds a process has used, from `/proc/PID/stat`; `None` when it
/// cannot be read (not Linux, no such process).
pub fn cpu_seconds(process: Process) -> Option<f64> {
    let path = match process {
        Process::Current => "/proc/self/stat".to_owned(),
        Process::Pid(pid) => format!("/proc/{pid}/stat"),
    };
    parse_stat_cpu(&std::fs::read_to_string(path).ok()?)
}

/// utime + stime of a `/proc/PID/stat` line, in seconds.
fn parse_stat_cpu(stat: &str) -> Option<f64> {
    // The command name (field 2) is in parentheses and may hold spaces: split after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field 3 (state) is fields[0]; utime is field 14, stime field 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

/// CPU use of one process over a stretch of wall time.
#[derive(Debug, Clone, Copy)]
pub struct CpuWindow {
    process: Process,
    wall: Instant,
    cpu: Option<f64>,
}

impl CpuWindow {
    /// Starts measuring now.
    pub fn start(process: Process) -> Self {
        Self {
            process,
            wall: Instant::now(),
            cpu: cpu_seconds(process),
        }
    }

    /// Starts measuring the server, when its pid is known.
    pub fn server(pid: Option<u32>) -> Option<Self> {
        pid.map(|pid| Self::start(Process::Pid(pid)))
    }

    /// CPU seconds used since the start, and the wall seconds that passed.
    pub fn finish(&self) -> Option<(f64, f64)> {
        let used = cpu_seconds(self.process)? - self.cpu?;
        Some((used.max(0.0), self.wall.elapsed().as_secs_f64()))
    }

    /// CPU used since the start, in percent of one core.
    pub fn percent(&self) -> Option<f64> {
        let (cpu, wall) = self.finish()?;
        crate::report::percent(cpu, wall)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_found_by_exact_name() {
        let text = "# HELP process_resident_memory_bytes Resident memory in bytes.\n\
                    # TYPE process_resident_memory_bytes gauge\n\
                    process_resident_memory_bytes_total 1\n\
                    process_resident_memory_bytes 123456\n";
        assert_eq!(metric_value(text, RSS_METRIC), Some(123_456.0));
        assert_eq!(metric_value(text, "nope"), None);
    }

    #[test]
    fn proc_stat_is_parsed_past_odd_command_names() {
        let stat = "42 (a (weird) name) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0";
        assert_eq!(parse_stat_cpu(stat), Some(3.0));
        assert!(cpu_seconds(Process::Current).is_some());
    }
}
