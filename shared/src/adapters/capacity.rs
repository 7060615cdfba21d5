//! What DynamoDB says each call consumed. Every DynamoDB client the functions build asks
//! for `ReturnConsumedCapacity = INDEXES` on every call, and this interceptor takes the
//! answer's `ConsumedCapacity` (the table's units and each index's) as it came: nothing is
//! computed from item sizes. Each call is added to a tally kept per process, by function,
//! operation, table and index; and, when `DYNAMODB_CAPACITY_FILE` names a file (local runs
//! only), appended to it as one JSON line, which `infra/local.sh load` and the bench read.
//!
//! DynamoDB Local (3.3.0) answers a `TransactWriteItems` with fewer units than AWS charges:
//! it adds up only the distinct per-item figures (five puts of small items: 2 units, not
//! 10). Each call records how many items a transaction wrote, so that a report can say so.
//!
//! A call answered with an error (a condition that did not hold, a cancelled transaction)
//! carries no consumed capacity in its answer, from AWS or from DynamoDB Local, though AWS
//! charges a failed conditional write: such calls are counted as calls with no units.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::sync::{Mutex, OnceLock};

use aws_sdk_dynamodb::operation::{
    batch_get_item::{BatchGetItemInput, BatchGetItemOutput},
    batch_write_item::{BatchWriteItemInput, BatchWriteItemOutput},
    delete_item::{DeleteItemInput, DeleteItemOutput},
    get_item::{GetItemInput, GetItemOutput},
    put_item::{PutItemInput, PutItemOutput},
    query::{QueryInput, QueryOutput},
    scan::{ScanInput, ScanOutput},
    transact_get_items::{TransactGetItemsInput, TransactGetItemsOutput},
    transact_write_items::{TransactWriteItemsInput, TransactWriteItemsOutput},
    update_item::{UpdateItemInput, UpdateItemOutput},
};
use aws_sdk_dynamodb::types::{ConsumedCapacity, ReturnConsumedCapacity};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    AfterDeserializationInterceptorContextRef, BeforeSerializationInterceptorContextMut,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use serde::{Deserialize, Serialize};

/// Names a file that every DynamoDB call's consumption is appended to, one JSON line each.
pub const CAPACITY_FILE: &str = "DYNAMODB_CAPACITY_FILE";

/// Whether a call reads or writes: DynamoDB Local answers only `CapacityUnits`, so the
/// kind of unit is the operation's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    Read,
    Write,
}

/// The units one call consumed on one table or one of its indexes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Part {
    pub table: String,
    /// `None` for the table itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
    pub units: f64,
}

/// One DynamoDB call as the interceptor saw it: one line of `DYNAMODB_CAPACITY_FILE`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Call {
    /// Milliseconds since the epoch when the answer came.
    pub at_ms: i64,
    pub function: String,
    pub operation: String,
    pub access: Access,
    /// The tables the request named, whether or not the answer carried units.
    pub tables: Vec<String>,
    /// The items a `TransactWriteItems` wrote (each costs AWS 2 units per KB, so at least 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<usize>,
    /// The error code, when the call was answered with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub consumed: Vec<Part>,
}

/// The tally's key: function, operation, table, index.
pub type TallyKey = (String, &'static str, String, Option<String>);

/// Calls and units of one key.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Units {
    pub calls: u64,
    pub units: f64,
}

static TALLY: Mutex<BTreeMap<TallyKey, Units>> = Mutex::new(BTreeMap::new());
static FILE: OnceLock<Option<Mutex<File>>> = OnceLock::new();

/// Everything this process's DynamoDB calls consumed so far. A call counts once, on the
/// table it names (the first, for a call naming several); its index units count under
/// the index.
pub fn tally() -> BTreeMap<TallyKey, Units> {
    TALLY.lock().map(|t| t.clone()).unwrap_or_default()
}

fn file() -> Option<&'static Mutex<File>> {
    FILE.get_or_init(|| {
        let path = std::env::var(CAPACITY_FILE).ok()?;
        match File::options().create(true).append(true).open(&path) {
            Ok(file) => Some(Mutex::new(file)),
            Err(err) => {
                eprintln!("consumed capacity is not written, {path} cannot be opened: {err}");
                None
            }
        }
    })
    .as_ref()
}

/// What `modify_before_serialization` learnt of the request, for the answer's hook.
#[derive(Debug, Clone)]
struct Request {
    operation: &'static str,
    access: Access,
    tables: Vec<String>,
    items: Option<usize>,
}

impl Storable for Request {
    type Storer = StoreReplace<Self>;
}

/// The interceptor of every DynamoDB client: asks for the consumed capacity and records it
/// under `function`.
#[derive(Debug, Clone)]
pub struct CapacityInterceptor {
    function: String,
}

impl CapacityInterceptor {
    pub fn new(function: impl Into<String>) -> Self {
        CapacityInterceptor {
            function: function.into(),
        }
    }
}

/// Sets `ReturnConsumedCapacity` where the caller left it unset, and says what the request is.
macro_rules! ask {
    ($input:expr, $($ty:ty => $name:literal, $access:ident, |$i:ident| $tables:expr;)+) => {{
        let input = $input;
        $(
            if let Some($i) = input.downcast_mut::<$ty>() {
                if $i.return_consumed_capacity.is_none() {
                    $i.return_consumed_capacity = Some(ReturnConsumedCapacity::Indexes);
                }
                let tables: Vec<String> = $tables;
                let items = transact_items(input.downcast_ref::<TransactWriteItemsInput>());
                return Some(Request { operation: $name, access: Access::$access, tables, items });
            }
        )+
        None
    }};
}

fn transact_items(input: Option<&TransactWriteItemsInput>) -> Option<usize> {
    input.map(|input| input.transact_items.as_ref().map_or(0, Vec::len))
}

fn one(table: &Option<String>) -> Vec<String> {
    table.iter().cloned().collect()
}

fn ask_for_capacity(
    input: &mut aws_smithy_runtime_api::client::interceptors::context::Input,
) -> Option<Request> {
    ask!(input,
        GetItemInput => "GetItem", Read, |i| one(&i.table_name);
        PutItemInput => "PutItem", Write, |i| one(&i.table_name);
        UpdateItemInput => "UpdateItem", Write, |i| one(&i.table_name);
        DeleteItemInput => "DeleteItem", Write, |i| one(&i.table_name);
        QueryInput => "Query", Read, |i| one(&i.table_name);
        ScanInput => "Scan", Read, |i| one(&i.table_name);
        BatchGetItemInput => "BatchGetItem", Read,
            |i| i.request_items.iter().flat_map(|m| m.keys().cloned()).collect();
        BatchWriteItemInput => "BatchWriteItem", Write,
            |i| i.request_items.iter().flat_map(|m| m.keys().cloned()).collect();
        TransactGetItemsInput => "TransactGetItems", Read,
            |i| transact_get_tables(i);
        TransactWriteItemsInput => "TransactWriteItems", Write,
            |i| transact_write_tables(i);
    )
}

fn transact_get_tables(input: &TransactGetItemsInput) -> Vec<String> {
    let mut tables: Vec<String> = input
        .transact_items
        .iter()
        .flatten()
        .filter_map(|item| item.get.as_ref().map(|get| get.table_name.clone()))
        .collect();
    tables.dedup();
    tables
}

fn transact_write_tables(input: &TransactWriteItemsInput) -> Vec<String> {
    let mut tables: Vec<String> = Vec::new();
    for item in input.transact_items.iter().flatten() {
        let table = if let Some(put) = &item.put {
            &put.table_name
        } else if let Some(update) = &item.update {
            &update.table_name
        } else if let Some(delete) = &item.delete {
            &delete.table_name
        } else if let Some(check) = &item.condition_check {
            &check.table_name
        } else {
            continue;
        };
        if !tables.contains(table) {
            tables.push(table.clone());
        }
    }
    tables
}

/// The consumed capacity an answer carries, as parts.
fn parts(consumed: &[ConsumedCapacity]) -> Vec<Part> {
    let mut parts = Vec::new();
    for capacity in consumed {
        let table = capacity.table_name.clone().unwrap_or_default();
        let table_units = capacity
            .table
            .as_ref()
            .and_then(|t| t.capacity_units)
            .or(capacity.capacity_units);
        if let Some(units) = table_units {
            parts.push(Part {
                table: table.clone(),
                index: None,
                units,
            });
        }
        let indexes = capacity
            .global_secondary_indexes
            .iter()
            .chain(capacity.local_secondary_indexes.iter())
            .flatten();
        for (index, units) in indexes {
            if let Some(units) = units.capacity_units {
                parts.push(Part {
                    table: table.clone(),
                    index: Some(index.clone()),
                    units,
                });
            }
        }
    }
    parts
}

macro_rules! answered {
    ($output:expr, $($ty:ty => |$o:ident| $consumed:expr;)+) => {{
        let output = $output;
        $(
            if let Some($o) = output.downcast_ref::<$ty>() {
                return parts($consumed);
            }
        )+
        Vec::new()
    }};
}

fn consumed_by(
    output: &aws_smithy_runtime_api::client::interceptors::context::Output,
) -> Vec<Part> {
    answered!(output,
        GetItemOutput => |o| o.consumed_capacity.as_slice();
        PutItemOutput => |o| o.consumed_capacity.as_slice();
        UpdateItemOutput => |o| o.consumed_capacity.as_slice();
        DeleteItemOutput => |o| o.consumed_capacity.as_slice();
        QueryOutput => |o| o.consumed_capacity.as_slice();
        ScanOutput => |o| o.consumed_capacity.as_slice();
        BatchGetItemOutput => |o| o.consumed_capacity.as_deref().unwrap_or_default();
        BatchWriteItemOutput => |o| o.consumed_capacity.as_deref().unwrap_or_default();
        TransactGetItemsOutput => |o| o.consumed_capacity.as_deref().unwrap_or_default();
        TransactWriteItemsOutput => |o| o.consumed_capacity.as_deref().unwrap_or_default();
    )
}

/// The code an error answer names (`__type`, as `ConditionalCheckFailedException`).
fn error_code(context: &AfterDeserializationInterceptorContextRef<'_>) -> String {
    context
        .response()
        .body()
        .bytes()
        .and_then(|body| serde_json::from_slice::<serde_json::Value>(body).ok())
        .and_then(|body| {
            let kind = body.get("__type")?.as_str()?;
            Some(kind.rsplit('#').next().unwrap_or(kind).to_owned())
        })
        .unwrap_or_else(|| format!("HTTP {}", context.response().status().as_u16()))
}

/// Adds `call` to the tally and, when one is open, to the file.
pub fn record(call: &Call) {
    if let Ok(mut tally) = TALLY.lock() {
        let operation = operation_name(&call.operation);
        let first = call.tables.first().cloned().unwrap_or_default();
        tally
            .entry((call.function.clone(), operation, first, None))
            .or_default()
            .calls += 1;
        for part in &call.consumed {
            tally
                .entry((
                    call.function.clone(),
                    operation,
                    part.table.clone(),
                    part.index.clone(),
                ))
                .or_default()
                .units += part.units;
        }
    }
    if let Some(file) = file() {
        if let (Ok(mut line), Ok(mut file)) = (serde_json::to_vec(call), file.lock()) {
            line.push(b'\n');
            // One write per line, so that lines of concurrent calls do not interleave.
            let _ = file.write_all(&line);
        }
    }
}

fn operation_name(name: &str) -> &'static str {
    const NAMES: [&str; 10] = [
        "GetItem",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "Query",
        "Scan",
        "BatchGetItem",
        "BatchWriteItem",
        "TransactGetItems",
        "TransactWriteItems",
    ];
    NAMES
        .into_iter()
        .find(|known| *known == name)
        .unwrap_or("other")
}

impl Intercept for CapacityInterceptor {
    fn name(&self) -> &'static str {
        "ConsumedCapacity"
    }

    fn modify_before_serialization(
        &self,
        context: &mut BeforeSerializationInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(request) = ask_for_capacity(context.input_mut()) {
            cfg.interceptor_state().store_put(request);
        }
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(request) = cfg.load::<Request>() else {
            return Ok(());
        };
        let (consumed, error) = match context.output_or_error() {
            Ok(output) => (consumed_by(output), None),
            Err(_) => (Vec::new(), Some(error_code(context))),
        };
        record(&Call {
            at_ms: chrono::Utc::now().timestamp_millis(),
            function: self.function.clone(),
            operation: request.operation.to_owned(),
            access: request.access,
            tables: request.tables.clone(),
            items: request.items,
            error,
            consumed,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use aws_smithy_mocks::{mock, mock_client, RuleMode};
    use aws_smithy_runtime_api::http::{Response as HttpResponse, StatusCode};
    use aws_smithy_types::body::SdkBody;

    use super::*;

    #[tokio::test]
    async fn when_a_call_is_answered_should_ask_for_indexes_and_tally_the_units_as_answered() {
        // Given a DynamoDB that answers a put asking for its capacity with 2 units on the
        // table and 1 on an index
        let answered = mock!(aws_sdk_dynamodb::Client::put_item)
            .match_requests(|input| {
                input.return_consumed_capacity == Some(ReturnConsumedCapacity::Indexes)
            })
            .then_http_response(|| {
                let body = r#"{"ConsumedCapacity":{"TableName":"t-Tasks","CapacityUnits":3.0,
                    "Table":{"CapacityUnits":2.0},
                    "GlobalSecondaryIndexes":{"by_user":{"CapacityUnits":1.0}}}}"#;
                HttpResponse::new(
                    StatusCode::try_from(200).expect("a status"),
                    SdkBody::from(body),
                )
            });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&answered], |conf| {
            conf.interceptor(CapacityInterceptor::new("capacity-test"))
        });

        // When the function puts an item without asking for its capacity
        client
            .put_item()
            .table_name("t-Tasks")
            .item("id", aws_sdk_dynamodb::types::AttributeValue::S("1".into()))
            .send()
            .await
            .expect("the mock answers a request that asks for the capacity");

        // Then the call and its units are in the tally, the index's apart
        let tally = tally();
        let key = |index: Option<&str>| {
            (
                "capacity-test".to_owned(),
                "PutItem",
                "t-Tasks".to_owned(),
                index.map(str::to_owned),
            )
        };
        assert_eq!(
            tally[&key(None)],
            Units {
                calls: 1,
                units: 2.0
            }
        );
        assert_eq!(
            tally[&key(Some("by_user"))],
            Units {
                calls: 0,
                units: 1.0
            }
        );
    }
}
