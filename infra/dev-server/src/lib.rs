//! The local stand-ins for what AWS provides around the functions: API Gateway's HTTP
//! bridge (`http`) and Lambda's SQS event source mapping (`event_source`).

pub mod event_source;
pub mod http;
