//! A dead letter as the operations view shows it: what the listing reads and the filter
//! judges, below both.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One dead letter, as the operations view shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeadLetter {
    /// Its id in the dead-letter queue (a redrive gives the message sent a new one).
    pub message_id: String,
    /// The consumer that dead-lettered it (`dead_letter_consumer`), else the queue's.
    pub consumer: String,
    /// `event_type` and `event_version` as it travelled (SNS message attributes).
    pub event_type: Option<String>,
    pub event_version: Option<String>,
    /// From its body, when the body is a CloudEvent: `type`, `id`, and the task (`subject`).
    pub cloud_event_type: Option<String>,
    pub event_id: Option<String>,
    pub task_id: Option<String>,
    /// `dead_letter_reason`, or `max receives` for a message SQS moved after its receives.
    pub reason: String,
    /// Receives so far (SQS's approximate count; listing a DLQ counts too).
    pub receive_count: u32,
    /// When it was first sent (`SentTimestamp`), and how long ago.
    pub sent_at: DateTime<Utc>,
    pub age_secs: u64,
    /// The body itself, only when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}
