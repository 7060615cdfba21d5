//! Records a consumer keeps, one per task (training examples, build requests): the port
//! of their store. Recording twice keeps the first.

use async_trait::async_trait;
use uuid::Uuid;

use crate::ports::StoreError;

/// Keeps one record per task id.
#[async_trait]
pub trait RecordStore<T>: Send + Sync {
    /// Stores `record` unless one exists for its task; `false` when one did.
    async fn record(&self, task_id: Uuid, record: &T) -> Result<bool, StoreError>;

    async fn get(&self, task_id: Uuid) -> Result<Option<T>, StoreError>;
}
