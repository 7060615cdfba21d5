//! The dashboard consumer: counts every lifecycle event into the live statistics that
//! `GET /dashboard/stats` serves. The task API reads them through `DashboardStore`.

mod handler;
#[cfg(any(test, feature = "fakes"))]
pub mod memory;
mod settings;
pub mod stats;
mod store;

pub use handler::Dashboard;
pub use settings::{counter_shards, DashboardSettings, DASHBOARD_SHARDS, DASHBOARD_TABLE};
pub use stats::{DashboardStats, DashboardStore, MinuteCounts};
pub use store::{DynamoDashboardStore, DEFAULT_COUNTER_SHARDS};
