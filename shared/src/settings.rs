//! Configuration of every function: a settings type per function reads its variables from
//! a map of names to values (the process environment in Lambda, a map in tests and in the
//! dev server), lists the names it reads as data, and builds the function.

use std::collections::{BTreeSet, HashMap};
use std::str::FromStr;
use std::sync::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    /// `reason` never repeats the value, which may be a secret.
    #[error("environment variable {name} is not valid: {reason}")]
    Invalid { name: &'static str, reason: String },
    #[error("no AWS region: set AWS_REGION, or a `region` in the profile that AWS_PROFILE names")]
    NoRegion,
}

impl ConfigError {
    pub fn invalid(name: &'static str, reason: impl Into<String>) -> Self {
        ConfigError::Invalid {
            name,
            reason: reason.into(),
        }
    }
}

/// Variables by name; remembers which names were read, so a test can hold a settings
/// type to the list it declares.
#[derive(Debug, Default)]
pub struct Variables {
    values: HashMap<String, String>,
    read: Mutex<BTreeSet<&'static str>>,
}

impl Variables {
    pub fn new<K: Into<String>, V: Into<String>>(values: impl IntoIterator<Item = (K, V)>) -> Self {
        Variables {
            values: values
                .into_iter()
                .map(|(name, value)| (name.into(), value.into()))
                .collect(),
            read: Mutex::default(),
        }
    }

    /// The process environment, as Lambda sets it from the template.
    pub fn from_env() -> Self {
        Self::new(std::env::vars())
    }

    /// A variable; `None` when unset or blank.
    pub fn optional(&self, name: &'static str) -> Option<String> {
        self.read
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name);
        self.values
            .get(name)
            .filter(|value| !value.trim().is_empty())
            .cloned()
    }

    pub fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.optional(name).ok_or(ConfigError::Missing(name))
    }

    /// A variable parsed as `T`, or `default` when unset.
    pub fn parsed_or<T: FromStr>(&self, name: &'static str, default: T) -> Result<T, ConfigError> {
        match self.optional(name) {
            Some(value) => value.trim().parse().map_err(|_| {
                ConfigError::invalid(name, format!("expected {}", std::any::type_name::<T>()))
            }),
            None => Ok(default),
        }
    }

    /// Every name looked up so far.
    pub fn names_read(&self) -> BTreeSet<&'static str> {
        self.read.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The configuration of one function.
pub trait Settings: Sized {
    /// Every variable `from_variables` may read.
    fn variables() -> Vec<&'static str>;

    /// Those of `variables` that only a local run sets and template.yaml never does: a
    /// secret's stand-in, which in AWS comes from a secret store instead.
    fn local_only() -> Vec<&'static str> {
        Vec::new()
    }

    fn from_variables(variables: &Variables) -> Result<Self, ConfigError>;
}

/// The dimension of the functions' metrics (`STACK_NAME`), shared by every function.
pub const STACK_NAME: &str = "STACK_NAME";

/// Shards of the outbox's pending marker, on which the task API and the sweeper agree.
pub const OUTBOX_SHARDS: &str = "OUTBOX_SHARDS";
/// The most `OUTBOX_SHARDS` allowed: the sweeper queries each one every run.
pub const MAX_OUTBOX_SHARDS: u32 = 1_000;

/// `OUTBOX_SHARDS`, from 1 to `MAX_OUTBOX_SHARDS`, by default `DEFAULT_OUTBOX_SHARDS`.
pub fn outbox_shards(variables: &Variables) -> Result<u32, ConfigError> {
    let shards = variables.parsed_or(OUTBOX_SHARDS, crate::adapters::DEFAULT_OUTBOX_SHARDS)?;
    if !(1..=MAX_OUTBOX_SHARDS).contains(&shards) {
        return Err(ConfigError::invalid(
            OUTBOX_SHARDS,
            format!("must be from 1 to {MAX_OUTBOX_SHARDS}"),
        ));
    }
    Ok(shards)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_a_variable_is_blank_or_malformed_should_name_it() {
        let variables = Variables::new([("BLANK", " "), ("COUNT", "many")]);

        assert!(matches!(
            variables.required("BLANK"),
            Err(ConfigError::Missing("BLANK"))
        ));
        let err = variables.parsed_or("COUNT", 1u32).unwrap_err();
        assert!(err.to_string().contains("COUNT"), "{err}");
        assert!(!err.to_string().contains("many"), "{err}");
        assert_eq!(variables.parsed_or("UNSET", 7u32).unwrap(), 7);
        assert_eq!(
            variables.names_read(),
            BTreeSet::from(["BLANK", "COUNT", "UNSET"])
        );
    }
}
