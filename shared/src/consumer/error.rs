//! Why a message could not be processed, and whether another delivery can help: a
//! transient failure is retried with back-off, a permanent one is dead-lettered at once.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use crate::events::EventParseError;
use crate::ports::StoreError;

pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Whether another delivery of the same message can succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Throttling, timeouts, 5xx, a lease held elsewhere: worth a retry after a while.
    Transient,
    /// A body that is no event, an unknown type or version, an invalid transition, a
    /// refusal by a webhook: every delivery would fail the same way.
    Permanent,
}

/// A failure to process one message, with its cause kept as the source.
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub struct ConsumerError {
    retry: Retry,
    /// The earliest a retry can succeed, when known (a lease's end).
    retry_after: Option<Duration>,
    reason: Cow<'static, str>,
    #[source]
    source: Option<BoxError>,
}

impl ConsumerError {
    pub fn transient(reason: impl Into<Cow<'static, str>>) -> Self {
        ConsumerError {
            retry: Retry::Transient,
            retry_after: None,
            reason: reason.into(),
            source: None,
        }
    }

    pub fn permanent(reason: impl Into<Cow<'static, str>>) -> Self {
        ConsumerError {
            retry: Retry::Permanent,
            retry_after: None,
            reason: reason.into(),
            source: None,
        }
    }

    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// No retry before `delay` from now.
    pub fn retry_after(mut self, delay: Duration) -> Self {
        self.retry_after = Some(delay);
        self
    }

    pub fn earliest_retry(&self) -> Option<Duration> {
        self.retry_after
    }

    pub fn retry(&self) -> Retry {
        self.retry
    }

    pub fn is_permanent(&self) -> bool {
        self.retry == Retry::Permanent
    }
}

impl From<StoreError> for ConsumerError {
    fn from(err: StoreError) -> Self {
        ConsumerError::transient("a store call failed").with_source(err)
    }
}

impl From<EventParseError> for ConsumerError {
    fn from(err: EventParseError) -> Self {
        ConsumerError::permanent("the message is not a task event this consumer reads")
            .with_source(err)
    }
}

/// An error and its causes on one line (`reason: cause: cause`), for logs and the
/// dead-letter reason.
pub struct Chain<'a>(pub &'a (dyn StdError + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(err) = cause {
            write!(f, ": {err}")?;
            cause = err.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_a_body_is_no_event_should_be_permanent_and_keep_its_cause() {
        let parse = crate::events::EventEnvelope::from_json("not json").unwrap_err();

        let err = ConsumerError::from(parse);

        assert!(err.is_permanent());
        let line = Chain(&err).to_string();
        assert!(
            line.starts_with("the message is not a task event"),
            "{line}"
        );
        assert!(line.contains("not a task event: expected"), "{line}");
    }

    #[test]
    fn when_storage_fails_should_be_transient() {
        let err = ConsumerError::from(StoreError::Backend("throttled".into()));

        assert_eq!(err.retry(), Retry::Transient);
        assert_eq!(
            Chain(&err).to_string(),
            "a store call failed: storage failed: throttled"
        );
    }
}
