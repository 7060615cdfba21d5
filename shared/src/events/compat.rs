//! Compares the released JSON Schema of an event's `data` with the current one, both ways:
//! what the current schema may not do to a `.vN` that consumers already read.
//!
//! Our own checker rather than Sentry's `json-schema-diff` (0.1.8): that crate reads schemas
//! through schemars 0.8 (a second schemars beside ours), does not follow `allOf`, which
//! schemars writes around a described `$ref` (`TaskStarted.strategy`), and its verdicts
//! answer one question only, whether data valid under the old schema stays valid under the
//! new: under that rule an added optional property is breaking and a removed one is not,
//! the opposite of a contract that has to hold for old consumers and old events alike. Our
//! schemas use a small draft-07 subset (`$ref` to `definitions`, `allOf` of one, `type`,
//! `enum`, `format`, `required`, `properties`, bounds, `default`), so this checker inlines
//! references, drops annotations and then asks, keyword by keyword:
//! - a released property stays, with the same value keywords (`type`, `enum`, `format`,
//!   bounds, `default`: narrowed or widened, either side would refuse the other's data) and
//!   the same `required`-ness;
//! - an added property is optional, and allowed by the released object;
//! - any keyword it does not model is compared for equality, so nothing passes unseen.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::{Map, Value};

/// One incompatibility between a released schema and the current one.
#[derive(Debug, Clone, PartialEq)]
pub struct Break {
    /// Where, as `data.<property>...`.
    pub path: String,
    pub change: Change,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A released property is gone: old consumers lose it.
    Removed { property: String },
    /// A released property is gone and an added one has its schema.
    Renamed { from: String, to: String },
    /// Required now and not before (or added as required): recorded events lack it.
    NewlyRequired { property: String },
    /// Optional now and required before: the producer may leave out what old consumers need.
    NoLongerRequired { property: String },
    /// Added where the released schema allows no other property.
    AddedToClosedObject { property: String },
    /// A value keyword (`type`, `enum`, `format`, a bound, `default`, ...) differs; `Null`
    /// stands for an absent keyword.
    Retyped {
        keyword: String,
        released: Value,
        current: Value,
    },
    /// A `$ref` that does not point into `definitions`, or a loop of them.
    Unresolved { reference: String },
}

impl fmt::Display for Break {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.change {
            Change::Removed { property } => write!(f, "{}: `{property}` removed", self.path),
            Change::Renamed { from, to } => {
                write!(f, "{}: `{from}` renamed to `{to}`", self.path)
            }
            Change::NewlyRequired { property } => {
                write!(f, "{}: `{property}` is newly required", self.path)
            }
            Change::NoLongerRequired { property } => {
                write!(f, "{}: `{property}` is no longer required", self.path)
            }
            Change::AddedToClosedObject { property } => write!(
                f,
                "{}: `{property}` added where the released schema allows no other property",
                self.path
            ),
            Change::Retyped {
                keyword,
                released,
                current,
            } => write!(
                f,
                "{} retyped: `{keyword}` was {released}, is {current}",
                self.path
            ),
            Change::Unresolved { reference } => {
                write!(f, "{}: cannot resolve {reference}", self.path)
            }
        }
    }
}

/// Every incompatibility of `current` with `released`, two root schemas of one type's `data`.
pub fn breaks(released: &Value, current: &Value) -> Vec<Break> {
    let mut found = Vec::new();
    let released = normalize(released, released, "data", 0, &mut found);
    let current = normalize(current, current, "data", 0, &mut found);
    compare("data", &released, &current, &mut found);
    found
}

/// Keywords that describe and never constrain; `definitions` are inlined where referenced.
const ANNOTATIONS: [&str; 9] = [
    "title",
    "description",
    "examples",
    "$comment",
    "$schema",
    "$id",
    "definitions",
    "readOnly",
    "writeOnly",
];

/// Deep enough for any schema of ours; deeper is a loop of references.
const MAX_DEPTH: usize = 32;

/// `schema` with its references inlined, an `allOf` of one merged into its parent, and its
/// annotations dropped, so that two schemas compare by what they accept.
fn normalize(
    root: &Value,
    schema: &Value,
    path: &str,
    depth: usize,
    found: &mut Vec<Break>,
) -> Value {
    let Some(object) = schema.as_object() else {
        return schema.clone();
    };
    if let Some(reference) = object.get("$ref").and_then(Value::as_str) {
        // In draft-07 a `$ref`'s siblings are ignored.
        let target = reference
            .strip_prefix("#/definitions/")
            .and_then(|name| root.get("definitions")?.get(name));
        return match target {
            Some(target) if depth < MAX_DEPTH => normalize(root, target, path, depth + 1, found),
            _ => {
                found.push(Break {
                    path: path.to_owned(),
                    change: Change::Unresolved {
                        reference: reference.to_owned(),
                    },
                });
                Value::Null
            }
        };
    }
    let mut out = Map::new();
    if let Some([only]) = object
        .get("allOf")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
    {
        if let Value::Object(inner) = normalize(root, only, path, depth + 1, found) {
            out = inner;
        }
    }
    for (key, value) in object {
        if ANNOTATIONS.contains(&key.as_str()) || (key == "allOf" && !out.is_empty()) {
            continue;
        }
        let value = match key.as_str() {
            "properties" => Value::Object(
                value
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(name, property)| {
                        let at = format!("{path}.{name}");
                        (
                            name.clone(),
                            normalize(root, property, &at, depth + 1, found),
                        )
                    })
                    .collect(),
            ),
            "items" | "additionalProperties" | "not" => {
                normalize(root, value, path, depth + 1, found)
            }
            "allOf" | "anyOf" | "oneOf" => Value::Array(
                value
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|sub| normalize(root, sub, path, depth + 1, found))
                    .collect(),
            ),
            // Sets: their order says nothing.
            "type" | "required" | "enum" => sorted(value),
            _ => value.clone(),
        };
        out.insert(key.clone(), value);
    }
    Value::Object(out)
}

fn sorted(value: &Value) -> Value {
    match value {
        Value::Array(items) => {
            let mut items = items.clone();
            items.sort_by_key(|item| item.to_string());
            items.dedup();
            Value::Array(items)
        }
        other => other.clone(),
    }
}

fn compare(path: &str, released: &Value, current: &Value, found: &mut Vec<Break>) {
    let (Some(released), Some(current)) = (released.as_object(), current.as_object()) else {
        if released != current {
            found.push(retyped(path, "schema", released, current));
        }
        return;
    };
    compare_properties(path, released, current, found);
    let keywords: BTreeSet<&String> = released.keys().chain(current.keys()).collect();
    for keyword in keywords {
        let (before, after) = (
            released.get(keyword).unwrap_or(&Value::Null),
            current.get(keyword).unwrap_or(&Value::Null),
        );
        match keyword.as_str() {
            "properties" | "required" => {}
            "items" if before.is_object() && after.is_object() => {
                compare(&format!("{path}[]"), before, after, found);
            }
            _ if before != after => found.push(retyped(path, keyword, before, after)),
            _ => {}
        }
    }
}

fn compare_properties(
    path: &str,
    released: &Map<String, Value>,
    current: &Map<String, Value>,
    found: &mut Vec<Break>,
) {
    let empty = Map::new();
    let properties = |schema: &Map<String, Value>| {
        schema
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty)
            .clone()
    };
    let required = |schema: &Map<String, Value>| -> BTreeSet<String> {
        schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|name| name.as_str().map(str::to_owned))
            .collect()
    };
    let (before, after) = (properties(released), properties(current));
    let (required_before, required_after) = (required(released), required(current));
    let removed: Vec<&String> = before.keys().filter(|p| !after.contains_key(*p)).collect();
    let mut added: Vec<&String> = after.keys().filter(|p| !before.contains_key(*p)).collect();
    let at = |change| Break {
        path: path.to_owned(),
        change,
    };

    let mut gone = BTreeSet::new();
    for from in removed {
        gone.insert(from.clone());
        // A property gone and another, accepting the same values, come is a rename.
        match added.iter().position(|to| after[*to] == before[from]) {
            Some(index) => {
                let to = added.remove(index);
                found.push(at(Change::Renamed {
                    from: from.clone(),
                    to: to.clone(),
                }));
                if required_after.contains(to) && !required_before.contains(from) {
                    found.push(at(Change::NewlyRequired {
                        property: to.clone(),
                    }));
                }
                gone.insert(to.clone());
            }
            None => found.push(at(Change::Removed {
                property: from.clone(),
            })),
        }
    }
    let closed = matches!(released.get("additionalProperties"), Some(extra) if extra != &Value::Bool(true) && extra != &Value::Object(Map::new()));
    for property in added {
        if closed {
            found.push(at(Change::AddedToClosedObject {
                property: property.clone(),
            }));
        }
    }
    for property in required_after.difference(&required_before) {
        if !gone.contains(property) {
            found.push(at(Change::NewlyRequired {
                property: property.clone(),
            }));
        }
    }
    for property in required_before.difference(&required_after) {
        if !gone.contains(property) {
            found.push(at(Change::NoLongerRequired {
                property: property.clone(),
            }));
        }
    }
    for (name, schema) in &before {
        if let Some(now) = after.get(name) {
            compare(&format!("{path}.{name}"), schema, now, found);
        }
    }
}

fn retyped(path: &str, keyword: &str, released: &Value, current: &Value) -> Break {
    Break {
        path: path.to_owned(),
        change: Change::Retyped {
            keyword: keyword.to_owned(),
            released: released.clone(),
            current: current.clone(),
        },
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A released schema in the shape schemars writes ours.
    fn released() -> Value {
        json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "title": "TaskCompleted",
            "type": "object",
            "properties": {
                "task_id": {"type": "string", "format": "uuid"},
                "task_type": {"$ref": "#/definitions/TaskType"},
                "tokens_used": {"type": "integer", "format": "uint64", "minimum": 0},
                "cost_usd": {"type": "number", "format": "double", "default": 0.0}
            },
            "required": ["task_id", "task_type", "tokens_used"],
            "definitions": {
                "TaskType": {"type": "string", "enum": ["BugFix", "Feature"]}
            }
        })
    }

    fn changes(current: &Value) -> Vec<Change> {
        breaks(&released(), current)
            .into_iter()
            .map(|found| found.change)
            .collect()
    }

    #[test]
    fn when_only_annotations_and_order_change_should_find_nothing() {
        let mut current = released();
        current["description"] = json!("Now described.");
        current["required"] = json!(["tokens_used", "task_id", "task_type"]);
        current["definitions"]["TaskType"]["enum"] = json!(["Feature", "BugFix"]);
        // As schemars writes a described reference.
        current["properties"]["task_type"] = json!({
            "description": "What kind of task.",
            "allOf": [{"$ref": "#/definitions/TaskType"}]
        });
        assert_eq!(changes(&current), vec![]);
    }

    #[test]
    fn when_an_optional_property_is_added_should_find_nothing() {
        let mut current = released();
        current["properties"]["user_id"] = json!({"type": "string", "minLength": 1});
        assert_eq!(changes(&current), vec![]);
    }

    #[test]
    fn when_a_property_is_added_to_a_closed_object_should_break() {
        let mut closed = released();
        closed["additionalProperties"] = json!(false);
        let mut current = closed.clone();
        current["properties"]["user_id"] = json!({"type": "string"});
        let found: Vec<Change> = breaks(&closed, &current)
            .into_iter()
            .map(|b| b.change)
            .collect();
        assert_eq!(
            found,
            vec![Change::AddedToClosedObject {
                property: "user_id".into()
            }]
        );
    }

    #[test]
    fn when_a_property_is_added_as_required_should_break() {
        let mut current = released();
        current["properties"]["user_id"] = json!({"type": "string"});
        current["required"] = json!(["task_id", "task_type", "tokens_used", "user_id"]);
        assert_eq!(
            changes(&current),
            vec![Change::NewlyRequired {
                property: "user_id".into()
            }]
        );
    }

    #[test]
    fn when_an_optional_property_is_removed_should_break() {
        let mut current = released();
        current["properties"]
            .as_object_mut()
            .unwrap()
            .remove("cost_usd");
        assert_eq!(
            changes(&current),
            vec![Change::Removed {
                property: "cost_usd".into()
            }]
        );
    }

    #[test]
    fn when_a_required_property_is_renamed_should_say_so_once() {
        let mut current = released();
        let properties = current["properties"].as_object_mut().unwrap();
        let schema = properties.remove("tokens_used").unwrap();
        properties.insert("tokens".into(), schema);
        current["required"] = json!(["task_id", "task_type", "tokens"]);
        assert_eq!(
            changes(&current),
            vec![Change::Renamed {
                from: "tokens_used".into(),
                to: "tokens".into()
            }]
        );
    }

    #[test]
    fn when_a_property_is_retyped_should_name_the_keyword() {
        let mut current = released();
        current["properties"]["tokens_used"] = json!({"type": "string"});
        let found = breaks(&released(), &current);
        let keywords: Vec<&str> = found
            .iter()
            .map(|b| match &b.change {
                Change::Retyped { keyword, .. } => keyword.as_str(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(keywords, ["format", "minimum", "type"]);
        assert!(found.iter().all(|b| b.path == "data.tokens_used"));
        assert_eq!(
            found[2].to_string(),
            r#"data.tokens_used retyped: `type` was "integer", is "string""#
        );
    }

    #[test]
    fn when_an_enum_loses_or_gains_a_value_should_break() {
        for values in [json!(["BugFix"]), json!(["BugFix", "Feature", "Test"])] {
            let mut current = released();
            current["definitions"]["TaskType"]["enum"] = values.clone();
            assert_eq!(
                changes(&current),
                vec![Change::Retyped {
                    keyword: "enum".into(),
                    released: json!(["BugFix", "Feature"]),
                    current: values,
                }]
            );
        }
    }

    #[test]
    fn when_a_format_a_bound_or_a_default_changes_should_break() {
        let edits: [(&str, &str, Value); 4] = [
            ("task_id", "format", json!("uri")),
            ("tokens_used", "minimum", json!(1)),
            ("tokens_used", "maximum", json!(100)),
            ("cost_usd", "default", json!(1.0)),
        ];
        for (property, keyword, value) in edits {
            let mut current = released();
            current["properties"][property][keyword] = value;
            let found = breaks(&released(), &current);
            assert_eq!(found.len(), 1, "{found:?}");
            assert_eq!(found[0].path, format!("data.{property}"));
            assert!(
                matches!(&found[0].change, Change::Retyped { keyword: k, .. } if k == keyword),
                "{found:?}"
            );
        }
    }

    #[test]
    fn when_a_required_property_becomes_optional_should_break() {
        let mut current = released();
        current["required"] = json!(["task_id", "task_type"]);
        assert_eq!(
            changes(&current),
            vec![Change::NoLongerRequired {
                property: "tokens_used".into()
            }]
        );
    }

    #[test]
    fn when_a_reference_cannot_be_resolved_should_break() {
        let mut current = released();
        current["properties"]["task_type"] = json!({"$ref": "#/definitions/Missing"});
        assert!(changes(&current).contains(&Change::Unresolved {
            reference: "#/definitions/Missing".into()
        }));
    }
}
