//! The statistics held in memory, for tests of the consumer and the task API (the
//! `fakes` feature).

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use shared::events::EventEnvelope;
use shared::ports::StoreError;
use uuid::Uuid;

use crate::stats::{project, DashboardStats, DashboardStore, MinuteTotals, TaskProjection};

#[derive(Default)]
pub struct MemoryDashboard {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    projections: HashMap<Uuid, TaskProjection>,
    counters: HashMap<String, f64>,
    minutes: MinuteTotals,
}

#[async_trait]
impl DashboardStore for MemoryDashboard {
    async fn apply_batch(&self, events: &[&EventEnvelope]) -> Result<Vec<bool>, StoreError> {
        let mut state = self.state.lock().unwrap();
        Ok(events.iter().map(|event| state.apply(event)).collect())
    }

    async fn stats_at(&self, now: DateTime<Utc>) -> Result<DashboardStats, StoreError> {
        let state = self.state.lock().unwrap();
        Ok(DashboardStats::from_counters(&state.counters).with_series(now, &state.minutes))
    }
}

impl State {
    fn apply(&mut self, event: &EventEnvelope) -> bool {
        let State {
            projections,
            counters,
            minutes,
        } = self;
        let Some((next, delta)) = project(projections.get(&event.task_id()), event) else {
            return false;
        };
        for (name, value) in delta.counters {
            *counters.entry(name).or_default() += value as f64;
        }
        *counters.entry("cost_usd_total".into()).or_default() += delta.cost_usd;
        if let Some(minute) = delta.minute {
            *minutes
                .entry((minute, event.kind().name().to_owned()))
                .or_default() += 1;
        }
        projections.insert(event.task_id(), next);
        true
    }
}
