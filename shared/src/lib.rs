//! The task orchestration core: domain, events, ports, use cases and AWS adapters.
//! Every function crate builds on this one.

pub mod adapters;
pub mod config;
pub mod consumer;
pub mod dashboard;
pub mod domain;
pub mod events;
pub mod memory;
pub mod metrics;
pub mod ports;
pub mod records;
pub mod relay;
pub mod retry;
pub mod service;
pub mod telemetry;
pub mod time;
