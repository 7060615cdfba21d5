//! The ML classifier consumer: classifies new tasks by `rules` unless their owner already
//! did, and records every finished task as a training example.

pub mod handler;
pub mod rules;

pub use handler::Classifier;
