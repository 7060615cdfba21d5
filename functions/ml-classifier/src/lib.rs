//! The ML classifier consumer: classifies new tasks by `rules` unless their owner already
//! did, and records every finished task as a training example.

mod example;
pub mod handler;
pub mod rules;
mod settings;

pub use example::TrainingExample;
pub use handler::Classifier;
pub use settings::ClassifierSettings;
