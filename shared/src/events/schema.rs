//! The event contract as JSON Schema (draft-07, as AsyncAPI reads it), generated from the
//! envelope and payload types; `schemas/` at the repository root holds the checked-in copy.

use schemars::generate::SchemaSettings;
use schemars::JsonSchema;
use serde_json::Value;

use super::{
    EventEnvelope, EventType, TaskCompleted, TaskCompletedV2, TaskCreated, TaskFailed, TaskStarted,
};

/// `$id` of the envelope's schema, `schemas/cloudevent.json`.
pub const ENVELOPE_SCHEMA_ID: &str = "urn:task-orchestration:schemas:cloudevent";

/// Every schema of the contract: its file name under `schemas/` and the document.
pub fn all() -> Vec<(String, Value)> {
    let mut files = vec![(
        "cloudevent.json".to_owned(),
        generate::<EventEnvelope>(ENVELOPE_SCHEMA_ID),
    )];
    for ty in EventType::ALL {
        let schema = match ty {
            EventType::TaskCreatedV1 => generate::<TaskCreated>,
            EventType::TaskStartedV1 => generate::<TaskStarted>,
            EventType::TaskCompletedV1 => generate::<TaskCompleted>,
            EventType::TaskCompletedV2 => generate::<TaskCompletedV2>,
            EventType::TaskFailedV1 => generate::<TaskFailed>,
        };
        files.push((file_name(ty), schema(&ty.data_schema())));
    }
    files
}

/// The file under `schemas/` that holds the schema of the `data` of type `ty`.
pub fn file_name(ty: EventType) -> String {
    format!("{}.json", ty.name())
}

fn generate<T: JsonSchema>(id: &str) -> Value {
    let mut schema = SchemaSettings::draft07()
        .into_generator()
        .into_root_schema_for::<T>();
    schema.insert("$id".to_owned(), Value::from(id));
    schema.to_value()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn schemas_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../schemas")
    }

    fn pretty(schema: &Value) -> String {
        serde_json::to_string_pretty(schema).expect("a schema serialises") + "\n"
    }

    /// `UPDATE_SCHEMAS=1 cargo test -p shared schemas` writes the files anew.
    #[test]
    fn when_compared_with_the_code_should_equal_the_checked_in_schemas() {
        let dir = schemas_dir();
        let update = std::env::var_os("UPDATE_SCHEMAS").is_some_and(|v| v == "1");
        let mut stale = Vec::new();
        for (name, schema) in all() {
            let path = dir.join(&name);
            let generated = pretty(&schema);
            if update {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &generated).unwrap();
            } else if std::fs::read_to_string(&path).ok().as_deref() != Some(generated.as_str()) {
                stale.push(name);
            }
        }
        assert!(
            stale.is_empty(),
            "schemas/{stale:?} differ from the code; rewrite them with \
             UPDATE_SCHEMAS=1 cargo test -p shared schemas"
        );
        // Files only: `released/` and `corpus/` hold the released contract (see `gate_tests`).
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.is_file())
            .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        on_disk.sort();
        let mut expected: Vec<String> = all().into_iter().map(|(name, _)| name).collect();
        expected.sort();
        assert_eq!(
            on_disk, expected,
            "schemas/ holds a file the code does not generate"
        );
    }

    #[test]
    fn when_generated_should_name_each_schema_by_its_dataschema_uri() {
        for ty in EventType::ALL {
            let (_, schema) = all()
                .into_iter()
                .find(|(name, _)| *name == file_name(ty))
                .unwrap();
            assert_eq!(schema["$id"], ty.data_schema());
            assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
        }
    }
}
