//! CPU time of named processes over a phase, from `/proc/<pid>/stat` (user + system time
//! of all their threads), and each one's share.

use std::time::Duration;

/// Clock ticks per second of `/proc/<pid>/stat` times (`USER_HZ`, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU seconds a process has used so far, or `None` if it cannot be read.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let user: f64 = fields.get(11)?.parse().ok()?;
    let system: f64 = fields.get(12)?.parse().ok()?;
    Some((user + system) / TICKS_PER_SECOND)
}

pub struct CpuSample {
    processes: Vec<(String, u32, f64)>,
}

/// CPU use of each process over a phase.
#[derive(Debug, Clone)]
pub struct CpuShares {
    pub elapsed: Duration,
    pub cores: usize,
    /// Name, CPU seconds in the phase.
    pub used: Vec<(String, f64)>,
}

impl CpuSample {
    /// Reads every process (this one included, as "load tool"); `None` without any.
    pub fn take(processes: &[(String, u32)]) -> Option<Self> {
        if processes.is_empty() {
            return None;
        }
        let mut all = processes.to_vec();
        all.push(("load tool".into(), std::process::id()));
        Some(CpuSample {
            processes: all
                .into_iter()
                .filter_map(|(name, pid)| Some((name, pid, cpu_seconds(pid)?)))
                .collect(),
        })
    }

    pub fn shares_until_now(self, elapsed: Duration) -> CpuShares {
        CpuShares {
            elapsed,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            used: self
                .processes
                .into_iter()
                .filter_map(|(name, pid, before)| Some((name, cpu_seconds(pid)? - before)))
                .collect(),
        }
    }
}

impl CpuShares {
    /// Rows: name, CPU seconds, share of the measured processes' total, share of the machine.
    pub fn rows(&self) -> Vec<Vec<String>> {
        let total: f64 = self.used.iter().map(|(_, s)| s).sum::<f64>().max(1e-9);
        let capacity = (self.elapsed.as_secs_f64() * self.cores as f64).max(1e-9);
        self.used
            .iter()
            .map(|(name, seconds)| {
                vec![
                    name.clone(),
                    format!("{seconds:.1}"),
                    format!("{:.0} %", 100.0 * seconds / total),
                    format!("{:.0} %", 100.0 * seconds / capacity),
                ]
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_cpu_time() {
        assert!(cpu_seconds(std::process::id()).is_some());
    }
}
