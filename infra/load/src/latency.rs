//! Latency samples per route, and their percentiles.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The routes the load tool calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Route {
    Create,
    Get,
    List,
    Start,
    Complete,
    Fail,
    Stats,
}

impl Route {
    /// The path segment of a transition.
    pub fn action(self) -> &'static str {
        match self {
            Route::Start => "start",
            Route::Complete => "complete",
            Route::Fail => "fail",
            _ => "",
        }
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Route::Create => "POST /tasks",
            Route::Get => "GET /tasks/{id}",
            Route::List => "GET /tasks",
            Route::Start => "POST /tasks/{id}/start",
            Route::Complete => "POST /tasks/{id}/complete",
            Route::Fail => "POST /tasks/{id}/fail",
            Route::Stats => "GET /dashboard/stats",
        })
    }
}

/// Every call's duration, by route. Cheap to clone; clones share the samples.
#[derive(Debug, Clone, Default)]
pub struct Latencies {
    samples: Arc<Mutex<BTreeMap<Route, Vec<Duration>>>>,
}

/// One route's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub route: Route,
    pub count: usize,
    pub p50: Duration,
    pub p95: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Latencies {
    pub fn record(&self, route: Route, took: Duration) {
        if let Ok(mut samples) = self.samples.lock() {
            samples.entry(route).or_default().push(took);
        }
    }

    pub fn total(&self) -> usize {
        self.samples
            .lock()
            .map(|samples| samples.values().map(Vec::len).sum())
            .unwrap_or(0)
    }

    pub fn summaries(&self) -> Vec<Summary> {
        let Ok(samples) = self.samples.lock() else {
            return Vec::new();
        };
        samples
            .iter()
            .filter(|(_, durations)| !durations.is_empty())
            .map(|(route, durations)| {
                let mut sorted = durations.clone();
                sorted.sort_unstable();
                Summary {
                    route: *route,
                    count: sorted.len(),
                    p50: percentile(&sorted, 50.0),
                    p95: percentile(&sorted, 95.0),
                    p99: percentile(&sorted, 99.0),
                    max: sorted[sorted.len() - 1],
                }
            })
            .collect()
    }
}

/// Nearest-rank percentile of sorted, non-empty samples.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let sorted: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&sorted, 50.0), Duration::from_millis(50));
        assert_eq!(percentile(&sorted, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&sorted[..1], 95.0), Duration::from_millis(1));
    }
}
