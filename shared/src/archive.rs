//! The event archive: every event as it was published, kept once per event id, for a
//! task's timeline and for replays to a consumer.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::events::{EventEnvelope, Sequence};
use crate::ports::StoreError;

/// One archived event: the CloudEvent's JSON as it arrived, and what it is kept by.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchivedEvent {
    pub task_id: Uuid,
    pub event_id: Uuid,
    /// The CloudEvents type, `task.created.v1`, ...
    pub event_type: String,
    pub time: DateTime<Utc>,
    pub sequence: Sequence,
    /// The CloudEvent as it was published, byte for byte.
    pub body: String,
}

impl ArchivedEvent {
    pub fn of(event: &EventEnvelope, body: &str) -> Self {
        ArchivedEvent {
            task_id: event.data.task_id(),
            event_id: event.id,
            event_type: event.wire_type().name().to_owned(),
            time: event.time,
            sequence: event.sequence,
            body: body.to_owned(),
        }
    }

    /// Its key among its task's events: ordered by sequence, unique by event id.
    pub fn event_key(&self) -> String {
        event_key(self.sequence, self.event_id)
    }
}

/// `<sequence>-<event id>`: sorts as the sequence does (20 digits), one per event id.
pub fn event_key(sequence: Sequence, event_id: Uuid) -> String {
    format!("{sequence}-{event_id}")
}

/// A page of a task's events, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchivePage {
    pub items: Vec<ArchivedEvent>,
    /// Where the next page starts; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// The timeline's cursor: the event key of a page's last event, checked on the way in.
pub fn parse_cursor(cursor: &str) -> Result<String, StoreError> {
    let (sequence, id) = cursor.split_once('-').ok_or(StoreError::InvalidCursor)?;
    let sequence: Sequence = sequence.parse().map_err(|_| StoreError::InvalidCursor)?;
    let id: Uuid = id.parse().map_err(|_| StoreError::InvalidCursor)?;
    Ok(event_key(sequence, id))
}

#[async_trait]
pub trait EventArchive: Send + Sync {
    /// Keeps the event unless it is kept already; `true` when this call wrote it.
    async fn archive(&self, event: &ArchivedEvent) -> Result<bool, StoreError>;

    /// The task's events in sequence order, `limit` at most, after `cursor`.
    async fn timeline(
        &self,
        task_id: Uuid,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<ArchivePage, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_keys_should_sort_as_their_sequences_and_parse_back_as_cursors() {
        let id = Uuid::from_u128(7);
        let keys: Vec<String> = [2, 10, 1]
            .into_iter()
            .map(|n| event_key(Sequence::new(n), id))
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(sorted, [&keys[2], &keys[0], &keys[1]].map(String::as_str));
        assert_eq!(parse_cursor(&keys[0]).unwrap(), keys[0]);
        for bad in [
            "",
            "2-x",
            "00000000000000000002",
            "abc-00000000-0000-0000-0000-000000000007",
        ] {
            assert!(
                matches!(parse_cursor(bad), Err(StoreError::InvalidCursor)),
                "{bad}"
            );
        }
    }
}
