//! Integration tests against the emulators; run them with `infra/local.sh test`.

mod concurrency;
mod consumers;
mod dashboard;
mod dashboard_page;
mod idempotency;
mod lifecycle;
mod outbox;
mod secrets;
mod transitions;
