//! Adapters: the only code that names AWS SDK types.
//! Each implements a port over one service; `clients` builds the SDK clients once, over
//! the HTTPS client of `tls`.

pub mod capacity;
pub mod clients;
pub mod dynamo;
pub mod dynamo_archive;
mod dynamo_records;
mod dynamo_store;
mod sns_publisher;
mod sqs_redelivery;
pub mod tls;

pub use dynamo_archive::DynamoEventArchive;
pub use dynamo_records::DynamoRecordStore;
pub use dynamo_store::{DynamoTaskStore, BY_USER_INDEX, DEFAULT_OUTBOX_SHARDS, OUTBOX_INDEX};
pub use sns_publisher::{SnsPublisher, MAX_BATCH_ENTRIES};
pub use sqs_redelivery::{SqsRedelivery, CONSUMER_ATTRIBUTE, REASON_ATTRIBUTE};
