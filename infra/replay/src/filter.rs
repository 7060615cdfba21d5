//! SNS subscription filter policies on message attributes, as far as replays need them:
//! each key lists the exact string values it admits; every key must match.

use std::collections::BTreeMap;

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub struct FilterPolicy {
    keys: BTreeMap<String, Vec<String>>,
}

impl FilterPolicy {
    /// Reads a policy; one that uses more than exact string values (prefixes, numbers,
    /// `anything-but`, ...) is refused with the key that does, rather than guessed at.
    pub fn parse(text: &str) -> Result<Self, String> {
        let value: Value =
            serde_json::from_str(text).map_err(|err| format!("the filter policy: {err}"))?;
        let object = value
            .as_object()
            .ok_or("the filter policy is not a JSON object")?;
        let mut keys = BTreeMap::new();
        for (key, allowed) in object {
            let values = allowed
                .as_array()
                .ok_or_else(|| format!("the filter policy's {key} is not a list"))?
                .iter()
                .map(|value| {
                    value.as_str().map(str::to_owned).ok_or_else(|| {
                        format!(
                            "the filter policy's {key} holds {value}, which replays cannot match \
                             (exact strings only)"
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            keys.insert(key.clone(), values);
        }
        Ok(FilterPolicy { keys })
    }

    /// Whether a message with `attributes` is delivered.
    pub fn admits(&self, attributes: &[(&str, &str)]) -> bool {
        self.keys.iter().all(|(key, allowed)| {
            attributes
                .iter()
                .find(|(name, _)| name == key)
                .is_some_and(|(_, value)| allowed.iter().any(|a| a == value))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_should_admit_only_what_every_key_lists() {
        let policy = FilterPolicy::parse(
            r#"{"event_type":["TaskCompleted","TaskFailed"],"event_version":["v1"]}"#,
        )
        .unwrap();
        assert!(policy.admits(&[("event_type", "TaskFailed"), ("event_version", "v1")]));
        assert!(!policy.admits(&[("event_type", "TaskCreated"), ("event_version", "v1")]));
        assert!(!policy.admits(&[("event_type", "TaskFailed"), ("event_version", "v2")]));
        assert!(!policy.admits(&[("event_type", "TaskFailed")]));
    }

    #[test]
    fn a_policy_beyond_exact_strings_should_be_refused_naming_its_key() {
        for text in [
            r#"{"event_type":[{"prefix":"Task"}]}"#,
            r#"{"event_type":"TaskFailed"}"#,
            "[]",
            "{",
        ] {
            let err = FilterPolicy::parse(text).unwrap_err();
            assert!(err.contains("filter policy"), "{text}: {err}");
        }
    }
}
