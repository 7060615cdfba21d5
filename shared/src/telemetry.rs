//! Logging set-up shared by every function: JSON lines, level from `RUST_LOG`.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; call once at the top of `main`.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_target(false)
        .init();
}
