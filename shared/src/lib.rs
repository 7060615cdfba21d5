//! The task orchestration core: domain, events, ports, use cases and AWS adapters.
//! Every function crate builds on this one.

pub mod adapters;
pub mod archive;
pub mod consumer;
pub mod cursor;
pub mod domain;
pub mod events;
#[cfg(any(test, feature = "fakes"))]
pub mod fixtures;
#[cfg(any(test, feature = "fakes"))]
pub mod memory;
pub mod metrics;
pub mod ports;
pub mod records;
pub mod relay;
pub mod retry;
pub mod service;
pub mod settings;
pub mod shard;
pub mod telemetry;
pub mod time;
