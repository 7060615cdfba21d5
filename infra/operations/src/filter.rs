//! Which dead letters an operation applies to: by event type, reason, age, or one message.

use std::time::Duration;

use shared::events::{EventKind, EventType};

use crate::letter::DeadLetter;
use crate::OpsError;

/// An event type as an operator names it: every version of a kind (`TaskCompleted`), or one
/// CloudEvents type (`task.completed.v2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeFilter {
    Kind(EventKind),
    Type(EventType),
}

impl TypeFilter {
    pub fn parse(name: &str) -> Result<TypeFilter, OpsError> {
        if let Some(kind) = EventKind::ALL.into_iter().find(|k| k.name() == name) {
            return Ok(TypeFilter::Kind(kind));
        }
        EventType::named(name).map(TypeFilter::Type).ok_or_else(|| {
            OpsError::usage(format!(
                "type: {name:?} is no event type (TaskCreated, task.completed.v2, ...)"
            ))
        })
    }

    fn admits(self, letter: &DeadLetter) -> bool {
        // The body's CloudEvents type when it has one, else the message attributes.
        let ty = letter
            .cloud_event_type
            .as_deref()
            .and_then(EventType::named)
            .or_else(|| {
                let kind = EventKind::ALL
                    .into_iter()
                    .find(|k| Some(k.name()) == letter.event_type.as_deref())?;
                let version = letter.event_version.as_deref().unwrap_or("v1");
                EventType::versions(kind).find(|ty| ty.version() == version)
            });
        match (self, ty) {
            (TypeFilter::Kind(kind), Some(ty)) => ty.kind() == kind,
            (TypeFilter::Type(wanted), Some(ty)) => ty == wanted,
            (_, None) => false,
        }
    }
}

/// Dead letters of a type, with a reason, of an age; each criterion left out admits all.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub event_type: Option<TypeFilter>,
    /// Part of the reason, in any case (`max receives` for those SQS moved).
    pub reason: Option<String>,
    /// At least this old (since first sent).
    pub min_age: Option<Duration>,
    /// At most this old.
    pub max_age: Option<Duration>,
    /// This one message alone.
    pub message_id: Option<String>,
}

/// A filter as an operator writes it, each criterion text or left out: what the `ops`
/// command's flags and the operations routes' fields both give.
#[derive(Debug, Clone, Copy, Default)]
pub struct FilterText<'a> {
    pub event_type: Option<&'a str>,
    pub reason: Option<&'a str>,
    pub min_age: Option<&'a str>,
    pub max_age: Option<&'a str>,
    pub message_id: Option<&'a str>,
}

impl Filter {
    /// The filter `text` writes, checked; an error names its field (`type`, `min_age`, ...).
    pub fn parse(text: FilterText<'_>) -> Result<Filter, OpsError> {
        let age = |field: &str, text: Option<&str>| text.map(|t| parse_age(field, t)).transpose();
        let filter = Filter {
            event_type: text.event_type.map(TypeFilter::parse).transpose()?,
            reason: text.reason.map(str::to_owned),
            min_age: age("min_age", text.min_age)?,
            max_age: age("max_age", text.max_age)?,
            message_id: text.message_id.map(str::to_owned),
        };
        filter.check()?;
        Ok(filter)
    }

    /// Refuses a filter nothing can match, naming the field.
    pub fn check(&self) -> Result<(), OpsError> {
        if let (Some(min), Some(max)) = (self.min_age, self.max_age) {
            if min > max {
                return Err(OpsError::usage(format!(
                    "min_age: {}s is over max_age ({}s)",
                    min.as_secs(),
                    max.as_secs()
                )));
            }
        }
        if self.reason.as_deref().is_some_and(|r| r.trim().is_empty()) {
            return Err(OpsError::usage(
                "reason: empty; leave it out to admit every reason",
            ));
        }
        if self.message_id.as_deref().is_some_and(str::is_empty) {
            return Err(OpsError::usage("message_id: empty"));
        }
        Ok(())
    }

    pub fn admits(&self, letter: &DeadLetter) -> bool {
        let age = Duration::from_secs(letter.age_secs);
        self.message_id
            .as_deref()
            .is_none_or(|id| id == letter.message_id)
            && self.event_type.is_none_or(|ty| ty.admits(letter))
            && self.reason.as_deref().is_none_or(|part| {
                letter
                    .reason
                    .to_lowercase()
                    .contains(&part.trim().to_lowercase())
            })
            && self.min_age.is_none_or(|min| age >= min)
            && self.max_age.is_none_or(|max| age <= max)
    }
}

/// An age as `90s`, `15m`, `2h` or `3d` (a bare number is seconds); `field` names it in
/// the error.
pub fn parse_age(field: &str, text: &str) -> Result<Duration, OpsError> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let seconds: u64 = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => 0,
    };
    match number.parse::<u64>() {
        Ok(n) if seconds > 0 => Ok(Duration::from_secs(n.saturating_mul(seconds))),
        _ => Err(OpsError::usage(format!(
            "{field}: {text:?} is no age (90s, 15m, 2h, 3d)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(cloud_type: Option<&str>, event_type: Option<&str>, reason: &str) -> DeadLetter {
        DeadLetter {
            message_id: "m-1".into(),
            consumer: "dashboard".into(),
            event_type: event_type.map(Into::into),
            event_version: None,
            cloud_event_type: cloud_type.map(Into::into),
            event_id: None,
            task_id: None,
            reason: reason.into(),
            receive_count: 1,
            sent_at: chrono::DateTime::UNIX_EPOCH,
            age_secs: 600,
            body: None,
        }
    }

    #[test]
    fn when_a_type_is_named_should_admit_its_kind_or_exactly_that_version() {
        // Given dead letters of task.completed.v1 and v2, and one that is no event
        let v1 = letter(Some("task.completed.v1"), Some("TaskCompleted"), "x");
        let v2 = letter(Some("task.completed.v2"), Some("TaskCompleted"), "x");
        let by_attribute = letter(None, Some("TaskCompleted"), "x");
        // When filtered by the kind and by one version
        let kind = TypeFilter::parse("TaskCompleted").unwrap();
        let version = TypeFilter::parse("task.completed.v2").unwrap();
        // Then the kind admits all three (the last by its attribute), the version only v2
        assert!(kind.admits(&v1) && kind.admits(&v2) && kind.admits(&by_attribute));
        assert!(!version.admits(&v1) && version.admits(&v2));
        assert!(!TypeFilter::parse("TaskCreated").unwrap().admits(&v1));
    }

    #[test]
    fn when_an_input_is_bad_should_refuse_it_naming_the_field() {
        // Given a type, an age and a window that cannot be
        // When each is read
        // Then each error names its field
        let err = TypeFilter::parse("task.exploded.v1")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("type: "), "{err}");
        let err = parse_age("min_age", "5 weeks").unwrap_err().to_string();
        assert!(err.starts_with("min_age: "), "{err}");
        let window = Filter {
            min_age: Some(Duration::from_secs(3_600)),
            max_age: Some(Duration::from_secs(60)),
            ..Filter::default()
        };
        let err = window.check().unwrap_err().to_string();
        assert!(err.starts_with("min_age: "), "{err}");
    }

    #[test]
    fn when_filtered_by_reason_and_age_should_admit_only_what_matches() {
        // Given a dead letter ten minutes old that SQS moved after its receives
        let moved = letter(None, Some("TaskCreated"), crate::MAX_RECEIVES);
        // When filtered by reason, in another case, and by ages around its own
        let by_reason = |reason: &str| Filter {
            reason: Some(reason.into()),
            ..Filter::default()
        };
        let by_age = |min: u64, max: u64| Filter {
            min_age: Some(Duration::from_secs(min)),
            max_age: Some(Duration::from_secs(max)),
            ..Filter::default()
        };
        // Then it matches its reason and an age window around it, and nothing else
        assert!(by_reason("Max Receives").admits(&moved));
        assert!(!by_reason("webhook").admits(&moved));
        assert!(by_age(60, 3_600).admits(&moved));
        assert!(!by_age(700, 3_600).admits(&moved));
        assert_eq!(
            parse_age("max_age", "15m").unwrap(),
            Duration::from_secs(900)
        );
        assert_eq!(
            parse_age("max_age", "2d").unwrap(),
            Duration::from_secs(172_800)
        );
    }
}
