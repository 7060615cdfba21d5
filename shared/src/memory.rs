//! In-memory implementations of the ports, for unit tests of handlers and use cases
//! (the `fakes` feature).
//! They keep the same rules as the real adapters: conditional writes and an outbox per task.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::cursor::Cursor;
use crate::domain::Task;
use crate::events::EventEnvelope;
use crate::ports::{
    BatchReport, EventPublisher, Outbox, PendingEvents, PublishFailure, StoreError, TaskPage,
    TaskStore,
};
use crate::records::RecordStore;
use crate::time;

#[derive(Default)]
struct Record {
    task: Option<Task>,
    outbox: Vec<EventEnvelope>,
    failures: u32,
    parked: bool,
}

/// A task table held in memory.
#[derive(Default)]
pub struct MemoryStore {
    records: Mutex<HashMap<Uuid, Record>>,
    /// Every call fails as an unreachable table would.
    down: AtomicBool,
}

impl MemoryStore {
    /// Makes every call fail (or work again), as a table out of reach.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    fn reachable(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Backend("the table is out of reach".into()));
        }
        Ok(())
    }

    pub fn new() -> Self {
        Self::default()
    }

    /// Events still waiting in a task's outbox.
    pub fn outbox(&self, task_id: Uuid) -> Vec<EventEnvelope> {
        let records = self.records.lock().unwrap();
        records
            .get(&task_id)
            .map(|r| r.outbox.clone())
            .unwrap_or_default()
    }

    pub fn task_count(&self) -> usize {
        self.records.lock().unwrap().len()
    }

    fn pending_of(task_id: Uuid, record: &Record) -> PendingEvents {
        PendingEvents {
            task_id,
            version: record.task.as_ref().map_or(0, |t| t.version),
            events: record.outbox.clone(),
        }
    }
}

#[async_trait]
impl TaskStore for MemoryStore {
    async fn create(
        &self,
        task: &Task,
        event: &EventEnvelope,
    ) -> Result<PendingEvents, StoreError> {
        self.reachable()?;
        let mut records = self.records.lock().unwrap();
        if records.contains_key(&task.id) {
            return Err(StoreError::Conflict);
        }
        let record = Record {
            task: Some(task.clone()),
            outbox: vec![event.clone()],
            ..Record::default()
        };
        let pending = Self::pending_of(task.id, &record);
        records.insert(task.id, record);
        Ok(pending)
    }

    async fn get(&self, id: Uuid) -> Result<Option<Task>, StoreError> {
        self.reachable()?;
        let records = self.records.lock().unwrap();
        Ok(records.get(&id).and_then(|r| r.task.clone()))
    }

    async fn list_by_user(
        &self,
        user_id: &str,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<TaskPage, StoreError> {
        self.reachable()?;
        let records = self.records.lock().unwrap();
        let mut tasks: Vec<Task> = records
            .values()
            .filter_map(|r| r.task.clone())
            .filter(|t| t.user_id == user_id)
            .collect();
        let key = |t: &Task| (time::format(&t.created_at), t.id.to_string());
        tasks.sort_by_key(|t| std::cmp::Reverse(key(t)));
        // As the index orders them: the cursor is the key of the last task of a page.
        let start = match cursor {
            None => 0,
            Some(cursor) => {
                let cursor = Cursor::decode(cursor, user_id)?;
                tasks
                    .iter()
                    .position(|t| key(t) < (cursor.created_at.clone(), cursor.id.clone()))
                    .unwrap_or(tasks.len())
            }
        };
        let items: Vec<Task> = tasks
            .into_iter()
            .skip(start)
            .take(limit as usize + 1)
            .collect();
        let more = items.len() > limit as usize;
        let items: Vec<Task> = items.into_iter().take(limit as usize).collect();
        let next_cursor = more
            .then(|| items.last().map(|t| Cursor::after(t).encode()))
            .flatten();
        Ok(TaskPage { items, next_cursor })
    }

    async fn apply(
        &self,
        previous: &Task,
        next: &Task,
        event: Option<&EventEnvelope>,
    ) -> Result<PendingEvents, StoreError> {
        self.reachable()?;
        let mut records = self.records.lock().unwrap();
        let record = records.get_mut(&previous.id).ok_or(StoreError::Conflict)?;
        let stored = record.task.as_ref().ok_or(StoreError::Conflict)?;
        if stored.version != previous.version || stored.status != previous.status {
            return Err(StoreError::Conflict);
        }
        record.task = Some(next.clone());
        if let Some(event) = event {
            record.outbox.push(event.clone());
            record.parked = false;
        }
        Ok(Self::pending_of(previous.id, record))
    }
}

#[async_trait]
impl Outbox for MemoryStore {
    async fn pending(&self, task_id: Uuid) -> Result<PendingEvents, StoreError> {
        let records = self.records.lock().unwrap();
        Ok(records
            .get(&task_id)
            .map(|r| Self::pending_of(task_id, r))
            .unwrap_or(PendingEvents {
                task_id,
                ..PendingEvents::default()
            }))
    }

    async fn acknowledge(
        &self,
        pending: &PendingEvents,
        published: &[Uuid],
    ) -> Result<(), StoreError> {
        let mut records = self.records.lock().unwrap();
        if let Some(record) = records.get_mut(&pending.task_id) {
            record.outbox.retain(|e| !published.contains(&e.id));
            if record.outbox.is_empty() {
                record.failures = 0;
                record.parked = false;
            }
        }
        Ok(())
    }

    async fn stale(
        &self,
        older_than: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Uuid>, StoreError> {
        let records = self.records.lock().unwrap();
        let mut stale: Vec<(DateTime<Utc>, Uuid)> = records
            .iter()
            .filter(|(_, r)| !r.parked)
            .filter_map(|(id, r)| Some((r.outbox.iter().map(|e| e.time).min()?, *id)))
            .filter(|(since, _)| *since <= older_than)
            .collect();
        stale.sort();
        Ok(stale.into_iter().take(limit).map(|(_, id)| id).collect())
    }

    async fn record_failure(&self, task_id: Uuid) -> Result<u32, StoreError> {
        let mut records = self.records.lock().unwrap();
        Ok(match records.get_mut(&task_id) {
            Some(record) if !record.outbox.is_empty() => {
                record.failures += 1;
                record.failures
            }
            _ => 0,
        })
    }

    async fn park(&self, task_id: Uuid) -> Result<(), StoreError> {
        let mut records = self.records.lock().unwrap();
        if let Some(record) = records.get_mut(&task_id) {
            record.parked = !record.outbox.is_empty();
        }
        Ok(())
    }

    async fn parked(&self) -> Result<usize, StoreError> {
        let records = self.records.lock().unwrap();
        Ok(records.values().filter(|r| r.parked).count())
    }
}

/// A publisher that records what it is given and can be told to fail.
#[derive(Default)]
pub struct RecordingPublisher {
    published: Mutex<Vec<EventEnvelope>>,
    failing: AtomicBool,
    /// Tasks whose events are always refused, as SNS refuses an invalid entry.
    refused: Mutex<HashSet<Uuid>>,
}

impl RecordingPublisher {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    pub fn published(&self) -> Vec<EventEnvelope> {
        self.published.lock().unwrap().clone()
    }

    /// Refuses every event of `task_id` from now on.
    pub fn refuse_task(&self, task_id: Uuid) {
        self.refused.lock().unwrap().insert(task_id);
    }
}

#[async_trait]
impl EventPublisher for RecordingPublisher {
    async fn publish(&self, event: &EventEnvelope) -> Result<(), PublishFailure> {
        if self.failing.load(Ordering::SeqCst)
            || self.refused.lock().unwrap().contains(&event.task_id())
        {
            return Err(PublishFailure {
                event_id: event.id,
                reason: "publisher is failing".into(),
            });
        }
        self.published.lock().unwrap().push(event.clone());
        Ok(())
    }

    async fn publish_batch(&self, events: &[EventEnvelope]) -> BatchReport {
        let mut report = BatchReport::default();
        for event in events {
            match self.publish(event).await {
                Ok(()) => report.published.push(event.id),
                Err(failure) => report.failed.push(failure),
            }
        }
        report
    }
}

/// Records held in memory, one per task id.
pub struct MemoryRecords<T> {
    records: Mutex<HashMap<Uuid, T>>,
}

impl<T> Default for MemoryRecords<T> {
    fn default() -> Self {
        MemoryRecords {
            records: Mutex::new(HashMap::new()),
        }
    }
}

impl<T: Clone> MemoryRecords<T> {
    pub fn all(&self) -> Vec<T> {
        self.records.lock().unwrap().values().cloned().collect()
    }
}

#[async_trait]
impl<T: Clone + Send + Sync> RecordStore<T> for MemoryRecords<T> {
    async fn record(&self, task_id: Uuid, record: &T) -> Result<bool, StoreError> {
        let mut records = self.records.lock().unwrap();
        if records.contains_key(&task_id) {
            return Ok(false);
        }
        records.insert(task_id, record.clone());
        Ok(true)
    }

    async fn get(&self, task_id: Uuid) -> Result<Option<T>, StoreError> {
        Ok(self.records.lock().unwrap().get(&task_id).cloned())
    }
}

/// The event archive in memory: each task's events by event key.
#[derive(Default)]
pub struct MemoryArchive {
    events: Mutex<std::collections::BTreeMap<(Uuid, String), crate::archive::ArchivedEvent>>,
}

impl MemoryArchive {
    pub fn all(&self) -> Vec<crate::archive::ArchivedEvent> {
        self.events.lock().unwrap().values().cloned().collect()
    }
}

#[async_trait]
impl crate::archive::EventArchive for MemoryArchive {
    async fn archive(&self, event: &crate::archive::ArchivedEvent) -> Result<bool, StoreError> {
        let mut events = self.events.lock().unwrap();
        let key = (event.task_id, event.event_key());
        if events.contains_key(&key) {
            return Ok(false);
        }
        events.insert(key, event.clone());
        Ok(true)
    }

    async fn timeline(
        &self,
        task_id: Uuid,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<crate::archive::ArchivePage, StoreError> {
        let after = cursor.map(crate::archive::parse_cursor).transpose()?;
        let events = self.events.lock().unwrap();
        let mut items: Vec<crate::archive::ArchivedEvent> = events
            .iter()
            .filter(|((task, key), _)| {
                *task == task_id && after.as_ref().is_none_or(|after| key > after)
            })
            .map(|(_, event)| event.clone())
            .take(limit.max(1) + 1)
            .collect();
        let next_cursor = if items.len() > limit.max(1) {
            items.truncate(limit.max(1));
            items.last().map(|event| event.event_key())
        } else {
            None
        };
        Ok(crate::archive::ArchivePage { items, next_cursor })
    }
}
