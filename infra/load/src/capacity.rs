//! DynamoDB units per lifecycle, from what the emulator answered: the dev server appends
//! each call's `ConsumedCapacity` to `DYNAMODB_CAPACITY_FILE` (`shared::adapters::capacity`),
//! and the run adds up the calls between the drive's start and the end of the wait for
//! quiet, by table and index, and by function and table.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;

use shared::adapters::capacity::{Access, Call};

/// Calls and units of one row, over the whole window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sum {
    pub calls: u64,
    pub write: f64,
    pub read: f64,
    /// Calls answered with an error (no units: the emulator reports none for them).
    pub errors: u64,
}

impl Sum {
    fn add(&mut self, access: Access, units: f64) {
        match access {
            Access::Read => self.read += units,
            Access::Write => self.write += units,
        }
    }
}

/// The consumption of one run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Consumption {
    pub lifecycles: usize,
    /// By table (prefix removed) and index (`""` for the table itself).
    pub by_table: BTreeMap<(String, String), Sum>,
    /// By function, table and operation; calls count here once, on the first table named.
    pub by_function: BTreeMap<(String, String, String), Sum>,
    pub total: Sum,
    /// `TransactWriteItems`: items written, the units the emulator answered for them, and
    /// the units added to reach AWS's least charge of 2 an item.
    pub transactions: Transactions,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Transactions {
    pub calls: u64,
    pub items: u64,
    pub answered: f64,
    pub added: f64,
}

/// The table's name without the run's `<prefix>-`.
fn short(table: &str, prefix: &str) -> String {
    table
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('-'))
        .unwrap_or(table)
        .to_owned()
}

impl Consumption {
    /// Adds up the calls of `lines` answered from `from_ms` to `to_ms`.
    pub fn of_calls(
        calls: impl IntoIterator<Item = Call>,
        prefix: &str,
        (from_ms, to_ms): (i64, i64),
        lifecycles: usize,
    ) -> Self {
        let mut consumption = Consumption {
            lifecycles,
            ..Consumption::default()
        };
        for call in calls {
            if call.at_ms < from_ms || call.at_ms > to_ms {
                continue;
            }
            let first = call
                .tables
                .first()
                .map(|t| short(t, prefix))
                .unwrap_or_default();
            let row = consumption
                .by_function
                .entry((call.function.clone(), first, call.operation.clone()))
                .or_default();
            row.calls += 1;
            row.errors += u64::from(call.error.is_some());
            consumption.total.calls += 1;
            consumption.total.errors += u64::from(call.error.is_some());
            let mut consumed = call.consumed.clone();
            if let Some(items) = call.items.filter(|_| call.error.is_none()) {
                // DynamoDB Local adds up only the distinct per-item figures of a
                // transaction; AWS charges each item at least 2 units.
                let answered: f64 = consumed.iter().map(|p| p.units).sum();
                let least = 2.0 * items as f64;
                let t = &mut consumption.transactions;
                t.calls += 1;
                t.items += items as u64;
                t.answered += answered;
                if least > answered {
                    t.added += least - answered;
                    consumed.push(shared::adapters::capacity::Part {
                        table: call.tables.first().cloned().unwrap_or_default(),
                        index: None,
                        units: least - answered,
                    });
                }
            }
            for part in &consumed {
                let table = short(&part.table, prefix);
                let index = part.index.clone().unwrap_or_default();
                consumption
                    .by_table
                    .entry((table.clone(), index))
                    .or_default()
                    .add(call.access, part.units);
                consumption
                    .by_function
                    .entry((call.function.clone(), table, call.operation.clone()))
                    .or_default()
                    .add(call.access, part.units);
                consumption.total.add(call.access, part.units);
            }
        }
        consumption
    }

    /// Reads the file `path` (lines that do not parse are skipped).
    pub fn read(
        path: &Path,
        prefix: &str,
        window: (i64, i64),
        lifecycles: usize,
    ) -> std::io::Result<Self> {
        let file = std::fs::File::open(path)?;
        let calls = BufReader::new(file)
            .lines()
            .map_while(Result::ok)
            .filter_map(|line| serde_json::from_str::<Call>(&line).ok());
        Ok(Self::of_calls(calls, prefix, window, lifecycles))
    }

    fn per(&self, value: f64) -> String {
        format!("{:.2}", value / self.lifecycles.max(1) as f64)
    }

    /// Rows of the table by table and index: write and read units per lifecycle.
    pub fn table_rows(&self) -> Vec<Vec<String>> {
        let mut rows: Vec<Vec<String>> = self
            .by_table
            .iter()
            .map(|((table, index), sum)| {
                vec![
                    table.clone(),
                    index.clone(),
                    self.per(sum.write),
                    self.per(sum.read),
                ]
            })
            .collect();
        rows.push(vec![
            "total".into(),
            String::new(),
            self.per(self.total.write),
            self.per(self.total.read),
        ]);
        rows
    }

    /// Write units per lifecycle without the event archive's (kept on a line of its own).
    pub fn write_per_lifecycle_without_archive(&self) -> f64 {
        let archive: f64 = self
            .by_table
            .iter()
            .filter(|((table, _), _)| table == "EventArchiveTable")
            .map(|(_, sum)| sum.write)
            .sum();
        (self.total.write - archive) / self.lifecycles.max(1) as f64
    }

    /// Rows of the table by function, table and operation: calls, write and read units
    /// per lifecycle.
    pub fn function_rows(&self) -> Vec<Vec<String>> {
        self.by_function
            .iter()
            .map(|((function, table, operation), sum)| {
                vec![
                    function.clone(),
                    table.clone(),
                    operation.clone(),
                    self.per(sum.calls as f64),
                    self.per(sum.write),
                    self.per(sum.read),
                    sum.errors.to_string(),
                ]
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use shared::adapters::capacity::Part;

    use super::*;

    fn call(
        at_ms: i64,
        function: &str,
        access: Access,
        parts: &[(&str, Option<&str>, f64)],
    ) -> Call {
        Call {
            at_ms,
            function: function.into(),
            operation: "UpdateItem".into(),
            access,
            tables: vec![parts[0].0.into()],
            items: None,
            error: None,
            consumed: parts
                .iter()
                .map(|(table, index, units)| Part {
                    table: (*table).into(),
                    index: index.map(str::to_owned),
                    units: *units,
                })
                .collect(),
        }
    }

    #[test]
    fn when_a_transaction_is_answered_with_fewer_units_than_two_an_item_should_count_two_an_item() {
        // Given a transaction of five items that the emulator answered with 2 units
        let mut transaction = call(
            10,
            "dashboard",
            Access::Write,
            &[("p-DashboardTable", None, 2.0)],
        );
        transaction.operation = "TransactWriteItems".into();
        transaction.items = Some(5);

        // When it is added up
        let consumption = Consumption::of_calls(vec![transaction], "p", (0, 50), 1);

        // Then it counts 10 units, 8 of them added, and says so
        assert_eq!(consumption.total.write, 10.0);
        assert_eq!(consumption.transactions.added, 8.0);
        assert_eq!(consumption.transactions.items, 5);
    }

    #[test]
    fn when_calls_fall_in_and_out_of_the_window_should_add_up_only_those_in_it_per_lifecycle() {
        // Given two writes in the window, one on an index too, and one write after it
        let calls = vec![
            call(
                10,
                "task-api",
                Access::Write,
                &[
                    ("p-TasksTable", None, 2.0),
                    ("p-TasksTable", Some("by_user"), 1.0),
                ],
            ),
            call(
                20,
                "dashboard",
                Access::Write,
                &[("p-DashboardTable", None, 4.0)],
            ),
            call(
                99,
                "dashboard",
                Access::Write,
                &[("p-DashboardTable", None, 100.0)],
            ),
        ];

        // When they are added up over two lifecycles
        let consumption = Consumption::of_calls(calls, "p", (0, 50), 2);

        // Then each table and index has its units per lifecycle, the late call left out
        let tasks = consumption.by_table[&("TasksTable".to_owned(), String::new())];
        assert_eq!(tasks.write, 2.0);
        let index = consumption.by_table[&("TasksTable".to_owned(), "by_user".to_owned())];
        assert_eq!(index.write, 1.0);
        assert_eq!(consumption.total.write, 7.0);
        assert_eq!(consumption.total.calls, 2);
        assert_eq!(consumption.write_per_lifecycle_without_archive(), 3.5);
    }
}
