//! The CI/CD monitor consumer: when a code-changing task completes, records a build request
//! and, when a webhook is configured, posts it there.

pub mod handler;
pub mod webhook;

pub use handler::CicdMonitor;
pub use webhook::{BuildNotifier, WebhookNotifier};
