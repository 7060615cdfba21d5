//! The local stand-ins for what AWS provides around the functions: API Gateway's HTTP
//! bridge (`http`), Lambda's SQS event source mapping (`event_source`), and the functions
//! built from their variables (`functions`); and, for fault runs only, injected consumer
//! failures (`failures`).

pub mod event_source;
pub mod failures;
pub mod functions;
pub mod http;
