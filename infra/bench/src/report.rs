//! The figures of each function and the table that compares them with the baseline.

use std::time::Duration;

#[derive(Default)]
pub struct Figures {
    pub name: String,
    /// What the warm invocations were, for the table.
    pub workload: String,
    /// Spawn to first `GET .../next`, one per cold start.
    pub init: Vec<Duration>,
    /// Wall time of the first invocation after each cold start.
    pub first: Vec<Duration>,
    /// Wall time of each warm invocation.
    pub warm: Vec<Duration>,
    /// CPU time of each warm invocation.
    pub cpu_ns: Vec<u64>,
    /// CPU time of the warm process over all its warm invocations, from /proc/<pid>/stat.
    pub cpu_total: Duration,
    pub stripped_bytes: u64,
    /// The zip of the stripped binary as `bootstrap`.
    pub zip_bytes: u64,
    /// Invocations that failed or answered other than they should.
    pub errors: usize,
}

fn percentile<T: Copy + Ord>(values: &[T], p: f64) -> Option<T> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    Some(sorted[rank.min(sorted.len() - 1)])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl Figures {
    pub fn init_median(&self) -> Option<Duration> {
        percentile(&self.init, 50.0)
    }

    pub fn cpu_mean_ms(&self) -> Option<f64> {
        if self.cpu_ns.is_empty() {
            return None;
        }
        Some(self.cpu_ns.iter().sum::<u64>() as f64 / self.cpu_ns.len() as f64 / 1e6)
    }
}

fn ratio(value: Option<f64>, base: Option<f64>) -> String {
    match (value, base) {
        (Some(v), Some(b)) if b > 0.0 => format!("{:.1}x", v / b),
        _ => "–".to_owned(),
    }
}

fn opt_ms(value: Option<Duration>) -> String {
    value.map_or("–".to_owned(), |d| format!("{:.1}", ms(d)))
}

/// A Markdown table of every function against the baseline, which is `rows[0]`.
pub fn table(rows: &[Figures]) -> String {
    let base = &rows[0];
    let base_init = base.init_median().map(ms);
    let base_cpu = base.cpu_mean_ms();
    let base_size = Some(base.stripped_bytes as f64);
    let mut out = String::from(
        "| function | warm invocations | init ms p50 (min–max) | init ×base | first invoke ms p50 | warm ms p50 | warm ms p99 | CPU ms/inv mean (p50; /proc stat) | CPU ×base | stripped MB | size ×base | zip MB | errors |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for row in rows {
        let init = match (
            row.init_median(),
            percentile(&row.init, 0.0),
            percentile(&row.init, 100.0),
        ) {
            (Some(p50), Some(min), Some(max)) => {
                format!("{:.1} ({:.1}–{:.1})", ms(p50), ms(min), ms(max))
            }
            _ => "–".to_owned(),
        };
        let cpu_p50 = percentile(&row.cpu_ns, 50.0).map(|ns| ns as f64 / 1e6);
        let cpu_stat = (!row.warm.is_empty()).then(|| ms(row.cpu_total) / row.warm.len() as f64);
        let cpu = match (row.cpu_mean_ms(), cpu_p50, cpu_stat) {
            (Some(mean), Some(p50), Some(stat)) => format!("{mean:.2} ({p50:.2}; {stat:.2})"),
            _ => "–".to_owned(),
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.2} | {} | {:.2} | {} |\n",
            row.name,
            row.workload,
            init,
            ratio(row.init_median().map(ms), base_init),
            opt_ms(percentile(&row.first, 50.0)),
            opt_ms(percentile(&row.warm, 50.0)),
            opt_ms(percentile(&row.warm, 99.0)),
            cpu,
            ratio(row.cpu_mean_ms(), base_cpu),
            row.stripped_bytes as f64 / 1e6,
            ratio(Some(row.stripped_bytes as f64), base_size),
            row.zip_bytes as f64 / 1e6,
            row.errors,
        ));
    }
    out
}
