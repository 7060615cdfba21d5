//! Integration tests against the emulators; run them with `infra/local.sh test`.

mod archive;
mod backfill;
mod concurrency;
mod consumers;
mod dashboard;
mod dashboard_page;
mod event_fields;
mod idempotency;
mod lifecycle;
mod operations;
mod outbox;
mod secrets;
mod transitions;
mod versions;
mod walk;
