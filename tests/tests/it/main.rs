//! Integration tests against the emulators; run them with `infra/local.sh test`.

mod concurrency;
mod consumers;
mod dashboard;
mod idempotency;
mod lifecycle;
mod outbox;
mod transitions;
