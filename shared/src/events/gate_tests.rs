//! The CI gate on the event contract: under one `.vN`, the working tree stays compatible both
//! ways with what was released (`schemas/released/`) and what was recorded (`schemas/corpus/`).
//!
//! Three halves, each of which can fail alone:
//! - current consumers accept every recorded event: it parses with `EventEnvelope::from_json`
//!   and validates against the current envelope and `data` schemas;
//! - old consumers accept every event the producer emits now: it validates against the
//!   released envelope schema and its `data` against the released schema of its type;
//! - the released and the current schema of each type differ only by optional additions
//!   (`super::compat`), which also covers what the emitted sample happens not to show.
//!   The envelope is held by the two validations only: its `oneOf` of every type grows
//!   with each new type, which is no break, and the comparison does not model `oneOf`.
//!
//! `UPDATE_RELEASED_SCHEMAS=1 cargo test -p shared released_contract` records a release: it
//! refuses while anything above breaks, then copies the current schemas to
//! `schemas/released/` and adds to `schemas/corpus/` each emitted event whose set of `data`
//! fields no recorded event of its type has.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::compat::{self, Break};
use super::contract_tests::emitted;
use super::schema::{self, file_name};
use super::{EventEnvelope, EventKind, EventType};

/// The released envelope's file under `released/`, beside one file per type.
const ENVELOPE: &str = "cloudevent.json";

/// Where the contract lives: `schemas/` at the repository root.
fn schemas_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../schemas")
}

/// The released contract beside the working tree's.
#[derive(Clone)]
struct Contract {
    /// The released schema of each type's `data`, by CloudEvents type.
    released: BTreeMap<String, Value>,
    /// The released envelope schema, if one was.
    released_envelope: Option<Value>,
    /// The schema of each type's `data` as the code generates it now, by type.
    current: BTreeMap<String, Value>,
    /// The envelope's schema as the code generates it now.
    envelope: Value,
    /// The recorded events: file name under `corpus/` (`<type>/<name>.json`), document.
    corpus: Vec<(String, Value)>,
    /// The events the producer emits now, one or more of each type.
    emitted: Vec<Value>,
}

/// Why the gate fails.
#[derive(Debug, Clone, PartialEq)]
enum Problem {
    /// The current schema of a released type is not compatible with the released one.
    Schema { event_type: String, found: Break },
    /// A released type the code no longer generates.
    Retired { event_type: String },
    /// Current consumers refuse a recorded event.
    RecordedRefused { file: String, reason: String },
    /// Old consumers refuse an event the producer emits now.
    EmittedRefused { event_type: String, reason: String },
    /// A type the producer emits that was never released: record it.
    Unreleased { event_type: String },
    /// A released type without a recorded event.
    Unrecorded { event_type: String },
    /// No envelope schema was released.
    EnvelopeUnreleased,
}

impl Problem {
    /// Whether recording a release could settle it: a new type, a type without events yet.
    fn is_unrecorded(&self) -> bool {
        matches!(
            self,
            Problem::Unreleased { .. } | Problem::Unrecorded { .. } | Problem::EnvelopeUnreleased
        )
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Schema { event_type, found } => write!(f, "{event_type}: {found}"),
            Problem::Retired { event_type } => write!(
                f,
                "{event_type} was released but is no longer generated; once no consumer reads \
                 it, retire it by removing schemas/released/{event_type}.json and \
                 schemas/corpus/{event_type}/"
            ),
            Problem::RecordedRefused { file, reason } => {
                write!(f, "corpus/{file}: current consumers refuse it: {reason}")
            }
            Problem::EmittedRefused { event_type, reason } => write!(
                f,
                "{event_type} as the producer emits it now is refused by the released schema: \
                 {reason}"
            ),
            Problem::Unreleased { event_type } => write!(
                f,
                "{event_type} is emitted but was never released: record it with \
                 UPDATE_RELEASED_SCHEMAS=1 cargo test -p shared released_contract"
            ),
            Problem::EnvelopeUnreleased => write!(f, "no schemas/released/{ENVELOPE}"),
            Problem::Unrecorded { event_type } => {
                write!(
                    f,
                    "{event_type}: no recorded event in schemas/corpus/{event_type}/"
                )
            }
        }
    }
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|err| panic!("{path:?}: {err}"));
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("{path:?}: {err}"))
}

/// The `.json` files of `dir` by name, in order; none if it does not exist.
fn json_files(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<(String, PathBuf)> = entries
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file() && path.extension().is_some_and(|ext| ext == "json"))
        .map(|path| {
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                path,
            )
        })
        .collect();
    files.sort();
    files
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).expect("JSON serialises") + "\n"
}

fn validation_errors(schema: &Value, instance: &Value) -> Vec<String> {
    let validator = jsonschema::validator_for(schema).expect("a valid JSON Schema");
    validator
        .iter_errors(instance)
        .map(|err| match err.instance_path().to_string() {
            at if at.is_empty() => err.to_string(),
            at => format!("{err} at {at}"),
        })
        .collect()
}

impl Contract {
    /// The released contract under `dir`, against the code and producer of the working tree.
    async fn load(dir: &Path) -> Contract {
        let mut released: BTreeMap<String, Value> = json_files(&dir.join("released"))
            .into_iter()
            .map(|(name, path)| (name.trim_end_matches(".json").to_owned(), read_json(&path)))
            .collect();
        let released_envelope = released.remove(ENVELOPE.trim_end_matches(".json"));
        let mut corpus = Vec::new();
        if let Ok(types) = std::fs::read_dir(dir.join("corpus")) {
            let mut types: Vec<PathBuf> = types.map(|entry| entry.unwrap().path()).collect();
            types.sort();
            for type_dir in types.into_iter().filter(|path| path.is_dir()) {
                let event_type = type_dir.file_name().unwrap().to_string_lossy().into_owned();
                for (name, path) in json_files(&type_dir) {
                    corpus.push((format!("{event_type}/{name}"), read_json(&path)));
                }
            }
        }
        let generated: BTreeMap<String, Value> = schema::all().into_iter().collect();
        let current = EventType::ALL
            .into_iter()
            .map(|ty| (ty.name().to_owned(), generated[&file_name(ty)].clone()))
            .collect();
        Contract {
            released,
            released_envelope,
            current,
            envelope: generated["cloudevent.json"].clone(),
            corpus,
            emitted: emitted()
                .await
                .iter()
                .map(|event| serde_json::from_str(&event.to_json()).unwrap())
                .collect(),
        }
    }

    /// Everything that breaks the released contract; empty when the gate passes.
    fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        for (event_type, released) in &self.released {
            match self.current.get(event_type) {
                Some(current) => {
                    problems.extend(compat::breaks(released, current).into_iter().map(|found| {
                        Problem::Schema {
                            event_type: event_type.clone(),
                            found,
                        }
                    }))
                }
                None => problems.push(Problem::Retired {
                    event_type: event_type.clone(),
                }),
            }
            if !self
                .corpus
                .iter()
                .any(|(file, _)| file.starts_with(&format!("{event_type}/")))
            {
                problems.push(Problem::Unrecorded {
                    event_type: event_type.clone(),
                });
            }
        }
        for (file, document) in &self.corpus {
            if let Some(reason) = self.refusal_of_recorded(file, document) {
                problems.push(Problem::RecordedRefused {
                    file: file.clone(),
                    reason,
                });
            }
        }
        let mut unreleased = BTreeSet::new();
        for document in &self.emitted {
            let event_type = document["type"].as_str().unwrap_or_default().to_owned();
            let Some(released) = self.released.get(&event_type) else {
                unreleased.insert(event_type);
                continue;
            };
            let mut errors = validation_errors(released, &document["data"]);
            if let Some(envelope) = &self.released_envelope {
                errors.extend(validation_errors(envelope, document));
            }
            if !errors.is_empty() {
                problems.push(Problem::EmittedRefused {
                    event_type,
                    reason: format!("{}: {}", errors.join("; "), document["data"]),
                });
            }
        }
        problems.extend(
            unreleased
                .into_iter()
                .map(|event_type| Problem::Unreleased { event_type }),
        );
        if self.released_envelope.is_none() {
            problems.push(Problem::EnvelopeUnreleased);
        }
        problems
    }

    /// Why a current consumer would refuse the recorded `document`, if it would.
    fn refusal_of_recorded(&self, file: &str, document: &Value) -> Option<String> {
        let event_type = document["type"].as_str().unwrap_or_default();
        if !file.starts_with(&format!("{event_type}/")) {
            return Some(format!("its type {event_type:?} is not its folder's"));
        }
        if let Err(err) = EventEnvelope::from_json(&document.to_string()) {
            return Some(err.to_string());
        }
        let Some(current) = self.current.get(event_type) else {
            return Some(format!("no current schema of {event_type}"));
        };
        let mut errors = validation_errors(&self.envelope, document);
        errors.extend(validation_errors(current, &document["data"]));
        (!errors.is_empty()).then(|| errors.join("; "))
    }

    /// Records the current schemas as released and the emitted events of a new shape in the
    /// corpus, under `dir`; refuses, writing nothing, while the gate finds a break.
    fn record(&self, dir: &Path) -> Result<(), Vec<Problem>> {
        let breaking: Vec<Problem> = self
            .problems()
            .into_iter()
            .filter(|problem| !problem.is_unrecorded())
            .collect();
        if !breaking.is_empty() {
            return Err(breaking);
        }
        let released_dir = dir.join("released");
        std::fs::create_dir_all(&released_dir).unwrap();
        for (event_type, schema) in &self.current {
            std::fs::write(
                released_dir.join(format!("{event_type}.json")),
                pretty(schema),
            )
            .unwrap();
        }
        std::fs::write(released_dir.join(ENVELOPE), pretty(&self.envelope)).unwrap();
        let fields = |document: &Value| -> BTreeSet<String> {
            document["data"]
                .as_object()
                .map(|data| data.keys().cloned().collect())
                .unwrap_or_default()
        };
        let mut corpus = self.corpus.clone();
        for document in &self.emitted {
            let event_type = document["type"].as_str().unwrap_or_default();
            let folder = format!("{event_type}/");
            let recorded: Vec<&(String, Value)> = corpus
                .iter()
                .filter(|(file, _)| file.starts_with(&folder))
                .collect();
            if recorded
                .iter()
                .any(|(_, past)| fields(past) == fields(document))
            {
                continue;
            }
            // Files are numbered in the order they were recorded: `01-...json`, `02-...`.
            let next = recorded
                .iter()
                .filter_map(|(file, _)| file[folder.len()..].split('-').next()?.parse().ok())
                .max()
                .unwrap_or(0u32)
                + 1;
            let file = format!("{folder}{next:02}-recorded.json");
            let path = dir.join("corpus").join(&file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, pretty(document)).unwrap();
            corpus.push((file, document.clone()));
        }
        Ok(())
    }
}

fn report(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|problem| format!("  - {problem}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn when_compared_with_the_released_contract_should_hold_both_ways() {
    let dir = schemas_dir();
    let contract = Contract::load(&dir).await;
    if std::env::var_os("UPDATE_RELEASED_SCHEMAS").is_some_and(|v| v == "1") {
        if let Err(problems) = contract.record(&dir) {
            panic!(
                "refusing to record a release that breaks the released one under the same \
                 version:\n{}\nA change that is not purely additive is a new version (.v2); \
                 see docs/events.md, \"Evolving an event\"",
                report(&problems)
            );
        }
    }
    let problems = Contract::load(&dir).await.problems();
    assert!(
        problems.is_empty(),
        "the event contract breaks what was released:\n{}\nA change that is not purely \
         additive is a new version (.v2); see docs/events.md, \"Evolving an event\"",
        report(&problems)
    );
}

#[tokio::test]
async fn when_the_contract_is_seeded_should_hold_every_type_and_the_events_before_the_added_fields()
{
    let contract = Contract::load(&schemas_dir()).await;
    for ty in EventType::ALL {
        assert!(contract.released.contains_key(ty.name()), "{}", ty.name());
    }
    // Recorded before user_id, title, strategy (of TaskStarted) and error_message.
    let before: BTreeSet<&str> = contract
        .corpus
        .iter()
        .filter(|(_, document)| {
            let data = &document["data"];
            ["user_id", "title", "error_message"]
                .iter()
                .all(|added| data.get(added).is_none())
                && (document["type"] != "task.started.v1" || data.get("strategy").is_none())
        })
        .map(|(_, document)| document["type"].as_str().unwrap())
        .collect();
    assert_eq!(before.len(), EventKind::ALL.len(), "{before:?}");
}

/// The contract under `dir`, changed as a producer would be: `mutate` edits the current
/// `data` schema of `event_type` and `emit` each of its emitted `data`.
async fn changed(
    dir: &Path,
    event_type: &str,
    mutate: impl Fn(&mut serde_json::Map<String, Value>),
    emit: impl Fn(&mut serde_json::Map<String, Value>),
) -> Contract {
    let mut contract = Contract::load(dir).await;
    mutate(
        contract
            .current
            .get_mut(event_type)
            .unwrap()
            .as_object_mut()
            .unwrap(),
    );
    for document in &mut contract.emitted {
        if document["type"] == event_type {
            emit(document["data"].as_object_mut().unwrap());
        }
    }
    contract
}

fn properties(schema: &mut serde_json::Map<String, Value>) -> &mut serde_json::Map<String, Value> {
    schema["properties"].as_object_mut().unwrap()
}

fn require(schema: &mut serde_json::Map<String, Value>, field: &str, required: bool) {
    let list = schema["required"].as_array_mut().unwrap();
    list.retain(|name| name != field);
    if required {
        list.push(Value::from(field));
    }
}

fn schema_changes(problems: &[Problem]) -> Vec<compat::Change> {
    problems
        .iter()
        .filter_map(|problem| match problem {
            Problem::Schema { found, .. } => Some(found.change.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn when_an_optional_field_is_added_should_pass_the_gate() {
    let contract = changed(
        &schemas_dir(),
        "task.created.v1",
        |schema| {
            properties(schema).insert(
                "priority".into(),
                serde_json::json!({"type": "string", "enum": ["low", "high"]}),
            );
        },
        |data| {
            data.insert("priority".into(), Value::from("high"));
        },
    )
    .await;
    assert_eq!(contract.problems(), vec![]);
}

#[tokio::test]
async fn when_a_field_is_removed_should_fail_the_gate() {
    let contract = changed(
        &schemas_dir(),
        "task.completed.v1",
        |schema| {
            properties(schema).remove("strategy");
            require(schema, "strategy", false);
        },
        |data| {
            data.remove("strategy");
        },
    )
    .await;
    let problems = contract.problems();
    assert_eq!(
        schema_changes(&problems),
        vec![compat::Change::Removed {
            property: "strategy".into()
        }],
        "{problems:?}"
    );
    // Old consumers require it.
    assert!(
        problems.iter().any(|problem| matches!(problem,
            Problem::EmittedRefused { event_type, reason }
                if event_type == "task.completed.v1" && reason.contains("\"strategy\" is a required property"))),
        "{problems:?}"
    );
}

#[tokio::test]
async fn when_a_field_is_renamed_should_fail_the_gate() {
    let contract = changed(
        &schemas_dir(),
        "task.completed.v1",
        |schema| {
            let duration = properties(schema).remove("duration_ms").unwrap();
            properties(schema).insert("duration".into(), duration);
            require(schema, "duration_ms", false);
            require(schema, "duration", true);
        },
        |data| {
            let duration = data.remove("duration_ms").unwrap();
            data.insert("duration".into(), duration);
        },
    )
    .await;
    let problems = contract.problems();
    assert_eq!(
        schema_changes(&problems),
        vec![compat::Change::Renamed {
            from: "duration_ms".into(),
            to: "duration".into()
        }],
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|problem| matches!(problem,
            Problem::EmittedRefused { event_type, .. } if event_type == "task.completed.v1")),
        "{problems:?}"
    );
    // Both recorded completions lack the new name.
    let refused: Vec<&str> = problems
        .iter()
        .filter_map(|problem| match problem {
            Problem::RecordedRefused { file, reason } if reason.contains("\"duration\"") => {
                Some(file.as_str())
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        refused,
        [
            "task.completed.v1/01-before-owner.json",
            "task.completed.v1/02-with-owner.json"
        ]
    );
}

#[tokio::test]
async fn when_a_field_is_retyped_should_fail_the_gate() {
    let contract = changed(
        &schemas_dir(),
        "task.completed.v1",
        |schema| {
            properties(schema).insert("tokens_used".into(), serde_json::json!({"type": "string"}));
        },
        |data| {
            let tokens = data["tokens_used"].to_string();
            data.insert("tokens_used".into(), Value::from(tokens));
        },
    )
    .await;
    let problems = contract.problems();
    let retyped: Vec<String> = problems
        .iter()
        .filter_map(|problem| match problem {
            Problem::Schema { found, .. } => Some(found.to_string()),
            _ => None,
        })
        .collect();
    assert!(
        retyped.contains(&r#"data.tokens_used retyped: `type` was "integer", is "string""#.into()),
        "{retyped:?}"
    );
    assert!(
        problems.iter().any(|problem| matches!(problem,
            Problem::EmittedRefused { reason, .. } if reason.contains("is not of type \"integer\""))),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|problem| matches!(problem,
            Problem::RecordedRefused { reason, .. } if reason.contains("is not of type \"string\""))),
        "{problems:?}"
    );
}

#[tokio::test]
async fn when_an_envelope_attribute_is_dropped_or_required_anew_should_fail_the_gate() {
    let mut contract = Contract::load(&schemas_dir()).await;
    for document in &mut contract.emitted {
        document.as_object_mut().unwrap().remove("dataschema");
    }
    contract.envelope["required"]
        .as_array_mut()
        .unwrap()
        .push(Value::from("partitionkey"));
    let problems = contract.problems();
    // Old consumers require `dataschema`.
    assert!(
        problems.iter().any(|problem| matches!(problem,
            Problem::EmittedRefused { reason, .. } if reason.contains("\"dataschema\" is a required property"))),
        "{problems:?}"
    );
    // No recorded event has `partitionkey`.
    let refused = problems
        .iter()
        .filter(|problem| matches!(problem,
            Problem::RecordedRefused { reason, .. } if reason.contains("\"partitionkey\" is a required property")))
        .count();
    assert_eq!(refused, contract.corpus.len(), "{problems:?}");
}

#[tokio::test]
async fn when_an_added_field_becomes_required_should_refuse_the_events_recorded_before_it() {
    let contract = changed(
        &schemas_dir(),
        "task.failed.v1",
        |schema| require(schema, "error_message", true),
        |_| {},
    )
    .await;
    let problems = contract.problems();
    assert_eq!(
        schema_changes(&problems),
        vec![compat::Change::NewlyRequired {
            property: "error_message".into()
        }]
    );
    assert!(
        problems.iter().any(|problem| matches!(problem,
            Problem::RecordedRefused { file, reason }
                if file == "task.failed.v1/01-before-error-message.json"
                    && reason.contains("\"error_message\" is a required property"))),
        "{problems:?}"
    );
}

#[tokio::test]
async fn when_a_type_is_emitted_that_was_never_released_should_fail_the_gate() {
    let mut contract = Contract::load(&schemas_dir()).await;
    contract.emitted[0]["type"] = Value::from("task.created.v2");
    assert_eq!(
        contract.problems(),
        vec![Problem::Unreleased {
            event_type: "task.created.v2".into()
        }]
    );
}

/// A scratch copy of `schemas/` for the recording tests.
fn scratch_copy() -> PathBuf {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let path = entry.unwrap().path();
            let target = to.join(path.file_name().unwrap());
            if path.is_dir() {
                copy(&path, &target);
            } else {
                std::fs::copy(&path, &target).unwrap();
            }
        }
    }
    let dir = std::env::temp_dir().join(format!("released-contract-{}", uuid::Uuid::new_v4()));
    copy(&schemas_dir(), &dir);
    dir
}

fn tree(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let text = std::fs::read_to_string(&path).unwrap();
                files.insert(path.strip_prefix(dir).unwrap().to_path_buf(), text);
            }
        }
    }
    files
}

#[tokio::test]
async fn when_a_breaking_change_is_recorded_should_refuse_and_write_nothing() {
    let dir = scratch_copy();
    let before = tree(&dir);
    let contract = changed(
        &dir,
        "task.started.v1",
        |schema| {
            properties(schema).remove("complexity");
            require(schema, "complexity", false);
        },
        |data| {
            data.remove("complexity");
        },
    )
    .await;
    let refused = contract.record(&dir).unwrap_err();
    assert!(
        refused.contains(&Problem::Schema {
            event_type: "task.started.v1".into(),
            found: Break {
                path: "data".into(),
                change: compat::Change::Removed {
                    property: "complexity".into()
                }
            }
        }),
        "{refused:?}"
    );
    assert_eq!(tree(&dir), before);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn when_a_compatible_change_is_recorded_should_release_it_and_record_its_events() {
    let dir = scratch_copy();
    let add_priority = |schema: &mut serde_json::Map<String, Value>| {
        properties(schema).insert("priority".into(), serde_json::json!({"type": "string"}));
    };
    let emit_priority = |data: &mut serde_json::Map<String, Value>| {
        data.insert("priority".into(), Value::from("high"));
    };
    let contract = changed(&dir, "task.created.v1", add_priority, emit_priority).await;
    contract.record(&dir).unwrap();
    let released = read_json(&dir.join("released/task.created.v1.json"));
    assert!(released["properties"].get("priority").is_some());
    let envelope = read_json(&dir.join("released").join(ENVELOPE));
    assert_eq!(envelope, contract.envelope);
    let recorded = json_files(&dir.join("corpus/task.created.v1"));
    let names: Vec<&str> = recorded.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        [
            "01-before-owner-and-title.json",
            "02-with-owner-and-title.json",
            "03-recorded.json"
        ]
    );
    assert_eq!(read_json(&recorded[2].1)["data"]["priority"], "high");
    // The other types' events are of shapes already recorded.
    for kind in ["task.started.v1", "task.completed.v1", "task.failed.v1"] {
        assert_eq!(
            json_files(&dir.join("corpus").join(kind)).len(),
            2,
            "{kind}"
        );
    }
    // Recorded again from what was recorded, nothing is added.
    let again = changed(&dir, "task.created.v1", add_priority, emit_priority).await;
    again.record(&dir).unwrap();
    assert_eq!(json_files(&dir.join("corpus/task.created.v1")).len(), 3);
    // Once released, the field is part of the contract: a tree without it breaks the gate.
    let without = Contract::load(&dir).await;
    assert_eq!(
        schema_changes(&without.problems()),
        vec![compat::Change::Removed {
            property: "priority".into()
        }]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
