//! Configuration from environment variables, which `template.yaml` sets.
//! A missing or malformed variable stops the function at start-up with its name.

use std::collections::BTreeSet;
use std::str::FromStr;
use std::sync::Mutex;

/// Every name looked up so far, so a test can check the template sets them all.
static READ: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    #[error("environment variable {name} is not valid: {value:?}")]
    Invalid { name: &'static str, value: String },
}

fn read(name: &'static str) -> Option<String> {
    READ.lock().unwrap_or_else(|e| e.into_inner()).insert(name);
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
}

/// The names of the variables read so far in this process.
pub fn names_read() -> BTreeSet<&'static str> {
    READ.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Forgets the names read so far.
pub fn forget_names_read() {
    READ.lock().unwrap_or_else(|e| e.into_inner()).clear();
}

pub fn required(name: &'static str) -> Result<String, ConfigError> {
    read(name).ok_or(ConfigError::Missing(name))
}

/// An optional variable: `None` when unset or empty.
pub fn optional(name: &'static str) -> Option<String> {
    read(name)
}

pub fn parsed_or<T: FromStr>(name: &'static str, default: T) -> Result<T, ConfigError> {
    match read(name) {
        Some(value) => value
            .trim()
            .parse()
            .map_err(|_| ConfigError::Invalid { name, value }),
        None => Ok(default),
    }
}
