//! The statistics held in memory, for tests of the consumer and the task API (the
//! `fakes` feature).

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use shared::events::EventEnvelope;
use shared::ports::StoreError;
use uuid::Uuid;

use crate::stats::{project, DashboardStats, DashboardStore, TaskProjection};

#[derive(Default)]
pub struct MemoryDashboard {
    state: Mutex<(HashMap<Uuid, TaskProjection>, HashMap<String, f64>)>,
}

#[async_trait]
impl DashboardStore for MemoryDashboard {
    async fn apply(&self, event: &EventEnvelope) -> Result<bool, StoreError> {
        let mut state = self.state.lock().unwrap();
        let (projections, counters) = &mut *state;
        let Some((next, delta)) = project(projections.get(&event.task_id()), event) else {
            return Ok(false);
        };
        for (name, value) in delta.counters {
            *counters.entry(name).or_default() += value as f64;
        }
        *counters.entry("cost_usd_total".into()).or_default() += delta.cost_usd;
        projections.insert(event.task_id(), next);
        Ok(true)
    }

    async fn stats(&self) -> Result<DashboardStats, StoreError> {
        let state = self.state.lock().unwrap();
        Ok(DashboardStats::from_counters(&state.1))
    }
}
