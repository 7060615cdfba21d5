//! The printed report: throughput, latency percentiles per route, and the audit table.

use std::time::Duration;

use crate::audit::{Line, Verdict};
use crate::latency::Summary;

fn ms(duration: Duration) -> String {
    format!("{:.1}", duration.as_secs_f64() * 1000.0)
}

/// A plain text table, columns padded to their widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let render = |cells: Vec<String>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect::<Vec<_>>()
            .join(" | ")
            .trim_end()
            .to_owned()
    };
    let mut out = vec![
        render(header.iter().map(|h| h.to_string()).collect()),
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("-|-"),
    ];
    out.extend(rows.iter().map(|row| render(row.clone())));
    out.join("\n")
}

pub fn throughput(lifecycles: usize, requests: usize, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-9);
    format!(
        "{lifecycles} lifecycles in {:.1} s: {:.1} lifecycles/s, {requests} requests, {:.1} requests/s",
        secs,
        lifecycles as f64 / secs,
        requests as f64 / secs
    )
}

pub fn latencies(summaries: &[Summary]) -> String {
    let rows: Vec<Vec<String>> = summaries
        .iter()
        .map(|s| {
            vec![
                s.route.to_string(),
                s.count.to_string(),
                ms(s.p50),
                ms(s.p95),
                ms(s.p99),
                ms(s.max),
            ]
        })
        .collect();
    table(
        &["route", "calls", "p50 ms", "p95 ms", "p99 ms", "max ms"],
        &rows,
    )
}

pub fn audit(lines: &[Line]) -> String {
    let rows: Vec<Vec<String>> = lines
        .iter()
        .map(|l| {
            vec![
                l.check.clone(),
                l.expected.clone(),
                l.observed.clone(),
                match l.verdict {
                    Verdict::Pass => "ok",
                    Verdict::Fail => "FAIL",
                    Verdict::Note => "note",
                }
                .to_owned(),
            ]
        })
        .collect();
    table(&["check", "expected", "observed", "result"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_pad_columns_to_the_widest_cell() {
        let text = table(&["a", "bb"], &[vec!["ccc".into(), "d".into()]]);
        assert_eq!(text, "a   | bb\n----|---\nccc | d");
    }
}
