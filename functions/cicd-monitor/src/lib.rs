//! The CI/CD monitor consumer: when a code-changing task completes, records a build request
//! and, when a webhook is configured, posts it there.

mod build_request;
pub mod handler;
mod secret;
pub mod secret_webhook;
mod settings;
pub mod webhook;

pub use build_request::BuildRequest;
pub use handler::CicdMonitor;
pub use secret::SecretError;
pub use settings::CicdSettings;
pub use webhook::{BuildNotifier, WebhookError, WebhookNotifier};
